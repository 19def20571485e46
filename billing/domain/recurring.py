"""Drafting a subscription's lines for a run (billing rules, sections 3-5).

The invariant: every billable day is billed exactly once, at the price of the plan in effect on
that day. For each period from the activation up to the run's period, the days that should be
billed (per plan) are compared with what earlier invoices charged (minus what they credited):
- billed days that are no longer billable at that plan (termination, plan change, excluded
  suspension) get a credit line for exactly those days of the old line;
- billable days not yet billed at their plan get a charge line, discounted like any recurring
  line.
So a plan change at `c` inside a billed period yields a credit for [c, end) of the old line and a
charge `price_new * (end - c) / days_in_period`; a termination at `t` yields a credit for [t, end).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from . import discounts as disc
from .invoice import CHARGE, CREDIT, DISCOUNT, FEE, USAGE, DraftLine
from .money import quantize, scale
from .periods import Period, period_containing

Interval = tuple[datetime.date, datetime.date]  # [start, end)
ONE_DAY = datetime.timedelta(days=1)
BYTES_PER_GB = 10**9


@dataclass(frozen=True)
class PlanTerms:
    plan_id: int
    name: str
    price: Decimal
    setup_fee: Decimal = Decimal(0)
    included_bytes: int | None = None
    overage_rate: Decimal = Decimal(0)


@dataclass(frozen=True)
class SubscriptionFacts:
    subscription_id: int
    billing_day: int
    activated_on: datetime.date
    terminated_on: datetime.date | None
    plans: tuple[tuple[datetime.date, PlanTerms], ...]  # (effective_on, terms), ascending
    excluded: tuple[Interval, ...] = ()  # days not billable (suspension, when not billed)
    setup_fee_billed: bool = False

    def plan_on(self, day: datetime.date) -> PlanTerms:
        current = self.plans[0][1]
        if len(self.plans) == 1:
            return current
        for effective_on, terms in self.plans:
            if effective_on <= day:
                current = terms
            else:
                break
        return current


@dataclass(frozen=True)
class BilledCharge:
    """A recurring charge line of an earlier invoice, as billing sees it now."""

    line_id: int
    period: Period
    start: datetime.date
    end: datetime.date
    plan_id: int
    net_amount: Decimal  # the line's amount after its discounts
    billable_days: int
    credited: tuple[Interval, ...] = ()


@dataclass(frozen=True)
class UsagePeriod:
    period: Period
    bytes_used: int
    terms: PlanTerms  # the plan in effect on the period's last billable day


# --- interval arithmetic on half-open date ranges -------------------------------------------------
def subtract(intervals: list[Interval], removed: list[Interval] | tuple[Interval, ...]) -> list[Interval]:
    out = list(intervals)
    for r_start, r_end in removed:
        next_out = []
        for start, end in out:
            if r_end <= start or r_start >= end:
                next_out.append((start, end))
                continue
            if start < r_start:
                next_out.append((start, r_start))
            if r_end < end:
                next_out.append((r_end, end))
        out = next_out
    return out


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out = []
    for a_start, a_end in a:
        for b_start, b_end in b:
            start, end = max(a_start, b_start), min(a_end, b_end)
            if start < end:
                out.append((start, end))
    return sorted(out)


def days_in(intervals: list[Interval]) -> int:
    return sum((end - start).days for start, end in intervals)


# --- what should be billed ------------------------------------------------------------------------
def billable_segments(facts: SubscriptionFacts, period: Period) -> list[tuple[datetime.date, datetime.date, PlanTerms]]:
    """The billable days of `period`, split where the plan changes."""
    start = max(period.start, facts.activated_on)
    end = period.end if facts.terminated_on is None else min(period.end, facts.terminated_on)
    if start >= end:
        return []
    if len(facts.plans) == 1 and not facts.excluded:  # the usual case: one plan, nothing excluded
        return [(start, end, facts.plans[0][1])]
    segments = []
    cuts = sorted({d for d, _ in facts.plans if start < d < end})
    for lo, hi in subtract([(start, end)], facts.excluded):
        bounds = [lo, *[c for c in cuts if lo < c < hi], hi]
        for a, b in zip(bounds, bounds[1:], strict=False):
            segments.append((a, b, facts.plan_on(a)))
    return segments


def period_index(facts: SubscriptionFacts, period: Period) -> int:
    """1 for the period of activation, 2 for the next... (a partial first period counts as one)."""
    first = period_containing(facts.activated_on, facts.billing_day).start
    return (period.start.year - first.year) * 12 + period.start.month - first.month + 1


def periods_to_settle(facts: SubscriptionFacts, run_period: Period, earliest: Period | None = None) -> list[Period]:
    """Periods from the activation (or `earliest`, when the caller knows older ones are settled)
    through the run's period."""
    first = period_containing(facts.activated_on, facts.billing_day)
    if earliest is not None and earliest.start > first.start:
        first = earliest
    out, current = [], first
    while current.start <= run_period.start:
        out.append(current)
        current = current.next()
    return out


# --- drafting -----------------------------------------------------------------------------------
def _billed_order(charge: BilledCharge) -> tuple[datetime.date, int]:
    return charge.start, charge.line_id


class LineNumbers:
    def __init__(self, start: int = 1):
        self.next = start

    def take(self) -> int:
        value, self.next = self.next, self.next + 1
        return value


def draft_recurring(
    facts: SubscriptionFacts,
    *,
    run_period: Period,
    billed: list[BilledCharge],
    discounts: list[disc.Discount],
    numbers: LineNumbers,
    earliest: Period | None = None,
    plan_discounts: dict[int, list[disc.Discount]] | None = None,
) -> list[DraftLine]:
    """`discounts` apply to every charge line of the subscription (the customer's);
    `plan_discounts[plan_id]` only to the charge lines of that plan."""
    lines: list[DraftLine] = []
    by_period: dict[Period, list[BilledCharge]] = {}
    for charge in billed:
        by_period.setdefault(charge.period, []).append(charge)
    for period in periods_to_settle(facts, run_period, earliest):
        desired = billable_segments(facts, period)
        covered: list[tuple[datetime.date, datetime.date, int]] = []
        for charge in sorted(by_period.get(period, ()), key=_billed_order):
            coverage = subtract([(charge.start, charge.end)], charge.credited)
            same_plan = [(a, b) for a, b, terms in desired if terms.plan_id == charge.plan_id]
            keep = intersect(coverage, same_plan)
            covered.extend((a, b, charge.plan_id) for a, b in keep)
            for start, end in subtract(coverage, keep):
                days = (end - start).days
                amount = -scale(charge.net_amount, days, charge.billable_days)
                lines.append(
                    DraftLine(
                        ref=numbers.take(),
                        kind=CREDIT,
                        category="service",
                        description=f"Credit {start.isoformat()} to {(end - ONE_DAY).isoformat()}",
                        amount=amount,
                        subscription_id=facts.subscription_id,
                        period_start=period.start,
                        period_end=period.end,
                        service_start=start,
                        service_end=end,
                        billable_days=days,
                        fraction=Fraction(days, period.days),
                        plan_id=charge.plan_id,
                        credits_line_id=charge.line_id,
                    )
                )
        for start, end, terms in desired:
            already = [(a, b) for a, b, plan_id in covered if plan_id == terms.plan_id]
            for lo, hi in subtract([(start, end)], already) if already else ((start, end),):
                of_plan = plan_discounts.get(terms.plan_id) if plan_discounts else None
                candidates = discounts + of_plan if of_plan else discounts
                lines.extend(_charge_with_discounts(facts, period, lo, hi, terms, candidates, numbers))
    return lines


def _charge_with_discounts(
    facts: SubscriptionFacts,
    period: Period,
    start: datetime.date,
    end: datetime.date,
    terms: PlanTerms,
    discounts: list[disc.Discount],
    numbers: LineNumbers,
) -> list[DraftLine]:
    days = (end - start).days
    index = period_index(facts, period)
    # one discount counts once, however many ways it was granted (customer and plan)
    unique = {d.id: d for d in discounts}.values() if len(discounts) > 1 else discounts
    eligible = tuple(d for d in unique if d.is_eligible(service_start=start, period_index=index))
    amount, fraction, reductions = _charge_money(terms.price, days, period.days, eligible)
    charge = DraftLine(
        ref=numbers.take(),
        kind=CHARGE,
        category="service",
        description=f"{terms.name} {start.isoformat()} to {(end - ONE_DAY).isoformat()}",
        amount=amount,
        subscription_id=facts.subscription_id,
        period_start=period.start,
        period_end=period.end,
        service_start=start,
        service_end=end,
        unit_price=terms.price,
        fraction=fraction,
        billable_days=days,
        plan_id=terms.plan_id,
    )
    out = [charge]
    for discount, reduction in reductions:
        out.append(
            DraftLine(
                ref=numbers.take(),
                kind=DISCOUNT,
                category="service",
                description=f"Discount {discount.value}{'%' if discount.kind == disc.PERCENT else ''}",
                amount=reduction,
                subscription_id=facts.subscription_id,
                period_start=period.start,
                period_end=period.end,
                service_start=start,
                service_end=end,
                fraction=fraction,
                billable_days=days,
                plan_id=terms.plan_id,
                discount_id=discount.id,
                applies_to=charge.ref,
            )
        )
    return out


@lru_cache(maxsize=16384)
def _charge_money(
    price: Decimal, days: int, period_days: int, eligible: tuple[disc.Discount, ...]
) -> tuple[Decimal, Fraction, tuple[tuple[disc.Discount, Decimal], ...]]:
    """The money of one charge line: amount = price * days / period_days (rounded once) and its
    discounts' reductions. Pure, and the same few combinations recur across thousands of
    customers (same plan, full period, same discounts), so it is memoized; the key holds every
    value the result depends on (discounts are frozen value objects, compared field by field)."""
    fraction = Fraction(days, period_days)
    amount = scale(price, days, period_days)
    return amount, fraction, tuple(disc.apply(list(eligible), amount, fraction))


def draft_setup_fee(facts: SubscriptionFacts, numbers: LineNumbers, run_period: Period) -> list[DraftLine]:
    """The plan's setup fee, once, on the subscription's first invoice."""
    terms = facts.plans[0][1]
    if facts.setup_fee_billed or terms.setup_fee <= 0:
        return []
    return [
        DraftLine(
            ref=numbers.take(),
            kind=FEE,
            category="fee",
            description=f"Setup fee - {terms.name}",
            amount=quantize(terms.setup_fee),
            subscription_id=facts.subscription_id,
            period_start=run_period.start,
            period_end=run_period.end,
            unit_price=terms.setup_fee,
            plan_id=terms.plan_id,
        )
    ]


def draft_usage(subscription_id: int, usage: UsagePeriod, numbers: LineNumbers) -> list[DraftLine]:
    """Data above the plan's allowance for a past period, in arrears:
    quantity = max(0, bytes_used - allowance) / 10**9 GB (exact), times the overage rate."""
    terms = usage.terms
    if terms.included_bytes is None or terms.overage_rate <= 0:
        return []
    quantity = Fraction(max(0, usage.bytes_used - terms.included_bytes), BYTES_PER_GB)
    if quantity == 0:
        return []
    return [
        DraftLine(
            ref=numbers.take(),
            kind=USAGE,
            category="usage",
            description=f"Data above the allowance {usage.period.start.isoformat()} to "
            f"{(usage.period.end - ONE_DAY).isoformat()}",
            amount=scale(terms.overage_rate, quantity),
            subscription_id=subscription_id,
            period_start=usage.period.start,
            period_end=usage.period.end,
            quantity=quantity,
            unit_price=terms.overage_rate,
            plan_id=terms.plan_id,
        )
    ]
