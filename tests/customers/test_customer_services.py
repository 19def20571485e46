"""Customers, addresses, plans and portal signup through their services.

Validation reports every bad field at once and writes nothing; e-mail addresses are unique per
tenant through the blind index (and a database constraint for races); account numbers are
gap-free per tenant; audit events name fields, never values; money keeps six places and is
never float.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import services
from customers.models import Customer, NumberSequence, Plan, ServiceAddress, Subscription
from customers.services import (
    customer_by_email,
    customer_create,
    customer_signup,
    customer_update,
    plan_archive,
    plan_create,
    service_address_create,
    subscription_activate,
    subscription_create,
)
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory, SubscriptionFactory

STAFF = Actor(type=AuditEvent.ActorType.USER, id="7", label="support.agent")
SIGNUP_PASSWORD = "violet-harbour-lantern-42"
SIGNUP_ADDRESS = {
    "street": "12 Elm Street",
    "city": "Sacramento",
    "postal_code": "95814",
    "country": "US",
    "region": "US-CA",
}


def written() -> dict:
    """Row counts of everything a customer service may write, plus the number sequences."""
    return {
        "customers": Customer.objects.count(),
        "addresses": ServiceAddress.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "users": get_user_model().objects.count(),
        "audit_events": AuditEvent.objects.count(),
        "sequences": sorted(NumberSequence.objects.values_list("name", "period", "last_value")),
    }


def last_account_number() -> int:
    return NumberSequence.objects.filter(name="customer").values_list("last_value", flat=True).first() or 0


def audit_rows_text() -> str:
    """Every column of every audit event in the tenant, as one lower-case string."""
    return repr(list(AuditEvent.objects.values())).lower()


# --- customer_create ---------------------------------------------------------------------------
@pytest.mark.data_safety
@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_customer_create_reports_every_bad_field_at_once_and_writes_nothing(tenant):
    # given
    before = written()

    # when
    with pytest.raises(ValidationError) as exc:
        customer_create(
            actor=STAFF,
            name="   ",
            email="not-an-address",
            phone="415 555 0123",
            date_of_birth=timezone.localdate() + datetime.timedelta(days=1),
            billing_day=29,
            kind="wholesale",
        )

    # then
    errors = exc.value.message_dict
    assert set(errors) == {"name", "email", "phone", "date_of_birth", "billing_day", "kind"}
    assert "international format" in errors["phone"][0]
    assert "between 1 and 28" in errors["billing_day"][0]
    assert written() == before


@pytest.mark.data_safety
@pytest.mark.customer_data_protection
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("phone", "+1 200 555 0123", "not valid"),
        ("phone", "4155550123", "international format"),
        ("date_of_birth", "today", "in the past"),
        ("date_of_birth", "tomorrow", "in the past"),
        ("date_of_birth", datetime.date(1850, 1, 1), "in the past"),
        ("billing_day", 0, "between 1 and 28"),
        ("billing_day", 29, "between 1 and 28"),
        ("kind", "wholesale", "residential, business"),
        ("name", "x" * 201, "At most 200"),
        ("email", "ada@", "valid e-mail"),
    ],
)
def test_customer_create_refuses_each_bad_field(tenant, field, value, message):
    if value in ("today", "tomorrow"):
        value = timezone.localdate() + datetime.timedelta(days=0 if value == "today" else 1)
    fields = {"name": "Ada Lovelace", "email": "ada@example.org", field: value}
    before = written()

    with pytest.raises(ValidationError) as exc:
        customer_create(actor=STAFF, **fields)

    assert list(exc.value.message_dict) == [field]
    assert message in exc.value.message_dict[field][0]
    assert written() == before


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_customer_create_normalises_contact_data_and_audits_field_names(tenant):
    customer = customer_create(
        actor=STAFF,
        name="  Ada Lovelace ",
        email=" Ada@Example.org ",
        phone="+1 (415) 555-0123",
        billing_day=28,
        kind=Customer.Kind.BUSINESS,
        source_ip="198.51.100.4",
    )

    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.name, stored.email, stored.phone) == ("Ada Lovelace", "Ada@Example.org", "+14155550123")
    assert (stored.billing_day, stored.kind, stored.status) == (28, "business", Customer.Status.PROSPECT)
    audit = AuditEvent.objects.get(action="customer.created", object_id=str(customer.pk))
    assert audit.changed_fields == ["billing_day", "email", "kind", "name", "phone"]
    assert (audit.actor_type, audit.actor_label, audit.source_ip) == ("user", "support.agent", "198.51.100.4")
    for secret in ("ada@", "lovelace", "example.org", "4155550123"):
        assert secret not in audit_rows_text()
    assert str(customer) == f"Customer C{customer.account_number:06d}"


@pytest.mark.data_safety
@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_a_duplicate_email_is_refused_whatever_its_case_or_spacing(tenant):
    # given
    first = CustomerFactory(email="Grace.Hopper@Example.org")
    before = written()

    # when
    with pytest.raises(ValidationError) as exc:
        CustomerFactory(email="  grace.hopper@EXAMPLE.ORG ")

    # then
    assert exc.value.message_dict == {"email": ["A customer with this e-mail address already exists."]}
    assert written() == before
    assert customer_by_email("GRACE.HOPPER@example.org") == first


@pytest.mark.data_safety
@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_a_duplicate_email_racing_past_the_check_is_stopped_by_the_database(tenant, monkeypatch):
    # given: a concurrent request created the same address between our check and our insert,
    # so the pre-check missed it (later look-ups see it)
    first = CustomerFactory(email="race@example.org")
    real_check, checks = services._email_taken, []

    def check_missing_the_concurrent_row(email, exclude_pk=None):
        checks.append(email)
        return False if len(checks) == 1 else real_check(email, exclude_pk)

    monkeypatch.setattr(services, "_email_taken", check_missing_the_concurrent_row)
    before = written()

    # when
    with pytest.raises(ValidationError) as exc:
        customer_create(actor=STAFF, name="Racer", email="RACE@example.org")

    # then: the constraint violation became a field error, and nothing was kept - not even the number
    assert exc.value.message_dict == {"email": ["A customer with this e-mail address already exists."]}
    assert written() == before
    assert CustomerFactory().account_number == first.account_number + 1


@pytest.mark.data_safety
@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_save_customer_turns_the_unique_email_constraint_into_a_field_error(tenant):
    # given: a row built around the service and its pre-check, with a taken address
    CustomerFactory(email="dup@example.org")
    duplicate = Customer(account_number=last_account_number() + 1000, name="Dup", email="DUP@Example.org")
    before = written()

    # when
    with pytest.raises(ValidationError) as exc:
        services._save_customer(duplicate)

    # then
    assert exc.value.message_dict == {"email": ["A customer with this e-mail address already exists."]}
    assert written() == before


@pytest.mark.data_safety
@pytest.mark.behavior
def test_save_customer_reraises_integrity_errors_that_are_not_about_the_email(tenant):
    # given: a customer built around the service, reusing an account number
    existing = CustomerFactory()
    clash = Customer(account_number=existing.account_number, name="Clash", email="clash@example.org")

    # when / then: not disguised as an e-mail error, and the caller's transaction is still usable
    with pytest.raises(IntegrityError, match="account_number"):
        services._save_customer(clash)
    assert Customer.objects.filter(pk=existing.pk).exists()


@pytest.mark.data_safety
@pytest.mark.behavior
def test_account_numbers_are_sequential_and_a_rolled_back_creation_gives_its_number_back(tenant):
    # given
    start = last_account_number()
    first, second = CustomerFactory(), CustomerFactory()

    # when: a creation rolls back with the transaction that made it
    def create_then_fail():
        with transaction.atomic():
            CustomerFactory(email="rolled.back@example.org")
            raise RuntimeError("the caller failed after creating the customer")

    with pytest.raises(RuntimeError, match="caller failed"):
        create_then_fail()
    third = CustomerFactory()

    # then
    assert [first.account_number, second.account_number, third.account_number] == [start + 1, start + 2, start + 3]
    assert customer_by_email("rolled.back@example.org") is None
    assert third.account_code == f"C{start + 3:06d}"


@pytest.mark.data_safety
@pytest.mark.behavior
def test_each_tenant_numbers_its_own_customers(tenant, other_tenant):
    # given
    connection.set_tenant(other_tenant)
    other_start = last_account_number()
    connection.set_tenant(tenant)
    start = last_account_number()

    # when
    here = [CustomerFactory(email=f"here{i}@example.org").account_number for i in range(3)]
    connection.set_tenant(other_tenant)
    there = CustomerFactory(email="here0@example.org")  # the same address is free in another tenant
    connection.set_tenant(tenant)

    # then
    assert here == [start + 1, start + 2, start + 3]
    assert there.account_number == other_start + 1
    assert last_account_number() == start + 3


@pytest.mark.data_safety
@pytest.mark.behavior
def test_next_number_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        services.next_number("customer")


# --- customer_update ---------------------------------------------------------------------------
@pytest.mark.customer_data_protection
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("flag", "stamp"), [("marketing_consent", "marketing_consent_at"), ("do_not_sell", "do_not_sell_at")]
)
def test_consent_and_do_not_sell_are_timestamped_when_they_flip(tenant, flag, stamp):
    # given
    customer = CustomerFactory()
    assert (getattr(customer, flag), getattr(customer, stamp)) == (False, None)

    # when: given
    before = timezone.now()
    given = customer_update(customer=customer, changes={flag: True}, actor=STAFF)
    given_at = getattr(given, stamp)

    # then
    assert before <= given_at <= timezone.now()
    assert getattr(Customer.objects.get(pk=customer.pk), stamp) == given_at

    # when: repeated, nothing flips and the moment stays
    assert getattr(customer_update(customer=customer, changes={flag: True}, actor=STAFF), stamp) == given_at

    # when: withdrawn, the withdrawal is the new moment
    withdrawn = customer_update(customer=customer, changes={flag: False}, actor=STAFF)
    assert getattr(withdrawn, flag) is False
    assert getattr(withdrawn, stamp) > given_at


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_a_consent_given_at_creation_is_timestamped(tenant):
    customer = CustomerFactory(marketing_consent=True, do_not_sell=True)

    assert customer.marketing_consent_at is not None
    assert customer.do_not_sell_at == customer.marketing_consent_at


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_customer_update_audits_the_names_of_changed_fields_and_never_their_values(tenant):
    # given
    customer = CustomerFactory(name="Hedy Kiesler", email="hedy.k@example.org", phone="+14155550123")

    # when
    updated = customer_update(
        customer=customer,
        changes={
            "name": "Hedy Lamarr",
            "email": "Hedy.Lamarr@example.com",
            "phone": "+1 415 555 0177",
            "date_of_birth": datetime.date(1914, 11, 9),
            "national_id": "SSN-123-45-6789",
            "billing_day": 9,
            "kind": customer.kind,  # unchanged: not listed
        },
        actor=STAFF,
        source_ip="203.0.113.7",
    )

    # then
    assert (updated.name, updated.email, updated.phone) == ("Hedy Lamarr", "Hedy.Lamarr@example.com", "+14155550177")
    assert customer_by_email("hedy.lamarr@EXAMPLE.com") == customer
    assert customer_by_email("hedy.k@example.org") is None
    audit = AuditEvent.objects.filter(action="customer.updated", object_id=str(customer.pk)).get()
    assert audit.changed_fields == ["billing_day", "date_of_birth", "email", "name", "national_id", "phone"]
    assert (audit.actor_id, audit.source_ip) == ("7", "203.0.113.7")
    text = audit_rows_text()
    for secret in (
        "hedy",
        "kiesler",
        "lamarr",
        "example.com",
        "example.org",
        "4155550177",
        "4155550123",
        "1914-11-09",
        "date(1914",
        "123-45-6789",
    ):
        assert secret not in text, f"{secret!r} leaked into the audit trail"


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_an_update_that_changes_nothing_records_nothing(tenant):
    customer = CustomerFactory(name="Same Name", billing_day=5)
    before = written()

    customer_update(customer=customer, changes={"name": "Same Name", "billing_day": 5}, actor=STAFF)

    assert written() == before


@pytest.mark.customer_data_protection
@pytest.mark.data_safety
@pytest.mark.behavior
def test_customer_update_refuses_fields_that_are_not_editable_and_bad_values(tenant):
    customer = CustomerFactory(email="keep@example.org")
    other = CustomerFactory(email="taken@example.org")
    before = written()

    with pytest.raises(ValidationError) as exc:
        customer_update(customer=customer, changes={"account_number": 1, "data_key_id": None}, actor=STAFF)
    assert set(exc.value.message_dict) == {"account_number", "data_key_id"}

    with pytest.raises(ValidationError) as exc:
        customer_update(customer=customer, changes={"email": "TAKEN@example.org", "billing_day": 0}, actor=STAFF)
    assert set(exc.value.message_dict) == {"email", "billing_day"}

    assert written() == before
    assert customer_by_email("taken@example.org") == other


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_personal_data_and_the_tax_exemption_can_be_cleared(tenant):
    # given
    customer = CustomerFactory(national_id="NID-1", tax_exempt_certificate="EX-2025-001")

    # when
    cleared = customer_update(customer=customer, changes={"national_id": "", "tax_exempt_certificate": ""}, actor=STAFF)

    # then
    stored = Customer.objects.get(pk=cleared.pk)
    assert (stored.national_id, stored.tax_exempt_certificate) == (None, "")


# --- service addresses -------------------------------------------------------------------------
@pytest.mark.customer_data_protection
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("country", "region", "stored"),
    [
        ("US", "US-CA", ("US", "US-CA")),
        ("us", " us-ca ", ("US", "US-CA")),
        ("DE", "DE-BY", ("DE", "DE-BY")),
        ("JP", "JP-13", ("JP", "JP-13")),
        ("GB", "", ("GB", "")),
    ],
)
def test_a_service_address_takes_iso_countries_and_their_subdivisions(tenant, country, region, stored):
    customer = CustomerFactory()

    address = service_address_create(
        customer=customer,
        street="1 Main St",
        city="Town",
        postal_code="12345",
        country=country,
        region=region,
        actor=STAFF,
    )

    fresh = ServiceAddress.objects.get(pk=address.pk)
    assert (fresh.country, fresh.region) == stored
    assert fresh.data_key_id == customer.data_key_id  # erasing the customer erases the address too
    assert (fresh.street, fresh.city, fresh.postal_code) == ("1 Main St", "Town", "12345")
    audit = AuditEvent.objects.get(action="service_address.created", object_id=str(address.pk))
    assert audit.changed_fields == ["city", "country", "locality", "postal_code", "region", "street"]
    assert "main st" not in audit_rows_text()


@pytest.mark.customer_data_protection
@pytest.mark.data_safety
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"country": "US", "region": "DE-BY"}, {"region"}),
        ({"country": "XX"}, {"country"}),
        ({"country": "USA"}, {"country"}),
        ({"country": "US", "region": "US-ZZ"}, {"region"}),
        ({"country": "US", "street": " ", "city": "", "postal_code": "x" * 201}, {"street", "city", "postal_code"}),
        ({"country": "US", "locality": "L" * 65}, {"locality"}),
    ],
)
def test_a_bad_service_address_is_refused_with_every_error_and_writes_nothing(tenant, fields, errors):
    customer = CustomerFactory()
    before = written()
    values = {"street": "1 Main St", "city": "Town", "postal_code": "12345"} | fields

    with pytest.raises(ValidationError) as exc:
        service_address_create(customer=customer, actor=STAFF, **values)

    assert set(exc.value.message_dict) == errors
    assert written() == before


# --- plans -------------------------------------------------------------------------------------
@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_plan_prices_keep_six_decimal_places_exactly(tenant):
    plan = plan_create(
        actor=STAFF,
        code="metered",
        name="Metered",
        download_kbps=100_000,
        upload_kbps=20_000,
        monthly_price=Decimal("19.999999"),
        setup_fee=Decimal("0.000001"),
        overage_rate_per_gb=Decimal("0.123456"),
        included_bytes=500 * 10**9,
    )

    stored = Plan.objects.get(pk=plan.pk)
    assert (stored.monthly_price, stored.setup_fee, stored.overage_rate_per_gb) == (
        Decimal("19.999999"),
        Decimal("0.000001"),
        Decimal("0.123456"),
    )
    assert not stored.is_unlimited
    audit = AuditEvent.objects.get(action="plan.created", object_id=str(plan.pk))
    assert "monthly_price" in audit.changed_fields


@pytest.mark.revenue_critical
@pytest.mark.behavior
@pytest.mark.parametrize("field", ["monthly_price", "setup_fee", "overage_rate_per_gb"])
@pytest.mark.parametrize(
    ("value", "message"), [(Decimal("19.9999999"), "6 decimal places"), (Decimal("-0.01"), "greater than or equal")]
)
def test_a_price_with_seven_places_or_below_zero_is_refused(tenant, field, value, message):
    before = written()

    with pytest.raises(ValidationError) as exc:
        PlanFactory(**{field: value})

    assert message in exc.value.message_dict[field][0]
    assert written() == before


@pytest.mark.revenue_critical
@pytest.mark.behavior
@pytest.mark.parametrize("field", ["monthly_price", "setup_fee", "overage_rate_per_gb"])
@pytest.mark.parametrize("value", [49.99, 50.0, 0.5])
def test_a_float_price_is_refused_even_when_it_looks_exact(tenant, field, value):
    before = written()

    with pytest.raises(TypeError, match="never float"):
        PlanFactory(**{field: value})

    assert written() == before


@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_a_float_price_is_refused_on_update_too(tenant):
    plan = PlanFactory(monthly_price=Decimal("30.00"))

    with pytest.raises(TypeError, match="never float"):
        services.plan_update(plan=plan, changes={"monthly_price": 35.0}, actor=STAFF)

    assert Plan.objects.get(pk=plan.pk).monthly_price == Decimal("30.00")


@pytest.mark.revenue_critical
@pytest.mark.data_safety
@pytest.mark.behavior
def test_plan_codes_are_unique_and_unknown_fields_refused(tenant):
    PlanFactory(code="fiber-1g")
    before = written()

    with pytest.raises(ValidationError) as exc:
        PlanFactory(code="fiber-1g")
    assert "code" in exc.value.message_dict

    with pytest.raises(ValidationError) as exc:
        PlanFactory(status_note="free forever")
    assert "status_note" in exc.value.message_dict

    assert written() == before


@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_an_archived_plan_takes_no_new_subscriptions_but_keeps_its_existing_ones(tenant):
    # given
    plan = PlanFactory()
    existing = SubscriptionFactory(plan=plan)
    address = ServiceAddressFactory()

    # when
    archived = plan_archive(plan=plan, actor=STAFF)

    # then
    assert Plan.objects.get(pk=plan.pk).status == archived.status == Plan.Status.ARCHIVED
    before = written()
    with pytest.raises(ValidationError) as exc:
        subscription_create(customer=address.customer, plan=archived, service_address=address, actor=STAFF)
    assert "archived" in exc.value.message_dict["plan"][0]
    assert written() == before
    kept = subscription_activate(subscription=existing, activated_on=datetime.date(2025, 3, 1), actor=STAFF)
    assert (kept.plan_id, kept.status) == (plan.pk, "active")


@pytest.mark.data_safety
@pytest.mark.behavior
def test_a_subscription_is_only_created_at_the_customers_own_address(tenant):
    customer, stranger_address = CustomerFactory(), ServiceAddressFactory()
    before = written()

    with pytest.raises(ValidationError) as exc:
        subscription_create(customer=customer, plan=PlanFactory(), service_address=stranger_address, actor=STAFF)

    assert list(exc.value.message_dict) == ["service_address"]
    assert written()["subscriptions"] == before["subscriptions"]


# --- portal signup -----------------------------------------------------------------------------
def signup(**overrides):
    fields = {
        "name": "Grace Hopper",
        "email": "Grace.Hopper@Example.org",
        "phone": "+1 415 555 0199",
        "password": SIGNUP_PASSWORD,
        "plan_code": "home-500",
        "address": dict(SIGNUP_ADDRESS),
        "source_ip": "203.0.113.50",
    } | overrides
    return customer_signup(**fields)


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_portal_signup_creates_the_customer_address_pending_subscription_and_a_login_without_pii(tenant):
    # given
    plan = PlanFactory(code="home-500")
    before = written()

    # when
    customer, subscription = signup(marketing_consent=True)

    # then
    after = written()
    for table in ("customers", "addresses", "subscriptions", "users"):
        assert after[table] == before[table] + 1, table
    assert (subscription.status, subscription.plan_id, subscription.customer_id) == ("pending", plan.pk, customer.pk)
    address = subscription.service_address
    assert (address.customer_id, address.region, address.data_key_id) == (customer.pk, "US-CA", customer.data_key_id)
    assert customer.status == Customer.Status.PROSPECT
    assert customer.marketing_consent_at is not None

    user = customer.portal_user
    assert user.username.startswith("portal-")
    assert not user.is_staff
    assert not user.is_superuser
    identity = " ".join([user.username, user.email, user.first_name, user.last_name]).lower()
    for secret in ("grace", "hopper", "example.org", "4155550199"):
        assert secret not in identity
    assert user.check_password(SIGNUP_PASSWORD)

    signed_up = AuditEvent.objects.get(action="customer.signed_up", object_id=str(customer.pk))
    assert (signed_up.actor_type, signed_up.source_ip) == ("anonymous", "203.0.113.50")
    assert "hopper" not in audit_rows_text()


@pytest.mark.customer_data_protection
@pytest.mark.behavior
@pytest.mark.parametrize(
    "login", ["Grace.Hopper@Example.org", "grace.hopper@example.org", " GRACE.HOPPER@EXAMPLE.ORG "]
)
def test_a_signed_up_customer_logs_in_with_their_email_in_any_case(tenant, login):
    # given
    PlanFactory(code="home-500")
    customer, _ = signup()

    # when
    user = authenticate(request=None, username=login, password=SIGNUP_PASSWORD)

    # then
    assert user == customer.portal_user
    assert authenticate(request=None, username=login, password="wrong-password-0000") is None
    assert authenticate(request=None, username="nobody@example.org", password=SIGNUP_PASSWORD) is None


@pytest.mark.customer_data_protection
@pytest.mark.data_safety
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("case", "overrides", "errors"),
    [
        ("weak password", {"password": "short"}, {"password"}),
        ("common password", {"password": "password1234"}, {"password"}),
        ("duplicate e-mail", {"email": "TAKEN@example.org"}, {"email"}),
        ("unknown plan", {"plan_code": "free-forever"}, {"plan_code"}),
        ("archived plan", {"plan_code": "legacy-dsl"}, {"plan_code"}),
        ("bad phone", {"phone": "+1 200 555 0123"}, {"phone"}),
        ("bad region", {"address": SIGNUP_ADDRESS | {"region": "DE-BY"}}, {"address.region"}),
        ("unknown country", {"address": SIGNUP_ADDRESS | {"country": "XX", "region": ""}}, {"address.country"}),
        ("address missing a field", {"address": {"street": "1 Elm St", "city": "Sacramento"}}, {"address"}),
        ("address smuggling a field", {"address": SIGNUP_ADDRESS | {"customer": None}}, {"address"}),
        ("many at once", {"password": "short", "plan_code": "nope", "name": ""}, {"password", "plan_code", "name"}),
    ],
)
def test_a_failed_portal_signup_writes_nothing_at_all(tenant, case, overrides, errors):
    # given
    PlanFactory(code="home-500")
    PlanFactory(code="legacy-dsl", status=Plan.Status.ARCHIVED)
    CustomerFactory(email="taken@example.org")
    before = written()

    # when
    with pytest.raises(ValidationError) as exc:
        signup(**overrides)

    # then
    assert set(exc.value.message_dict) == errors
    assert written() == before
    assert customer_by_email("grace.hopper@example.org") is None
    assert authenticate(request=None, username="grace.hopper@example.org", password=SIGNUP_PASSWORD) is None
