"""Demo billing for the `acme` tenant (after customers.demo): taxes for its customers'
jurisdiction, two discounts, data usage above the cap, two billed periods and a couple of
payments - so the admin shows a month of invoices with proration, discounts, taxes and overage.

Idempotent: tax rates and discounts are matched by name, assignments by target, usage rows by
(subscription, day); a period that already has a billing run is not billed again, and a payment
is matched by its reference. Everything goes through the services (validated and audited)."""

from __future__ import annotations

import datetime
from decimal import Decimal

from compliance.audit import Actor
from customers.models import Customer, Plan, Subscription

from . import catalog
from .domain.periods import sub_month
from .dunning import tenant_today
from .models import BillingRun, Discount, DiscountAssignment, Invoice, Payment, TaxRate, UsageRecord
from .payments import payment_record
from .services import billing_run_execute

ACTOR = Actor.system("manage.py demo_seed")
GB = 10**9
DEMO_TAXES = [
    {"name": "Illinois state tax", "rate": Decimal("0.062500"), "country": "US", "region": "US-IL", "locality": ""},
    {"name": "Springfield local tax", "rate": Decimal("0.017500"), "country": "US", "region": "US-IL",
     "locality": "17167"},
]  # fmt: skip
WELCOME = {"name": "Welcome 50% x 3 months", "kind": "percent", "value": Decimal("50"), "periods": 3}
LOYALTY = {"name": "Loyalty credit", "kind": "fixed", "value": Decimal("5.00"), "priority": 200}
WELCOME_PLAN = "fiber-100"
CAPPED_PLAN = "dsl-capped"
# Daily gigabytes for the capped plan's subscribers, in turn: 16 GB/day is ~500 GB a month (over the
# 300 GB cap), 12 GB/day ~370 GB (over), 6 GB/day ~190 GB (under).
DAILY_GB = (16, 12, 6)


def _tax_rates() -> int:
    created = 0
    for spec in DEMO_TAXES:
        if not TaxRate.objects.filter(name=spec["name"], country=spec["country"]).exists():
            catalog.tax_rate_create(actor=ACTOR, categories=["service", "usage", "equipment", "fee"], **spec)
            created += 1
    return created


def _discount(spec: dict) -> Discount:
    return Discount.objects.filter(name=spec["name"]).first() or catalog.discount_create(actor=ACTOR, **spec)


def _assign(discount: Discount, **target) -> None:
    if not DiscountAssignment.objects.filter(discount=discount, **target).exists():
        catalog.discount_assign(discount=discount, actor=ACTOR, **target)


def _usage(period_start: datetime.date, period_end: datetime.date) -> int:
    """Daily usage for the capped plan's live subscribers over [period_start, period_end)."""
    subscriptions = Subscription.objects.filter(
        plan__code=CAPPED_PLAN, activated_on__isnull=False, status__in=("active", "suspended")
    ).order_by("id")
    rows = []
    for index, subscription in enumerate(subscriptions):
        daily = DAILY_GB[index % len(DAILY_GB)] * GB
        day = max(period_start, subscription.activated_on)
        while day < period_end:
            rows.append(
                UsageRecord(subscription=subscription, day=day, bytes_in=daily * 9 // 10, bytes_out=daily // 10)
            )
            day += datetime.timedelta(days=1)
    before = UsageRecord.objects.count()
    UsageRecord.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return UsageRecord.objects.count() - before


def _bill(period: datetime.date, today: datetime.date) -> int:
    label = f"{period:%Y-%m}"
    if BillingRun.objects.filter(period_label=label).exists():
        return 0
    run = billing_run_execute(period=label, issue_date=min(period, today), actor=ACTOR)
    return run.invoices_issued


def _payments(previous: datetime.date) -> int:
    """Two customers pay their first demo invoice: one exactly, one with a little extra."""
    made = 0
    invoices = Invoice.objects.filter(period_start=previous).order_by("id")[:2]
    for extra, invoice in zip((Decimal("0"), Decimal("10.00")), invoices, strict=False):
        reference = f"demo transfer {invoice.number}"
        if invoice.allocations.exists():  # paid by an earlier seed (references are encrypted)
            continue
        payment_record(
            customer=invoice.customer,
            amount=invoice.amount_due + extra,
            received_on=invoice.issue_date + datetime.timedelta(days=9),
            method=Payment.Method.MANUAL,
            reference=reference,
            actor=ACTOR,
        )
        made += 1
    return made


def seed_demo_billing() -> dict[str, int]:
    """Seed billing in the current tenant (run after customers.demo.seed_demo_customers)."""
    today = tenant_today()
    current = today.replace(day=1)
    previous = sub_month(current)
    taxes = _tax_rates()
    welcome, loyalty = _discount(WELCOME), _discount(LOYALTY)
    plan = Plan.objects.filter(code=WELCOME_PLAN).first()
    if plan is not None:
        _assign(welcome, plan=plan)
    loyal = Customer.objects.filter(subscriptions__activated_on__isnull=False).order_by("account_number").first()
    if loyal is not None:
        _assign(loyalty, customer=loyal)
    issued = _bill(previous, today)  # the previous month, in advance (and any partial month before)
    usage = _usage(previous, current)  # then what the capped plan used in it, billed in arrears next
    issued += _bill(current, today)
    payments = _payments(previous)
    return {"tax_rates": taxes, "usage_rows": usage, "invoices_issued": issued, "payments": payments}
