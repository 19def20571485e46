"""Properties of the pure billing domain (no database): money, proration, discounts, taxes,
totals, and the invariant that every billable day is billed exactly once at its plan's price."""

import datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing.domain import discounts as disc
from billing.domain import taxes as tax
from billing.domain.invoice import CHARGE, CREDIT, DISCOUNT, apply_taxes, totals
from billing.domain.money import quantize, round_to_currency
from billing.domain.periods import add_month, period_containing
from billing.domain.recurring import (
    BilledCharge,
    LineNumbers,
    PlanTerms,
    SubscriptionFacts,
    draft_recurring,
)

pytestmark = [pytest.mark.billing_core, pytest.mark.revenue_critical, pytest.mark.property]

money = st.decimals(min_value=0, max_value=100_000, places=6, allow_nan=False, allow_infinity=False)
rates = st.decimals(min_value=0, max_value=Decimal("0.5"), places=6, allow_nan=False, allow_infinity=False)
days = st.dates(min_value=datetime.date(2024, 1, 1), max_value=datetime.date(2028, 12, 31))


@given(price=money, period_days=st.integers(28, 31), data=st.data())
def test_split_period_charge_and_credit_add_up_to_the_price(price, period_days, data):
    used = data.draw(st.integers(0, period_days))
    charge = quantize(Fraction(price) * Fraction(used, period_days))
    credit = quantize(Fraction(price) * Fraction(period_days - used, period_days))
    assert abs(charge + credit - price) <= Decimal("0.000001")


@given(value=st.fractions(min_value=-10**6, max_value=10**6, max_denominator=10**9))
def test_fraction_rounding_is_half_up_like_decimal(value):
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    assume(abs(exact) < 10**6)
    from decimal import ROUND_HALF_UP, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        expected = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
            Decimal("0.000001"), rounding=ROUND_HALF_UP
        )
    assert quantize(value) == expected


def test_a_float_reaching_money_is_a_type_error():
    with pytest.raises(TypeError):
        quantize(1.5)
    with pytest.raises(TypeError):
        tax.TaxRate(1, "x", 0.07, "US")


@given(day=days, billing_day=st.integers(1, 28))
def test_the_period_containing_a_day_starts_on_the_billing_day(day, billing_day):
    period = period_containing(day, billing_day)
    assert period.start <= day < period.end
    assert period.start.day == billing_day
    assert period.end == add_month(period.start)
    assert 28 <= period.days <= 31


discount_st = st.builds(
    disc.Discount,
    id=st.integers(1, 50),
    kind=st.sampled_from([disc.PERCENT, disc.FIXED]),
    value=st.decimals(min_value=Decimal("0.01"), max_value=100, places=2),
    priority=st.integers(0, 5),
    stackable=st.booleans(),
)


@given(amount=money, fraction=st.fractions(min_value=0, max_value=1, max_denominator=31),
       discounts=st.lists(discount_st, max_size=4, unique_by=lambda d: d.id))
def test_discounts_never_make_a_line_negative_and_percents_come_first(amount, fraction, discounts):
    reductions = disc.apply(discounts, amount, fraction)
    assert all(r < 0 for _, r in reductions)
    assert amount + sum((r for _, r in reductions), Decimal(0)) >= 0
    kinds = [d.kind for d, _ in reductions]
    assert kinds == sorted(kinds, key=lambda k: 0 if k == disc.PERCENT else 1)
    if any(not d.stackable for d in discounts):
        assert len(reductions) <= 1


rate_st = st.builds(
    tax.TaxRate, id=st.integers(1, 20), name=st.just("t"), rate=rates, country=st.just("DE"),
    categories=st.just(tax.CATEGORIES),
)


@given(gross=st.decimals(min_value=-50_000, max_value=50_000, places=6),
       rate_list=st.lists(rate_st, min_size=1, max_size=4, unique_by=lambda r: r.id))
def test_inclusive_tax_parts_add_up_exactly_and_net_plus_tax_is_gross(gross, rate_list):
    taxed = tax.tax_inclusive(gross, "service", sorted(rate_list, key=lambda r: r.id))
    assert taxed.net + taxed.tax_total == gross
    assert len(taxed.taxes) == len(rate_list)


@given(amounts=st.lists(st.decimals(min_value=-1000, max_value=1000, places=6), min_size=1, max_size=8),
       rate_list=st.lists(rate_st, max_size=3, unique_by=lambda r: r.id),
       inclusive=st.booleans(), currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_an_invoices_parts_add_up_to_its_total(amounts, rate_list, inclusive, currency):
    from billing.domain.invoice import DraftLine

    lines = [DraftLine(ref=i + 1, kind="usage", category="usage", description="x", amount=a, subscription_id=1)
             for i, a in enumerate(amounts)]
    taxed = apply_taxes(lines, {1: sorted(rate_list, key=lambda r: r.id)}, tax_inclusive=inclusive)
    result = totals(taxed, currency=currency)
    assert result.total == result.subtotal + result.tax_total
    assert result.tax_total == sum((a for line in lines for _, a in line.taxes), Decimal(0))
    assert result.amount_due == round_to_currency(result.total, currency)
    assert result.rounding_adjustment == result.amount_due - result.total
    if inclusive:
        assert result.total == sum(amounts, Decimal(0))


# --- the invariant over random histories --------------------------------------------------------
PLANS = [PlanTerms(1, "A", Decimal("30.000000")), PlanTerms(2, "B", Decimal("45.500000")),
         PlanTerms(3, "C", Decimal("99.990000"))]


@st.composite
def histories(draw):
    billing_day = draw(st.integers(1, 28))
    activated = draw(st.dates(min_value=datetime.date(2026, 1, 1), max_value=datetime.date(2026, 3, 31)))
    change_days = sorted(draw(st.lists(st.integers(1, 200), max_size=3, unique=True)))
    plans = [(activated, draw(st.sampled_from(PLANS)))]
    for offset in change_days:
        plans.append((activated + datetime.timedelta(days=offset), draw(st.sampled_from(PLANS))))
    terminated = draw(st.one_of(st.none(), st.integers(1, 240).map(lambda n: activated + datetime.timedelta(n))))
    runs = draw(st.integers(3, 9))
    # which changes are known at which run: each change is recorded some runs after it takes effect
    known_after = [draw(st.integers(0, runs)) for _ in plans]
    return billing_day, activated, plans, terminated, runs, known_after


@given(histories())
def test_every_billable_day_is_billed_exactly_once_at_its_plans_price(history):
    billing_day, activated, plans, terminated, runs, known_after = history
    first = period_containing(activated, billing_day)
    stored: list[BilledCharge] = []
    credits: dict[int, list] = {}
    all_lines = []
    next_id = 1
    period = first
    for run in range(runs):
        known = tuple(p for p, after in zip(plans, known_after, strict=True) if after <= run) or (plans[0],)
        known = tuple(sorted(known, key=lambda p: p[0]))
        if known[0][0] != activated:
            known = ((activated, plans[0][1]), *known[1:])
        term = terminated if (terminated is not None and run >= runs // 2) else None
        facts = SubscriptionFacts(1, billing_day, activated, term, known)
        billed = [BilledCharge(c.line_id, c.period, c.start, c.end, c.plan_id, c.net_amount, c.billable_days,
                               tuple(credits.get(c.line_id, []))) for c in stored]
        lines = draft_recurring(facts, run_period=period, billed=billed, discounts=[], numbers=LineNumbers())
        for line in lines:
            if line.kind == CHARGE:
                stored.append(BilledCharge(next_id, period_of(line), line.service_start, line.service_end,
                                           line.plan_id, line.amount, line.billable_days))
                next_id += 1
            elif line.kind == CREDIT:
                credits.setdefault(line.credits_line_id, []).append((line.service_start, line.service_end))
        all_lines.extend(lines)
        period = period.next()
    # the final truth, with everything known: every day of every settled period at its plan
    final = SubscriptionFacts(1, billing_day, activated, terminated, tuple(sorted(plans, key=lambda p: p[0])))
    lines = draft_recurring(final, run_period=period.previous(),
                            billed=[BilledCharge(c.line_id, c.period, c.start, c.end, c.plan_id, c.net_amount,
                                                 c.billable_days, tuple(credits.get(c.line_id, []))) for c in stored],
                            discounts=[], numbers=LineNumbers())
    all_lines.extend(lines)
    expected = Fraction(0)
    p = first
    from billing.domain.recurring import billable_segments

    while p.start <= period.previous().start:
        for a, b, terms in billable_segments(final, p):
            expected += Fraction(terms.price) * Fraction((b - a).days, p.days)
        p = p.next()
    billed_total = sum((line.amount for line in all_lines if line.kind in (CHARGE, CREDIT, DISCOUNT)), Decimal(0))
    assert abs(Fraction(billed_total) - expected) <= Fraction(len(all_lines) + 1, 10**6)


def period_of(line):
    from billing.domain.periods import Period

    return Period(line.period_start, line.period_end)
