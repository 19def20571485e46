"""API contracts: the OpenAPI schema documents every endpoint completely, and the live app keeps it.

Completeness (read from the schema the app serves at /api/schema/, tenant host and public host):
every API route of the URL confs (walked as tests/security/test_rbac_matrix.py walks them) is an
operation of the schema and every operation is routed; every operation documents a success
response with a body schema (a 204 without one); the errors it can answer, in the API's error
shape (isp/api/errors.py): 401 and 403 where the reviewed access table
(tests/security/rbac_table.py) refuses a caller, 404 where the path names an object, 400 where it
takes a body; every POST/PUT/PATCH documents its request body. `manage.py spectacular --validate
--fail-on-warn` (its generator is isp.api.schema.ApiSchemaGenerator, set in SPECTACULAR_SETTINGS)
passes for both URL confs and writes exactly the schema the app serves.

Conformance (schemathesis 4 against the live app, in process through Django's WSGI handler, on
the tenant host of `us-isp` with an owner's token - a portal customer's for portal operations -
and on the platform host with an operator's token). Per operation:
- 5 cases that fit the schema and 3 that do not (`EXAMPLES_POSITIVE`, `EXAMPLES_NEGATIVE`),
  Hypothesis derandomized: the same cases on every run;
- for a write that random data cannot get right (it names real rows), one valid request
  (`VALID_BODIES`), which must succeed;
- for a detail route, one call with an id that does not exist (the documented 404);
each response checked with not_a_server_error, status_code_conformance, content_type_conformance
and response_schema_conformance; and at least one case per operation must succeed, so that its
success response is checked too. Path ids are real rows of a small world built once for the
module through the services (a billing run with its invoices, a credit note, a payment, taxes,
discounts, customers and subscriptions in each state an action needs, PPPoE, RADIUS sessions,
CoA, NAS, devices with traffic, an alarm with an outage, an ONU, a failed provisioning job,
data-subject requests, a suspended tenant to reactivate). Each request runs in a savepoint rolled
back after it, so every case sees the same world; the world is rolled back when the module ends.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TENANT_PROFILES
from tests.security import rbac_table as t
from tests.security.test_rbac_matrix import api_endpoints

pytestmark = [pytest.mark.contract, pytest.mark.integration]

TENANT_SLUG = TENANT_PROFILES["us_isp"].slug
PUBLIC_HOST = "localhost"
# Cases per operation. A deeper hunt: ISP_CONTRACT_POSITIVE=60 ISP_CONTRACT_NEGATIVE=40 (about 7 minutes).
EXAMPLES_POSITIVE = int(os.environ.get("ISP_CONTRACT_POSITIVE", "5"))
EXAMPLES_NEGATIVE = int(os.environ.get("ISP_CONTRACT_NEGATIVE", "3"))
MISSING_ID = 987_654_321
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
_PARAM = re.compile(r"\{\w+\}")


# --- the app, in process ---------------------------------------------------------------------------
class InProcessApp:
    """Django's WSGI application, called inside the test's transaction.

    Like Django's test client, it keeps the request signals from closing the test's connection;
    each request runs in a savepoint that is rolled back after it (every case sees the same
    world), and the test gets its schema back (the tenant middleware switches it by host)."""

    def __init__(self):
        self.handler = WSGIHandler()

    def __call__(self, environ, start_response):
        previous = connection.tenant
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            with transaction.atomic():
                result = self.handler(environ, start_response)
                try:
                    body = b"".join(result)
                finally:
                    result.close()
                transaction.set_rollback(True)
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
            connection.set_tenant(previous)
        return [body]


# --- the world -----------------------------------------------------------------------------------------
@dataclass
class World:
    tenant: object
    host: str
    owner_token: str = ""
    portal_token: str = ""
    operator_token: str = ""
    ids: dict[str, object] = field(default_factory=dict)  # resource (path after /api/v1/) -> id
    # A route whose action needs its object in another state (a pending subscription to activate...).
    route_ids: dict[str, object] = field(default_factory=dict)  # route (rbac_table's path) -> id
    values: dict[str, object] = field(default_factory=dict)  # what the valid bodies refer to

    def id_for(self, path: str):
        return self.route_ids.get(path, self.ids[_resource(path)])


STAFF_PASSWORD = "staff-password-0"  # tests/factories.py
OPERATOR_PASSWORD = "operator-password-0"


def _build_tenant_world(world: World) -> None:
    """Through the production services where there is one (tests/billing/issued.py bills two
    subscribers with a real run: plans, taxes, discounts, invoices with lines and taxes)."""
    from billing import catalog
    from billing.credit_notes import credit_note_issue
    from billing.models import DiscountAssignment
    from billing.payments import payment_record
    from compliance.audit import Actor
    from compliance.dsr.services import dsr_create, dsr_fulfil, dsr_verify
    from compliance.models import AuditEvent
    from customers import services as cs
    from customers.models import Customer
    from network import services as ns
    from network.models import (
        Alarm,
        CoaRequest,
        Device,
        Interface,
        InterfaceSample,
        Onu,
        PonPort,
        ProvisioningJob,
        RadiusSession,
        SubscriptionPort,
    )
    from tests.billing.issued import bill_customers, subscriber
    from tests.customers.factories import PlanFactory, SubscriptionFactory
    from tests.factories import StaffUserFactory
    from tests.security.subjects import accounting

    actor = Actor.system("contract tests")
    owner = StaffUserFactory(role="owner")
    world.owner_token = Token.objects.create(user=owner).key
    billed = bill_customers(count=2)
    first, second = billed.customers
    subscription, other_subscription = billed.subscriptions
    invoice = billed.invoice_of(first)

    portal_user = get_user_model().objects.create_user(username="contract-portal", password="portal-password-0")
    Customer.objects.filter(pk=first.pk).update(portal_user=portal_user)
    world.portal_token = Token.objects.create(user=portal_user).key

    note = credit_note_issue(invoice=invoice, reason="contract test", amount=Decimal("1"), actor=actor)
    payment = payment_record(  # pays the rest of the invoice; what is left over becomes credit balance
        customer=first,
        amount=invoice.amount_due + Decimal("5"),
        received_on=datetime.date(2026, 3, 5),
        method="manual",
        actor=actor,
    )
    pending = SubscriptionFactory(plan=billed.plans["fiber"])
    _, suspended = subscriber(billed.plans["fiber"])
    suspended = cs.subscription_suspend(
        subscription=suspended, effective_on=datetime.date(2026, 3, 10), reason="contract test", actor=actor
    )
    spare_plan = PlanFactory(code="contract-spare")
    unused_rate = catalog.tax_rate_create(
        actor=actor, name="Unused levy", rate=Decimal("0.01"), country="US", region="US-TX", categories=["fee"]
    )
    unused_discount = catalog.discount_create(actor=actor, name="Unused 5%", kind="percent", value=Decimal("5"))

    account, _ = ns.pppoe_account_create(subscription=subscription, actor=actor)
    accounting(
        "Start",
        user=account.username,
        session="contract-s1",
        framed_ip="100.64.0.9",
        calling="02:00:00:00:00:09",
        when=timezone.now() - datetime.timedelta(minutes=5),
    )
    nas = ns.nas_register(name="contract-bras", ip_address="192.0.2.61", secret="contract-secret-1", actor=actor)
    coa = CoaRequest.objects.create(subscription=subscription, nas=nas, kind="coa", reason="contract", outcome="ack")
    now = timezone.now()
    router = Device.objects.create(name="contract-edge-1", kind="router", management_ip="192.0.2.62")
    interface = Interface.objects.create(device=router, if_index=1, name="ge-0/0/1", speed_bps=10**9)
    InterfaceSample.objects.bulk_create(
        InterfaceSample(interface=interface, sampled_at=now - datetime.timedelta(minutes=m), in_bps=1e6, out_bps=2e5)
        for m in (5, 10, 15)
    )
    SubscriptionPort.objects.create(subscription=subscription, interface=interface)
    alarm = Alarm.objects.create(
        kind="device_unreachable",
        severity="critical",
        dedupe_key=f"device_unreachable:device:{router.pk}",
        device=router,
        summary="contract-edge-1 unreachable",
        opened_at=now,
        last_seen_at=now,
    )
    olt = Device.objects.create(name="contract-olt-1", kind="olt", management_ip="192.0.2.63")
    port = PonPort.objects.create(olt=olt, index=1, name="gpon 0/1/1")
    onu = Onu.objects.create(olt=olt, pon_port=port, serial="HWTC0C0N7RAC", onu_index=1)
    job = ProvisioningJob.objects.create(
        subscription=other_subscription, action="activate", state="failed", error="contract test"
    )
    received = dsr_create(customer=second, kind="export", actor=actor)
    verified = dsr_verify(
        request=dsr_create(customer=second, kind="export", actor=actor), method="photo id", actor=actor
    )
    fulfilled = dsr_fulfil(
        request=dsr_verify(
            request=dsr_create(customer=second, kind="export", actor=actor), method="photo id", actor=actor
        ),
        actor=actor,
    )
    assignment = DiscountAssignment.objects.order_by("pk").first()
    world.ids.update(
        {
            "staff": owner.pk,
            "audit-events": AuditEvent.objects.order_by("pk").values_list("pk", flat=True).first(),
            "data-subject-requests": received.pk,
            "customers": first.pk,
            "service-addresses": subscription.service_address_id,
            "plans": subscription.plan_id,
            "subscriptions": subscription.pk,
            "billing-runs": billed.run.pk,
            "invoices": invoice.pk,
            "portal/invoices": invoice.pk,
            "credit-notes": note.pk,
            "payments": payment.pk,
            "tax-rates": invoice.taxes.values_list("tax_rate", flat=True).first(),
            "discounts": assignment.discount_id,
            "discount-assignments": assignment.pk,
            "nas": nas.pk,
            "pppoe-accounts": account.pk,
            "radius-sessions": RadiusSession.objects.get(acct_session_id="contract-s1").pk,
            "coa-requests": coa.pk,
            "devices": router.pk,
            "interfaces": interface.pk,
            "alarms": alarm.pk,
            "onus": onu.pk,
            "provisioning-jobs": job.pk,
        }
    )
    world.route_ids.update(
        {
            "/api/v1/subscriptions/{pk}/activate/": pending.pk,
            "/api/v1/subscriptions/{pk}/reactivate/": suspended.pk,
            "/api/v1/tax-rates/{pk}/": unused_rate.pk,  # one no issued invoice uses: it can be deleted
            "/api/v1/discounts/{pk}/": unused_discount.pk,
            "/api/v1/data-subject-requests/{pk}/fulfil/": verified.pk,
            "/api/v1/data-subject-requests/{pk}/archive/": fulfilled.pk,
        }
    )
    world.values.update(
        {
            "owner": owner.username,
            "customer": second.pk,
            "customer_address": other_subscription.service_address_id,
            "customer_without_address": pending.customer_id,
            "pending_subscription": pending.pk,
            "subscription_without_account": other_subscription.pk,
            "spare_plan": spare_plan.pk,
            "plan_code": billed.plans["fiber"].code,
            "invoice": invoice.pk,
            "discount": unused_discount.pk,
        }
    )


def _build_public_world(world: World) -> None:
    from compliance.audit import Actor
    from tenants.models import Tenant
    from tenants.services import tenant_suspend

    operator = get_user_model().objects.create_user("contract-operator", password=OPERATOR_PASSWORD)
    operator.user_permissions.set(
        Permission.objects.filter(content_type__app_label="tenants", codename__endswith="_tenant")
    )
    world.operator_token = Token.objects.create(user=operator).key
    world.ids["tenants"] = TENANT_PROFILES["eu_isp"].slug
    suspended = tenant_suspend(  # inside the module's transaction: no other test sees it
        tenant=Tenant.objects.get(slug=TENANT_PROFILES["jp_isp"].slug), reason="contract test", actor=Actor.system("t")
    )
    world.route_ids["/api/v1/tenants/{slug}/reactivate/"] = suspended.slug


# Valid requests, one per write that random data cannot get right (it names real rows, or its
# values must be coherent): each must succeed (2xx) and its response must match the schema.
VALID_BODIES = {
    ("tenant", "POST", "/api/v1/auth/token/"): lambda w: {"username": w.values["owner"], "password": STAFF_PASSWORD},
    ("tenant", "POST", "/api/v1/data-subject-requests/"): lambda w: {
        "customer": w.values["customer"],
        "kind": "export",
    },
    ("tenant", "POST", "/api/v1/customers/"): lambda w: {
        "name": "Contract Customer",
        "email": "contract.customer@example.net",
        "phone": "+14155550100",
    },
    ("tenant", "POST", "/api/v1/service-addresses/"): lambda w: {
        "customer": w.values["customer_without_address"],
        "street": "1 Contract Way",
        "city": "Springfield",
        "postal_code": "62701",
        "country": "US",
        "region": "US-IL",
    },
    ("tenant", "POST", "/api/v1/plans/"): lambda w: {
        "code": "contract-new",
        "name": "Contract 1G",
        "download_kbps": 1_000_000,
        "upload_kbps": 500_000,
        "monthly_price": "59.990000",
    },
    ("tenant", "POST", "/api/v1/subscriptions/"): lambda w: {
        "customer": w.values["customer"],
        "plan": w.values["spare_plan"],
        "service_address": w.values["customer_address"],
    },
    ("tenant", "POST", "/api/v1/subscriptions/{pk}/activate/"): lambda w: {"activated_on": "2026-04-01"},
    ("tenant", "POST", "/api/v1/subscriptions/{pk}/suspend/"): lambda w: {
        "effective_on": "2026-04-15",
        "reason": "unpaid",
    },
    ("tenant", "POST", "/api/v1/subscriptions/{pk}/reactivate/"): lambda w: {"effective_on": "2026-04-20"},
    ("tenant", "POST", "/api/v1/subscriptions/{pk}/terminate/"): lambda w: {
        "terminated_on": "2026-05-01",
        "reason": "moving away",
    },
    ("tenant", "POST", "/api/v1/subscriptions/{pk}/change-plan/"): lambda w: {
        "plan": w.values["spare_plan"],
        "effective_on": "2026-04-01",
    },
    ("tenant", "POST", "/api/v1/portal/signup/"): lambda w: {
        "name": "Contract Signup",
        "email": "contract.signup@example.net",
        "password": "signup-password-0",
        "plan_code": w.values["plan_code"],
        "address": {"street": "2 Contract Way", "city": "Springfield", "postal_code": "62701", "country": "US"},
    },
    ("tenant", "POST", "/api/v1/billing-runs/"): lambda w: {"period": "2026-04", "issue_date": "2026-04-01"},
    ("tenant", "POST", "/api/v1/credit-notes/"): lambda w: {
        "invoice": w.values["invoice"],
        "reason": "goodwill",
        "amount": "1.00",
    },
    ("tenant", "POST", "/api/v1/payments/"): lambda w: {
        "customer": w.values["customer"],
        "amount": "12.50",
        "received_on": "2026-03-20",
        "method": "manual",
    },
    ("tenant", "POST", "/api/v1/tax-rates/"): lambda w: {
        "name": "Contract levy",
        "rate": "0.020000",
        "country": "US",
        "region": "US-CA",
        "categories": ["service"],
    },
    ("tenant", "POST", "/api/v1/discounts/"): lambda w: {"name": "Contract 10%", "kind": "percent", "value": "10"},
    ("tenant", "POST", "/api/v1/discount-assignments/"): lambda w: {
        "discount": w.values["discount"],
        "customer": w.values["customer"],
    },
    ("tenant", "POST", "/api/v1/nas/"): lambda w: {
        "name": "contract-bras-2",
        "ip_address": "192.0.2.71",
        "secret": "contract-secret-2",
    },
    ("tenant", "POST", "/api/v1/pppoe-accounts/"): lambda w: {"subscription": w.values["subscription_without_account"]},
    ("tenant", "POST", "/api/v1/devices/"): lambda w: {
        "name": "contract-switch-1",
        "kind": "switch",
        "management_ip": "192.0.2.72",
        "community": "contract-community",
    },
    ("tenant", "POST", "/api/v1/onus/{pk}/authorise/"): lambda w: {
        "subscription": w.values["subscription_without_account"]
    },
    ("tenant", "POST", "/api/v1/provisioning-jobs/"): lambda w: {
        "subscription": w.values["pending_subscription"],
        "action": "activate",
    },
    ("tenant", "POST", "/api/v1/provisioning-jobs/activate-many/"): lambda w: {
        "items": [{"subscription": w.values["pending_subscription"]}]
    },
    ("public", "POST", "/api/v1/auth/token/"): lambda w: {
        "username": "contract-operator",
        "password": OPERATOR_PASSWORD,
    },
    ("public", "POST", "/api/v1/tenants/"): lambda w: {
        "slug": "contract-isp",
        "name": "Contract ISP",
        "currency": "USD",
        "country": "US",
        "admin_email": "owner@contract-isp.example",
    },
}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """A small world in one tenant and an operator on the platform; rolled back after the module."""
    from tenants.models import Tenant

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            tenant = Tenant.objects.get(slug=TENANT_SLUG)
            connection.set_tenant(tenant)
            built = World(tenant=tenant, host=tenant.primary_host)
            _build_tenant_world(built)
            connection.set_schema_to_public()
            _build_public_world(built)
            connection.set_tenant(tenant)
            yield built
        finally:
            connection.set_schema_to_public()
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture(scope="module")
def app():
    return InProcessApp()


@pytest.fixture(scope="module")
def schemas(world, app, django_db_blocker):
    """The schemas as the running app serves them, per host."""
    with django_db_blocker.unblock():
        loaded = {
            "tenant": schemathesis.openapi.from_wsgi("/api/schema/", app, base_url=f"http://{world.host}"),
            "public": schemathesis.openapi.from_wsgi("/api/schema/", app, base_url=f"http://{PUBLIC_HOST}"),
        }
        connection.set_tenant(world.tenant)
    return loaded


# Routes under /api/ that are not API operations, and why.
NOT_OPERATIONS = {
    "/api/v1/": "the router's root view declares no rule, so it serves nobody (fail closed)",
    "/api/schema/": "the schema itself",
    "/api/docs/": "the Swagger UI page",
}
HOSTS = {"tenant": "isp.urls_tenant", "public": "isp.urls_public"}
WRITE_METHODS = {"POST", "PUT", "PATCH"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _operations(urlconf: str) -> list[tuple[str, str]]:
    """The routed API operations. HEAD is GET's (a viewset adds it to its actions once it has
    served a GET), OPTIONS is DRF's metadata: neither is an operation of its own."""
    return [
        (path, method)
        for path, method in api_endpoints(urlconf)
        if path not in NOT_OPERATIONS and method not in ("HEAD", "OPTIONS")
    ]


TENANT_OPERATIONS = _operations(HOSTS["tenant"])
PUBLIC_OPERATIONS = _operations(HOSTS["public"])


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


def _schema_operations(raw: dict) -> dict[tuple[str, str], dict]:
    """(path, METHOD) -> operation object."""
    return {
        (path, method.upper()): operation
        for path, item in raw["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def _resolve(raw: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = raw["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _resource(path: str) -> str:
    """`/api/v1/portal/invoices/{id}/pdf/` -> `portal/invoices`."""
    head = _PARAM.split(path, maxsplit=1)[0]
    return head.removeprefix("/api/v1/").strip("/")


def _schema_path(path: str, schema_paths) -> str:
    pattern = _PARAM.sub("{}", path)
    for candidate in schema_paths:
        if _PARAM.sub("{}", candidate) == pattern:
            return candidate
    raise AssertionError(f"{path} is not in the schema")


# --- completeness ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", list(HOSTS))
def test_every_api_route_is_an_operation_of_the_served_schema_and_nothing_else_is(schemas, host):
    routed = {(_shape(path), method) for path, method in _operations(HOSTS[host])}
    documented = {(_shape(path), method) for path, method in _schema_operations(schemas[host].raw_schema)}

    assert routed, "the walk of the URL conf found no API route"
    assert not routed - documented, "routed but not in the schema: " + ", ".join(
        f"{m} {p}" for p, m in sorted(routed - documented)
    )
    assert not documented - routed, "in the schema but not routed: " + ", ".join(
        f"{m} {p}" for p, m in sorted(documented - routed)
    )


@pytest.mark.parametrize("host", list(HOSTS))
def test_every_operation_documents_a_success_response_with_its_body(schemas, host):
    raw = schemas[host].raw_schema
    problems = []
    for (path, method), operation in sorted(_schema_operations(raw).items()):
        label = f"{method} {path} ({operation.get('operationId')})"
        success = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        if not success:
            problems.append(f"{label}: no 2xx response")
        for code, response in success.items():
            content = response.get("content", {})
            if code == "204":
                if content:
                    problems.append(f"{label}: 204 documents a body")
                continue
            if not content:
                problems.append(f"{label}: {code} has no body schema")
            for media_type, media in content.items():
                schema = _resolve(raw, media.get("schema", {}))
                if not schema or schema.get("description") == "Unspecified response body":
                    problems.append(f"{label}: {code} {media_type} has no real schema")
                elif schema.get("type") == "object" and not schema.get("properties"):
                    problems.append(f"{label}: {code} {media_type} is a free-form object")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("host", list(HOSTS))
def test_every_write_documents_its_request_body(schemas, host):
    raw = schemas[host].raw_schema
    problems = []
    for (path, method), operation in sorted(_schema_operations(raw).items()):
        if method not in WRITE_METHODS:
            continue
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content or not content["application/json"].get("schema"):
            problems.append(f"{method} {path} ({operation.get('operationId')}): no JSON request body schema")
    assert not problems, "\n".join(problems)


def _expected_errors(host: str, path: str, method: str, operation: dict) -> set[str]:
    """The errors an operation must document, from facts outside the schema generator: the
    reviewed access table (a caller it refuses gets 401 without known credentials, 403 with
    them), the path (an id that does not exist) and the body (invalid input)."""
    table, roles = (t.TENANT_TABLE, t.TENANT_ROLES) if host == "tenant" else (t.PUBLIC_TABLE, t.PUBLIC_ROLES)
    unknown_credentials = {t.ANONYMOUS} if host == "tenant" else {t.ANONYMOUS, t.TENANT_OWNER_TOKEN}
    rule = table[_rbac_path(path, table)][method]
    refused = set(roles) - rule
    expected = set()
    if refused & unknown_credentials:
        expected.add("401")
    if refused - unknown_credentials:
        expected.add("403")
    if "{" in path:
        expected.add("404")
    if "requestBody" in operation:
        expected.add("400")
    return expected


def _rbac_path(path: str, table: dict) -> str:
    matches = [candidate for candidate in table if _shape(candidate) == _shape(path)]
    assert matches, f"{path} has no rule in tests/security/rbac_table.py"
    return matches[0]


@pytest.mark.parametrize("host", list(HOSTS))
def test_every_operation_documents_its_errors_in_the_error_shape(schemas, host):
    raw = schemas[host].raw_schema
    error = _resolve(raw, {"$ref": "#/components/schemas/Error"})
    detail = _resolve(raw, error["properties"]["error"])
    assert error["required"] == ["error"]
    assert set(detail["required"]) == {"code", "message", "fields"}
    assert detail["properties"]["fields"]["type"] == "object"

    problems = []
    for (path, method), operation in sorted(_schema_operations(raw).items()):
        label = f"{method} {path} ({operation.get('operationId')})"
        documented = {code for code in operation["responses"] if code.startswith("4")}
        missing = _expected_errors(host, path, method, operation) - documented
        if missing:
            problems.append(f"{label}: errors not documented: {', '.join(sorted(missing))}")
        for code in sorted(documented):
            content = operation["responses"][code].get("content", {})
            if list(content) != ["application/json"] or content["application/json"]["schema"] != {
                "$ref": "#/components/schemas/Error"
            }:
                problems.append(f"{label}: {code} is not the error shape: {content}")
    assert not problems, "\n".join(problems)


def test_the_valid_requests_and_the_objects_chosen_per_route_name_routed_operations(world):
    routed = {("tenant", m, p) for p, m in TENANT_OPERATIONS} | {("public", m, p) for p, m in PUBLIC_OPERATIONS}
    paths = {p for _, _, p in routed}

    assert not set(VALID_BODIES) - routed, f"valid requests of no operation: {set(VALID_BODIES) - routed}"
    assert not set(world.route_ids) - paths, f"objects chosen for no route: {set(world.route_ids) - paths}"


@pytest.mark.parametrize("host", list(HOSTS))
def test_manage_py_spectacular_validates_without_warnings_and_matches_the_served_schema(schemas, host, tmp_path):
    target = tmp_path / f"{host}.json"
    call_command(
        "spectacular",
        "--urlconf",
        HOSTS[host],
        "--validate",
        "--fail-on-warn",
        "--format",
        "openapi-json",
        "--file",
        str(target),
    )
    assert json.loads(target.read_text()) == schemas[host].raw_schema


# --- conformance -------------------------------------------------------------------------------------
def _token(world: World, host: str, path: str) -> str:
    if host == "public":
        return world.operator_token
    return world.portal_token if path.startswith("/api/v1/portal/") else world.owner_token


def _modes(operation, raw_operation: dict, real_ids: dict) -> list[tuple[GenerationMode, int, dict | None]]:
    """(mode, examples, pinned path values): valid cases on the real objects; invalid bodies and
    queries on the real objects too, so that they reach the view; an operation with nothing but
    an integer id to get wrong gets invalid ids; one with nothing to get wrong, no invalid case."""
    modes = [(GenerationMode.POSITIVE, EXAMPLES_POSITIVE, real_ids)]
    if operation.body or operation.query:
        modes.append((GenerationMode.NEGATIVE, EXAMPLES_NEGATIVE, real_ids))
    elif any(
        p["in"] == "path" and p.get("schema", {}).get("type") == "integer" for p in raw_operation.get("parameters", [])
    ):
        modes.append((GenerationMode.NEGATIVE, EXAMPLES_NEGATIVE, None))
    return modes


def _run_operation(world: World, schemas: dict, host: str, path: str, method: str) -> list[str]:
    """Every case of the operation, called and checked; the failures, each with its curl command.
    At least one case must succeed (2xx), or the success response was never checked."""
    schema = schemas[host]
    schema_path = _schema_path(path, schema.raw_schema["paths"])
    operation = schema[schema_path][method]
    base_url = f"http://{world.host if host == 'tenant' else PUBLIC_HOST}"
    headers = {"Authorization": f"Token {_token(world, host, path)}"}
    names = [name.strip("{}") for name in _PARAM.findall(schema_path)]
    real_ids = {name: world.id_for(path) for name in names}
    failures: list[str] = []
    statuses: list[int] = []

    def run(case, *, must_succeed: bool = False):
        response = case.call(base_url=base_url, headers=headers)
        statuses.append(response.status_code)
        curl = case.as_curl_command(headers=headers)
        body = response.content[:300].decode(errors="replace")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, FailureGroup) as exc:
            found = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            titles = "; ".join(f"{getattr(f, 'title', type(f).__name__)}: {getattr(f, 'message', f)}" for f in found)
            failures.append(f"{curl}\n    -> {response.status_code} {body}\n    {titles}")
        if must_succeed and not 200 <= response.status_code < 300:
            failures.append(f"{curl}\n    -> {response.status_code} {body}\n    a valid request must succeed")

    valid = VALID_BODIES.get((host, method, path))
    if valid is not None:
        run(
            operation.Case(path_parameters=real_ids, body=valid(world), media_type="application/json"),
            must_succeed=True,
        )
    for mode, count, pinned in _modes(operation, schema.raw_schema["paths"][schema_path][method.lower()], real_ids):

        @hypothesis_settings(
            max_examples=count,
            derandomize=True,  # the same cases on every run
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # failures are collected, never raised: nothing to shrink
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pinned or None))
        def examples(case):
            run(case)

        examples()
    if names:
        run(operation.Case(path_parameters=dict.fromkeys(names, MISSING_ID)))
    if not any(200 <= status < 300 for status in statuses):
        failures.append(f"{method} {schema_path}: no case succeeded ({sorted(set(statuses))}); add a valid request")
    return failures


@pytest.mark.parametrize(("path", "method"), TENANT_OPERATIONS, ids=[f"{m} {p}" for p, m in TENANT_OPERATIONS])
def test_tenant_operation_conforms_to_its_schema(world, schemas, db, path, method):
    failures = _run_operation(world, schemas, "tenant", path, method)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("path", "method"), PUBLIC_OPERATIONS, ids=[f"{m} {p}" for p, m in PUBLIC_OPERATIONS])
def test_public_operation_conforms_to_its_schema(world, schemas, db, path, method):
    connection.set_schema_to_public()
    failures = _run_operation(world, schemas, "public", path, method)
    assert not failures, "\n".join(failures)
