"""Benchmark of a billing run against a plain PostgreSQL COPY of the same rows.

Not a test: it measures. `python manage.py bench_billing` is the thin command around
`bench_billing`.

In one run it
  (a) builds a throwaway tenant (`tenant_create`, slug `bench-bill-<random>`, USD, tax added on
      top) with N customers, streamed in chunks of 1,000 and stored exactly as the services
      store them (data keys made in batches with `KeyStore.create(count=...)`, personal data
      sealed with them, `bulk_create`), with a realistic mix: two tax rates (state + local, the
      local one for ~60 % of the addresses), four plans (one with a setup fee, two with a data
      allowance and an overage rate), an add-on subscription for ~70 % of the customers, 1-3
      discounts for ~85 % of them (percent, fixed, some limited to 3 periods, a few not
      stackable) plus a plan promotion, ~30 % activated in the middle of the measured period
      (prorated, with their setup fee), usage above the allowance for ~40 % of the others, and
      ~5 % that upgraded in the middle of the previous, already billed, period (credit + new
      charge). The established customers are billed for the previous period first (not
      measured), so the measured run is a steady-state month: it reconciles the previous period,
      bills the new one in advance and the previous one's usage in arrears.
  (b) measures the run: `billing_run_execute` (or, with workers > 1, one BillingRun whose
      customers are split over N forked processes running `billing_run_batch` on their share).
  (c) measures the baseline in the same run: the invoice and line rows the run wrote, read back
      as COPY text (precomputed), deleted and written again with plain COPY - only the COPY is
      timed; the taxes are put back afterwards, untimed.
  (d) checks every invoice against an independent recomputation in SQL (subtotal = sum of its
      lines, tax_total = sum of its taxes, total = subtotal + tax_total, amount_due = total
      rounded to cents, every tax row = round(its taxable amount * rate, 6)).
Everything the run creates (schema, tenant and domain rows, public audit events, the tenant's
keys in the key store) is removed at the end, also when the run fails half-way.
"""

from __future__ import annotations

import contextlib
import cProfile
import datetime
import gc
import io
import os
import pstats
import random
import resource
import secrets
import string
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, connections, transaction
from django_tenants.utils import tenant_context
from psycopg import sql

from compliance.audit import Actor
from compliance.pii.bench import bench_tenant_cleanup

from .writer import INVOICE_COLUMNS, LINE_COLUMNS

CHUNK = 1_000
PERIOD = "2026-05"
PREVIOUS = "2026-04"
MAY_1 = datetime.date(2026, 5, 1)
APRIL_1 = datetime.date(2026, 4, 1)
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits

FIRST = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam"]
LAST = ["Nguyen", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Kowalski", "Haddad"]

# The writer's own column lists: the baseline copies exactly the rows the run wrote.
INVOICE_COPY_COLUMNS = INVOICE_COLUMNS
LINE_COPY_COLUMNS = LINE_COLUMNS
TAX_COPY_COLUMNS = ("id", "invoice_id", "line_id", "tax_rate_id", "name", "rate", "amount")


@dataclass
class BillingBenchResult:
    customers: int
    workers: int
    batch_size: int
    build_s: float
    run_s: float
    invoices: int
    lines: int
    taxes: int
    failed: int
    baseline_s: float
    mismatches: int
    peak_rss_mb_self: float
    peak_rss_mb_children: float
    notes: list[str] = field(default_factory=list)
    cleanup_problems: list[str] = field(default_factory=list)

    @property
    def invoices_per_s(self) -> float:
        return self.invoices / self.run_s

    @property
    def baseline_rows_per_s(self) -> float:
        return (self.invoices + self.lines) / self.baseline_s

    @property
    def baseline_invoices_per_s(self) -> float:
        return self.invoices / self.baseline_s

    @property
    def ratio(self) -> float:
        """Our invoices/s over the baseline's invoices/s (1.0 = as fast as a bare COPY)."""
        return self.invoices_per_s / self.baseline_invoices_per_s

    @property
    def lines_per_invoice(self) -> float:
        return self.lines / self.invoices if self.invoices else 0.0

    @property
    def peak_rss_mb(self) -> float:
        return max(self.peak_rss_mb_self, self.peak_rss_mb_children)

    def as_json_dict(self) -> dict:
        return {
            "bench": "billing",
            "customers": self.customers,
            "invoices": self.invoices,
            "invoices_per_s": round(self.invoices_per_s, 1),
            "baseline_rows_per_s": round(self.baseline_rows_per_s, 1),
            "baseline_invoices_per_s": round(self.baseline_invoices_per_s, 1),
            "ratio": round(self.ratio, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "workers": self.workers,
            "lines_per_invoice": round(self.lines_per_invoice, 2),
            "mismatches": self.mismatches,
        }


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> tuple[float, float, float]:
    """(CPU seconds of this process and its waited-for children, busy CPU seconds of the whole
    machine, CPU seconds stolen by the hypervisor) - to tell our work from a busy host."""
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
        tick = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal
        busy = (sum(fields[:3]) + fields[5] + fields[6]) / tick
        steal = fields[7] / tick
    except (OSError, ValueError, IndexError):
        busy = steal = float("nan")
    return ours, busy, steal


# -- (a) the throwaway tenant ---------------------------------------------------------------------
def person(i: int) -> dict:
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    return {
        "name": f"{first} {last}",
        "email": f"{first}.{last}.{i}@example.com".lower(),
        "phone": f"+1202555{i % 10000:04d}",
        "national_id": f"NID-{i:09d}",
        "tax_id": "",
        "date_of_birth": datetime.date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
    }


@dataclass
class _Catalog:
    plans: list  # internet plans: [basic (setup fee), capped 300 GB, capped 1 TB], then the add-on
    addon: object
    discounts: list  # stackable percent/fixed, 3-period percent, non-stackable


def build_catalog(actor: Actor) -> _Catalog:
    from billing.models import Discount, DiscountAssignment, TaxRate
    from customers.services import plan_create

    TaxRate.objects.create(
        name="NY state",
        rate=Decimal("0.040000"),
        country="US",
        region="US-NY",
        categories=["service", "usage", "equipment", "fee"],
    )
    TaxRate.objects.create(
        name="NYC local",
        rate=Decimal("0.045000"),
        country="US",
        region="US-NY",
        locality="NYC",
        categories=["service", "usage", "equipment", "fee"],
    )

    def plan(code, price, **extra):
        return plan_create(
            actor=actor,
            code=code,
            name=code.replace("-", " ").title(),
            download_kbps=300_000,
            upload_kbps=50_000,
            monthly_price=Decimal(price),
            **extra,
        )

    plans = [
        plan("fiber-basic", "39.99", setup_fee=Decimal("49.00")),
        plan("fiber-300", "54.99", included_bytes=300 * 10**9, overage_rate_per_gb=Decimal("0.25")),
        plan("fiber-1000", "79.333333", included_bytes=10**12, overage_rate_per_gb=Decimal("0.10")),
    ]
    addon = plan("voice-addon", "9.95")
    promo = Discount.objects.create(name="1000 launch promo", kind="percent", value=Decimal("5"), priority=50)
    DiscountAssignment.objects.create(discount=promo, plan=plans[2])
    discounts = [
        Discount.objects.create(name="loyalty 10%", kind="percent", value=Decimal("10"), priority=10),
        Discount.objects.create(name="bundle 5.00", kind="fixed", value=Decimal("5.00"), priority=20),
        Discount.objects.create(name="welcome 50% x3", kind="percent", value=Decimal("50"), priority=5, periods=3),
        Discount.objects.create(name="staff 2.50", kind="fixed", value=Decimal("2.50"), priority=30),
        Discount.objects.create(name="employee 30%", kind="percent", value=Decimal("30"), stackable=False),
    ]
    return _Catalog(plans=plans, addon=addon, discounts=discounts)


def build_customers(*, schema: str, count: int, catalog: _Catalog, seed: int, say: Callable[[str], None]) -> None:
    """N customers with addresses, subscriptions, their history, discounts and usage, stored as
    the services store them; streamed in chunks (never the whole tenant in memory)."""
    from billing.models import DiscountAssignment, UsageRecord
    from compliance.pii.fields import Sealed, seal
    from compliance.pii.keystore import get_keystore
    from customers.models import (
        Customer,
        NumberSequence,
        ServiceAddress,
        Subscription,
        SubscriptionPlanChange,
        SubscriptionStatusChange,
    )

    rng = random.Random(seed)
    customer_fields = {name: Customer._meta.get_field(name) for name in person(1)}
    index_fields = {"email": Customer._meta.get_field("email_index"), "phone": Customer._meta.get_field("phone_index")}
    address_fields = {name: ServiceAddress._meta.get_field(name) for name in ("street", "city", "postal_code")}
    store = get_keystore()
    internet = catalog.plans
    for start in range(1, count + 1, CHUNK):
        numbers = range(start, min(start + CHUNK, count + 1))
        key_ids = store.create(tenant=schema, count=len(numbers))
        deks = store.fetch(tenant=schema, key_ids=key_ids)
        customers = []
        for number, key_id in zip(numbers, key_ids, strict=True):
            values = person(number)
            sealed = {
                name: Sealed(seal(f.encode(values[name]), key_id=key_id, dek=deks[key_id], label=f.label))
                for name, f in customer_fields.items()
                if values[name] != ""
            }
            indexes = {f.attname: f.lookup_value(values[source]) for source, f in index_fields.items()}
            customers.append(
                Customer(account_number=number, data_key_id=key_id, status=Customer.Status.ACTIVE, **sealed, **indexes)
            )
        Customer.objects.bulk_create(customers)
        addresses = []
        for c in customers:
            plain = {"street": f"{c.account_number} Fiber Way", "city": "New York", "postal_code": "10001"}
            sealed = {
                name: Sealed(seal(f.encode(plain[name]), key_id=c.data_key_id, dek=deks[c.data_key_id], label=f.label))
                for name, f in address_fields.items()
            }
            locality = "NYC" if rng.random() < 0.6 else "ALBANY"
            addresses.append(
                ServiceAddress(
                    customer=c, data_key_id=c.data_key_id, country="US", region="US-NY", locality=locality, **sealed
                )
            )
        ServiceAddress.objects.bulk_create(addresses)

        subs, history = [], []
        for c, address in zip(customers, addresses, strict=True):
            new = rng.random() < 0.30  # activated in the middle of the measured period
            activated = datetime.date(2026, 5, rng.randint(2, 28)) if new else APRIL_1
            for plan in [rng.choice(internet)] + ([catalog.addon] if rng.random() < 0.70 else []):
                subs.append(
                    Subscription(
                        customer=c, plan=plan, service_address=address, status="active", activated_on=activated
                    )
                )
        Subscription.objects.bulk_create(subs)
        for s in subs:
            history.append(
                SubscriptionStatusChange(
                    subscription=s,
                    from_status="pending",
                    to_status="active",
                    effective_on=s.activated_on,
                    actor_label="bench",
                )
            )
        SubscriptionStatusChange.objects.bulk_create(history)
        SubscriptionPlanChange.objects.bulk_create(
            [
                SubscriptionPlanChange(
                    subscription=s, from_plan=None, to_plan=s.plan, effective_on=s.activated_on, actor_label="bench"
                )
                for s in subs
            ]
        )
        assignments = []
        for c in customers:
            if rng.random() < 0.85:
                for d in rng.sample(catalog.discounts[:4], rng.randint(1, 3)):
                    assignments.append(DiscountAssignment(discount=d, customer=c))
                if rng.random() < 0.05:
                    assignments.append(DiscountAssignment(discount=catalog.discounts[4], customer=c))
        DiscountAssignment.objects.bulk_create(assignments)
        usage = []
        for s in subs:
            if s.activated_on == APRIL_1 and s.plan.included_bytes and rng.random() < 0.55:
                total = int(s.plan.included_bytes * rng.uniform(0.9, 1.4))
                for day, share in ((3, 0.3), (14, 0.3), (27, 0.4)):
                    usage.append(
                        UsageRecord(
                            subscription=s,
                            day=datetime.date(2026, 4, day),
                            bytes_in=int(total * share * 0.85),
                            bytes_out=int(total * share * 0.15),
                        )
                    )
        UsageRecord.objects.bulk_create(usage)
        say(f"  built {numbers[-1]:>7} / {count} customers")
    with transaction.atomic():
        NumberSequence.objects.update_or_create(name="customer", period="", defaults={"last_value": count})
    # The history was recorded when it happened (the services stamp it with the time of the
    # change), not a minute before the first run: bulk_create stamped it with "now".
    with connection.cursor() as cursor:
        for model, stamp in ((SubscriptionStatusChange, "changed_at"), (SubscriptionPlanChange, "recorded_at")):
            cursor.execute(
                sql.SQL("UPDATE {} SET {} = (effective_on + time '09:00') AT TIME ZONE 'UTC'").format(
                    sql.Identifier(model._meta.db_table), sql.Identifier(stamp)
                )
            )


def upgrade_some(*, catalog: _Catalog, share: float, seed: int) -> int:
    """~share of the established internet subscriptions upgrade from 16 April (already billed):
    recorded after that run, as `subscription_change_plan` records it."""
    from customers.models import Subscription, SubscriptionPlanChange

    rng = random.Random(seed + 1)
    upgrade_to = {catalog.plans[0].pk: catalog.plans[1], catalog.plans[1].pk: catalog.plans[2]}
    changed = 0
    ids = Subscription.objects.filter(activated_on=APRIL_1, plan_id__in=list(upgrade_to)).values_list("id", "plan_id")
    picked = [(sid, plan_id) for sid, plan_id in ids.iterator(chunk_size=5000) if rng.random() < share]
    for i in range(0, len(picked), CHUNK):
        chunk = picked[i : i + CHUNK]
        SubscriptionPlanChange.objects.bulk_create(
            [
                SubscriptionPlanChange(
                    subscription_id=sid,
                    from_plan_id=plan_id,
                    to_plan=upgrade_to[plan_id],
                    effective_on=datetime.date(2026, 4, 16),
                    actor_label="bench",
                )
                for sid, plan_id in chunk
            ]
        )
        for target in {p.pk: p for p in upgrade_to.values()}.values():
            Subscription.objects.filter(
                id__in=[sid for sid, plan_id in chunk if upgrade_to[plan_id].pk == target.pk]
            ).update(plan=target)
        changed += len(chunk)
    return changed


def vacuum_tenant(schema: str) -> None:
    """VACUUM (ANALYZE) the tenant's tables, as a database in steady state is: otherwise autovacuum
    catches up with the bulk build during the measured run, and statistics are stale."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])
        tables = [name for (name,) in cursor.fetchall()]
        for table in tables:
            cursor.execute(sql.SQL("VACUUM (ANALYZE) {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))


# -- (b) the run --------------------------------------------------------------------------------
def run_in_process(*, actor: Actor, batch_size: int, profile: str | None) -> int:
    from billing.services import billing_run_execute

    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    run = billing_run_execute(period=PERIOD, issue_date=MAY_1, actor=actor, batch_size=batch_size)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    return run.pk


def run_forked(*, tenant, actor: Actor, batch_size: int, workers: int) -> int:
    """One BillingRun, its customers split over `workers` forked processes (contiguous shares,
    so that the row locks are taken in the same order everywhere)."""
    from billing import selectors
    from billing.services import batches, billing_run_batch, billing_run_create, billing_run_finish
    from compliance.pii.keystore import get_keystore

    run = billing_run_create(period=PERIOD, issue_date=MAY_1, actor=actor)
    ids = selectors.billable_customer_ids()
    size = -(-len(ids) // workers)
    shares = [ids[i : i + size] for i in range(0, len(ids), size)]
    connections.close_all()  # never share a connection across a fork
    get_keystore().close()
    # Keep the children from copying the parent's pages: the cyclic GC would otherwise walk (and so
    # write to) every object they inherited.
    gc.collect()
    gc.freeze()
    children = []
    for share in shares:
        pid = os.fork()
        if pid == 0:  # the child: bill its share, then leave without running the parent's cleanup
            code = 0
            try:
                connection.set_tenant(tenant)
                for batch in batches(share, batch_size):
                    billing_run_batch(run=run, customer_ids=batch, actor=actor)
            except BaseException:  # noqa: BLE001 - reported by the exit status
                traceback.print_exc()
                code = 1
            finally:
                connections.close_all()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    failures = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
    gc.unfreeze()
    connection.set_tenant(tenant)
    if failures:
        raise RuntimeError(f"{len(failures)} billing worker(s) failed")
    billing_run_finish(run=run, actor=actor)
    return run.pk


# -- (c) the baseline ---------------------------------------------------------------------------
def _copy_out(cursor, table: str, columns: tuple[str, ...], where: sql.Composable, params, spool):
    """The rows as COPY text, spooled to a temporary file (never the whole run in memory)."""
    query = sql.SQL("COPY (SELECT {} FROM {} WHERE {} ORDER BY id) TO STDOUT").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table), where
    )
    with cursor.copy(query, params) as copy:
        for data in copy:
            spool.write(data)
    spool.seek(0)
    return spool


def _copy_in(cursor, table: str, columns: tuple[str, ...], spool) -> int:
    """COPY the spooled text back in, 1 MiB at a time; returns the number of rows."""
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    rows = 0
    with cursor.copy(query) as copy:
        while chunk := spool.read(1 << 20):
            rows += chunk.count(b"\n")
            copy.write(chunk)
    return rows


def baseline_copy(run_id: int) -> tuple[float, float, int, int, int]:
    """Rewrite the run's invoices and lines with plain COPY. Returns (seconds of the COPY, seconds
    of the deferred foreign-key checks of those rows - not part of the baseline -, invoices, lines,
    taxes)."""
    by_run = sql.SQL("billing_run_id = %s")
    of_run = sql.SQL("invoice_id IN (SELECT id FROM billing_invoice WHERE billing_run_id = %s)")
    with contextlib.ExitStack() as files, transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor
        invoices, lines, taxes = (files.enter_context(tempfile.TemporaryFile()) for _ in range(3))
        _copy_out(cursor, "billing_invoice", INVOICE_COPY_COLUMNS, by_run, [run_id], invoices)
        _copy_out(cursor, "billing_invoiceline", LINE_COPY_COLUMNS, of_run, [run_id], lines)
        _copy_out(cursor, "billing_invoicetax", TAX_COPY_COLUMNS, of_run, [run_id], taxes)
        cursor.execute(sql.SQL("DELETE FROM billing_invoicetax WHERE {}").format(of_run), [run_id])
        cursor.execute(sql.SQL("DELETE FROM billing_invoiceline WHERE {}").format(of_run), [run_id])
        cursor.execute(sql.SQL("DELETE FROM billing_invoice WHERE {}").format(by_run), [run_id])
        for spool in (invoices, lines):  # read once untimed: the data is "precomputed", in the page cache
            while spool.read(1 << 20):
                pass
            spool.seek(0)
        started = time.perf_counter()
        invoice_rows = _copy_in(cursor, "billing_invoice", INVOICE_COPY_COLUMNS, invoices)
        line_rows = _copy_in(cursor, "billing_invoiceline", LINE_COPY_COLUMNS, lines)
        elapsed = time.perf_counter() - started
        # not timed: the deferred foreign-key checks of those rows (they run at commit)
        started = time.perf_counter()
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        checks = time.perf_counter() - started
        tax_rows = _copy_in(cursor, "billing_invoicetax", TAX_COPY_COLUMNS, taxes)
    return elapsed, checks, invoice_rows, line_rows, tax_rows


# -- (d) the independent check ------------------------------------------------------------------
MISMATCHED_INVOICES = """
SELECT count(*) FROM billing_invoice i
LEFT JOIN (SELECT invoice_id, sum(amount) AS s, count(*) AS n FROM billing_invoiceline GROUP BY invoice_id) l
       ON l.invoice_id = i.id
LEFT JOIN (SELECT invoice_id, sum(amount) AS t FROM billing_invoicetax GROUP BY invoice_id) t ON t.invoice_id = i.id
WHERE i.billing_run_id = %s AND (
      l.n IS NULL OR l.s <> i.subtotal OR COALESCE(t.t, 0) <> i.tax_total OR i.total <> i.subtotal + i.tax_total
   OR i.amount_due <> round(i.total, 2) OR i.rounding_adjustment <> i.amount_due - i.total)
"""
MISMATCHED_TAXES = """
WITH taxable AS (
    SELECT COALESCE(applies_to_id, id) AS head, sum(amount) AS amount FROM billing_invoiceline
    WHERE invoice_id IN (SELECT id FROM billing_invoice WHERE billing_run_id = %s) GROUP BY 1)
SELECT count(*) FROM billing_invoicetax x JOIN taxable ON taxable.head = x.line_id
WHERE x.amount <> round(taxable.amount * x.rate, 6)
"""


def count_mismatches(run_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(MISMATCHED_INVOICES, [run_id])
        invoices = cursor.fetchone()[0]
        cursor.execute(MISMATCHED_TAXES, [run_id])
        return invoices + cursor.fetchone()[0]


# -- the bench ----------------------------------------------------------------------------------
def bench_billing(
    *,
    customers: int = 10_000,
    workers: int = 1,
    batch_size: int = 500,
    seed: int = 2026,
    profile: str | None = None,
    log: Callable[[str], None] | None = None,
) -> BillingBenchResult:
    """Build, bill, baseline, check, remove. Run outside any transaction."""
    from billing.models import BillingRun, Invoice
    from tenants.models import schema_name_for_slug
    from tenants.services import tenant_create

    if customers < 1:
        raise ValueError("customers must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if profile and workers > 1:
        raise ValueError("profile the in-process run (workers=1)")
    say = log or (lambda _line: None)
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(6))
    slug = f"bench-bill-{token}"
    schema = schema_name_for_slug(slug)
    actor = Actor.system(f"bench_billing run {token}")
    notes: list[str] = []
    result: BillingBenchResult | None = None
    connection.set_schema_to_public()
    try:
        say(f"(a) tenant {slug}: {customers} customers")
        started = time.perf_counter()
        tenant = tenant_create(
            slug=slug,
            name=f"Bench billing {token}",
            currency="USD",
            country="US",
            admin_email=f"owner@{slug}.example",
            actor=actor,
        ).tenant
        with tenant_context(tenant):
            catalog = build_catalog(actor)
            build_customers(schema=schema, count=customers, catalog=catalog, seed=seed, say=say)
            say(f"  billing {PREVIOUS} for the established customers (not measured)")
            from billing.services import billing_run_execute

            billing_run_execute(period=PREVIOUS, issue_date=APRIL_1, actor=actor, batch_size=batch_size)
            upgraded = upgrade_some(catalog=catalog, share=0.05, seed=seed)
            vacuum_tenant(schema)
            build_s = time.perf_counter() - started
            say(f"  built in {build_s:.1f} s ({upgraded} upgrades in the billed period)")

            say(f"(b) billing run {PERIOD}: {workers} worker(s), batches of {batch_size}")
            cpu_before = _cpu_s()
            started = time.perf_counter()
            if workers == 1:
                run_id = run_in_process(actor=actor, batch_size=batch_size, profile=profile)
            else:
                run_id = run_forked(tenant=tenant, actor=actor, batch_size=batch_size, workers=workers)
            run_s = time.perf_counter() - started
            cpu_after = _cpu_s()
            run = BillingRun.objects.get(pk=run_id)
            invoices = Invoice.objects.filter(billing_run_id=run_id).count()
            if invoices != run.invoices_issued:
                notes.append(f"the run reports {run.invoices_issued} invoices, {invoices} are stored")
            if run.customers_failed:
                notes.append(f"{run.customers_failed} customer(s) failed: {run.report.get('failed', [])[:3]}")
            say(f"  {invoices} invoices in {run_s:.2f} s = {invoices / run_s:,.0f} invoices/s")
            python_cpu, machine_cpu, stolen = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
            say(
                f"  CPU: {python_cpu:.2f} s in the billing process(es), {machine_cpu:.2f} s on the whole machine "
                f"({os.cpu_count()} cores; the rest is mostly PostgreSQL); {stolen:.2f} s stolen by the hypervisor"
            )

            say("(c) baseline: the same invoice and line rows, deleted and written again with COPY")
            baseline_s, checks_s, copied_invoices, lines, taxes = baseline_copy(run_id)
            if copied_invoices != invoices:
                notes.append(f"baseline copied {copied_invoices} invoices, the run wrote {invoices}")
            say(
                f"  {invoices + lines} rows ({invoices} invoices, {lines} lines) in {baseline_s:.3f} s = "
                f"{(invoices + lines) / baseline_s:,.0f} rows/s = {invoices / baseline_s:,.0f} invoices/s "
                f"(their deferred foreign-key checks, not counted: {checks_s:.3f} s)"
            )
            say("(d) independent recomputation of every invoice")
            mismatches = count_mismatches(run_id)
            say(f"  {mismatches} mismatch(es)")
        result = BillingBenchResult(
            customers=customers,
            workers=workers,
            batch_size=batch_size,
            build_s=build_s,
            run_s=run_s,
            invoices=invoices,
            lines=lines,
            taxes=taxes,
            failed=run.customers_failed,
            baseline_s=baseline_s,
            mismatches=mismatches,
            peak_rss_mb_self=_rss_mb(resource.RUSAGE_SELF),
            peak_rss_mb_children=_rss_mb(resource.RUSAGE_CHILDREN),
            notes=notes,
        )
    finally:
        problems = bench_tenant_cleanup(schema=schema, slug=slug, actor=actor, say=say)
    assert result is not None  # an exception above would have propagated
    result.cleanup_problems = problems
    return result




def profile_summary(path: str, top: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(path, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()
