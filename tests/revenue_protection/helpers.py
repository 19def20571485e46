"""Shared helpers of the revenue-protection tests: facts made through the real services (plans,
customers, addresses, subscriptions via customers.services; tax rates, discounts and usage via the
billing models), runs through billing_run_execute, and an independent recomputation of stored
invoices from their stored lines and taxes.

Nothing here computes an expected amount the way the engine does: expected figures are written
out in the tests; `check_invoice_arithmetic` only re-adds what was stored.
"""

from __future__ import annotations

import datetime
import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from billing.models import (
    Discount,
    DiscountAssignment,
    Invoice,
    InvoiceLine,
    InvoiceTax,
    TaxRate,
    UsageRecord,
)
from billing.services import billing_run_execute
from compliance.audit import Actor
from customers.models import Customer, Plan, ServiceAddress, Subscription
from customers.services import (
    customer_create,
    plan_create,
    service_address_create,
    subscription_activate,
    subscription_change_plan,
    subscription_create,
    subscription_reactivate,
    subscription_suspend,
    subscription_terminate,
)

ACTOR = Actor.system("revenue protection tests")
REPO_ROOT = Path(__file__).resolve().parents[2]
SIX = Decimal("0.000001")
_seq = itertools.count(1)

# A service address per tenant profile country (region, locality as the tax rates name them).
ADDRESSES = {
    "US": {"country": "US", "region": "US-NY", "locality": "NYC"},
    "DE": {"country": "DE", "region": "DE-NW", "locality": "KOELN"},
    "JP": {"country": "JP", "region": "JP-13", "locality": "CHIYODA"},
}


def D(value) -> Decimal:  # noqa: N802 - reads like a literal in the expected figures
    return Decimal(str(value))


def q6(value) -> Decimal:
    """The tests' own rounding: exact value (a Fraction), half-up (away from zero) to 6 places,
    by integer arithmetic - independent of billing.domain.money."""
    exact = Fraction(value)
    whole, remainder = divmod(abs(exact.numerator) * 10**6, exact.denominator)
    if 2 * remainder >= exact.denominator:
        whole += 1
    return Decimal((0 if exact >= 0 else 1, tuple(int(c) for c in str(whole)), -6))


# --- facts through the services ---------------------------------------------------------------
def plan(
    price,
    *,
    setup_fee="0",
    included_gb: int | None = None,
    overage="0",
    name: str | None = None,
) -> Plan:
    n = next(_seq)
    return plan_create(
        actor=ACTOR,
        code=f"rp-plan-{os.getpid()}-{n}",
        name=name or f"Plan {n}",
        download_kbps=300_000,
        upload_kbps=100_000,
        monthly_price=D(price),
        setup_fee=D(setup_fee),
        included_bytes=None if included_gb is None else included_gb * 10**9,
        overage_rate_per_gb=D(overage),
    )


def customer(
    country: str = "US",
    *,
    region: str | None = None,
    locality: str | None = None,
    billing_day: int | None = None,
    tax_exempt_certificate: str = "",
    tax_exempt_until: datetime.date | None = None,
) -> tuple[Customer, ServiceAddress]:
    n = next(_seq)
    who = customer_create(
        actor=ACTOR,
        name=f"Revenue Customer {n}",
        email=f"revenue-{os.getpid()}-{n}-{time.monotonic_ns()}@example.net",
        billing_day=billing_day,
        tax_exempt_certificate=tax_exempt_certificate,
        tax_exempt_until=tax_exempt_until,
    )
    where = dict(ADDRESSES[country])
    if region is not None:
        where["region"] = region
    if locality is not None:
        where["locality"] = locality
    address = service_address_create(
        customer=who, street=f"{n} Billing Street", city="Anytown", postal_code="10001", actor=ACTOR, **where
    )
    return who, address


def subscribe(
    who: Customer, address: ServiceAddress, on_plan: Plan, activated_on: datetime.date | None
) -> Subscription:
    sub = subscription_create(customer=who, plan=on_plan, service_address=address, actor=ACTOR)
    if activated_on is not None:
        sub = subscription_activate(subscription=sub, activated_on=activated_on, actor=ACTOR)
    return sub


def customer_on(
    on_plan: Plan, activated_on: datetime.date, country: str = "US", **customer_kwargs
) -> tuple[Customer, Subscription]:
    who, address = customer(country, **customer_kwargs)
    return who, subscribe(who, address, on_plan, activated_on)


def change_plan(sub: Subscription, new_plan: Plan, effective_on: datetime.date) -> Subscription:
    return subscription_change_plan(subscription=sub, new_plan=new_plan, effective_on=effective_on, actor=ACTOR)


def terminate(sub: Subscription, on: datetime.date) -> Subscription:
    return subscription_terminate(subscription=sub, terminated_on=on, actor=ACTOR, reason="moving away")


def suspend(sub: Subscription, on: datetime.date) -> Subscription:
    return subscription_suspend(subscription=sub, effective_on=on, actor=ACTOR, reason="unpaid")


def reactivate(sub: Subscription, on: datetime.date) -> Subscription:
    return subscription_reactivate(subscription=sub, effective_on=on, actor=ACTOR)


def tax_rate(
    rate,
    *,
    country: str,
    region: str = "",
    locality: str = "",
    compound: bool = False,
    categories=("service", "usage", "equipment", "fee"),
    valid_from: datetime.date | None = None,
    valid_until: datetime.date | None = None,
    name: str | None = None,
) -> TaxRate:
    return TaxRate.objects.create(
        name=name or f"Tax {D(rate) * 100}%",
        rate=D(rate),
        country=country,
        region=region,
        locality=locality,
        compound=compound,
        categories=list(categories),
        valid_from=valid_from,
        valid_until=valid_until,
    )


def discount(
    kind: str,
    value,
    *,
    for_customer: Customer | None = None,
    for_plan: Plan | None = None,
    priority: int = 100,
    stackable: bool = True,
    periods: int | None = None,
    valid_from: datetime.date | None = None,
    valid_until: datetime.date | None = None,
) -> Discount:
    made = Discount.objects.create(
        name=f"{kind} {value}",
        kind=kind,
        value=D(value),
        priority=priority,
        stackable=stackable,
        periods=periods,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    DiscountAssignment.objects.create(discount=made, customer=for_customer, plan=for_plan)
    return made


def usage(sub: Subscription, day: datetime.date, bytes_in: int, bytes_out: int = 0) -> UsageRecord:
    return UsageRecord.objects.create(subscription=sub, day=day, bytes_in=bytes_in, bytes_out=bytes_out)


def run(period: str, issue_date: datetime.date, **kwargs):
    return billing_run_execute(period=period, issue_date=issue_date, actor=ACTOR, **kwargs)


def activate(slug: str):
    """Switch the connection to a matrix tenant (the test's transaction is rolled back after)."""
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug=slug)
    connection.set_tenant(tenant)
    return tenant


def set_tenant_terms(tenant, **changes) -> None:
    """Change billing terms of the active tenant (inside the test's transaction)."""
    for field, value in changes.items():
        setattr(tenant, field, value)
    tenant.save(update_fields=list(changes))
    connection.set_tenant(tenant)


# --- reading what was stored ------------------------------------------------------------------
def invoices_of(who: Customer) -> list[Invoice]:
    return list(Invoice.objects.filter(customer=who).order_by("period_start", "id"))


def the_invoice(who: Customer, period_start: datetime.date | None = None) -> Invoice:
    found = Invoice.objects.filter(customer=who)
    if period_start is not None:
        found = found.filter(period_start=period_start)
    rows = list(found)
    assert len(rows) == 1, f"expected one invoice for {who} ({period_start}), found {len(rows)}"
    return rows[0]


def lines(invoice: Invoice, kind: str | None = None) -> list[InvoiceLine]:
    found = InvoiceLine.objects.filter(invoice=invoice).order_by("position")
    return list(found.filter(kind=kind) if kind else found)


def taxes(invoice: Invoice) -> list[InvoiceTax]:
    return list(InvoiceTax.objects.filter(invoice=invoice).select_related("tax_rate").order_by("line_id", "id"))


def taxes_of_line(line: InvoiceLine) -> dict[str, Decimal]:
    return {t.name: t.amount for t in InvoiceTax.objects.filter(line=line).order_by("id")}


@dataclass
class Recomputed:
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    amount_due: Decimal
    rounding_adjustment: Decimal


def _minor(currency: str) -> int:
    return {"JPY": 0, "KWD": 3, "BHD": 3}.get(currency, 2)


def check_invoice_arithmetic(invoice: Invoice) -> Recomputed:
    """Re-add an invoice from its stored lines and taxes, to the last of 6 places, and check every
    stored total; also that it is whole (lines present, discounts point at charges on the same
    invoice, every tax row on a line of the invoice). Returns the recomputation."""
    stored_lines = lines(invoice)
    assert stored_lines, f"{invoice.number} has no lines (half-written)"
    stored_taxes = list(InvoiceTax.objects.filter(invoice=invoice))
    by_id = {line.id: line for line in stored_lines}
    positions = [line.position for line in stored_lines]
    assert positions == list(range(1, len(stored_lines) + 1)), f"{invoice.number}: positions {positions}"
    for tax_row in stored_taxes:
        assert tax_row.line_id in by_id, f"{invoice.number}: tax on a line of another invoice"
    groups: dict[int, list[InvoiceLine]] = {}
    for line in stored_lines:
        if line.kind == "discount":
            assert line.applies_to_id in by_id, line
            assert by_id[line.applies_to_id].kind == "charge", line
            groups.setdefault(line.applies_to_id, []).append(line)
        else:
            groups.setdefault(line.id, []).insert(0, line)
        assert line.amount == line.amount.quantize(SIX), f"{line} has more than 6 places"
    tax_total = sum((t.amount for t in stored_taxes), Decimal(0))
    gross_total = sum((line.amount for line in stored_lines), Decimal(0))
    for head_id, group in groups.items():
        head = by_id[head_id]
        group_taxes = [t for t in stored_taxes if t.line_id == head_id]
        assert head.tax_amount == sum((t.amount for t in group_taxes), Decimal(0)), f"{head}: tax_amount"
        if head.kind == "charge":
            assert head.net_amount == sum((line.amount for line in group), Decimal(0)), f"{head}: net_amount"
        for member in group[1:]:
            assert not InvoiceTax.objects.filter(line=member).exists(), "tax on a discount line"
    subtotal = gross_total - tax_total if invoice.tax_inclusive else gross_total
    total = subtotal + tax_total
    amount_due = total.quantize(Decimal(1).scaleb(-_minor(invoice.currency)), rounding=ROUND_HALF_UP)
    got = Recomputed(subtotal, tax_total, total, amount_due, amount_due - total)
    assert (invoice.subtotal, invoice.tax_total, invoice.total, invoice.amount_due, invoice.rounding_adjustment) == (
        got.subtotal,
        got.tax_total,
        got.total,
        got.amount_due,
        got.rounding_adjustment,
    ), f"{invoice.number}: stored totals differ from the sum of its lines and taxes: {got}"
    return got


def check_numbers_gap_free(year: int, count: int | None = None) -> list[str]:
    numbers = sorted(Invoice.objects.filter(number__startswith=f"INV-{year}-").values_list("number", flat=True))
    expected = [f"INV-{year}-{i:06d}" for i in range(1, len(numbers) + 1)]
    assert numbers == expected, f"invoice numbers are not 1..N gap-free: {numbers[:5]}..{numbers[-5:]}"
    if count is not None:
        assert len(numbers) == count
    return numbers


# --- processes against the test database (committed data) ------------------------------------
def test_database_url() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(db.get("HOST") or "", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


def manage_process(*args: str, log_path: Path) -> subprocess.Popen:
    """`python manage.py <args>` against this session's test database (its own process group)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "isp.settings.test",
        "DATABASE_URL": test_database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    log = log_path.open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def tenant_drop(tenant) -> list[str]:
    """Remove a throwaway tenant completely: schema, database role, tenant and domain rows, its data
    keys in the key store (its public audit events stay: the trail is append-only). Returns the
    problems (none expected)."""
    from psycopg import sql

    from compliance.pii.keystore import get_keystore
    from tenants.isolation import tenant_db_role_drop
    from tenants.models import Domain, Tenant

    problems = []
    connection.set_schema_to_public()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name)))
        tenant_db_role_drop(tenant.schema_name)
    except Exception as exc:  # noqa: BLE001 - cleanup goes on and reports
        problems.append(f"schema: {exc}")
    try:
        Domain.objects.filter(tenant_id=tenant.pk).delete()
        Tenant.objects.filter(pk=tenant.pk).delete()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"rows: {exc}")
    try:
        with get_keystore().connection().cursor() as cursor:
            cursor.execute("DELETE FROM subject_keys WHERE tenant = %s", [tenant.schema_name])
    except Exception as exc:  # noqa: BLE001
        problems.append(f"keys: {exc}")
    return problems
