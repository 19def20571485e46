"""RBAC proof: every API endpoint x HTTP method x role, called for real, against the declared table.

The endpoints are not listed here: they are walked from the URL confs (isp/urls_tenant.py on a
tenant host, isp/urls_public.py on the platform host), viewset extra actions included. Each one
must have a rule in tests/security/rbac_table.py; each role must then get what the table says:
an allowed role gets past authentication and permissions (not 401/403, and no server error), any
other role gets 401 (no credentials the host knows) or 403. Requests go through the test client
with the host name, so routing, authentication and the permission class all run.

Write requests carry an empty body: an allowed role then gets its 400, and nothing is changed by a
refused one. The objects the detail URLs point at are created once for the module in one tenant
(`us-isp`), inside a transaction rolled back when the module ends; each test runs in a savepoint.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from tests.conftest import TENANT_PROFILES, HostClient
from tests.security import rbac_table as t

pytestmark = [pytest.mark.customer_data_protection, pytest.mark.contract]

TENANT_SLUG = TENANT_PROFILES["us_isp"].slug
ROLE_GROUPS = {
    t.OWNER: "owner",
    t.BILLING_ADMIN: "billing_admin",
    t.NETWORK_OPS: "network_ops",
    t.SUPPORT: "support",
    t.AUDITOR: "auditor",
}
SKIPPED_METHODS = {"options", "head", "trace"}
_FORMAT_SUFFIX = re.compile(r"\(\?P<format>|<drf_format_suffix:format>")
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


# --- walking the URL conf ------------------------------------------------------------------------
def _route_template(route: str) -> str:
    route = route.replace("^", "").replace("$", "")
    route = _REGEX_GROUP.sub(lambda m: "{" + m.group(1) + "}", route)
    route = _CONVERTER.sub(lambda m: "{" + m.group(1) + "}", route)
    return "/" + route


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def api_endpoints(urlconf: str) -> list[tuple[str, str]]:
    """(path template, HTTP method) of every API route of `urlconf`, extra actions included."""
    found = set()
    for route, callback in _walk(get_resolver(urlconf).url_patterns):
        if not route.startswith("api/") or _FORMAT_SUFFIX.search(route):
            continue
        path = _route_template(route)
        actions = getattr(callback, "actions", None)  # a viewset: HTTP method -> action
        if actions:
            methods = set(actions)
        else:
            view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            if view_class is None:  # a plain function view under /api/: declare it by hand
                methods = {"get"}
            else:
                methods = {m for m in view_class.http_method_names if hasattr(view_class, m)} - SKIPPED_METHODS
        found.update((path, method.upper()) for method in methods)
    return sorted(found)


TENANT_ENDPOINTS = api_endpoints("isp.urls_tenant")
PUBLIC_ENDPOINTS = api_endpoints("isp.urls_public")


# --- the world the requests run in ------------------------------------------------------------------
@dataclass
class World:
    tenant: object
    tenant_tokens: dict[str, str | None] = field(default_factory=dict)
    public_tokens: dict[str, str | None] = field(default_factory=dict)
    samples: dict[str, object] = field(default_factory=dict)  # resource -> pk (or slug)
    portal: dict[str, dict] = field(default_factory=dict)  # "a"/"b" -> that customer's objects


def _portal_customer(name: str, email: str, plan):
    from customers.models import Customer
    from tests.billing.factories import issued_invoice
    from tests.customers.factories import CustomerFactory, ServiceAddressFactory, SubscriptionFactory

    customer = CustomerFactory(name=name, email=email)
    address = ServiceAddressFactory(customer=customer)
    subscription = SubscriptionFactory(customer=customer, plan=plan, service_address=address)
    user = get_user_model().objects.create_user(username=f"portal-{email}", password="portal-password-0")
    Customer.objects.filter(pk=customer.pk).update(portal_user=user)
    invoice = issued_invoice(customer, due_date=datetime.date(2026, 12, 15), amount_due=Decimal("10.00"))
    return {
        "customer": customer.pk,
        "address": address.pk,
        "subscription": subscription.pk,
        "invoice": invoice.pk,
        "invoice_number": invoice.number,
        "token": Token.objects.create(user=user).key,
    }


def _build_tenant_world(world: World) -> None:
    from billing import catalog
    from compliance.audit import Actor
    from compliance.models import AuditEvent
    from network.models import Alarm, Device, Interface
    from tests.billing.issued import tax_rates_create
    from tests.customers.factories import PlanFactory
    from tests.factories import StaffUserFactory

    actor = Actor.system("rbac matrix")
    for role, group in ROLE_GROUPS.items():
        user = StaffUserFactory(role=group)
        world.tenant_tokens[role] = Token.objects.create(user=user).key
    world.tenant_tokens[t.ANONYMOUS] = None
    plan = PlanFactory()
    world.portal["a"] = _portal_customer("Ada Portal", "ada.portal@example.net", plan)
    world.portal["b"] = _portal_customer("Bob Portal", "bob.portal@example.net", plan)
    world.tenant_tokens[t.PORTAL] = world.portal["a"]["token"]
    a = world.portal["a"]
    device = Device.objects.create(name="rbac-edge-1", kind="router", management_ip="192.0.2.200")
    interface = Interface.objects.create(device=device, if_index=1, name="ge-0/0/1", speed_bps=10**9)
    now = datetime.datetime.now(datetime.UTC)
    alarm = Alarm.objects.create(
        kind="device_unreachable",
        severity="critical",
        dedupe_key=f"device_unreachable:device:{device.pk}",
        device=device,
        summary="rbac-edge-1 unreachable",
        opened_at=now,
        last_seen_at=now,
    )
    tax_rate = tax_rates_create()[0]
    discount = catalog.discount_create(
        actor=actor, name="RBAC 10%", kind="percent", value=Decimal("10"), valid_from=datetime.date(2026, 1, 1)
    )
    assignment = catalog.discount_assign(actor=actor, discount=discount, plan=plan)
    world.samples.update(
        {
            "staff": get_user_model().objects.filter(is_staff=True).first().pk,
            "audit-events": AuditEvent.objects.order_by("pk").first().pk,
            "customers": a["customer"],
            "service-addresses": a["address"],
            "plans": plan.pk,
            "subscriptions": a["subscription"],
            "invoices": a["invoice"],
            "portal/invoices": a["invoice"],
            "tax-rates": tax_rate.pk,
            "discounts": discount.pk,
            "discount-assignments": assignment.pk,
            "devices": device.pk,
            "interfaces": interface.pk,
            "alarms": alarm.pk,
        }
    )


def _build_public_world(world: World) -> None:
    users = get_user_model().objects
    operator = users.create_user("rbac-operator", password="operator-password-0")
    operator.user_permissions.set(
        Permission.objects.filter(content_type__app_label="tenants", codename__endswith="_tenant")
    )
    plain = users.create_user("rbac-public-user", password="public-password-0")
    world.public_tokens = {
        t.OPERATOR: Token.objects.create(user=operator).key,
        t.PUBLIC_USER: Token.objects.create(user=plain).key,
        t.TENANT_OWNER_TOKEN: world.tenant_tokens[t.OWNER],
        t.ANONYMOUS: None,
    }
    world.samples["tenants"] = TENANT_PROFILES["eu_isp"].slug


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """One tenant's staff of every role, two portal customers and a sample of every resource;
    created once, rolled back after the module."""
    from tenants.models import Tenant

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            tenant = Tenant.objects.get(slug=TENANT_SLUG)
            connection.set_tenant(tenant)
            built = World(tenant=tenant)
            _build_tenant_world(built)
            connection.set_schema_to_public()
            _build_public_world(built)
            yield built
        finally:
            connection.set_schema_to_public()
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def _url(template: str, samples: dict) -> str:
    def fill(match):
        path = template[: match.start()].strip("/").split("/")
        resource = "/".join(path[2:]) if len(path) > 2 else ""
        resource = resource if resource in samples else path[-1]
        return str(samples.get(resource, 999_999))

    return re.sub(r"\{(\w+)\}", fill, template)


def _call(client: HostClient, method: str, url: str):
    kwargs = {"format": "json"} if method in {"POST", "PATCH", "PUT"} else {}
    if method in {"POST", "PATCH", "PUT"}:
        kwargs["data"] = {}
    return getattr(client, method.lower())(url, HTTP_ACCEPT="application/json", **kwargs)


def _check(response, *, role: str, allowed: bool, unknown_credentials: tuple[str, ...], label: str) -> None:
    status = response.status_code
    if allowed:
        assert status not in (401, 403), f"{label}: {role} is allowed by the table but got {status}"
        assert status < 500, f"{label}: {role} got a server error {status}"
    elif role in unknown_credentials:
        assert status == 401, f"{label}: {role} must get 401, got {status}"
    else:
        assert status == 403, f"{label}: {role} must get 403, got {status}"


def _client(host: str, token: str | None) -> HostClient:
    client = HostClient(host)
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


# --- the table is complete ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "endpoints"),
    [(t.TENANT_TABLE, TENANT_ENDPOINTS), (t.PUBLIC_TABLE, PUBLIC_ENDPOINTS)],
    ids=["tenant-host", "public-host"],
)
def test_every_routed_endpoint_and_method_has_a_declared_rule_and_no_rule_is_stale(table, endpoints):
    routed = set(endpoints)
    declared = {(path, method) for path, methods in table.items() for method in methods}
    undeclared = sorted(routed - declared)
    stale = sorted(declared - routed)
    assert not undeclared, "endpoints without a rule in tests/security/rbac_table.py: " + ", ".join(
        f"{m} {p}" for p, m in undeclared
    )
    assert not stale, "rules for endpoints that are not routed: " + ", ".join(f"{m} {p}" for p, m in stale)


def test_the_walk_finds_viewset_extra_actions_and_portal_routes():
    assert ("/api/v1/subscriptions/{pk}/change-plan/", "POST") in TENANT_ENDPOINTS
    assert ("/api/v1/interfaces/{pk}/traffic/", "GET") in TENANT_ENDPOINTS
    assert ("/api/v1/portal/invoices/{pk}/pdf/", "GET") in TENANT_ENDPOINTS
    assert ("/api/v1/tenants/{slug}/suspend/", "POST") in PUBLIC_ENDPOINTS
    assert not any(path.startswith("/admin/") for path, _ in TENANT_ENDPOINTS)


# --- every endpoint x method x role, for real ----------------------------------------------------------
@pytest.mark.parametrize("role", t.TENANT_ROLES)
@pytest.mark.parametrize(("path", "method"), TENANT_ENDPOINTS, ids=[f"{m} {p}" for p, m in TENANT_ENDPOINTS])
def test_tenant_endpoint_answers_each_role_as_declared(world, db, path, method, role):
    rule = t.TENANT_TABLE.get(path, {}).get(method)
    assert rule is not None, f"{method} {path} has no rule in tests/security/rbac_table.py"
    client = _client(world.tenant.primary_host, world.tenant_tokens[role])
    response = _call(client, method, _url(path, world.samples))
    _check(response, role=role, allowed=role in rule, unknown_credentials=(t.ANONYMOUS,), label=f"{method} {path}")


@pytest.mark.parametrize("role", t.PUBLIC_ROLES)
@pytest.mark.parametrize(("path", "method"), PUBLIC_ENDPOINTS, ids=[f"{m} {p}" for p, m in PUBLIC_ENDPOINTS])
def test_public_endpoint_answers_each_role_as_declared(world, db, path, method, role):
    rule = t.PUBLIC_TABLE.get(path, {}).get(method)
    assert rule is not None, f"{method} {path} has no rule in tests/security/rbac_table.py"
    connection.set_schema_to_public()
    client = _client("localhost", world.public_tokens[role])
    response = _call(client, method, _url(path, world.samples))
    _check(
        response,
        role=role,
        allowed=role in rule,
        unknown_credentials=(t.ANONYMOUS, t.TENANT_OWNER_TOKEN),
        label=f"{method} {path} (public host)",
    )


# --- a portal customer sees only their own data -------------------------------------------------------
def _results(body):
    return body["results"] if isinstance(body, dict) and "results" in body else body


def test_a_portal_customer_lists_only_their_own_subscriptions_invoices_and_profile(world, db):
    a = world.portal["a"]
    client = _client(world.tenant.primary_host, a["token"])

    subscriptions = _results(client.get("/api/v1/portal/subscriptions/").json())
    invoices = _results(client.get("/api/v1/portal/invoices/").json())
    me = client.get("/api/v1/portal/me/").json()

    assert {row["id"] for row in subscriptions} == {a["subscription"]}
    assert {row["number"] for row in invoices} == {a["invoice_number"]}
    assert me["email"] == "ada.portal@example.net"
    assert "bob.portal@example.net" not in str(me)


def test_a_portal_customer_gets_404_for_another_customers_invoice_pdf(world, db):
    a, b = world.portal["a"], world.portal["b"]
    client = _client(world.tenant.primary_host, a["token"])

    own = client.get(f"/api/v1/portal/invoices/{a['invoice']}/pdf/")
    foreign = client.get(f"/api/v1/portal/invoices/{b['invoice']}/pdf/")

    assert own.status_code == 200
    assert own["Content-Type"] == "application/pdf"
    assert foreign.status_code == 404
    assert b["invoice_number"].encode() not in foreign.content


def test_a_portal_customer_cannot_reach_another_customer_through_staff_routes(world, db):
    a, b = world.portal["a"], world.portal["b"]
    client = _client(world.tenant.primary_host, a["token"])

    for path in (
        f"/api/v1/customers/{b['customer']}/",
        f"/api/v1/customers/{b['customer']}/balance/",
        f"/api/v1/subscriptions/{b['subscription']}/",
        f"/api/v1/invoices/{b['invoice']}/",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "permission_denied"
