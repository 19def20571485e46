"""From loaded facts to invoice drafts: plain Python over the pure domain, no queries."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from .domain import taxes as tax
from .domain.invoice import CHARGE, DraftLine, Totals, apply_taxes, totals
from .domain.periods import Period, period_starting_in
from .domain.recurring import (
    LineNumbers,
    SubscriptionFacts,
    UsagePeriod,
    draft_recurring,
    draft_setup_fee,
    draft_usage,
)
from .selectors import BatchFacts, SubscriptionRow, earliest_period, usage_periods


@dataclass(frozen=True)
class TenantTerms:
    currency: str
    tax_inclusive: bool
    billing_day: int
    bill_during_suspension: bool
    payment_terms_days: int


@dataclass
class SubscriptionSettlement:
    """What the invoice settles for one subscription (written with it)."""

    subscription_id: int
    setup_fee_billed: bool
    usage_billed_until: datetime.date
    settled_until: datetime.date


@dataclass
class InvoiceDraft:
    customer_id: int
    period: Period
    lines: list[DraftLine]
    totals: Totals
    settlements: list[SubscriptionSettlement] = field(default_factory=list)


def run_period_for(customer_billing_day: int | None, terms: TenantTerms, year: int, month: int) -> Period:
    return period_starting_in(year, month, customer_billing_day or terms.billing_day)


def suspended_spans(row: SubscriptionRow) -> tuple[tuple[datetime.date, datetime.date], ...]:
    """Days between a suspension and the next change (reactivation or termination)."""
    spans, start = [], None
    for effective_on, _from, to in row.status_changes:
        if to == "suspended":
            start = effective_on
        elif start is not None:
            if start < effective_on:
                spans.append((start, effective_on))
            start = None
    if start is not None:
        spans.append((start, datetime.date.max))
    return tuple(spans)


def subscription_facts(
    row: SubscriptionRow, facts: BatchFacts, billing_day: int, terms: TenantTerms
) -> SubscriptionFacts:
    return SubscriptionFacts(
        subscription_id=row.id,
        billing_day=billing_day,
        activated_on=row.activated_on,
        terminated_on=row.terminated_on,
        plans=tuple((effective_on, facts.plans[plan_id]) for effective_on, plan_id in row.plans),
        excluded=() if terms.bill_during_suspension else suspended_spans(row),
        setup_fee_billed=row.setup_fee_billed,
    )


def draft_invoice(
    customer_id: int, facts: BatchFacts, *, run_period: Period, terms: TenantTerms, rates: list[tax.TaxRate]
) -> InvoiceDraft | None:
    """The invoice of one customer for `run_period`, or None when there is nothing to bill."""
    customer = facts.customers[customer_id]
    billing_day = customer.billing_day or terms.billing_day
    numbers = LineNumbers()
    lines: list[DraftLine] = []
    settlements = []
    rates_of: dict[int | None, tuple[tax.TaxRate, ...]] = {}
    all_rates = tuple(rates)
    exempt = customer.is_exempt_on(run_period.start)
    for row in facts.subscriptions.get(customer_id, []):
        sub_facts = subscription_facts(row, facts, billing_day, terms)
        recurring = draft_recurring(
            sub_facts,
            run_period=run_period,
            billed=facts.billed.get(row.id, []),
            discounts=facts.discounts_by_customer.get(customer_id, []),
            plan_discounts=facts.discounts_by_plan,
            numbers=numbers,
            earliest=earliest_period(row, billing_day),
        )
        charged = any(line.kind == CHARGE for line in recurring)
        fee = draft_setup_fee(sub_facts, numbers, run_period) if charged else []
        usage = []
        for period in usage_periods(row, billing_day, run_period):
            last_day = min(period.end, row.terminated_on or period.end) - datetime.timedelta(days=1)
            usage.extend(
                draft_usage(
                    row.id,
                    UsagePeriod(period, facts.usage.get((row.id, period.start), 0), sub_facts.plan_on(last_day)),
                    numbers,
                )
            )
        lines.extend(recurring + fee + usage)
        rates_of[row.id] = tax.rates_for_cached(
            all_rates, country=row.country, region=row.region, locality=row.locality, on=run_period.start, exempt=exempt
        )
        settlements.append(
            SubscriptionSettlement(
                subscription_id=row.id,
                # once a first charge is invoiced, the setup fee is settled (billed now, or none)
                setup_fee_billed=row.setup_fee_billed or charged,
                # never backwards: a late run for an older period must not re-open billed usage
                usage_billed_until=max(run_period.start, row.usage_billed_until or run_period.start),
                # every period up to the run's is now billed with all that was known when the batch
                # started (later changes are re-examined, see selectors.earliest_period)
                settled_until=run_period.end,
            )
        )
    if not lines:
        return None
    taxed = apply_taxes(lines, rates_of, tax_inclusive=terms.tax_inclusive)
    return InvoiceDraft(
        customer_id=customer_id,
        period=run_period,
        lines=lines,
        totals=totals(taxed, currency=terms.currency),
        settlements=settlements,
    )
