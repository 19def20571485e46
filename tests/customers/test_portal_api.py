"""The customer portal: self-signup, log-in with the e-mail address, the customer's own data only.

A portal user reaches exactly one customer (their own: no id in any portal URL), never a staff
endpoint; staff without a customer are refused on the portal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from compliance.models import AuditEvent
from customers.models import Customer, Plan, ServiceAddress, Subscription
from isp.api.throttling import TenantScopedRateThrottle
from tenants import roles
from tests.customers.factories import CustomerFactory, PlanFactory, SubscriptionFactory

pytestmark = [pytest.mark.django_db]

PASSWORD = "correct horse battery staple"


def signup_body(**overrides) -> dict:
    return {
        "name": "Lin Portal",
        "email": "Lin.Portal@example.com",
        "phone": "+14155550177",
        "password": PASSWORD,
        "plan_code": "fiber-home",
        "kind": "residential",
        "marketing_consent": False,
        "address": {
            "street": "7 Signup Street",
            "city": "Portland",
            "postal_code": "97201",
            "country": "US",
            "region": "US-OR",
            "locality": "41051",
        },
        **overrides,
    }


@pytest.fixture
def home_plan(tenant):
    return PlanFactory(code="fiber-home", name="Fiber Home", monthly_price=Decimal("45.50"))


def portal_login(host_client, tenant, email: str, password: str = PASSWORD):
    client = host_client(tenant)
    response = client.post("/api/v1/auth/token/", {"username": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def counts(tenant) -> tuple[int, ...]:
    connection.set_tenant(tenant)
    return (
        Customer.objects.count(),
        ServiceAddress.objects.count(),
        Subscription.objects.count(),
        get_user_model().objects.count(),
        AuditEvent.objects.count(),
    )


@pytest.mark.behavior
@pytest.mark.customer_journey
@pytest.mark.customer_data_protection
def test_signup_then_staff_activation_then_the_customer_sees_only_their_own_data(
    tenant, home_plan, host_client, staff_client
):
    neighbour = SubscriptionFactory(customer=CustomerFactory(name="Nosy Neighbour", email="nosy@example.com"))
    audit_mark = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    # given a customer who signs up on the portal
    signup = host_client(tenant).post("/api/v1/portal/signup/", signup_body(), format="json")
    assert signup.status_code == 201
    body = signup.json()
    assert body["account_code"].startswith("C")
    assert (body["subscription"]["status"], body["subscription"]["plan"]) == ("pending", "fiber-home")
    # and staff who approve it by activating the subscription
    staff = staff_client(tenant, roles.SUPPORT)
    activated = staff.post(
        f"/api/v1/subscriptions/{body['subscription']['id']}/activate/", {"activated_on": "2025-03-01"}, format="json"
    )
    assert activated.status_code == 200

    # when the customer logs in with their e-mail address (any case)
    portal = portal_login(host_client, tenant, "lin.portal@EXAMPLE.com")
    me = portal.get("/api/v1/portal/me/")
    subscriptions = portal.get("/api/v1/portal/subscriptions/")

    # then they see their own data in clear, and only their own subscriptions
    assert me.status_code == 200
    assert me.json()["account_code"] == body["account_code"]
    assert (me.json()["name"], me.json()["email"], me.json()["phone"]) == (
        "Lin Portal",
        "Lin.Portal@example.com",
        "+14155550177",
    )
    assert me.json()["status"] == "active"
    assert [(s["id"], s["status"], s["plan"]) for s in subscriptions.json()["results"]] == [
        (body["subscription"]["id"], "active", "fiber-home")
    ]
    assert subscriptions.json()["results"][0]["activated_on"] == "2025-03-01"
    for response in (me, subscriptions):
        assert b"Nosy" not in response.content
        assert b"nosy@example.com" not in response.content
    # and no staff endpoint answers them, for their own customer or another
    connection.set_tenant(tenant)
    own = Customer.objects.get(portal_user__isnull=False)
    for url in (
        "/api/v1/customers/",
        f"/api/v1/customers/{own.pk}/",
        f"/api/v1/customers/{neighbour.customer_id}/",
        f"/api/v1/subscriptions/{neighbour.pk}/",
        f"/api/v1/subscriptions/{neighbour.pk}/history/",
        "/api/v1/service-addresses/",
        "/api/v1/plans/",
        "/api/v1/audit-events/",
    ):
        refused = portal.get(url)
        assert refused.status_code == 403, url
        assert b"Nosy" not in refused.content
    assert portal.post(f"/api/v1/subscriptions/{neighbour.pk}/terminate/", {}, format="json").status_code == 403
    connection.set_tenant(tenant)
    assert AuditEvent.objects.filter(action="customer.signed_up", object_id=str(own.pk)).exists()
    # the subject's own reads are no reveal (the trail is append-only: earlier tests' events stay)
    assert not AuditEvent.objects.filter(action="pii.revealed", id__gt=audit_mark).exists()


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_duplicate_email_signup_is_refused_with_a_clear_message_and_writes_nothing(tenant, home_plan, host_client):
    CustomerFactory(email="lin.portal@example.com")
    before = counts(tenant)

    refused = host_client(tenant).post(
        "/api/v1/portal/signup/", signup_body(email="  LIN.PORTAL@example.com"), format="json"
    )

    assert refused.status_code == 400
    assert "already exists" in refused.json()["error"]["fields"]["email"][0]
    assert counts(tenant) == before


@pytest.mark.behavior
@pytest.mark.data_safety
def test_an_invalid_signup_reports_every_field_and_writes_nothing(tenant, home_plan, host_client):
    PlanFactory(code="retired", status=Plan.Status.ARCHIVED)
    before = counts(tenant)
    body = signup_body(
        phone="555",
        password="short",
        plan_code="retired",
        address={"street": "", "city": "Portland", "postal_code": "97201", "country": "ZZ"},
    )

    refused = host_client(tenant).post("/api/v1/portal/signup/", body, format="json")
    unknown = host_client(tenant).post("/api/v1/portal/signup/", signup_body(status="active"), format="json")
    nested = host_client(tenant).post(
        "/api/v1/portal/signup/", signup_body(address={"street": "x", "owner": "me"}), format="json"
    )

    assert refused.status_code == unknown.status_code == nested.status_code == 400
    assert set(refused.json()["error"]["fields"]) == {"phone", "password", "plan_code"}
    assert set(unknown.json()["error"]["fields"]) == {"status"}
    assert "owner" in nested.json()["error"]["fields"]["address"]
    assert counts(tenant) == before


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_signup_with_a_bad_address_writes_nothing(tenant, home_plan, host_client):
    before = counts(tenant)
    body = signup_body(address={**signup_body()["address"], "street": "", "country": "ZZ"})

    refused = host_client(tenant).post("/api/v1/portal/signup/", body, format="json")

    assert refused.status_code == 400
    assert set(refused.json()["error"]["fields"]) == {"address.street", "address.country"}
    assert counts(tenant) == before


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_the_signup_endpoint_is_throttled_per_client(tenant, home_plan, host_client, monkeypatch):
    monkeypatch.setitem(TenantScopedRateThrottle.THROTTLE_RATES, "signup", "2/hour")
    client = host_client(tenant)

    answers = [client.post("/api/v1/portal/signup/", {}, format="json").status_code for _ in range(3)]

    assert answers == [400, 400, 429]
    throttled = client.post("/api/v1/portal/signup/", signup_body(), format="json")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    connection.set_tenant(tenant)
    assert not Customer.objects.exists()


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_portal_endpoints_refuse_staff_and_anonymous_callers(tenant, home_plan, staff_client, host_client):
    SubscriptionFactory()
    anonymous = host_client(tenant)

    for role in (roles.OWNER, roles.SUPPORT):
        staff = staff_client(tenant, role)
        for url in ("/api/v1/portal/me/", "/api/v1/portal/subscriptions/"):
            assert staff.get(url).status_code == 403, (role, url)
        assert staff.patch("/api/v1/portal/me/", {"name": "Staff"}, format="json").status_code == 403
    assert anonymous.get("/api/v1/portal/me/").status_code == 401
    assert anonymous.get("/api/v1/portal/subscriptions/").status_code == 401


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_a_customer_changes_their_own_contact_data_and_consents_but_nothing_else(tenant, home_plan, host_client):
    host_client(tenant).post("/api/v1/portal/signup/", signup_body(), format="json")
    portal = portal_login(host_client, tenant, "lin.portal@example.com")

    changed = portal.patch(
        "/api/v1/portal/me/",
        {"name": "Lin Q. Portal", "phone": "+447911123456", "marketing_consent": True, "do_not_sell": True},
        format="json",
    )
    refused = portal.patch(
        "/api/v1/portal/me/", {"kind": "business", "national_id": "X", "status": "active"}, format="json"
    )
    new_email = portal.patch("/api/v1/portal/me/", {"email": "lin@new.example"}, format="json")

    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["phone"]) == ("Lin Q. Portal", "+447911123456")
    assert changed.json()["marketing_consent"] is changed.json()["do_not_sell"] is True
    assert changed.json()["marketing_consent_at"] is not None
    assert refused.status_code == 400
    assert set(refused.json()["error"]["fields"]) == {"kind", "national_id", "status"}
    assert new_email.json()["email"] == "lin@new.example"
    connection.set_tenant(tenant)
    customer = Customer.objects.get()
    assert (customer.kind, customer.national_id) == ("residential", None)
    update = AuditEvent.objects.filter(action="customer.updated", object_id=str(customer.pk)).order_by("id").first()
    assert update.actor_id == str(customer.portal_user_id)
    assert update.changed_fields == ["do_not_sell", "marketing_consent", "name", "phone"]
    # the new e-mail address is the new login name
    assert portal_login(host_client, tenant, "lin@new.example").get("/api/v1/portal/me/").status_code == 200
    stale = host_client(tenant).post(
        "/api/v1/auth/token/", {"username": "lin.portal@example.com", "password": PASSWORD}, format="json"
    )
    assert stale.status_code == 401


@pytest.mark.contract
def test_the_plans_on_offer_are_public_and_exclude_archived_plans(tenant, home_plan, host_client):
    PlanFactory(code="old-dsl", status=Plan.Status.ARCHIVED)

    response = host_client(tenant).get("/api/v1/portal/plans/")

    assert response.status_code == 200
    assert [plan["code"] for plan in response.json()["results"]] == ["fiber-home"]
    plan = response.json()["results"][0]
    assert plan["monthly_price"] == "45.500000"
    assert "id" not in plan
    assert "status" not in plan
