"""The tenant admin for customers, addresses, plans and subscriptions.

Personal data: clear (and every page or form showing it audited) for roles with reveal_pii,
masked and read-only for the others. Saves and lifecycle actions go through the services."""

from __future__ import annotations

import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from compliance.models import AuditEvent
from customers.api.pii import CUSTOMER_PII
from customers.models import Customer, Plan, Subscription
from tenants import roles
from tests.clients import TenantAdminClient
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory, SubscriptionFactory
from tests.factories import StaffUserFactory

pytestmark = [pytest.mark.django_db]

CHANGELIST = "/admin/customers/customer/"


@pytest.fixture
def admin_as(tenant):
    def make(role: str) -> TenantAdminClient:
        connection.set_tenant(tenant)
        user = StaffUserFactory(role=role)
        client = TenantAdminClient(HTTP_HOST=tenant.primary_host)
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.fixture
def grace(tenant):
    return CustomerFactory(name="Grace Hopper", email="grace@navy.example", phone="+14155550101", tax_id="TAX-77")


def reveals(tenant) -> list[AuditEvent]:
    connection.set_tenant(tenant)
    return list(AuditEvent.objects.filter(action="pii.revealed").order_by("id"))


def change_form_data(customer: Customer, **overrides) -> dict:
    """What the owner's change form posts back unchanged, plus `overrides`."""
    data = {
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone or "",
        "national_id": customer.national_id or "",
        "tax_id": customer.tax_id or "",
        "date_of_birth": customer.date_of_birth.isoformat() if customer.date_of_birth else "",
        "kind": customer.kind,
        "billing_day": customer.billing_day or "",
        "tax_exempt_certificate": customer.tax_exempt_certificate,
        "tax_exempt_until": "",
        **overrides,
    }
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_a_support_users_changelist_shows_masked_emails_and_no_clear_value(tenant, admin_as, grace):
    CustomerFactory(name="Alan Turing", email="alan@bletchley.example")
    support = admin_as(roles.SUPPORT)

    page = support.get(CHANGELIST)

    assert page.status_code == 200
    html = page.content.decode()
    assert "g***@n***.example" in html
    assert "G*** H***" in html
    assert grace.account_code in html
    for secret in ("grace@navy", "Grace", "Hopper", "alan@bletchley", "Turing"):
        assert secret not in html
    assert reveals(tenant) == []


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_an_owners_changelist_shows_clear_values_and_audits_each_row_shown(tenant, admin_as, grace):
    alan = CustomerFactory(name="Alan Turing", email="alan@bletchley.example")
    owner = admin_as(roles.OWNER)

    page = owner.get(CHANGELIST)

    html = page.content.decode()
    assert "grace@navy.example" in html
    assert "Alan Turing" in html
    events = reveals(tenant)
    assert sorted(int(e.object_id) for e in events) == sorted([grace.pk, alan.pk])
    assert all(e.changed_fields == ["email", "name"] for e in events)  # the columns shown, names only
    assert {e.actor_label for e in events} == {owner.user.username}
    assert all("grace" not in str(e.__dict__).lower() for e in events)


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_the_admin_search_finds_an_exact_email_through_the_blind_index(tenant, admin_as, grace):
    CustomerFactory(email="grace@navy.example.org")
    owner = admin_as(roles.OWNER)

    by_email = owner.get(CHANGELIST, {"q": "  GRACE@Navy.example "})
    by_code = owner.get(CHANGELIST, {"q": grace.account_code})
    fragment = owner.get(CHANGELIST, {"q": "grace"})

    assert list(by_email.context["cl"].result_list) == [grace]
    assert list(by_code.context["cl"].result_list) == [grace]
    assert list(fragment.context["cl"].result_list) == []
    assert [int(e.object_id) for e in reveals(tenant)] == [grace.pk, grace.pk]  # only the rows shown


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_the_change_form_has_personal_data_fields_only_for_roles_that_may_reveal_it(tenant, admin_as, grace):
    url = f"{CHANGELIST}{grace.pk}/change/"

    as_support = admin_as(roles.SUPPORT).get(url)
    as_auditor = admin_as(roles.AUDITOR).get(url)  # view-only: every shown field is read-only
    support_events = reveals(tenant)
    as_owner = admin_as(roles.OWNER).get(url)

    support_html = as_support.content.decode()
    assert as_support.status_code == 200
    assert set(CUSTOMER_PII).isdisjoint(as_support.context["adminform"].form.fields)
    assert "g***@n***.example" in support_html
    assert "grace@navy" not in support_html
    assert "TAX-77" not in support_html
    auditor_html = as_auditor.content.decode()
    assert as_auditor.status_code == 200
    assert "g***@n***.example" in auditor_html
    assert "grace@navy" not in auditor_html
    assert "Hopper" not in auditor_html
    assert support_events == []
    owner_form = as_owner.context["adminform"].form
    assert set(CUSTOMER_PII) <= set(owner_form.fields)
    assert owner_form.initial["email"] == "grace@navy.example"
    assert 'value="grace@navy.example"' in as_owner.content.decode()
    events = reveals(tenant)
    assert [(e.object_id, e.changed_fields) for e in events] == [(str(grace.pk), sorted(CUSTOMER_PII))]


@pytest.mark.behavior
@pytest.mark.data_safety
def test_an_owner_edits_a_customer_through_the_service_and_an_invalid_edit_writes_nothing(tenant, admin_as, grace):
    CustomerFactory(email="alan@bletchley.example")
    owner = admin_as(roles.OWNER)
    url = f"{CHANGELIST}{grace.pk}/change/"

    refused = owner.post(url, change_form_data(grace, phone="not a phone", email="Alan@Bletchley.example"))
    saved = owner.post(url, change_form_data(grace, phone="+44 7911 123456", billing_day="7"))

    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"phone", "email"}  # every error the service finds, on its field
    assert "already exists" in errors["email"][0]
    assert saved.status_code == 302
    connection.set_tenant(tenant)
    stored = Customer.objects.get(pk=grace.pk)
    assert (stored.phone, stored.billing_day, stored.email) == ("+447911123456", 7, "grace@navy.example")
    updates = AuditEvent.objects.filter(action="customer.updated", object_id=str(grace.pk))
    assert [(e.changed_fields, e.actor_label) for e in updates] == [(["billing_day", "phone"], owner.user.username)]


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_support_adds_a_customer_in_the_admin_through_the_service_and_then_sees_it_masked(tenant, admin_as):
    support = admin_as(roles.SUPPORT)

    added = support.post(
        f"{CHANGELIST}add/",
        {"name": "Hedy Lamarr", "email": "hedy@example.net", "phone": "+14155550150", "kind": "residential"},
    )
    duplicate = support.post(
        f"{CHANGELIST}add/", {"name": "Hedy Again", "email": "HEDY@example.net", "kind": "residential"}
    )

    assert added.status_code == 302
    assert duplicate.status_code == 200
    assert "already exists" in str(duplicate.context["adminform"].form.errors["email"])
    connection.set_tenant(tenant)
    customer = Customer.objects.get()
    assert (customer.name, customer.email, customer.account_number) == ("Hedy Lamarr", "hedy@example.net", 1)
    created = AuditEvent.objects.get(action="customer.created", object_id=str(customer.pk))
    assert (created.object_id, created.actor_label) == (str(customer.pk), support.user.username)
    page = support.get(f"{CHANGELIST}{customer.pk}/change/").content.decode()
    assert "h***@e***.net" in page
    assert "Hedy" not in page


@pytest.mark.behavior
@pytest.mark.data_safety
def test_customers_and_subscriptions_cannot_be_deleted_in_the_admin(tenant, admin_as):
    subscription = SubscriptionFactory()
    owner = admin_as(roles.OWNER)

    customer_delete = owner.get(f"{CHANGELIST}{subscription.customer_id}/delete/")
    subscription_delete = owner.get(f"/admin/customers/subscription/{subscription.pk}/delete/")
    actions = owner.get("/admin/customers/subscription/").context["action_form"].fields["action"].choices

    assert customer_delete.status_code == subscription_delete.status_code == 403
    assert "delete_selected" not in {name for name, _ in actions}
    connection.set_tenant(tenant)
    assert Subscription.objects.filter(pk=subscription.pk).exists()


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_the_subscription_admin_activate_action_moves_the_state_through_the_service(tenant, admin_as):
    subscription = SubscriptionFactory()
    support = admin_as(roles.SUPPORT)
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(tenant.time_zone))

    response = support.post(
        "/admin/customers/subscription/",
        {"action": "activate_selected", "_selected_action": [subscription.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 subscription(s) activated" in response.content.decode()
    connection.set_tenant(tenant)
    subscription.refresh_from_db()
    assert (subscription.status, subscription.activated_on) == ("active", today)
    event = AuditEvent.objects.get(action="subscription.activated", object_id=str(subscription.pk))
    assert event.actor_label == support.user.username
    change = subscription.status_changes.get()
    assert (change.from_status, change.to_status, change.effective_on) == ("pending", "active", today)


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_an_illegal_admin_action_reports_the_services_reason_and_changes_nothing(tenant, admin_as):
    subscription = SubscriptionFactory()
    owner = admin_as(roles.OWNER)

    response = owner.post(
        "/admin/customers/subscription/",
        {"action": "suspend_selected", "_selected_action": [subscription.pk]},
        follow=True,
    )

    assert "A pending subscription cannot become suspended" in response.content.decode()
    connection.set_tenant(tenant)
    subscription.refresh_from_db()
    assert subscription.status == "pending"
    assert not subscription.status_changes.exists()
    assert not AuditEvent.objects.filter(action="subscription.suspended").exists()


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_subscriptions_are_added_pending_through_the_service_and_plans_archived_by_an_action(tenant, admin_as):
    address = ServiceAddressFactory()
    plan = PlanFactory(monthly_price=Decimal("30"))
    owner = admin_as(roles.OWNER)

    added = owner.post(
        "/admin/customers/subscription/add/",
        {"customer": address.customer_id, "plan": plan.pk, "service_address": address.pk},
    )
    archived = owner.post("/admin/customers/plan/", {"action": "archive_selected", "_selected_action": [plan.pk]})

    assert added.status_code == archived.status_code == 302
    connection.set_tenant(tenant)
    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.plan_id) == ("pending", plan.pk)
    assert Plan.objects.get(pk=plan.pk).status == Plan.Status.ARCHIVED
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {"subscription.created", "plan.archived"}
    refused = owner.post(
        "/admin/customers/subscription/add/",
        {"customer": address.customer_id, "plan": plan.pk, "service_address": address.pk},
    )
    assert refused.status_code == 200  # the archived plan is no longer offered
    assert Subscription.objects.count() == 1


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_service_addresses_are_read_only_and_masked_for_support(tenant, admin_as):
    address = ServiceAddressFactory(street="12 Quiet Lane", city="Springfield")
    support = admin_as(roles.SUPPORT)

    listed = support.get("/admin/customers/serviceaddress/").content.decode()
    detail = support.get(f"/admin/customers/serviceaddress/{address.pk}/change/")
    post = support.post(f"/admin/customers/serviceaddress/{address.pk}/change/", {"street": "1 Other Rd"})

    assert "1*** Q*** L***" in listed
    assert "Quiet" not in listed
    assert "Quiet" not in detail.content.decode()
    assert detail.context["adminform"].form.fields == {}
    assert post.status_code == 403
    assert reveals(tenant) == []
