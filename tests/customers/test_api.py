"""The staff API for customers, service addresses, plans and subscriptions, per role.

Personal data is in clear (and every clear read audited, field names only) for owner and
billing_admin, masked for support, network_ops and auditor, and absent with ?include_pii=false.
Writes go through the services; invalid input writes nothing."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compliance.audit import Actor
from compliance.models import AuditEvent
from compliance.pii.keystore import KeyStore
from compliance.pii.masking import mask_email, mask_phone, mask_text
from customers.api.pii import ADDRESS_PII, CUSTOMER_PII
from customers.models import Customer, Plan, Subscription
from customers.services import subscription_activate
from tenants import roles
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory, SubscriptionFactory

pytestmark = [pytest.mark.django_db]

REVEALERS = (roles.OWNER, roles.BILLING_ADMIN)
MASKED_ROLES = (roles.SUPPORT, roles.NETWORK_OPS, roles.AUDITOR)
ACTIVATED = datetime.date(2025, 3, 1)
STAFF = Actor.system("test")


@pytest.fixture
def keystore_fetches(monkeypatch):
    """Every key-store query (KeyStore.fetch), as the number of keys asked for."""
    calls: list[int] = []
    original = KeyStore.fetch

    def counting(self, *, tenant, key_ids):
        key_ids = list(key_ids)
        calls.append(len(key_ids))
        return original(self, tenant=tenant, key_ids=key_ids)

    monkeypatch.setattr(KeyStore, "fetch", counting)
    return calls


def reveals(tenant) -> list[AuditEvent]:
    connection.set_tenant(tenant)
    return list(AuditEvent.objects.filter(action="pii.revealed").order_by("id"))


def new_customer_body(**overrides) -> dict:
    return {
        "name": "Ada Lovelace",
        "email": "Ada.Lovelace@example.org",
        "phone": "+14155550199",
        "national_id": "NID-123456",
        "date_of_birth": "1985-12-10",
        "kind": "residential",
        "marketing_consent": True,
        **overrides,
    }


# --- customers ---------------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_an_owner_creates_reads_updates_and_lists_a_customer_through_the_services(tenant, staff_client):
    client = staff_client(tenant, roles.OWNER)

    created = client.post("/api/v1/customers/", new_customer_body(), format="json")

    assert created.status_code == 201
    body = created.json()
    assert body["pii"] == "clear"
    assert (body["name"], body["email"], body["phone"]) == ("Ada Lovelace", "Ada.Lovelace@example.org", "+14155550199")
    assert body["date_of_birth"] == "1985-12-10"
    assert body["account_code"].startswith("C")
    assert body["status"] == "prospect"
    assert body["marketing_consent"] is True
    assert body["marketing_consent_at"] is not None
    url = f"/api/v1/customers/{body['id']}/"
    assert client.get(url).json()["email"] == "Ada.Lovelace@example.org"
    updated = client.patch(url, {"phone": "+44 7911 123456", "billing_day": 5}, format="json")
    assert updated.status_code == 200
    assert (updated.json()["phone"], updated.json()["billing_day"]) == ("+447911123456", 5)
    listed = client.get("/api/v1/customers/").json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    connection.set_tenant(tenant)
    stored = Customer.objects.get(pk=body["id"])
    assert (stored.phone, stored.billing_day) == ("+447911123456", 5)
    changes = AuditEvent.objects.filter(object_id=str(body["id"]), action__startswith="customer.")
    assert {(e.action, e.actor_label) for e in changes} == {
        ("customer.created", client.user.username),
        ("customer.updated", client.user.username),
    }
    assert changes.get(action="customer.updated").changed_fields == ["billing_day", "phone"]


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_support_writes_personal_data_but_only_ever_reads_it_back_masked(tenant, staff_client):
    client = staff_client(tenant, roles.SUPPORT)

    created = client.post("/api/v1/customers/", new_customer_body(), format="json")
    updated = client.patch(f"/api/v1/customers/{created.json()['id']}/", {"name": "Ada King"}, format="json")

    assert created.status_code == 201
    assert updated.status_code == 200
    for response in (created, updated):
        assert response.json()["pii"] == "masked"
        assert response.json()["email"] == "A***@e***.org"
        assert b"Lovelace@example" not in response.content
        assert b"NID-123456" not in response.content
    assert updated.json()["name"] == "A*** K***"
    connection.set_tenant(tenant)
    stored = Customer.objects.get(pk=created.json()["id"])
    assert (stored.name, stored.email, stored.national_id) == ("Ada King", "Ada.Lovelace@example.org", "NID-123456")
    assert reveals(tenant) == []


@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.parametrize("role", [*REVEALERS, *MASKED_ROLES])
def test_each_role_sees_personal_data_in_clear_or_masked_and_clear_reads_are_audited(tenant, staff_client, role):
    customers = [
        CustomerFactory(name="Grace Hopper", email="grace@navy.example", phone="+14155550101", tax_id="TAX-77"),
        CustomerFactory(name="Alan Turing", email="alan@bletchley.example", phone="+447911123456"),
    ]
    client = staff_client(tenant, role)

    listed = client.get("/api/v1/customers/")
    one = client.get(f"/api/v1/customers/{customers[0].pk}/")

    assert listed.status_code == one.status_code == 200
    rows = {row["id"]: row for row in listed.json()["results"]}
    grace = rows[customers[0].pk]
    assert one.json() == grace
    events = reveals(tenant)
    if role in REVEALERS:
        assert grace["pii"] == "clear"
        assert (grace["name"], grace["email"], grace["phone"], grace["tax_id"]) == (
            "Grace Hopper",
            "grace@navy.example",
            "+14155550101",
            "TAX-77",
        )
        # one event per customer shown, per response: 2 for the list, 1 for the detail
        assert sorted(int(e.object_id) for e in events) == sorted([c.pk for c in customers] + [customers[0].pk])
        assert {e.object_type for e in events} == {"customers.customer"}
        assert all(e.changed_fields == sorted(CUSTOMER_PII) for e in events)
        assert {e.actor_label for e in events} == {client.user.username}
        assert len({e.request_id for e in events}) == 2
        trail = json.dumps(list(AuditEvent.objects.values()), default=str)
        for secret in ("Grace", "grace@navy", "4155550101", "TAX-77", "Turing"):
            assert secret not in trail  # field names only, never values
    else:
        assert grace["pii"] == "masked"
        assert grace["name"] == mask_text("Grace Hopper") == "G*** H***"
        assert grace["email"] == mask_email("grace@navy.example") == "g***@n***.example"
        assert grace["phone"] == mask_phone("+14155550101")
        assert grace["tax_id"] == "T***"
        for secret in (b"Grace", b"grace@navy", b"4155550101", b"TAX-77", b"Turing"):
            assert secret not in listed.content + one.content
        assert events == []


@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.parametrize("role", [roles.AUDITOR, roles.NETWORK_OPS])
def test_read_only_roles_cannot_create_or_change_customers(tenant, staff_client, role):
    customer = CustomerFactory(name="Grace Hopper")
    client = staff_client(tenant, role)

    created = client.post("/api/v1/customers/", new_customer_body(), format="json")
    changed = client.patch(f"/api/v1/customers/{customer.pk}/", {"name": "Mallory"}, format="json")

    assert created.status_code == changed.status_code == 403
    assert created.json()["error"]["code"] == "permission_denied"
    connection.set_tenant(tenant)
    assert list(Customer.objects.values_list("pk", flat=True)) == [customer.pk]
    assert Customer.objects.get(pk=customer.pk).name == "Grace Hopper"
    assert client.get(f"/api/v1/customers/{customer.pk}/").status_code == 200
    assert client.delete(f"/api/v1/customers/{customer.pk}/").status_code in (403, 405)


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_include_pii_false_leaves_personal_data_out_and_decrypts_nothing(tenant, staff_client, keystore_fetches):
    customer = CustomerFactory(name="Grace Hopper", email="grace@navy.example")
    client = staff_client(tenant, roles.OWNER)
    keystore_fetches.clear()

    listed = client.get("/api/v1/customers/?include_pii=false")
    one = client.get(f"/api/v1/customers/{customer.pk}/?include_pii=false")

    assert listed.status_code == one.status_code == 200
    for row in (listed.json()["results"][0], one.json()):
        assert row["pii"] == "omitted"
        assert not set(row) & set(CUSTOMER_PII)
        assert row["account_code"] == customer.account_code
    assert keystore_fetches == []
    assert reveals(tenant) == []
    assert client.get("/api/v1/customers/?include_pii=perhaps").status_code == 400


@pytest.mark.behavior
@pytest.mark.regression_detection
@pytest.mark.parametrize("role", [roles.OWNER, roles.SUPPORT])
def test_a_customer_page_costs_one_key_store_query_and_a_constant_number_of_db_queries(
    tenant, staff_client, keystore_fetches, django_assert_max_num_queries, role
):
    CustomerFactory.create_batch(2)
    client = staff_client(tenant, role)
    client.get("/api/v1/customers/")  # warm-up: per-process caches
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/v1/customers/").status_code == 200
    CustomerFactory.create_batch(10)
    keystore_fetches.clear()

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/api/v1/customers/?page_size=12")

    assert len(response.json()["results"]) == 12
    assert keystore_fetches == [12]  # one key-store query for the whole page
    assert len(few.captured_queries) <= 12


@pytest.mark.behavior
def test_the_email_filter_finds_exactly_one_customer_whatever_the_case(tenant, staff_client):
    ada = CustomerFactory(email="Ada@Example.net", phone="+14155550111")
    CustomerFactory(email="ada@example.com", phone="+14155550112")
    CustomerFactory(email="bob@example.net")
    client = staff_client(tenant, roles.SUPPORT)

    by_email = client.get("/api/v1/customers/", {"email": "  ADA@example.NET "}).json()
    by_phone = client.get("/api/v1/customers/", {"phone": "+1 415-555-0111"}).json()
    nobody = client.get("/api/v1/customers/", {"email": "ada@example"}).json()

    assert [row["id"] for row in by_email["results"]] == [ada.pk]
    assert by_email["count"] == 1
    assert [row["id"] for row in by_phone["results"]] == [ada.pk]
    assert nobody["count"] == 0
    bad_phone = client.get("/api/v1/customers/", {"phone": "call me"})
    assert bad_phone.status_code == 400
    assert "phone" in bad_phone.json()["error"]["fields"]


@pytest.mark.behavior
def test_customers_filter_by_status_and_kind_and_order_and_paginate(tenant, staff_client):
    first = CustomerFactory(kind="business")
    second = CustomerFactory()
    third = CustomerFactory()
    subscription_activate(subscription=SubscriptionFactory(customer=second), activated_on=ACTIVATED, actor=STAFF)
    client = staff_client(tenant, roles.AUDITOR)

    business = client.get("/api/v1/customers/", {"kind": "business"}).json()
    newest_first = client.get("/api/v1/customers/", {"ordering": "-account_number", "page_size": 2}).json()
    prospects = client.get("/api/v1/customers/", {"status": "prospect"}).json()

    assert [row["id"] for row in business["results"]] == [first.pk]
    assert [row["id"] for row in newest_first["results"]] == [third.pk, second.pk]
    assert newest_first["count"] == 3
    assert newest_first["next"] is not None
    assert [row["id"] for row in prospects["results"]] == [first.pk, third.pk]
    assert [row["id"] for row in client.get("/api/v1/customers/", {"status": "active"}).json()["results"]] == [
        second.pk
    ]


@pytest.mark.behavior
@pytest.mark.data_safety
def test_invalid_customer_input_gets_every_field_error_and_writes_nothing(tenant, staff_client):
    existing = CustomerFactory(email="taken@example.org")
    connection.set_tenant(tenant)
    audit_before = AuditEvent.objects.count()
    client = staff_client(tenant, roles.OWNER)

    invalid = client.post(
        "/api/v1/customers/",
        new_customer_body(phone="12", billing_day=31, kind="alien", surprise=True),
        format="json",
    )
    duplicate = client.post("/api/v1/customers/", new_customer_body(email="TAKEN@example.org"), format="json")
    bad_patch = client.patch(f"/api/v1/customers/{existing.pk}/", {"email": "nope", "name": ""}, format="json")
    status_patch = client.patch(f"/api/v1/customers/{existing.pk}/", {"status": "active"}, format="json")

    assert invalid.status_code == duplicate.status_code == bad_patch.status_code == status_patch.status_code == 400
    assert set(invalid.json()["error"]["fields"]) >= {"billing_day", "kind", "surprise"}
    assert "already exists" in duplicate.json()["error"]["fields"]["email"][0]
    assert set(bad_patch.json()["error"]["fields"]) == {"email", "name"}
    assert set(status_patch.json()["error"]["fields"]) == {"status"}
    phone_only = client.post("/api/v1/customers/", new_customer_body(phone="12"), format="json")
    assert set(phone_only.json()["error"]["fields"]) == {"phone"}
    connection.set_tenant(tenant)
    assert list(Customer.objects.values_list("pk", flat=True)) == [existing.pk]
    assert Customer.objects.get(pk=existing.pk).email == "taken@example.org"
    assert AuditEvent.objects.count() == audit_before


# --- service addresses -------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_service_addresses_are_created_by_support_and_shown_per_the_pii_rule(tenant, staff_client):
    customer = CustomerFactory()
    other = ServiceAddressFactory()
    support = staff_client(tenant, roles.SUPPORT)
    owner = staff_client(tenant, roles.OWNER)
    body = {
        "customer": customer.pk,
        "street": "12 Quiet Lane",
        "city": "Springfield",
        "postal_code": "62704",
        "country": "us",
        "region": "US-IL",
    }

    created = support.post("/api/v1/service-addresses/", body, format="json")
    masked = support.get("/api/v1/service-addresses/", {"customer": customer.pk}).json()
    clear = owner.get(f"/api/v1/service-addresses/{created.json()['id']}/").json()

    assert created.status_code == 201
    assert created.json()["street"] == "1*** Q*** L***"
    assert created.json()["country"] == "US"
    assert [row["id"] for row in masked["results"]] == [created.json()["id"]]
    assert masked["results"][0]["city"] == "S***"
    assert b"Quiet" not in support.get("/api/v1/service-addresses/").content
    assert (clear["street"], clear["city"], clear["postal_code"], clear["pii"]) == (
        "12 Quiet Lane",
        "Springfield",
        "62704",
        "clear",
    )
    events = reveals(tenant)
    assert [(e.object_type, e.object_id) for e in events] == [("customers.serviceaddress", str(clear["id"]))]
    assert events[0].changed_fields == sorted(ADDRESS_PII)
    refused = support.post("/api/v1/service-addresses/", {**body, "country": "XX", "street": ""}, format="json")
    assert refused.status_code == 400
    assert set(refused.json()["error"]["fields"]) == {"country", "street"}
    assert other.pk not in [row["id"] for row in masked["results"]]


# --- plans -------------------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_plans_take_exact_decimal_money_and_show_it_with_six_places(tenant, staff_client):
    client = staff_client(tenant, roles.OWNER)
    plan = {"code": "fiber-300", "name": "Fiber 300", "download_kbps": 300_000, "upload_kbps": 50_000}

    as_string = client.post("/api/v1/plans/", {**plan, "monthly_price": "39.99", "setup_fee": "0.1"}, format="json")
    as_number = client.post(
        "/api/v1/plans/",
        {**plan, "code": "fiber-301", "monthly_price": 19.99, "overage_rate_per_gb": 0.1},
        format="json",
    )
    too_precise = client.post("/api/v1/plans/", {**plan, "code": "x", "monthly_price": "1.0000001"}, format="json")
    negative = client.post("/api/v1/plans/", {**plan, "code": "y", "monthly_price": "-1"}, format="json")

    assert as_string.status_code == as_number.status_code == 201
    assert (as_string.json()["monthly_price"], as_string.json()["setup_fee"]) == ("39.990000", "0.100000")
    assert (as_number.json()["monthly_price"], as_number.json()["overage_rate_per_gb"]) == ("19.990000", "0.100000")
    assert too_precise.status_code == negative.status_code == 400
    assert "monthly_price" in too_precise.json()["error"]["fields"]
    assert "monthly_price" in negative.json()["error"]["fields"]
    connection.set_tenant(tenant)
    assert Plan.objects.get(code="fiber-301").monthly_price == Decimal("19.99")
    assert sorted(Plan.objects.values_list("code", flat=True)) == ["fiber-300", "fiber-301"]


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_a_plan_is_changed_and_archived_but_its_code_never_changes(tenant, staff_client):
    plan = PlanFactory(code="dsl-50", monthly_price=Decimal("24.50"))
    client = staff_client(tenant, roles.OWNER)
    url = f"/api/v1/plans/{plan.pk}/"

    changed = client.patch(url, {"monthly_price": "26.5", "name": "DSL 50 Plus"}, format="json")
    recoded = client.patch(url, {"code": "dsl-51"}, format="json")
    archived = client.post(f"{url}archive/")

    assert changed.json()["monthly_price"] == "26.500000"
    assert recoded.status_code == 400
    assert archived.json()["status"] == "archived"
    assert client.get("/api/v1/plans/", {"status": "active"}).json()["count"] == 0
    connection.set_tenant(tenant)
    assert {e.action for e in AuditEvent.objects.filter(object_type="customers.plan", object_id=str(plan.pk))} == {
        "plan.created",
        "plan.updated",
        "plan.archived",
    }
    assert staff_client(tenant, roles.BILLING_ADMIN).post("/api/v1/plans/", {}, format="json").status_code == 403


# --- subscriptions -----------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_a_subscription_goes_through_its_whole_lifecycle_via_the_api_and_keeps_its_history(tenant, staff_client):
    address = ServiceAddressFactory()
    plan, bigger = PlanFactory(), PlanFactory()
    client = staff_client(tenant, roles.SUPPORT)

    created = client.post(
        "/api/v1/subscriptions/",
        {"customer": address.customer_id, "plan": plan.pk, "service_address": address.pk},
        format="json",
    )
    url = f"/api/v1/subscriptions/{created.json()['id']}/"
    steps = [
        client.post(f"{url}activate/", {"activated_on": "2025-03-01"}, format="json"),
        client.post(f"{url}change-plan/", {"plan": bigger.pk, "effective_on": "2025-03-05"}, format="json"),
        client.post(f"{url}suspend/", {"effective_on": "2025-03-10", "reason": "unpaid"}, format="json"),
        client.post(f"{url}reactivate/", {"effective_on": "2025-03-20"}, format="json"),
        client.post(f"{url}terminate/", {"terminated_on": "2025-04-01", "reason": "moving"}, format="json"),
    ]

    assert created.status_code == 201
    assert created.json()["status"] == "pending"
    assert [step.status_code for step in steps] == [200] * 5
    assert [step.json()["status"] for step in steps] == ["active", "active", "suspended", "active", "terminated"]
    assert steps[1].json()["plan"] == bigger.pk
    assert (steps[-1].json()["activated_on"], steps[-1].json()["terminated_on"]) == ("2025-03-01", "2025-04-01")
    history = client.get(f"{url}history/").json()
    assert [(c["from_status"], c["to_status"], c["effective_on"]) for c in history["status_changes"]] == [
        ("pending", "active", "2025-03-01"),
        ("active", "suspended", "2025-03-10"),
        ("suspended", "active", "2025-03-20"),
        ("active", "terminated", "2025-04-01"),
    ]
    assert history["status_changes"][1]["reason"] == "unpaid"
    assert [(c["from_plan_code"], c["to_plan_code"], c["effective_on"]) for c in history["plan_changes"]] == [
        (None, plan.code, "2025-03-01"),
        (plan.code, bigger.code, "2025-03-05"),
    ]
    connection.set_tenant(tenant)
    assert Customer.objects.get(pk=address.customer_id).status == Customer.Status.ACTIVE
    actions = AuditEvent.objects.filter(object_type="customers.subscription").values_list("action", flat=True)
    assert set(actions) >= {"subscription.activated", "subscription.suspended", "subscription.terminated"}


@pytest.mark.behavior
@pytest.mark.business_logic_protection
@pytest.mark.parametrize(
    ("setup", "action", "body"),
    [
        ("pending", "suspend", {"effective_on": "2025-03-10", "reason": "unpaid"}),
        ("pending", "reactivate", {"effective_on": "2025-03-10"}),
        ("active", "activate", {"activated_on": "2025-03-10"}),
        ("terminated", "reactivate", {"effective_on": "2025-05-10"}),
        ("terminated", "terminate", {"terminated_on": "2025-05-10", "reason": "again"}),
    ],
)
def test_an_illegal_transition_is_a_400_with_the_reason_in_status_and_changes_nothing(
    tenant, staff_client, setup, action, body
):
    subscription = SubscriptionFactory()
    client = staff_client(tenant, roles.OWNER)
    url = f"/api/v1/subscriptions/{subscription.pk}/"
    if setup in ("active", "terminated"):
        client.post(f"{url}activate/", {"activated_on": ACTIVATED.isoformat()}, format="json")
    if setup == "terminated":
        client.post(f"{url}terminate/", {"terminated_on": "2025-04-01", "reason": "moving"}, format="json")
    connection.set_tenant(tenant)
    before = Subscription.objects.values().get(pk=subscription.pk)
    history_before = client.get(f"{url}history/").json()

    refused = client.post(f"{url}{action}/", body, format="json")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid"
    assert setup in refused.json()["error"]["fields"]["status"][0]
    connection.set_tenant(tenant)
    assert Subscription.objects.values().get(pk=subscription.pk) == before
    assert client.get(f"{url}history/").json() == history_before


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_lifecycle_actions_validate_their_input_and_need_the_change_permission(tenant, staff_client):
    subscription = SubscriptionFactory()
    url = f"/api/v1/subscriptions/{subscription.pk}/"
    owner, auditor = staff_client(tenant, roles.OWNER), staff_client(tenant, roles.AUDITOR)

    no_date = owner.post(f"{url}activate/", {}, format="json")
    no_reason = owner.post(f"{url}terminate/", {"terminated_on": "2025-04-01"}, format="json")
    by_auditor = auditor.post(f"{url}activate/", {"activated_on": "2025-03-01"}, format="json")

    assert no_date.status_code == no_reason.status_code == 400
    assert set(no_date.json()["error"]["fields"]) == {"activated_on"}
    assert set(no_reason.json()["error"]["fields"]) == {"reason"}
    assert by_auditor.status_code == 403
    assert auditor.get(f"{url}history/").status_code == 200
    connection.set_tenant(tenant)
    assert Subscription.objects.get(pk=subscription.pk).status == "pending"


@pytest.mark.behavior
def test_subscriptions_filter_by_status_customer_and_plan(tenant, staff_client):
    first, second = SubscriptionFactory(), SubscriptionFactory()
    client = staff_client(tenant, roles.SUPPORT)
    client.post(f"/api/v1/subscriptions/{second.pk}/activate/", {"activated_on": "2025-03-01"}, format="json")

    def ids(**params):
        return [row["id"] for row in client.get("/api/v1/subscriptions/", params).json()["results"]]

    assert ids(status="active") == [second.pk]
    assert ids(status="pending") == [first.pk]
    assert ids(customer=first.customer_id) == [first.pk]
    assert ids(plan=second.plan_id) == [second.pk]
    assert ids() == [first.pk, second.pk]


@pytest.mark.behavior
@pytest.mark.data_safety
def test_creating_a_subscription_on_an_archived_plan_or_another_customers_address_writes_nothing(tenant, staff_client):
    address, foreign = ServiceAddressFactory(), ServiceAddressFactory()
    archived = PlanFactory(status=Plan.Status.ARCHIVED)
    client = staff_client(tenant, roles.SUPPORT)

    refused = client.post(
        "/api/v1/subscriptions/",
        {"customer": address.customer_id, "plan": archived.pk, "service_address": foreign.pk},
        format="json",
    )

    assert refused.status_code == 400
    assert set(refused.json()["error"]["fields"]) == {"plan", "service_address"}
    connection.set_tenant(tenant)
    assert not Subscription.objects.exists()


# --- schema ------------------------------------------------------------------------------------
@pytest.mark.contract
def test_the_openapi_schema_has_the_customer_endpoints_and_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--urlconf", "isp.urls_tenant", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for path in (
        "/api/v1/customers/{id}/:",
        "/api/v1/service-addresses/:",
        "/api/v1/plans/{id}/archive/:",
        "/api/v1/subscriptions/{id}/change-plan/:",
        "/api/v1/subscriptions/{id}/history/:",
        "/api/v1/portal/signup/:",
        "/api/v1/portal/me/:",
    ):
        assert path in schema
