"""The performance suite (issue 8): query-count baselines of the main API endpoints.

Each list endpoint is read as its tenant's owner with a few rows, then with more rows of the same
kind: the number of SQL queries must not grow with the rows (no N+1), and must not exceed the
committed baseline in `tests/performance/query_baselines.json` (a change that adds queries to a
page fails here and says which endpoint; lowering a count is welcome - update the file with
`ISP_QUERY_BASELINES_WRITE=1 pytest tests/performance -k query`).

The benchmark ratios: the tenant, billing, RADIUS and polling benchmarks of `make bench` (README
"Benchmarks") run here at a small scale, on committed data as from the command line. Each measures
its subject and a baseline in the same run; a test fails when the ratio falls below its bar (a
named constant saying where it comes from) or when a correctness figure the benchmark reports is
wrong (mismatches, rejected requests, lost packets, unreachable devices) - never on an absolute
time. The benchmarks build and remove their own throwaway tenants; the `committed` fixture checks
that nothing of theirs is left and that the session's tenants are untouched."""

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


# -- benchmark ratios at a small scale -----------------------------------------------------------
# The bars were set on this machine: 2 cores shared with other work, with PostgreSQL, FreeRADIUS,
# snmpd and the load generators on the same cores as the code measured. Every ratio was measured
# repeatedly at the scale below, mostly while other test suites ran (load average 3-9), and a
# deliberate regression was tried against each bar (figures in each comment; "best" is the best of
# BEST_OF runs, the figure the test checks). Each bar sits clearly under the worst ratio measured,
# and above what a change that halves the throughput of the code measured gives.
TENANTS = 2  # tenant_create calls, and as many CREATE SCHEMA + migrate_schemas baselines
BILLING_CUSTOMERS = 300
RADIUS_SUBSCRIBERS, RADIUS_IN_FLIGHT, RADIUS_ROUNDS = 100, 50, 50  # 5,000 authentications per server
POLLING_DEVICES = 200
# The billing, RADIUS and polling benchmarks are cheap at this scale: each runs this many times, and
# the best ratio counts. A burst of other work on the machine lowers one run; a regression lowers
# every run.
BEST_OF = 3

# tenant_create (cloned from the template) over CREATE SCHEMA + migrate_schemas, medians. At full
# scale the README gives 0.6, when the owner's password is hashed with PBKDF2; the test settings
# hash with MD5. Measured here: 3.08-4.27. Regressions tried: building each tenant schema by
# replaying the migrations instead of cloning gave 0.92 (fails); running migrate_schemas on the
# template at every tenant_create (its once-per-process check lost, about 30 % slower) gave
# 2.57-2.97 (passes: not a halving).
TENANT_SPEEDUP_BAR = 2.2
# Invoices/s of the billing run over invoices/s of a plain COPY of the same rows. docs/billing.md
# section 9 gives 0.22-0.30 at 10,000 customers with 2 workers, and a bar of 0.25. Here, in one
# process: single runs 0.109-0.225, best 0.137-0.225. Regressions tried: each invoice written
# on its own (the batch lost) gave best 0.022-0.035 (fails); one extra query per invoice (about 35 %
# slower) gave best 0.096-0.104 (fails or passes: not a halving).
BILLING_RATIO_BAR = 0.10
# Authentications/s through FreeRADIUS + PostgreSQL over authentications/s of a FreeRADIUS that
# answers from its users file, with the same client. docs/radius.md gives 0.53 at 1,000
# subscribers, and a bar of 0.25. Here: single runs 0.28-0.84, best 0.37-0.84 (0.55-0.63 with 50
# rounds). Regressions tried: the first version's per-request dynamic SQL join, in both
# authorize_check and authorize_reply (auth/s halved), gave best 0.226-0.239 (fails); the same in
# authorize_check only (about 35 % slower) gave best 0.35-0.49 (passes: not a halving).
RADIUS_RATIO_BAR = 0.30
# Device polls/s, storage included, over the sequential requests/s of one easysnmp session on the
# same agent. docs/network.md gives 0.54-0.65 at 1,000 devices, and a bar of 0.25. Here:
# 0.27-0.50 under load, 0.40-0.45 on a quiet machine - and once 0.179 in a CI run (a single poll
# of 200 devices is measured over about 0.2 s, so one burst of other work halves it: hence the best
# of BEST_OF runs). With 200 devices on the agents, the sequential baseline is faster than with
# 1,000, and a busy machine slows it more than the poller, which raises the ratio. Regressions tried:
# storing device by device (the batch lost) gave 0.074-0.147 (fails); one extra query per device
# when storing gave 0.30 (passes: not a halving).
POLLING_RATIO_BAR = 0.18

# What the benchmarks' throwaway tenants are called: slugs `bench-...`, so schemas `tenant_bench_...`
# (and the baseline schemas of tenants/bench.py, `bench_..._migrate_<i>`, which are no tenant's).
THROWAWAY_SLUG, THROWAWAY_SCHEMA, BASELINE_SCHEMA = "bench-", "tenant_bench_", "bench_"


def _throwaway_traces() -> set[str]:
    """What throwaway tenants leave in the database, one "<kind> <schema or slug>" per thing: schemas,
    tenant rows, database roles, FreeRADIUS's rows (radius schema) and data keys (key store)."""
    from compliance.pii.keystore import get_keystore
    from tenants.isolation import ROLE_PREFIX

    like = THROWAWAY_SCHEMA.replace("_", "\\_") + "%"
    traces = {
        f"tenant {slug}"
        for slug in Tenant.objects.filter(slug__startswith=THROWAWAY_SLUG).values_list("slug", flat=True)
    }
    queries = [
        (
            "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE %s OR nspname LIKE %s",
            [like, BASELINE_SCHEMA.replace("_", "\\_") + "%"],
        ),
        (
            "SELECT 'role ' || substr(rolname, %s) FROM pg_roles WHERE rolname LIKE %s",
            [len(ROLE_PREFIX) + 1, ROLE_PREFIX + like],
        ),
        (
            "SELECT 'radius ' || tenant FROM radius.nas_directory WHERE tenant LIKE %s "
            "UNION SELECT 'radius ' || tenant FROM radius.subscriber WHERE tenant LIKE %s",
            [like, like],
        ),
    ]
    with connection.cursor() as cursor:
        for query, params in queries:
            cursor.execute(query, params)
            traces.update(trace for (trace,) in cursor.fetchall())
    with get_keystore().connection().cursor() as cursor:
        cursor.execute("SELECT DISTINCT 'keys ' || tenant FROM subject_keys WHERE tenant LIKE %s", [like])
        traces.update(trace for (trace,) in cursor.fetchall())
    return traces


def _remove_throwaway(traces: set[str]) -> None:
    """The safety net: remove what a benchmark's own cleanup (which runs first) left behind."""
    from psycopg import sql

    from compliance.pii.bench import bench_tenant_cleanup
    from tenants.models import schema_name_for_slug

    names = {trace.split(" ", 1)[1] for trace in traces}
    schemas = {schema_name_for_slug(n) if n.startswith(THROWAWAY_SLUG) else n for n in names}
    for schema in sorted(schemas):
        if schema.startswith(THROWAWAY_SCHEMA):  # a tenant: its schema, role, rows, radius rows, keys
            with connection.cursor() as cursor:
                cursor.execute("SELECT radius.forget_tenant(%s)", [schema])
            slug = schema.removeprefix("tenant_").replace("_", "-")
            bench_tenant_cleanup(schema=schema, slug=slug, actor=Actor.system("perf tests"), say=lambda _line: None)
        else:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _session_tenants() -> dict[str, tuple[str, int]]:
    """The session's tenants (tests/conftest.py) and the template: schema and number of tables."""
    from django.conf import settings

    schemas = dict(Tenant.objects.exclude(slug__startswith=THROWAWAY_SLUG).values_list("slug", "schema_name"))
    schemas["(template)"] = settings.TENANT_BASE_SCHEMA
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, count(*) FROM pg_tables WHERE schemaname = ANY(%s) GROUP BY 1", [list(schemas.values())]
        )
        tables = dict(cursor.fetchall())
    return {slug: (schema, tables.get(schema, 0)) for slug, schema in schemas.items()}


@pytest.fixture
def committed(django_db_setup, django_db_blocker):
    """The database as a benchmark command sees it: no test transaction (its throwaway tenants are
    committed, other processes - FreeRADIUS, forked workers - see them), the public schema. After
    the test: nothing of the benchmark is left, and the session's tenants are as they were."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        before, tenants_before = _throwaway_traces(), _session_tenants()
        try:
            yield
        finally:
            connection.set_schema_to_public()
            left = _throwaway_traces() - before
            _remove_throwaway(left)
            tenants_after = _session_tenants()
    assert not left, f"the benchmark left {sorted(left)} behind (removed now)"
    assert tenants_after == tenants_before


def _best(runs: list, ratio: Callable) -> tuple[float, list[dict]]:
    """The best ratio of the runs, and every run's figures (for the failure message)."""
    return max(ratio(run) for run in runs), [run.as_json_dict() for run in runs]


@pytest.mark.behavior
def test_tenant_create_from_the_template_stays_faster_than_replaying_the_migrations(committed):
    from tenants.bench import bench_tenant_create

    # when TENANTS tenants are provisioned, and as many schemas migrated the way a tenant would be without the template
    result = bench_tenant_create(tenants=TENANTS)

    # then both were measured, everything created is removed, and the clone keeps its lead
    assert (len(result.clone_s), len(result.migrate_s)) == (TENANTS, TENANTS)
    assert result.cleanup_problems == []
    assert result.speedup >= TENANT_SPEEDUP_BAR, result.as_json_dict()


@pytest.mark.behavior
def test_a_billing_run_keeps_its_ratio_to_a_plain_copy_of_the_same_rows(committed):
    from billing.bench import bench_billing

    # when a throwaway tenant of BILLING_CUSTOMERS customers (prorations, discounts, two taxes,
    # usage) is billed for a month, and the same invoice rows are written again with plain COPY
    runs = [bench_billing(customers=BILLING_CUSTOMERS, workers=1) for _ in range(BEST_OF)]

    # then every customer got an invoice that matches an independent recomputation...
    for run in runs:
        assert (run.invoices, run.failed, run.mismatches) == (BILLING_CUSTOMERS, 0, 0), run.as_json_dict()
        assert run.lines_per_invoice > 4  # the realistic mix, not one line each
        assert run.notes == []
        assert run.cleanup_problems == []
    # ...and the run is not much slower, relative to COPY, than it was
    best, figures = _best(runs, lambda run: run.ratio)
    assert best >= BILLING_RATIO_BAR, figures


@pytest.mark.integration
@pytest.mark.network_monitoring
@pytest.mark.behavior
def test_radius_through_the_database_keeps_its_ratio_to_a_files_only_freeradius(committed):
    from network.bench import bench_radius

    # when the real FreeRADIUS (sql) and a FreeRADIUS answering from its users file serve the same
    # RADIUS_SUBSCRIBERS subscribers to the same client, then a burst and accounting reach the real one
    runs = [
        bench_radius(subscribers=RADIUS_SUBSCRIBERS, in_flight=RADIUS_IN_FLIGHT, rounds=RADIUS_ROUNDS)
        for _ in range(BEST_OF)
    ]

    # then no request was lost or refused anywhere, every session was stored...
    requests = RADIUS_SUBSCRIBERS * RADIUS_ROUNDS
    for run in runs:
        figures = run.as_json_dict()
        assert (run.product["sent"], run.product["accepted"]) == (requests, requests), run.product
        assert (run.baseline["sent"], run.baseline["accepted"]) == (requests, requests), run.baseline
        assert (figures["burst_sent"], figures["burst_lost"]) == (RADIUS_SUBSCRIBERS, 0), figures
        # accounting: a Start per subscriber, then a Start and two Interim-Updates per second session
        assert figures["acct_sent"] == figures["acct_answered"] == 4 * RADIUS_SUBSCRIBERS, figures
        assert figures["acct_sessions_stored"] == 2 * RADIUS_SUBSCRIBERS, figures
    # ...and the database path keeps its share of what FreeRADIUS alone answers
    best, figures = _best(runs, lambda run: run.ratio)
    assert best >= RADIUS_RATIO_BAR, figures


@pytest.mark.integration
@pytest.mark.network_monitoring
@pytest.mark.behavior
def test_polling_and_storing_devices_keeps_its_ratio_to_one_raw_snmp_session(committed):
    from network.bench_polling import bench_polling

    # when POLLING_DEVICES devices served by snmpd are polled and stored through the real poller, and
    # one easysnmp session sends the same GET to one of them as fast as it can
    runs = [bench_polling(devices=POLLING_DEVICES, agents=2) for _ in range(BEST_OF)]

    # then every device answered every time...
    for result in runs:
        figures = result.as_json_dict()
        assert (result.devices, result.reachable) == (POLLING_DEVICES, POLLING_DEVICES), figures
        assert figures["success_rate"] == 1.0
    # ...and polling with storage keeps its ratio to the raw session
    best, figures = _best(runs, lambda run: run.as_json_dict()["ratio"])
    assert best >= POLLING_RATIO_BAR, figures
