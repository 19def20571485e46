"""Billing runs on a real Celery worker (subprocess) against the real Redis and this session's
test database: the API starts a run, the worker creates the batches, bills them in the schema
the run was started from, and finishes the run.

The worker is another process and cannot see a test transaction, so these tests commit their
data in the us-isp matrix tenant - on a connection of their own (a thread), beside the usual
rolled-back test transaction, as tests/customers/test_pii_dump.py does - and remove everything
they created in `finally`: rows, audit events, number sequences, tokens and the customers' keys
in the key store. The worker (as tests/test_celery_worker.py starts it) listens on a queue of
its own, and the billing tasks follow the queue they came from (`ISP_BILLING_QUEUE`)."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.revenue_critical, pytest.mark.behavior]

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
TIMEOUT_S = 90
PERIOD = "2026-03"
ACTIVATED = datetime.date(2026, 3, 1)


def _test_database_url() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(db.get("HOST") or "", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


def _log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


class Worker:
    def __init__(self, process: subprocess.Popen, queue: str, log_path: Path):
        self.process, self.queue, self.log_path = process, queue, log_path

    def wait_until(self, done, what: str, timeout: float = TIMEOUT_S):
        """Poll `done()` until it returns something truthy; fail fast (with the log) if the worker dies."""
        deadline = time.monotonic() + timeout
        while True:
            result = done()
            if result:
                return result
            if self.process.poll() is not None:
                pytest.fail(f"celery worker exited with {self.process.returncode} before {what}; log:\n"
                            f"{_log_tail(self.log_path)}")  # fmt: skip
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not after {timeout}s on {self.queue}; log {self.log_path}:\n"
                            f"{_log_tail(self.log_path)}")  # fmt: skip
            time.sleep(0.2)


@pytest.fixture(scope="module")
def billing_worker(django_db_setup):
    """A `celery -A isp worker` (2 processes, so batches really spread) on a queue of its own."""
    import redis
    from django.conf import settings

    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means the same: no Redis
        pytest.fail(f"Redis is not reachable ({type(exc).__name__}); start it with `make setup`.", pytrace=False)
    queue = f"test-billing-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"celery-worker-{queue}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "isp.settings.test",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable, "-m", "celery", "-A", "isp", "worker", "--pool=prefork", "--concurrency=2", "-Q", queue,
        "-n", f"{queue}@%h", "--without-heartbeat", "--without-mingle", "--without-gossip", "--loglevel=INFO",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            yield Worker(process, queue, log_path)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=20)


class Committed:
    """Subscribers committed in a matrix tenant, and everything to remove afterwards.

    Writes run in a thread of their own, i.e. on a database connection of their own in
    autocommit (as the worker needs them), while the test's connection stays in its rolled-back
    transaction; it still sees the committed rows (READ COMMITTED)."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.customers, self.plans = [], []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="billing-worker-commit")
        self.sequences = self.run(self._sequences)
        self.counts_before = self.run(self._counts)

    def run(self, job):
        """`job()` on the committing connection, in the tenant's schema."""

        def in_tenant():
            from django_tenants.utils import tenant_context

            with tenant_context(self.tenant):
                return job()

        return self._thread.submit(in_tenant).result()

    @staticmethod
    def _counts() -> dict[str, int]:
        from django.apps import apps

        return {
            model._meta.label: model.objects.count()
            for app in ("billing", "customers", "compliance")
            for model in apps.get_app_config(app).get_models()
            if model._meta.label != "compliance.AuditEvent"  # append-only: the run's events stay
        }

    @staticmethod
    def _sequences():
        from customers.models import NumberSequence

        return {(row.name, row.period): row.last_value for row in NumberSequence.objects.all()}

    def subscribers(self, count: int, price: Decimal) -> list:
        return self.run(lambda: self._subscribers(count, price))

    def _subscribers(self, count: int, price: Decimal) -> list:
        from compliance.audit import Actor
        from customers import services

        actor = Actor.system("test_run_tasks")
        plan = services.plan_create(
            actor=actor, code=f"worker-{uuid.uuid4().hex[:8]}", name="Fiber (worker test)",
            download_kbps=100_000, upload_kbps=20_000, monthly_price=price,
        )  # fmt: skip
        self.plans.append(plan)
        for i in range(count):
            customer = services.customer_create(
                actor=actor, name=f"Worker Subscriber {i}", email=f"worker-{uuid.uuid4().hex[:10]}@example.net"
            )
            self.customers.append(customer)
            address = services.service_address_create(
                customer=customer, street=f"{i + 1} Queue Lane", city="Springfield", postal_code="62701",
                country="US", region="US-IL", actor=actor,
            )  # fmt: skip
            subscription = services.subscription_create(
                customer=customer, plan=plan, service_address=address, actor=actor
            )
            services.subscription_activate(subscription=subscription, activated_on=ACTIVATED, actor=actor)
        return list(self.customers[-count:])

    def start_run_through_the_api(self, body: dict):
        return self.run(lambda: self._start_run(body))

    def _start_run(self, body: dict):
        from rest_framework.test import APIClient

        from tests.conftest import MATRIX_OWNER_PASSWORD

        client = APIClient(HTTP_HOST=self.tenant.primary_host)
        login = client.post(
            "/api/v1/auth/token/", {"username": f"owner@{self.tenant.slug}.example", "password": MATRIX_OWNER_PASSWORD}
        )
        assert login.status_code == 200, login.content
        client.credentials(HTTP_AUTHORIZATION=f"Token {login.json()['token']}")
        return client.post("/api/v1/billing-runs/", body, format="json")

    def remove_all(self) -> None:
        try:
            self.run(self._remove_rows)
            assert self.run(self._counts) == self.counts_before, "the worker test left rows behind"
        finally:
            from compliance.pii.keystore import keystore_conninfo

            with psycopg.connect(keystore_conninfo(), autocommit=True) as conn:
                conn.execute(
                    "DELETE FROM subject_keys WHERE key_id = ANY(%s)", [[c.data_key_id for c in self.customers]]
                )
            self._thread.submit(self._close_connections).result()
            self._thread.shutdown()

    def _remove_rows(self) -> None:
        from rest_framework.authtoken.models import Token

        from billing.models import BillingRun, CustomerBalance, Invoice, InvoiceLine, InvoiceTax
        from customers.models import Customer, NumberSequence, Plan, ServiceAddress, Subscription

        ids = [c.pk for c in self.customers]
        invoices = Invoice.objects.filter(customer_id__in=ids)
        InvoiceTax.objects.filter(invoice__in=invoices).delete()
        InvoiceLine.objects.filter(invoice__in=invoices).update(applies_to=None, credits_line=None)
        InvoiceLine.objects.filter(invoice__in=invoices).delete()
        invoices.delete()
        BillingRun.objects.filter(period_label=PERIOD).delete()
        CustomerBalance.objects.filter(customer_id__in=ids).delete()
        Subscription.objects.filter(customer_id__in=ids).delete()
        ServiceAddress.objects.filter(customer_id__in=ids).delete()
        Customer.objects.filter(pk__in=ids).delete()
        Plan.objects.filter(pk__in=[p.pk for p in self.plans]).delete()
        Token.objects.filter(user__username=f"owner@{self.tenant.slug}.example").delete()
        for row in NumberSequence.objects.all():
            before = self.sequences.get((row.name, row.period))
            if before is None:
                row.delete()
            elif before != row.last_value:
                NumberSequence.objects.filter(pk=row.pk).update(last_value=before)

    @staticmethod
    def _close_connections() -> None:
        from django.db import connection

        from compliance.pii.keystore import get_keystore

        get_keystore().close()
        connection.close()


@pytest.fixture
def committed(db, settings):
    """Subscribers really committed in us-isp (the worker sees them); removed afterwards.

    Requesting `db` is what makes pytest-django create the test database: a session whose tests
    use none would leave DATABASES on the development database."""
    from tenants.models import Tenant

    config = settings.DATABASES["default"]
    assert config["NAME"] == config["TEST"]["NAME"], f"not the test database: {config['NAME']}"
    run = Committed(Tenant.objects.get(slug="us-isp"))
    try:
        yield run
    finally:
        run.remove_all()


def in_tenant(tenant, job):
    from django_tenants.utils import tenant_context

    with tenant_context(tenant):
        return job()


def test_a_run_started_through_the_api_is_billed_by_the_worker_in_the_tenants_schema(
    billing_worker, committed, settings
):
    from billing.models import BillingRun, Invoice
    from tenants.models import Tenant

    settings.ISP_BILLING_QUEUE = billing_worker.queue
    us, eu = committed.tenant, Tenant.objects.get(slug="eu-isp")
    eu_invoices_before = in_tenant(eu, Invoice.objects.count)
    # given: three subscribers committed in us-isp
    customers = committed.subscribers(3, Decimal("45.00"))

    # when: the owner starts a run through the API (the view commits, then queues run_start)
    started = committed.start_run_through_the_api({"period": PERIOD, "issue_date": "2026-03-01"})
    assert started.status_code == 202, started.content
    run_id = started.json()["id"]

    # then: the worker bills every customer, in us-isp, and finishes the run
    run = billing_worker.wait_until(
        lambda: in_tenant(us, lambda: BillingRun.objects.filter(pk=run_id, status="finished").first()),
        "the run finishing",
    )
    issued = in_tenant(us, lambda: list(Invoice.objects.filter(customer__in=customers)))
    assert sorted(inv.customer_id for inv in issued) == sorted(c.pk for c in customers)
    assert (run.customers_considered, run.invoices_issued, run.customers_failed) == (3, 3, 0)
    assert {inv.billing_run_id for inv in issued} == {run_id}
    assert {inv.period_start for inv in issued} == {datetime.date(2026, 3, 1)}
    assert all(inv.subtotal == Decimal("45.00") for inv in issued)
    assert run.total_amount == sum(inv.amount_due for inv in issued)
    assert in_tenant(us, lambda: started_by(run_id)) == f"owner@{us.slug}.example"
    assert in_tenant(eu, Invoice.objects.count) == eu_invoices_before  # nothing written into eu-isp


def started_by(run_id: int) -> str:
    from compliance.models import AuditEvent

    return AuditEvent.objects.get(action="billing_run.started", object_id=str(run_id)).actor_label


def test_a_run_fanned_out_in_batches_over_workers_is_idempotent_when_started_again(billing_worker, committed):
    from billing.models import BillingRun, Invoice
    from billing.run_tasks import run_start

    us = committed.tenant
    # given: five subscribers committed in us-isp
    customers = committed.subscribers(5, Decimal("30.00"))

    def start():
        """run_start sent from the tenant's context, in batches of two customers."""
        sent = in_tenant(
            us,
            lambda: run_start.apply_async(
                kwargs={"period": PERIOD, "issue_date": "2026-03-01", "batch_size": 2}, queue=billing_worker.queue
            ),
        )
        answer = billing_worker.wait_until(lambda: sent.ready() and sent.get(timeout=5), "run_start")
        return answer, billing_worker.wait_until(
            lambda: in_tenant(us, lambda: BillingRun.objects.filter(pk=answer["run"], status="finished").first()),
            f"run {answer['run']} finishing",
        )

    # when: the period is billed, then started again
    first_answer, first = start()
    again_answer, again = start()

    # then: three batches each time; one invoice per customer, from the first run only
    assert (first_answer["batches"], first_answer["customers"]) == (3, 5)
    assert again_answer["batches"] == 3
    assert (first.customers_considered, first.invoices_issued) == (5, 5)
    assert (again.customers_considered, again.invoices_issued, again.invoices_skipped) == (5, 0, 5)
    assert {item["reason"] for item in again.report["skipped"]} == {"already invoiced for this period"}
    invoices = in_tenant(us, lambda: list(Invoice.objects.filter(customer__in=customers)))
    assert len(invoices) == 5
    assert {inv.billing_run_id for inv in invoices} == {first.pk}
    numbers = sorted(inv.number for inv in invoices)
    assert len(set(numbers)) == 5
    assert all(n.startswith("INV-2026-") for n in numbers)
