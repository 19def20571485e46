"""The performance suite (issue 8): query-count baselines of the main API endpoints.

Each list endpoint is read as its tenant's owner with a few rows, then with more rows of the same
kind: the number of SQL queries must not grow with the rows (no N+1), and must not exceed the
committed baseline in `tests/performance/query_baselines.json` (a change that adds queries to a
page fails here and says which endpoint; lowering a count is welcome - update the file with
`ISP_QUERY_BASELINES_WRITE=1 pytest tests/performance -k query`).

The benchmark ratios of this suite (billing, RADIUS, polling, tenants at a small scale) come with
issue 8; until then `make bench` runs them at full scale."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Payment
from billing.payments import payment_record
from compliance.audit import Actor, audit_record
from compliance.dsr import services as dsr
from network import services as ns
from network.models import Device, ProvisioningJob
from tenants import roles
from tenants.models import Tenant
from tests.billing.factories import issued_invoice
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory, SubscriptionFactory
from tests.factories import StaffUserFactory

pytestmark = [pytest.mark.performance_baseline, pytest.mark.regression_detection]

BASELINES = Path(__file__).with_name("query_baselines.json")
ACTOR = Actor.system("query count tests")
FEW, MORE = 2, 6
_serial = iter(range(1, 10_000))


def _subscriptions(n: int) -> None:
    for _ in range(n):
        SubscriptionFactory()


def _customers(n: int) -> None:
    for _ in range(n):
        customer = CustomerFactory()
        ServiceAddressFactory(customer=customer)
        SubscriptionFactory(customer=customer)


def _invoices(n: int) -> None:
    for _ in range(n):
        issued_invoice(CustomerFactory(), due_date=datetime.date(2026, 12, 1), amount_due=Decimal("30"))


def _payments(n: int) -> None:
    for _ in range(n):
        invoice = issued_invoice(CustomerFactory(), due_date=datetime.date(2026, 12, 1), amount_due=Decimal("30"))
        payment_record(
            customer=invoice.customer,
            amount=Decimal("30"),
            received_on=datetime.date(2026, 11, 20),
            method=Payment.Method.MANUAL,
            reference=f"transfer {next(_serial)}",
            actor=ACTOR,
        )


def _audit_events(n: int) -> None:
    for i in range(n):
        audit_record(actor=ACTOR, action="test.query_count", object_type="tests.thing", object_id=str(i))


def _nas(n: int) -> None:
    for _ in range(n):
        k = next(_serial)
        ns.nas_register(name=f"bras-{k}", ip_address=f"192.0.2.{k % 250 + 1}", secret="nas-secret-1234", actor=ACTOR)


def _pppoe_accounts(n: int) -> None:
    for _ in range(n):
        sub = SubscriptionFactory()
        ns.pppoe_account_create(subscription=sub, actor=ACTOR, username=f"q-user-{next(_serial)}")


def _devices(n: int) -> None:
    for _ in range(n):
        k = next(_serial)
        Device.objects.create(name=f"edge-{k}", kind="router", vendor="generic", management_ip=f"198.51.100.{k % 250}")


def _provisioning_jobs(n: int) -> None:
    for _ in range(n):
        ProvisioningJob.objects.create(subscription=SubscriptionFactory(), action="activate", params={"pool": "p"})


def _data_subject_requests(n: int) -> None:
    for _ in range(n):
        dsr.dsr_create(customer=CustomerFactory(), kind="export", actor=ACTOR)


def _staff(n: int) -> None:
    for _ in range(n):
        StaffUserFactory(role=roles.SUPPORT)


def _plans(n: int) -> None:
    for _ in range(n):
        PlanFactory()


def _service_addresses(n: int) -> None:
    for _ in range(n):
        ServiceAddressFactory()


ENDPOINTS: dict[str, Callable[[int], None]] = {
    "/api/v1/customers/": _customers,
    "/api/v1/service-addresses/": _service_addresses,
    "/api/v1/plans/": _plans,
    "/api/v1/subscriptions/": _subscriptions,
    "/api/v1/invoices/": _invoices,
    "/api/v1/payments/": _payments,
    "/api/v1/audit-events/": _audit_events,
    "/api/v1/data-subject-requests/": _data_subject_requests,
    "/api/v1/staff/": _staff,
    "/api/v1/nas/": _nas,
    "/api/v1/pppoe-accounts/": _pppoe_accounts,
    "/api/v1/devices/": _devices,
    "/api/v1/provisioning-jobs/": _provisioning_jobs,
}


@pytest.fixture
def us(db):
    tenant = Tenant.objects.get(slug="us-isp")
    connection.set_tenant(tenant)
    yield tenant
    connection.set_schema_to_public()


def _queries(client, url: str, tenant) -> tuple[int, int]:
    """(queries, rows) of one GET of the list, page size 50."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, {"page_size": 50})
    connection.set_tenant(tenant)
    assert response.status_code == 200, (url, response.content[:300])
    return len(captured), response.json()["count"]


def _baselines() -> dict[str, int]:
    return json.loads(BASELINES.read_text()) if BASELINES.exists() else {}


@pytest.mark.contract
@pytest.mark.parametrize("url", sorted(ENDPOINTS))
def test_a_list_endpoint_reads_in_a_fixed_number_of_queries_within_its_baseline(us, staff_client, url):
    client = staff_client(us, roles.OWNER)
    make = ENDPOINTS[url]
    make(FEW)
    few, rows_few = _queries(client, url, us)
    make(MORE - FEW)
    more, rows_more = _queries(client, url, us)
    # the page holds the new rows (the endpoint lists what was made)...
    assert rows_more >= rows_few + (MORE - FEW), (url, rows_few, rows_more)
    # ...in as many queries as before: nothing is read once per row
    assert more == few, f"{url}: {few} queries for {rows_few} rows but {more} for {rows_more} (N+1)"
    if os.environ.get("ISP_QUERY_BASELINES_WRITE") == "1":
        counts = _baselines()
        counts[url] = more
        BASELINES.write_text(json.dumps(dict(sorted(counts.items())), indent=2) + "\n")
        return
    baseline = _baselines().get(url)
    assert baseline is not None, f"{url} has no committed query baseline in {BASELINES.name}"
    assert more <= baseline, f"{url}: {more} queries for a page, the committed baseline is {baseline}"


@pytest.mark.contract
def test_every_list_endpoint_with_a_baseline_is_still_measured():
    """A baseline whose endpoint left the table above would check nothing."""
    assert set(_baselines()) == set(ENDPOINTS)
