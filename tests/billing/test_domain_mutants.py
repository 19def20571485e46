"""Exact rules of the pure billing domain (billing/domain), figure by figure.

These tests exist because mutation testing (`make mutation`, docs/testing.md) showed that the
property tests in test_domain_properties.py let wrong code through: a rounding that goes down on
an exact half, a discount applied twice, a credit line pointing at the wrong charge, a tax rate
valid one day too long. Each test states a rule of the billing contract (shared/specs/
billing-rules.md; sections in the comments) with literal amounts that can be redone on paper:
half-up, to 6 places unless said otherwise. Dates: April 2026 has 30 days, May 31, June 30.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from billing.domain import discounts as disc
from billing.domain import invoice, money, periods, recurring, taxes
from billing.domain.discounts import FIXED, PERCENT, Discount
from billing.domain.invoice import CHARGE, CREDIT, DISCOUNT, FEE, USAGE, DraftLine, Totals
from billing.domain.money import ensure_money, quantize, round_to_currency, scale, to_fraction
from billing.domain.periods import Period, add_month, period_containing, period_starting_in, periods_between
from billing.domain.recurring import (
    BilledCharge,
    LineNumbers,
    PlanTerms,
    SubscriptionFacts,
    UsagePeriod,
    billable_segments,
    days_in,
    draft_recurring,
    draft_setup_fee,
    draft_usage,
    intersect,
    period_index,
    periods_to_settle,
    subtract,
)
from billing.domain.taxes import CompoundTaxOnInclusiveTenant, TaxedAmount, TaxRate

pytestmark = [pytest.mark.billing_core, pytest.mark.revenue_critical]

D = Decimal
day = datetime.date
APRIL, MAY, JUNE = Period(day(2026, 4, 1), day(2026, 5, 1)), Period(day(2026, 5, 1), day(2026, 6, 1)), Period(
    day(2026, 6, 1), day(2026, 7, 1)
)
FIBER = PlanTerms(1, "Fiber 100", D("30.000000"))
GIGA = PlanTerms(2, "Giga 1000", D("45.500000"))


@pytest.fixture(autouse=True)
def _nothing_memoized():
    """The domain memoizes pure results (lru_cache) across a run; every test here computes its
    figures afresh, so it checks the arithmetic and not an answer remembered from elsewhere."""
    for memoized in (
        periods.period_containing,
        periods._period_from,
        recurring._charge_money,
        invoice._taxed,
        taxes.rates_for_cached,
        money.minor_unit,
    ):
        memoized.cache_clear()


def exactly(amount: Decimal) -> str:
    """Decimal equality ignores the exponent (2 == 2.000000); the stored form does not."""
    return str(amount)


# --- 1. money ---------------------------------------------------------------------------------------
@pytest.mark.behavior
def test_quantize_rounds_an_exact_half_up_away_from_zero_to_six_places():
    assert exactly(quantize(D("0.0000005"))) == "0.000001"
    assert exactly(quantize(D("-0.0000005"))) == "-0.000001"
    assert exactly(quantize(D("0.00000049"))) == "0.000000"
    assert exactly(quantize(Fraction(1, 2_000_000))) == "0.000001"  # the exact half, as a Fraction
    assert exactly(quantize(Fraction(-1, 2_000_000))) == "-0.000001"
    assert exactly(quantize(Fraction(1, 3))) == "0.333333"
    assert exactly(quantize(Fraction(2, 3), 2)) == "0.67"
    assert exactly(quantize(D("2.5"), 0)) == "3"
    assert exactly(quantize(7)) == "7.000000"  # an int is money too


@pytest.mark.behavior
def test_amounts_beyond_28_digits_are_never_rounded_by_the_decimal_context():
    """Only the explicit half-up rounding applies; Python's default context (28 digits) would
    round or refuse these."""
    big = D("123456789012345678901234567.1234565")
    assert exactly(quantize(big)) == "123456789012345678901234567.123457"
    assert exactly(scale(big, 2)) == "246913578024691357802469134.246913"
    assert exactly(scale(D("98765432109876543210987654321"), 1, 3)) == "32921810703292181070329218107.000000"


@pytest.mark.behavior
def test_scale_is_amount_times_num_over_den_rounded_once():
    assert exactly(scale(D("1.2345675"))) == "1.234568"  # num and den default to 1
    assert exactly(scale(D("10"), 3)) == "30.000000"
    assert exactly(scale(D("30.000000"), 21, 30)) == "21.000000"
    assert exactly(scale(D("1"), 1, D("1.5"))) == "0.666667"  # a Decimal denominator with a fraction part
    assert exactly(scale(D("1"), D("0.5"))) == "0.500000"
    assert exactly(scale(D("3.000000"), Fraction(2, 3))) == "2.000000"
    assert exactly(scale(D("1"), 1, -3)) == "-0.333333"  # a negative denominator flips the sign
    assert exactly(scale(D("-1"), 1, -3)) == "0.333333"
    assert exactly(scale(D("-0.0000005"), 1)) == "-0.000001"


@pytest.mark.behavior
def test_scale_by_zero_and_float_money_are_errors():
    with pytest.raises(ZeroDivisionError, match="^scale by a zero denominator$"):
        scale(D("10"), 1, 0)
    for args in ((1.5,), (D("1"), 0.5), (D("1"), 1, 0.5)):
        with pytest.raises(TypeError, match="^money is never float$"):
            scale(*args)
    with pytest.raises(TypeError, match="^money must be Decimal, Fraction or int, not str$"):
        scale("1")


@pytest.mark.behavior
def test_ensure_money_accepts_decimal_fraction_and_int_and_nothing_else():
    for value in (D("1.5"), Fraction(1, 3), 7):
        assert ensure_money(value) is value
    with pytest.raises(TypeError, match="^money is never float$"):
        ensure_money(1.5)
    with pytest.raises(TypeError, match="^money must be Decimal, Fraction or int, not bool$"):
        ensure_money(True)
    with pytest.raises(TypeError, match="^money must be Decimal, Fraction or int, not str$"):
        ensure_money("1.5")


@pytest.mark.behavior
def test_to_fraction_is_exact():
    assert to_fraction(D("0.1")) == Fraction(1, 10)
    assert isinstance(to_fraction(D("0.1")), Fraction)
    assert to_fraction(Fraction(1, 3)) == Fraction(1, 3)
    assert to_fraction(3) == Fraction(3)
    with pytest.raises(TypeError, match="never float"):
        to_fraction(0.1)


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("amount", "currency", "due"),
    [("1.005000", "USD", "1.01"), ("1.004999", "EUR", "1.00"), ("1.500000", "JPY", "2"), ("1.000500", "KWD", "1.001"),
     ("-2.345000", "USD", "-2.35"), ("2", "USD", "2.00")],
)
def test_round_to_currency_uses_the_iso_4217_minor_unit_half_up(amount, currency, due):
    assert exactly(round_to_currency(D(amount), currency)) == due


# --- 2. periods -------------------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.parametrize("billing_day", [0, 29, 31, -1])
def test_a_billing_day_outside_1_to_28_is_refused(billing_day):
    with pytest.raises(ValueError, match=f"^the billing day is 1-28, not {billing_day}$"):
        period_starting_in(2026, 5, billing_day)
    with pytest.raises(ValueError, match=f"^the billing day is 1-28, not {billing_day}$"):
        period_containing(day(2026, 5, 10), billing_day)


@pytest.mark.behavior
def test_billing_days_1_and_28_are_valid():
    assert period_starting_in(2026, 2, 1) == Period(day(2026, 2, 1), day(2026, 3, 1))
    assert period_starting_in(2026, 2, 28) == Period(day(2026, 2, 28), day(2026, 3, 28))
    assert period_containing(day(2026, 3, 1), 28) == Period(day(2026, 2, 28), day(2026, 3, 28))
    assert period_containing(day(2026, 3, 1), 1) == Period(day(2026, 3, 1), day(2026, 4, 1))


@pytest.mark.behavior
def test_periods_cross_the_year_in_both_directions():
    assert period_starting_in(2026, 12, 15) == Period(day(2026, 12, 15), day(2027, 1, 15))
    # a day before the billing day in January belongs to the period that started in December
    assert period_containing(day(2027, 1, 3), 5) == Period(day(2026, 12, 5), day(2027, 1, 5))
    assert period_containing(day(2026, 3, 3), 5) == Period(day(2026, 2, 5), day(2026, 3, 5))
    assert Period(day(2027, 1, 5), day(2027, 2, 5)).previous() == Period(day(2026, 12, 5), day(2027, 1, 5))
    assert Period(day(2026, 3, 5), day(2026, 4, 5)).previous() == Period(day(2026, 2, 5), day(2026, 3, 5))
    assert Period(day(2026, 12, 5), day(2027, 1, 5)).next() == Period(day(2027, 1, 5), day(2027, 2, 5))
    assert add_month(day(2026, 12, 28)) == day(2027, 1, 28)


@pytest.mark.behavior
def test_a_period_contains_its_start_but_not_its_end():
    assert MAY.contains(day(2026, 5, 1))
    assert MAY.contains(day(2026, 5, 31))
    assert not MAY.contains(day(2026, 6, 1))
    assert not MAY.contains(day(2026, 4, 30))
    assert (APRIL.days, MAY.days) == (30, 31)
    assert str(MAY) == "2026-05-01..2026-06-01"


@pytest.mark.behavior
def test_periods_between_includes_both_ends():
    assert periods_between(APRIL, JUNE) == [APRIL, MAY, JUNE]
    assert periods_between(MAY, MAY) == [MAY]
    assert periods_between(JUNE, MAY) == []


# --- 5. discounts -----------------------------------------------------------------------------------
def percent(id_, value, **kw) -> Discount:
    return Discount(id=id_, kind=PERCENT, value=D(value), **kw)


def fixed(id_, value, **kw) -> Discount:
    return Discount(id=id_, kind=FIXED, value=D(value), **kw)


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "bogus", "value": D("5")}, "^discount kind is percent or fixed, not 'bogus'$"),
        ({"kind": PERCENT, "value": D("0")}, "^a percent discount is more than 0 and at most 100$"),
        ({"kind": PERCENT, "value": D("100.01")}, "^a percent discount is more than 0 and at most 100$"),
        ({"kind": PERCENT, "value": D("-5")}, "^a percent discount is more than 0 and at most 100$"),
        ({"kind": FIXED, "value": D("-0.01")}, "^a fixed discount is not negative$"),
        ({"kind": FIXED, "value": D("5"), "periods": 0}, "^a limited discount lasts at least one period$"),
    ],
)
def test_invalid_discounts_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Discount(id=1, **kwargs)


@pytest.mark.behavior
def test_discount_boundaries_that_are_valid():
    assert percent(1, "100").value == 100
    assert percent(1, "0.01").value == D("0.01")
    assert fixed(1, "0").value == 0
    assert fixed(1, "150").value == 150  # a fixed amount is not a percentage: above 100 is fine
    assert fixed(1, "5", periods=1).periods == 1
    with pytest.raises(TypeError, match="never float"):
        Discount(id=1, kind=PERCENT, value=10.0)


@pytest.mark.behavior
def test_discount_eligibility_window_is_from_inclusive_until_exclusive_and_periods_count_from_one():
    window = percent(1, "10", valid_from=day(2026, 5, 10), valid_until=day(2026, 6, 1), periods=3)
    assert not window.is_eligible(service_start=day(2026, 5, 9), period_index=1)
    assert window.is_eligible(service_start=day(2026, 5, 10), period_index=1)
    assert window.is_eligible(service_start=day(2026, 5, 31), period_index=3)
    assert not window.is_eligible(service_start=day(2026, 6, 1), period_index=1)
    assert not window.is_eligible(service_start=day(2026, 5, 20), period_index=4)
    unlimited = percent(2, "10")
    assert unlimited.is_eligible(service_start=day(2000, 1, 1), period_index=1000)
    assert fixed(3, "5", valid_from=day(2026, 5, 10)).is_eligible(service_start=day(2030, 1, 1), period_index=99)
    assert fixed(4, "5", valid_until=day(2026, 5, 10)).is_eligible(service_start=day(2020, 1, 1), period_index=1)


@pytest.mark.behavior
def test_percents_apply_first_on_the_running_amount_then_fixed_amounts_prorated():
    ten, twenty, five, hundred = percent(1, "10"), percent(2, "20", priority=50), fixed(3, "5"), fixed(4, "100")
    reductions = disc.apply([hundred, five, twenty, ten], D("50.000000"), Fraction(1, 2))
    # priority 50 sorts before the default 100: 20 % of 50 = 10 (running 40), 10 % of 40 = 4 (36),
    # fixed 5 x 1/2 = 2.50 (33.50), fixed 100 capped at the 33.50 left
    assert reductions == [(twenty, D("-10.000000")), (ten, D("-4.000000")), (five, D("-2.500000")),
                          (hundred, D("-33.500000"))]


@pytest.mark.behavior
def test_small_reductions_count_and_nothing_is_taken_from_nothing():
    ten = percent(1, "10")
    assert disc.apply([ten], D("0.500000"), Fraction(1)) == [(ten, D("-0.050000"))]
    assert disc.apply([ten], D("0.000004"), Fraction(1)) == []  # 0.0000004 rounds to 0: no line
    whole, five, zero = percent(1, "100"), fixed(2, "5"), fixed(3, "0")
    assert disc.apply([whole, five], D("30.000000"), Fraction(1)) == [(whole, D("-30.000000"))]
    assert disc.apply([zero], D("30.000000"), Fraction(1)) == []
    assert disc.apply([ten], D("0"), Fraction(1)) == []
    assert disc.apply([], D("30.000000"), Fraction(1)) == []


@pytest.mark.behavior
def test_a_percent_of_an_odd_amount_is_rounded_half_up_once():
    third = percent(1, "33.33")
    # 19.99 x 33.33 / 100 = 6.662667 (6.6626670); 12.50 x 7.5 % = 0.9375
    assert disc.apply([third], D("19.990000"), Fraction(1)) == [(third, D("-6.662667"))]
    seven = percent(2, "7.5")
    assert disc.apply([seven], D("12.500000"), Fraction(1)) == [(seven, D("-0.937500"))]


@pytest.mark.behavior
def test_a_non_stackable_discount_alone_applies_the_one_with_the_largest_reduction():
    stack, exclusive = percent(1, "10"), fixed(2, "2", stackable=False)
    assert disc.select([stack, exclusive], D("50.000000"), Fraction(1)) == [exclusive]
    assert disc.apply([stack, exclusive], D("50.000000"), Fraction(1)) == [(exclusive, D("-2.000000"))]
    # two exclusive ones: 10 % of 50 = 5.00 against 6.00 x 1/2 = 3.00 -> the percent; over a
    # whole period the fixed 6.00 wins
    pct, fix = percent(3, "10", stackable=False), fixed(4, "6", stackable=False)
    assert disc.select([fix, pct], D("50.000000"), Fraction(1, 2)) == [pct]
    assert disc.select([fix, pct], D("50.000000"), Fraction(1)) == [fix]
    # a fixed reduction counts only up to the line: 80 on a 50 line is 50, like 100 %
    big, whole = fixed(5, "80", stackable=False), percent(6, "100", stackable=False)
    assert disc.select([whole, big], D("50.000000"), Fraction(1)) == [big]
    assert disc.select([big, whole], D("50.000000"), Fraction(1)) == [big]  # the tie goes to the lowest id


@pytest.mark.behavior
def test_equal_exclusive_reductions_go_to_the_lowest_id():
    a, b = percent(7, "10", stackable=False), percent(3, "10", stackable=False)
    assert disc.select([a, b], D("50.000000"), Fraction(1)) == [b]
    # 10 % of 50 = 5.00 and a fixed 5.00 tie too: id 1 (the percent) wins
    pct, fix = percent(1, "10", stackable=False), fixed(2, "5", stackable=False)
    assert disc.select([fix, pct], D("50.000000"), Fraction(1)) == [pct]


@pytest.mark.behavior
def test_stackable_discounts_are_ordered_by_priority_then_id():
    a, b, c = percent(5, "1", priority=2), percent(2, "1", priority=2), fixed(9, "1", priority=1)
    assert disc.select([a, b, c], D("10.000000"), Fraction(1)) == [c, b, a]


# --- 6. taxes ---------------------------------------------------------------------------------------
STATE = TaxRate(1, "Texas", D("0.062500"), "US", region="TX")
COUNTY = TaxRate(2, "Travis County", D("0.010000"), "US", region="TX", locality="Austin")
E911 = TaxRate(3, "911 fee", D("0.050000"), "US", compound=True)
SERVICE_ONLY = TaxRate(4, "Telecom", D("0.020000"), "US", categories=frozenset({"service"}))


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": D("-0.01")}, "^a tax rate is not negative$"),
        ({"rate": D("0.1"), "categories": frozenset()},
         r"^tax categories are among \['equipment', 'fee', 'service', 'usage'\]$"),
        ({"rate": D("0.1"), "categories": frozenset({"service", "bogus"})},
         r"^tax categories are among \['equipment', 'fee', 'service', 'usage'\]$"),
    ],
)
def test_invalid_tax_rates_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaxRate(1, "x", country="US", **kwargs)


@pytest.mark.behavior
def test_a_zero_rate_and_a_single_category_are_valid():
    assert TaxRate(1, "zero", D("0"), "US").rate == 0
    assert TaxRate(1, "fees", D("0.1"), "US", categories=frozenset({"fee"})).categories == {"fee"}


@pytest.mark.behavior
def test_rates_match_the_address_at_country_region_and_locality_level():
    national = TaxRate(5, "US federal", D("0.01"), "US")
    other_country = TaxRate(6, "DE VAT", D("0.19"), "DE")
    rates = [COUNTY, other_country, STATE, national]
    austin = taxes.rates_for(rates, country="US", region="TX", locality="Austin", on=day(2026, 5, 1), exempt=False)
    assert austin == [STATE, COUNTY, national]  # by id
    dallas = taxes.rates_for(rates, country="US", region="TX", locality="Dallas", on=day(2026, 5, 1), exempt=False)
    assert dallas == [STATE, national]
    ohio = taxes.rates_for(rates, country="US", region="OH", locality="Austin", on=day(2026, 5, 1), exempt=False)
    assert ohio == [national]
    assert taxes.rates_for(rates, country="US", region="TX", locality="Austin", on=day(2026, 5, 1), exempt=True) == []


@pytest.mark.behavior
def test_a_rate_is_valid_from_its_first_day_until_the_day_before_valid_until():
    rate = TaxRate(7, "temporary", D("0.01"), "US", valid_from=day(2026, 5, 1), valid_until=day(2026, 6, 1))

    def on(d):
        return taxes.rates_for([rate], country="US", region="", locality="", on=d, exempt=False)

    assert on(day(2026, 4, 30)) == []
    assert on(day(2026, 5, 1)) == [rate]
    assert on(day(2026, 5, 31)) == [rate]
    assert on(day(2026, 6, 1)) == []
    assert TaxRate(8, "open", D("0.01"), "US", valid_from=day(2026, 5, 1)).valid_on(day(2099, 1, 1))
    assert TaxRate(9, "open", D("0.01"), "US", valid_until=day(2026, 5, 1)).valid_on(day(1999, 1, 1))


@pytest.mark.behavior
def test_compound_taxes_are_refused_only_on_a_tax_inclusive_tenant():
    refused = "^compound taxes are not allowed on a tax-inclusive tenant$"
    with pytest.raises(CompoundTaxOnInclusiveTenant, match=refused):
        taxes.validate_for_tenant([STATE, E911], tax_inclusive=True)
    taxes.validate_for_tenant([STATE, E911], tax_inclusive=False)
    taxes.validate_for_tenant([STATE, COUNTY], tax_inclusive=True)
    with pytest.raises(CompoundTaxOnInclusiveTenant, match=refused):
        taxes.tax_inclusive(D("10"), "service", [E911])


@pytest.mark.behavior
def test_exclusive_taxes_non_compound_first_then_compound_on_taxable_plus_those_taxes():
    # 19.99: 6.25 % -> 1.249375, 1 % -> 0.199900, then 5 % of (19.99 + 1.249375 + 0.1999 = 21.439275)
    # = 1.07196375 -> 1.071964
    taxed = taxes.tax_exclusive(D("19.990000"), "service", [E911, STATE, COUNTY])
    assert taxed == TaxedAmount(gross=D("19.990000"), net=D("19.990000"), taxes=(
        (STATE, D("1.249375")), (COUNTY, D("0.199900")), (E911, D("1.071964"))))
    assert exactly(taxed.tax_total) == "2.521239"


@pytest.mark.behavior
def test_a_rate_taxes_only_its_categories():
    # the "service"-only rate does not tax a fee; 2 % of 10.00 service is 0.20
    fee = taxes.tax_exclusive(D("10.000000"), "fee", [STATE, SERVICE_ONLY])
    assert fee == TaxedAmount(gross=D("10.000000"), net=D("10.000000"), taxes=((STATE, D("0.625000")),))
    service = taxes.tax_exclusive(D("10.000000"), "service", [STATE, SERVICE_ONLY])
    assert service.taxes == ((STATE, D("0.625000")), (SERVICE_ONLY, D("0.200000")))
    assert taxes.tax_exclusive(D("10.000000"), "usage", [SERVICE_ONLY]) == TaxedAmount(
        gross=D("10.000000"), net=D("10.000000"), taxes=())
    assert taxes.tax_inclusive(D("10.000000"), "fee", [SERVICE_ONLY]) == TaxedAmount(
        gross=D("10.000000"), net=D("10.000000"), taxes=())


@pytest.mark.behavior
def test_a_credit_is_taxed_negatively():
    taxed = taxes.tax_exclusive(D("-13.935484"), "service", [STATE, E911])
    # 6.25 % of -13.935484 = -0.87096775 -> -0.870968; 5 % of (-13.935484 - 0.870968) = -0.7403226 -> -0.740323
    assert taxed.taxes == ((STATE, D("-0.870968")), (E911, D("-0.740323")))


VAT = TaxRate(10, "VAT", D("0.190000"), "DE")


@pytest.mark.behavior
def test_inclusive_net_is_gross_over_one_plus_the_rates():
    # 119.00 / 1.19 = 100.000000; 10.00 / 1.19 = 8.4033613 -> 8.403361, tax 1.596639
    assert taxes.tax_inclusive(D("119.000000"), "service", [VAT]) == TaxedAmount(
        gross=D("119.000000"), net=D("100.000000"), taxes=((VAT, D("19.000000")),))
    assert taxes.tax_inclusive(D("10.000000"), "service", [VAT]) == TaxedAmount(
        gross=D("10.000000"), net=D("8.403361"), taxes=((VAT, D("1.596639")),))


@pytest.mark.behavior
def test_inclusive_tax_is_split_in_proportion_and_the_last_rate_takes_the_remainder():
    # 1.00 / 1.03 = 0.9708738 -> 0.970874, tax 0.029126; a third each is 0.0097087 -> 0.009709,
    # and the last takes 0.029126 - 2 x 0.009709 = 0.009708
    a, b, c = (TaxRate(i, f"r{i}", D("0.010000"), "DE") for i in (1, 2, 3))
    assert taxes.tax_inclusive(D("1.000000"), "service", [a, b, c]) == TaxedAmount(
        gross=D("1.000000"), net=D("0.970874"), taxes=((a, D("0.009709")), (b, D("0.009709")), (c, D("0.009708"))))
    # 7 % and 12 % of 10.00: net 8.403361, tax 1.596639, 1.596639 x 7 / 19 = 0.5882354 -> 0.588235
    seven, twelve = TaxRate(4, "a", D("0.07"), "DE"), TaxRate(5, "b", D("0.12"), "DE")
    assert taxes.tax_inclusive(D("10.000000"), "service", [seven, twelve]).taxes == (
        (seven, D("0.588235")), (twelve, D("1.008404")))


@pytest.mark.behavior
def test_inclusive_rates_of_zero_tax_nothing():
    zero_a, zero_b = TaxRate(1, "zero", D("0"), "DE"), TaxRate(2, "nil", D("0.000000"), "DE")
    assert taxes.tax_inclusive(D("50.000000"), "service", [zero_a, zero_b]) == TaxedAmount(
        gross=D("50.000000"), net=D("50.000000"), taxes=((zero_a, D("0")), (zero_b, D("0"))))
    assert [exactly(a) for _, a in taxes.tax_inclusive(D("50"), "service", [zero_a, zero_b]).taxes] == [
        "0.000000", "0.000000"]


# --- 7. invoices ------------------------------------------------------------------------------------
def line(ref, kind, amount, *, applies_to=None, subscription_id=1, category="service"):
    return DraftLine(ref=ref, kind=kind, category=category, description=kind, amount=D(amount),
                     subscription_id=subscription_id, applies_to=applies_to)


@pytest.mark.behavior
def test_a_charge_and_its_discounts_are_one_taxable_amount_every_other_line_its_own():
    c1, d2, u3 = line(1, CHARGE, "50"), line(2, DISCOUNT, "-5", applies_to=1), line(3, USAGE, "4", category="usage")
    c4, cr5, d6 = line(4, CHARGE, "30"), line(5, CREDIT, "-10"), line(6, DISCOUNT, "-3", applies_to=4)
    groups = invoice.taxable_groups([c1, d2, u3, c4, cr5, d6])
    assert groups == [[c1, d2], [c4, d6], [u3], [cr5]]
    assert all(a is b for group, expected in zip(groups, [[c1, d2], [c4, d6], [u3], [cr5]], strict=True)
               for a, b in zip(group, expected, strict=True))


@pytest.mark.behavior
def test_taxes_are_computed_on_charge_plus_discounts_and_stored_on_the_charge():
    # subscription 1 (Texas): (50.00 - 5.00) x 6.25 % = 2.812500; the usage line 4.00 x 6.25 % = 0.250000
    # subscription 2 has no rates; a line of no subscription takes the rates registered for None.
    c1, d2 = line(1, CHARGE, "50.000000"), line(2, DISCOUNT, "-5.000000", applies_to=1)
    u3 = line(3, USAGE, "4.000000", category="usage")
    c4 = line(4, CHARGE, "20.000000", subscription_id=2)
    f5 = line(5, FEE, "10.000000", subscription_id=None, category="fee")
    taxed = invoice.apply_taxes([f5, c1, d2, u3, c4], {1: [STATE], None: [COUNTY]}, tax_inclusive=False)
    assert [t.taxes for t in taxed] == [((STATE, D("2.812500")),), (), ((COUNTY, D("0.100000")),),
                                        ((STATE, D("0.250000")),)]
    assert [t.net for t in taxed] == [D("45.000000"), D("20.000000"), D("10.000000"), D("4.000000")]
    assert c1.taxes == [(STATE, D("2.812500"))]
    assert d2.taxes == []
    assert c4.taxes == []
    assert f5.taxes == [(COUNTY, D("0.100000"))]
    inclusive = invoice.apply_taxes([line(1, CHARGE, "119.000000")], {1: (VAT,)}, tax_inclusive=True)
    assert inclusive == [TaxedAmount(gross=D("119.000000"), net=D("100.000000"), taxes=((VAT, D("19.000000")),))]


@pytest.mark.behavior
def test_totals_add_exactly_and_only_amount_due_is_rounded_to_the_currency():
    # nets 45.000000 + 4.000001; taxes 2.812500 + 0.250000 + compound 0.100001 = 3.162501
    # total 52.162502 -> USD 52.16 (adjustment -0.002502), JPY 52 (-0.162502)
    taxed = [
        TaxedAmount(gross=D("45.000000"), net=D("45.000000"), taxes=((STATE, D("2.812500")),)),
        TaxedAmount(gross=D("4.000001"), net=D("4.000001"), taxes=((STATE, D("0.250000")), (E911, D("0.100001")))),
    ]
    assert invoice.totals(taxed, currency="USD") == Totals(
        subtotal=D("49.000001"), tax_total=D("3.162501"), total=D("52.162502"), amount_due=D("52.16"),
        rounding_adjustment=D("-0.002502"), tax_by_rate={1: D("3.062500"), 3: D("0.100001")})
    jpy = invoice.totals(taxed, currency="JPY")
    assert (exactly(jpy.amount_due), exactly(jpy.rounding_adjustment)) == ("52", "-0.162502")
    empty = invoice.totals([], currency="EUR")
    assert [exactly(x) for x in (empty.subtotal, empty.tax_total, empty.total, empty.amount_due)] == [
        "0.000000", "0.000000", "0.000000", "0.00"]
    assert empty.tax_by_rate == {}


# --- 3. and 4. drafting -----------------------------------------------------------------------------
ACTIVATED = day(2026, 4, 10)


def facts(*plans, activated=ACTIVATED, terminated=None, excluded=(), billing_day=1, setup_fee_billed=False):
    plans = plans or ((activated, FIBER),)
    return SubscriptionFacts(7, billing_day, activated, terminated, tuple(plans), tuple(excluded), setup_fee_billed)


def charge(ref, period, start, end, terms, amount, days, fraction):
    return DraftLine(ref=ref, kind=CHARGE, category="service",
                     description=f"{terms.name} {start.isoformat()} to {(end - datetime.timedelta(1)).isoformat()}",
                     amount=D(amount), subscription_id=7, period_start=period.start, period_end=period.end,
                     service_start=start, service_end=end, unit_price=terms.price, fraction=fraction,
                     billable_days=days, plan_id=terms.plan_id)


def discount_line(ref, of: DraftLine, discount, amount, description):
    return DraftLine(ref=ref, kind=DISCOUNT, category="service", description=description, amount=D(amount),
                     subscription_id=7, period_start=of.period_start, period_end=of.period_end,
                     service_start=of.service_start, service_end=of.service_end, fraction=of.fraction,
                     billable_days=of.billable_days, plan_id=of.plan_id, discount_id=discount.id,
                     applies_to=of.ref)


@pytest.mark.behavior
def test_first_invoice_bills_the_partial_first_period_and_the_run_period_with_their_discounts():
    # Activated 10 April, run for May. April: 21 of 30 days, 30 x 21/30 = 21.000000; 10 % -> 2.100000
    # (running 18.90), fixed 5.00 "first period only" x 21/30 = 3.500000. May: 30.000000, 10 % ->
    # 3.000000; the fixed one is over (period 2). Refs are numbered from 1 in order.
    ten, first_only = percent(11, "10"), fixed(12, "5", periods=1)
    lines = draft_recurring(facts(), run_period=MAY, billed=[], discounts=[first_only, ten], numbers=LineNumbers())
    april = charge(1, APRIL, day(2026, 4, 10), day(2026, 5, 1), FIBER, "21.000000", 21, Fraction(21, 30))
    may = charge(4, MAY, MAY.start, MAY.end, FIBER, "30.000000", 31, Fraction(1))
    assert lines == [
        april,
        discount_line(2, april, ten, "-2.100000", "Discount 10%"),
        discount_line(3, april, first_only, "-3.500000", "Discount 5"),
        may,
        discount_line(5, may, ten, "-3.000000", "Discount 10%"),
    ]
    assert lines[0].description == "Fiber 100 2026-04-10 to 2026-04-30"


@pytest.mark.behavior
def test_plan_change_after_billing_credits_the_old_net_and_charges_the_new_price():
    # May was billed on Fiber (net after discounts 27.000000, 31 days). Giga from 16 May: credit
    # 27 x 16/31 = 13.935484 of line 77, charge 45.50 x 16/31 = 23.483871, then June on Giga.
    history = facts((day(2026, 5, 1), FIBER), (day(2026, 5, 16), GIGA), activated=day(2026, 5, 1))
    billed = [BilledCharge(77, MAY, MAY.start, MAY.end, FIBER.plan_id, D("27.000000"), 31)]
    lines = draft_recurring(history, run_period=JUNE, billed=billed, discounts=[], numbers=LineNumbers(100))
    credit = DraftLine(ref=100, kind=CREDIT, category="service", description="Credit 2026-05-16 to 2026-05-31",
                       amount=D("-13.935484"), subscription_id=7, period_start=MAY.start, period_end=MAY.end,
                       service_start=day(2026, 5, 16), service_end=MAY.end, fraction=Fraction(16, 31),
                       billable_days=16, plan_id=FIBER.plan_id, credits_line_id=77)
    assert lines == [
        credit,
        charge(101, MAY, day(2026, 5, 16), MAY.end, GIGA, "23.483871", 16, Fraction(16, 31)),
        charge(102, JUNE, JUNE.start, JUNE.end, GIGA, "45.500000", 30, Fraction(1)),
    ]


@pytest.mark.behavior
def test_termination_after_billing_credits_the_rest_of_the_period_and_bills_nothing_after():
    # terminated 20 May: credit 12 of 31 days of the 30.00 line = 11.612903 (11.6129032)
    billed = [BilledCharge(5, MAY, MAY.start, MAY.end, FIBER.plan_id, D("30.000000"), 31)]
    lines = draft_recurring(facts(activated=day(2026, 5, 1), terminated=day(2026, 5, 20)), run_period=JUNE,
                            billed=billed, discounts=[percent(1, "10")], numbers=LineNumbers())
    assert [(ln.kind, ln.amount, ln.service_start, ln.service_end, ln.billable_days, ln.credits_line_id)
            for ln in lines] == [(CREDIT, D("-11.612903"), day(2026, 5, 20), MAY.end, 12, 5)]


@pytest.mark.behavior
def test_credited_days_are_not_credited_again_and_billed_days_not_billed_again():
    # the credit for 20-31 May was already drafted (credited); nothing is left to do for May
    billed = [BilledCharge(5, MAY, MAY.start, MAY.end, FIBER.plan_id, D("30.000000"), 31,
                           credited=((day(2026, 5, 20), MAY.end),))]
    ended = facts(activated=day(2026, 5, 1), terminated=day(2026, 5, 20))
    assert draft_recurring(ended, run_period=JUNE, billed=billed, discounts=[], numbers=LineNumbers()) == []
    # billed in full and still billable: only the new period is charged
    whole = [BilledCharge(5, MAY, MAY.start, MAY.end, FIBER.plan_id, D("30.000000"), 31)]
    lines = draft_recurring(facts(activated=day(2026, 5, 1)), run_period=JUNE, billed=whole, discounts=[],
                            numbers=LineNumbers())
    assert [(ln.kind, ln.period_start) for ln in lines] == [(CHARGE, JUNE.start)]


@pytest.mark.behavior
def test_periods_known_to_be_settled_are_skipped():
    lines = draft_recurring(facts(), run_period=JUNE, billed=[], discounts=[], numbers=LineNumbers(), earliest=JUNE)
    assert [(ln.period_start, ln.amount) for ln in lines] == [(JUNE.start, D("30.000000"))]
    assert periods_to_settle(facts(), JUNE, JUNE) == [JUNE]
    assert periods_to_settle(facts(), JUNE, APRIL) == [APRIL, MAY, JUNE]
    assert periods_to_settle(facts(), JUNE, Period(day(2026, 3, 1), APRIL.start)) == [APRIL, MAY, JUNE]
    assert periods_to_settle(facts(), JUNE) == [APRIL, MAY, JUNE]


@pytest.mark.behavior
def test_plan_discounts_apply_to_that_plans_lines_and_a_discount_granted_twice_counts_once():
    # Giga's plan discount 20 % applies to Giga lines only; the customer's 10 % (id 11), also
    # granted through the plan, is applied once: 45.50 x 20 % = 9.10, then 10 % of 36.40 = 3.64.
    ten, giga_deal = percent(11, "10"), percent(12, "20", priority=1)
    history = facts((day(2026, 6, 1), GIGA), activated=day(2026, 6, 1))
    lines = draft_recurring(history, run_period=JUNE, billed=[], discounts=[ten], numbers=LineNumbers(),
                            plan_discounts={GIGA.plan_id: [giga_deal, ten], FIBER.plan_id: [percent(13, "50")]})
    assert [(ln.kind, ln.amount, ln.discount_id) for ln in lines] == [
        (CHARGE, D("45.500000"), None), (DISCOUNT, D("-9.100000"), 12), (DISCOUNT, D("-3.640000"), 11)]
    # the plan's discount alone, without the customer's
    alone = draft_recurring(history, run_period=JUNE, billed=[], discounts=[], numbers=LineNumbers(),
                            plan_discounts={GIGA.plan_id: [giga_deal]})
    assert [(ln.kind, ln.amount) for ln in alone] == [(CHARGE, D("45.500000")), (DISCOUNT, D("-9.100000"))]
    # granted by the customer and by the plan: once
    twice = draft_recurring(history, run_period=JUNE, billed=[], discounts=[ten], numbers=LineNumbers(),
                            plan_discounts={GIGA.plan_id: [ten]})
    assert [(ln.kind, ln.amount) for ln in twice] == [(CHARGE, D("45.500000")), (DISCOUNT, D("-4.550000"))]
    # another plan's discount does not apply
    other = draft_recurring(history, run_period=JUNE, billed=[], discounts=[ten], numbers=LineNumbers(),
                            plan_discounts={FIBER.plan_id: [percent(13, "50")]})
    assert [(ln.kind, ln.amount) for ln in other] == [(CHARGE, D("45.500000")), (DISCOUNT, D("-4.550000"))]


@pytest.mark.behavior
def test_a_discount_window_is_judged_on_each_lines_first_service_day():
    # valid from 15 May: not on the April line (starts 10 April) nor May (starts 1 May), on June.
    late = percent(1, "10", valid_from=day(2026, 5, 15))
    lines = draft_recurring(facts(), run_period=JUNE, billed=[], discounts=[late], numbers=LineNumbers())
    assert [(ln.kind, ln.period_start) for ln in lines] == [
        (CHARGE, APRIL.start), (CHARGE, MAY.start), (CHARGE, JUNE.start), (DISCOUNT, JUNE.start)]
    # "2 periods": April (partial, period 1) and May (period 2), not June
    two = fixed(2, "3", periods=2)
    lines = draft_recurring(facts(), run_period=JUNE, billed=[], discounts=[two], numbers=LineNumbers())
    assert [(ln.kind, ln.amount) for ln in lines] == [
        (CHARGE, D("21.000000")), (DISCOUNT, D("-2.100000")), (CHARGE, D("30.000000")), (DISCOUNT, D("-3.000000")),
        (CHARGE, D("30.000000"))]


@pytest.mark.behavior
def test_period_index_counts_months_from_the_period_of_activation_across_years():
    started = facts(activated=day(2026, 11, 20), billing_day=5)  # first period 5 Nov - 5 Dec
    assert period_index(started, Period(day(2026, 11, 5), day(2026, 12, 5))) == 1
    assert period_index(started, Period(day(2026, 12, 5), day(2027, 1, 5))) == 2
    assert period_index(started, Period(day(2027, 1, 5), day(2027, 2, 5))) == 3
    assert period_index(started, Period(day(2028, 11, 5), day(2028, 12, 5))) == 25
    early = facts(activated=day(2026, 11, 3), billing_day=5)  # first period 5 Oct - 5 Nov
    assert period_index(early, Period(day(2026, 11, 5), day(2026, 12, 5))) == 2


@pytest.mark.behavior
def test_billable_segments_follow_activation_termination_plan_changes_and_exclusions():
    one = facts(activated=day(2026, 5, 10), terminated=day(2026, 5, 20))
    assert billable_segments(one, MAY) == [(day(2026, 5, 10), day(2026, 5, 20), FIBER)]
    assert billable_segments(facts(activated=day(2026, 5, 10), terminated=day(2026, 5, 10)), MAY) == []
    assert billable_segments(facts(activated=day(2026, 6, 1)), MAY) == []
    assert billable_segments(facts(activated=day(2026, 4, 1), terminated=day(2026, 5, 1)), MAY) == []
    # a plan change on the period's first day: the new plan, no empty segment
    changed = facts((day(2026, 4, 1), FIBER), (day(2026, 5, 1), GIGA), activated=day(2026, 4, 1))
    assert billable_segments(changed, MAY) == [(MAY.start, MAY.end, GIGA)]
    # a change inside, with a termination after it
    inside = facts((day(2026, 4, 1), FIBER), (day(2026, 5, 16), GIGA), activated=day(2026, 4, 1),
                   terminated=day(2026, 5, 25))
    assert billable_segments(inside, MAY) == [(MAY.start, day(2026, 5, 16), FIBER),
                                              (day(2026, 5, 16), day(2026, 5, 25), GIGA)]
    # an excluded suspension with one plan
    suspended = facts(activated=day(2026, 4, 1), excluded=[(day(2026, 5, 10), day(2026, 5, 15))])
    assert billable_segments(suspended, MAY) == [(MAY.start, day(2026, 5, 10), FIBER),
                                                 (day(2026, 5, 15), MAY.end, FIBER)]
    # a plan change on the first day after an excluded stretch, and one on the day it starts
    after = facts((day(2026, 4, 1), FIBER), (day(2026, 5, 15), GIGA), activated=day(2026, 4, 1),
                  excluded=[(day(2026, 5, 10), day(2026, 5, 15))])
    assert billable_segments(after, MAY) == [(MAY.start, day(2026, 5, 10), FIBER), (day(2026, 5, 15), MAY.end, GIGA)]
    at = facts((day(2026, 4, 1), FIBER), (day(2026, 5, 10), GIGA), activated=day(2026, 4, 1),
               excluded=[(day(2026, 5, 10), day(2026, 5, 15))])
    assert billable_segments(at, MAY) == [(MAY.start, day(2026, 5, 10), FIBER), (day(2026, 5, 15), MAY.end, GIGA)]


@pytest.mark.behavior
def test_the_plan_on_a_day_is_the_latest_effective_on_or_before_it():
    history = facts((day(2026, 4, 10), FIBER), (day(2026, 5, 16), GIGA))
    assert history.plan_on(day(2026, 4, 10)) == FIBER
    assert history.plan_on(day(2026, 5, 15)) == FIBER
    assert history.plan_on(day(2026, 5, 16)) == GIGA
    assert history.plan_on(day(2027, 1, 1)) == GIGA
    assert facts().plan_on(day(2026, 4, 10)) == FIBER
    assert facts().plan_on(day(2030, 1, 1)) == FIBER


@pytest.mark.behavior
def test_interval_arithmetic_on_half_open_day_ranges():
    d = day
    assert subtract([(d(2026, 5, 1), d(2026, 5, 5)), (d(2026, 5, 10), d(2026, 5, 20))],
                    [(d(2026, 5, 12), d(2026, 5, 15))]) == [
        (d(2026, 5, 1), d(2026, 5, 5)), (d(2026, 5, 10), d(2026, 5, 12)), (d(2026, 5, 15), d(2026, 5, 20))]
    adjacent = [(d(2026, 4, 1), d(2026, 5, 1)), (d(2026, 5, 10), d(2026, 6, 1))]
    assert subtract([(d(2026, 5, 1), d(2026, 5, 10))], adjacent) == [(d(2026, 5, 1), d(2026, 5, 10))]
    assert subtract([(d(2026, 5, 1), d(2026, 5, 10))], [(d(2026, 4, 1), d(2026, 6, 1))]) == []
    assert intersect([(d(2026, 5, 1), d(2026, 5, 5))], [(d(2026, 5, 5), d(2026, 5, 9))]) == []
    assert intersect([(d(2026, 5, 10), d(2026, 5, 20)), (d(2026, 5, 1), d(2026, 5, 5))],
                     [(d(2026, 5, 3), d(2026, 5, 12))]) == [
        (d(2026, 5, 3), d(2026, 5, 5)), (d(2026, 5, 10), d(2026, 5, 12))]
    assert days_in([(d(2026, 5, 1), d(2026, 5, 11)), (d(2026, 5, 20), d(2026, 6, 1))]) == 22
    assert days_in([]) == 0


@pytest.mark.behavior
def test_line_numbers_count_up_by_one_from_the_start():
    numbers = LineNumbers()
    assert [numbers.take(), numbers.take(), numbers.take()] == [1, 2, 3]
    assert LineNumbers(41).take() == 41


@pytest.mark.behavior
def test_the_setup_fee_is_billed_once_at_the_first_plans_fee():
    with_fee = PlanTerms(1, "Fiber 100", D("30.000000"), setup_fee=D("1.00"))
    history = facts((day(2026, 5, 1), with_fee), (day(2026, 5, 20), GIGA), activated=day(2026, 5, 1))
    assert draft_setup_fee(history, LineNumbers(9), MAY) == [DraftLine(
        ref=9, kind=FEE, category="fee", description="Setup fee - Fiber 100", amount=D("1.000000"), subscription_id=7,
        period_start=MAY.start, period_end=MAY.end, unit_price=D("1.00"), plan_id=1)]
    assert exactly(draft_setup_fee(history, LineNumbers(), MAY)[0].amount) == "1.000000"
    billed = facts((day(2026, 5, 1), with_fee), activated=day(2026, 5, 1), setup_fee_billed=True)
    assert draft_setup_fee(billed, LineNumbers(), MAY) == []
    assert draft_setup_fee(facts(), LineNumbers(), MAY) == []  # no setup fee on the plan


@pytest.mark.behavior
def test_usage_above_the_allowance_is_billed_in_arrears_per_gb():
    # 12.5 GB used, 10 GB included: 2.5 GB x 0.75 = 1.875000
    metered = PlanTerms(3, "Metered", D("20"), included_bytes=10 * 10**9, overage_rate=D("0.750000"))
    usage = UsagePeriod(APRIL, 12_500_000_000, metered)
    assert draft_usage(7, usage, LineNumbers(3)) == [DraftLine(
        ref=3, kind=USAGE, category="usage", description="Data above the allowance 2026-04-01 to 2026-04-30",
        amount=D("1.875000"), subscription_id=7, period_start=APRIL.start, period_end=APRIL.end,
        quantity=Fraction(5, 2), unit_price=D("0.750000"), plan_id=3)]
    assert draft_usage(7, UsagePeriod(APRIL, 10 * 10**9, metered), LineNumbers()) == []
    assert draft_usage(7, UsagePeriod(APRIL, 3 * 10**9, metered), LineNumbers()) == []
    unlimited = PlanTerms(4, "Unlimited", D("50"), included_bytes=None, overage_rate=D("1"))
    assert draft_usage(7, UsagePeriod(APRIL, 10**15, unlimited), LineNumbers()) == []
    free = PlanTerms(5, "No overage charge", D("50"), included_bytes=10**9, overage_rate=D("0"))
    assert draft_usage(7, UsagePeriod(APRIL, 10**15, free), LineNumbers()) == []
