"""Billing accuracy through the REAL run (billing_run_execute) on the tenant matrix
(us_isp USD tax-exclusive, eu_isp EUR tax-inclusive, jp_isp JPY 0 decimals), against
shared/specs/billing-rules.md (the shared billing contract).

Facts are made the way production makes them: plans, customers, addresses and subscriptions via
customers.services; tax rates, discounts, assignments and usage records via the billing models.
Expected figures are written out (or computed from the spec's formula with exact Fractions and
one half-up rounding - never with the engine's own helpers).

Processes (concurrent runs, a killed run) run `manage.py run_billing` against the test database
on a throwaway tenant with committed data, created with tenants.services.tenant_create and
dropped afterwards. Hypothesis properties are on pure functions only (FIELD-NOTES).
"""

from __future__ import annotations

import datetime
import secrets
import time
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from django.db import connection, models
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import services
from billing.balances import balance_add, credit_of
from billing.domain import discounts as disc
from billing.domain import taxes as tax
from billing.domain.invoice import CHARGE, CREDIT, DISCOUNT, FEE, USAGE
from billing.domain.money import quantize, scale
from billing.domain.periods import Period, period_starting_in
from billing.domain.recurring import BilledCharge, LineNumbers, PlanTerms, SubscriptionFacts, draft_recurring
from billing.domain.taxes import CompoundTaxOnInclusiveTenant
from billing.engine import TenantTerms, draft_invoice
from billing.models import BalanceMovement, BillingRun, Invoice, InvoiceLine, InvoiceTax
from billing.selectors import BatchFacts, CustomerRow, SubscriptionRow
from compliance.models import AuditEvent
from customers.models import Subscription
from tests.revenue_protection import helpers as h
from tests.revenue_protection.helpers import D, q6

pytestmark = [pytest.mark.revenue_critical, pytest.mark.billing_core]

ARTIFACTS = h.REPO_ROOT / "test-artifacts"
MAY_1, JUNE_1, JULY_1 = datetime.date(2026, 5, 1), datetime.date(2026, 6, 1), datetime.date(2026, 7, 1)
APRIL_1 = datetime.date(2026, 4, 1)  # April 2026 has 30 days, May 31, June 30


def yen(tenant) -> int:
    """Prices in yen are a hundred times the dollar/euro ones (same arithmetic, realistic sizes)."""
    return 100 if tenant.currency == "JPY" else 1


@pytest.fixture
def us(db):
    yield h.activate("us-isp")
    connection.set_schema_to_public()


@pytest.fixture
def eu(db):
    yield h.activate("eu-isp")
    connection.set_schema_to_public()


@pytest.fixture
def jp(db):
    yield h.activate("jp-isp")
    connection.set_schema_to_public()


# === 1. amounts, proration =====================================================================
@pytest.mark.behavior
def test_stored_amounts_carry_exactly_six_places(tenant):
    # March 2026 has 31 days; activated on the 8th: 24 billable days.
    # 19.999999 * 24/31 = 15.483870193548... -> 15.483870 (half-up, 6 places)
    on_plan = h.plan("19.999999")
    who, _sub = h.customer_on(on_plan, datetime.date(2026, 3, 8), tenant.country)
    h.run("2026-03", datetime.date(2026, 3, 1))
    invoice = h.the_invoice(who)
    (charge,) = h.lines(invoice, CHARGE)
    assert charge.amount == D("15.483870")
    assert charge.amount.as_tuple().exponent == -6
    invoice.refresh_from_db()
    for value in (invoice.subtotal, invoice.tax_total, invoice.total, invoice.rounding_adjustment):
        assert value.as_tuple().exponent == -6
    assert invoice.total == D("15.483870")
    assert invoice.amount_due == (D("15") if tenant.currency == "JPY" else D("15.48"))
    assert invoice.rounding_adjustment == invoice.amount_due - invoice.total
    h.check_invoice_arithmetic(invoice)


@pytest.mark.behavior
def test_partial_first_period_is_prorated_by_exact_days_and_rounded_once(tenant):
    # April 2026: 30 days. Activated on the 10th: [10 Apr, 1 May) = 21 days -> 21/30 = 7/10.
    # 33.333333 * 21/30 = 23.3333331 -> 23.333333.
    # Activated on the 11th: 20/30 = 2/3: 29.99 * 2/3 = 19.99333.. -> 19.993333
    # (a rounded fraction 0.666667 would give 19.993343 - the fraction is never rounded).
    first = h.plan("33.333333")
    second = h.plan("29.99")
    a, _ = h.customer_on(first, datetime.date(2026, 4, 10), tenant.country)
    b, _ = h.customer_on(second, datetime.date(2026, 4, 11), tenant.country)
    run = h.run("2026-04", APRIL_1)
    assert run.invoices_issued == 2
    assert run.customers_failed == 0
    (charge_a,) = h.lines(h.the_invoice(a), CHARGE)
    assert (charge_a.service_start, charge_a.service_end) == (datetime.date(2026, 4, 10), MAY_1)
    assert charge_a.billable_days == 21
    assert (charge_a.fraction_numerator, charge_a.fraction_denominator) == (7, 10)
    assert charge_a.amount == D("23.333333")
    (charge_b,) = h.lines(h.the_invoice(b), CHARGE)
    assert (charge_b.fraction_numerator, charge_b.fraction_denominator) == (2, 3)
    assert charge_b.amount == D("19.993333")


@pytest.mark.behavior
def test_days_not_billed_yet_are_caught_up_one_line_per_period(tenant):
    # Activated on 10 April, first run in May: April [10, 1 May) 21/30 and May in full.
    k = yen(tenant)
    on_plan = h.plan(40 * k)
    who, _ = h.customer_on(on_plan, datetime.date(2026, 4, 10), tenant.country)
    h.run("2026-05", MAY_1)
    charges = h.lines(h.the_invoice(who), CHARGE)
    assert [(c.period_start, c.amount) for c in charges] == [
        (APRIL_1, q6(Fraction(40 * k) * Fraction(21, 30))),  # 28.00 (2800 yen)
        (MAY_1, D(40 * k)),
    ]


@pytest.mark.behavior
def test_customer_billing_day_sets_the_period(us):
    # Billing day 15: run 2026-05 bills [15 May, 15 Jun) (31 days). Activated 20 April: the first
    # period is [15 Apr, 15 May) (30 days), 25 days billable -> 60 * 25/30 = 50.00.
    on_plan = h.plan("60.00")
    who, _ = h.customer_on(on_plan, datetime.date(2026, 4, 20), "US", billing_day=15)
    h.run("2026-05", datetime.date(2026, 5, 15))
    invoice = h.the_invoice(who)
    assert (invoice.period_start, invoice.period_end) == (datetime.date(2026, 5, 15), datetime.date(2026, 6, 15))
    assert [(c.period_start, c.billable_days, c.amount) for c in h.lines(invoice, CHARGE)] == [
        (datetime.date(2026, 4, 15), 25, D("50.000000")),
        (datetime.date(2026, 5, 15), 31, D("60.000000")),
    ]


# === 2. plan change, termination, suspension ===================================================
@pytest.mark.behavior
def test_plan_change_after_billing_credits_the_old_net_and_charges_the_new_price(tenant):
    k = yen(tenant)
    old, new = h.plan(40 * k), h.plan(55 * k)
    who, sub = h.customer_on(old, MAY_1, tenant.country)
    h.discount("percent", "10", for_customer=who)
    h.run("2026-05", MAY_1)
    may = h.the_invoice(who, MAY_1)
    (old_line,) = h.lines(may, CHARGE)
    assert old_line.net_amount == D(36 * k)  # 40 - 10 %

    # effective 20 May, recorded after May was billed: [20 May, 1 Jun) = 12 of 31 days
    h.change_plan(sub, new, datetime.date(2026, 5, 20))
    h.run("2026-06", JUNE_1)
    june = h.the_invoice(who, JUNE_1)
    (credit,) = h.lines(june, CREDIT)
    assert credit.credits_line_id == old_line.id
    assert (credit.service_start, credit.service_end, credit.billable_days) == (
        datetime.date(2026, 5, 20),
        JUNE_1,
        12,
    )
    # -(old net) * days / that line's billable days, rounded once: -(36 * 12/31) = -13.935484
    assert credit.amount == q6(-Fraction(old_line.net_amount) * Fraction(12, old_line.billable_days))
    charges = h.lines(june, CHARGE)
    may_part = next(c for c in charges if c.period_start == MAY_1)
    assert may_part.plan_id == new.id
    assert may_part.amount == q6(Fraction(55 * k) * Fraction(12, 31))  # 21.290323
    (may_part_discount,) = [d for d in h.lines(june, DISCOUNT) if d.applies_to_id == may_part.id]
    assert may_part_discount.amount == -q6(Fraction(may_part.amount) / 10)  # discounted like any line
    june_part = next(c for c in charges if c.period_start == JUNE_1)
    assert june_part.amount == D(55 * k)
    h.check_invoice_arithmetic(june)


@pytest.mark.behavior
def test_termination_after_billing_credits_the_rest_of_the_period_on_the_final_invoice(tenant):
    k = yen(tenant)
    on_plan = h.plan(40 * k)
    who, sub = h.customer_on(on_plan, MAY_1, tenant.country)
    h.run("2026-05", MAY_1)
    (may_line,) = h.lines(h.the_invoice(who, MAY_1), CHARGE)
    h.terminate(sub, datetime.date(2026, 5, 21))  # [21 May, 1 Jun) = 11 days
    h.run("2026-06", JUNE_1)
    final = h.the_invoice(who, JUNE_1)
    assert [line.kind for line in h.lines(final)] == [CREDIT]
    (credit,) = h.lines(final, CREDIT)
    assert credit.amount == q6(-Fraction(40 * k) * Fraction(11, 31))  # -14.193548
    assert credit.credits_line_id == may_line.id
    # nothing more to bill afterwards
    run = h.run("2026-07", JULY_1)
    assert run.invoices_issued == 0
    assert {"customer": who.id, "reason": "nothing to bill"} in run.report["skipped"]


@pytest.mark.behavior
def test_suspended_days_are_billed_by_default(tenant):
    k = yen(tenant)
    on_plan = h.plan(40 * k)
    who, sub = h.customer_on(on_plan, MAY_1, tenant.country)
    assert tenant.bill_during_suspension is True
    h.suspend(sub, datetime.date(2026, 5, 10))
    h.run("2026-05", MAY_1)
    h.run("2026-06", JUNE_1)
    assert [c.amount for inv in h.invoices_of(who) for c in h.lines(inv, CHARGE)] == [D(40 * k), D(40 * k)]
    assert not InvoiceLine.objects.filter(kind=CREDIT).exists()


@pytest.mark.behavior
def test_suspended_days_are_excluded_when_the_tenant_does_not_bill_them(tenant):
    k = yen(tenant)
    h.set_tenant_terms(tenant, bill_during_suspension=False)
    on_plan = h.plan(40 * k)
    who, sub = h.customer_on(on_plan, MAY_1, tenant.country)
    h.suspend(sub, datetime.date(2026, 5, 10))
    h.reactivate(sub, datetime.date(2026, 5, 20))
    h.run("2026-05", MAY_1)
    # [1, 10) = 9 days and [20, 1 Jun) = 12 days of 31
    charges = h.lines(h.the_invoice(who), CHARGE)
    assert [(c.service_start.day, c.billable_days, c.amount) for c in charges] == [
        (1, 9, q6(Fraction(40 * k) * Fraction(9, 31))),  # 11.612903
        (20, 12, q6(Fraction(40 * k) * Fraction(12, 31))),  # 15.483871
    ]


@pytest.mark.behavior
def test_suspension_after_billing_credits_the_suspended_days_when_not_billed(tenant):
    k = yen(tenant)
    h.set_tenant_terms(tenant, bill_during_suspension=False)
    on_plan = h.plan(40 * k)
    who, sub = h.customer_on(on_plan, MAY_1, tenant.country)
    h.run("2026-05", MAY_1)
    h.suspend(sub, datetime.date(2026, 5, 25))  # [25 May, 1 Jun) = 7 days
    h.run("2026-06", JUNE_1)
    june = h.the_invoice(who, JUNE_1)
    assert [(line.kind, line.amount) for line in h.lines(june)] == [
        (CREDIT, q6(-Fraction(40 * k) * Fraction(7, 31)))  # -9.032258; nothing for June: suspended
    ]
    h.reactivate(sub, datetime.date(2026, 6, 10))  # [10 Jun, 1 Jul) = 21 of 30 days
    h.run("2026-07", JULY_1)
    july = h.the_invoice(who, JULY_1)
    assert [(c.period_start, c.amount) for c in h.lines(july, CHARGE)] == [
        (JUNE_1, q6(Fraction(40 * k) * Fraction(21, 30))),
        (JULY_1, D(40 * k)),
    ]


# === 3. taxes ==================================================================================
@pytest.mark.behavior
def test_exclusive_taxes_with_a_compound_tax_on_taxable_plus_non_compound_taxes(us):
    state = h.tax_rate("0.040000", country="US", region="US-NY", name="NY state")
    local = h.tax_rate("0.045000", country="US", region="US-NY", locality="NYC", name="NYC local")
    surcharge = h.tax_rate("0.010000", country="US", compound=True, name="Telecom surcharge")
    who, _ = h.customer_on(h.plan("33.33"), MAY_1, "US")
    h.run("2026-05", MAY_1)
    invoice = h.the_invoice(who)
    (charge,) = h.lines(invoice, CHARGE)
    # state 33.33 * 0.04 = 1.3332; local 33.33 * 0.045 = 1.49985;
    # compound (33.33 + 1.3332 + 1.49985) * 0.01 = 0.3616305 -> 0.361631 (half-up)
    assert h.taxes_of_line(charge) == {
        state.name: D("1.333200"),
        local.name: D("1.499850"),
        surcharge.name: D("0.361631"),
    }
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (D("33.33"), D("3.194681"), D("36.524681"))
    assert (invoice.amount_due, invoice.rounding_adjustment) == (D("36.52"), D("-0.004681"))


@pytest.mark.behavior
def test_inclusive_vat_net_is_gross_over_one_plus_rates_and_parts_add_up(eu):
    vat = h.tax_rate("0.190000", country="DE", name="USt 19%")
    who, _ = h.customer_on(h.plan("29.99"), MAY_1, "DE")
    h.run("2026-05", MAY_1)
    invoice = h.the_invoice(who)
    # net = 29.99 / 1.19 = 25.2016806.. -> 25.201681; tax = 29.99 - 25.201681 = 4.788319
    assert h.taxes_of_line(h.lines(invoice, CHARGE)[0]) == {vat.name: D("4.788319")}
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (D("25.201681"), D("4.788319"), D("29.99"))
    assert invoice.amount_due == D("29.99")
    assert invoice.rounding_adjustment == 0


@pytest.mark.behavior
def test_inclusive_tax_split_across_two_rates_last_takes_the_remainder(eu):
    first = h.tax_rate("0.190000", country="DE", name="A 19%")
    last = h.tax_rate("0.020000", country="DE", region="DE-NW", name="B 2%")
    who, _ = h.customer_on(h.plan("29.99"), MAY_1, "DE")
    h.run("2026-05", MAY_1)
    invoice = h.the_invoice(who)
    # net = 29.99 / 1.21 = 24.78512.. -> 24.785124; tax = 5.204876
    # A: 5.204876 * 0.19 / 0.21 = 4.7091734.. -> 4.709174; B (last) = 5.204876 - 4.709174 = 0.495702
    assert h.taxes_of_line(h.lines(invoice, CHARGE)[0]) == {first.name: D("4.709174"), last.name: D("0.495702")}
    assert invoice.subtotal == D("24.785124")
    assert invoice.tax_total == D("5.204876")
    assert invoice.subtotal + invoice.tax_total == invoice.total == D("29.99")


@pytest.mark.behavior
def test_a_compound_tax_on_a_tax_inclusive_tenant_is_refused(eu):
    h.tax_rate("0.190000", country="DE")
    h.tax_rate("0.010000", country="DE", compound=True)
    h.customer_on(h.plan("29.99"), MAY_1, "DE")
    with pytest.raises(CompoundTaxOnInclusiveTenant):
        h.run("2026-05", MAY_1)
    assert not Invoice.objects.exists()


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("certificate", "until", "exempt"),
    [
        ("EX-1", None, True),  # no expiry
        ("EX-2", MAY_1, True),  # valid through the period's first day (expiry date included)
        ("EX-3", datetime.date(2026, 4, 30), False),  # expired the day before the period starts
        ("", datetime.date(2027, 1, 1), False),  # a date without a certificate exempts nothing
    ],
)
def test_tax_exemption_is_judged_on_the_periods_first_day(tenant, certificate, until, exempt):
    h.tax_rate("0.100000", country=tenant.country)
    who, _ = h.customer_on(
        h.plan(50 * yen(tenant)), MAY_1, tenant.country, tax_exempt_certificate=certificate, tax_exempt_until=until
    )
    h.run("2026-05", MAY_1)
    invoice = h.the_invoice(who)
    assert (invoice.tax_total == 0) is exempt
    assert InvoiceTax.objects.filter(invoice=invoice).exists() is not exempt


@pytest.mark.behavior
def test_rates_match_the_service_address_at_country_region_and_locality_level(us):
    h.tax_rate("0.010000", country="US", name="country")
    h.tax_rate("0.020000", country="US", region="US-NY", name="NY")
    h.tax_rate("0.030000", country="US", region="US-CA", name="CA")
    h.tax_rate("0.040000", country="US", region="US-NY", locality="NYC", name="NYC")
    h.tax_rate("0.050000", country="US", region="US-NY", locality="BUFFALO", name="Buffalo")
    h.tax_rate("0.060000", country="CA", name="Canada")
    h.tax_rate("0.070000", country="US", valid_from=datetime.date(2026, 5, 2), name="not yet")
    h.tax_rate("0.080000", country="US", valid_until=MAY_1, name="expired")
    h.tax_rate("0.001000", country="US", valid_from=APRIL_1, valid_until=datetime.date(2026, 5, 2), name="last day")
    on_plan = h.plan("100.00")
    nyc, _ = h.customer_on(on_plan, MAY_1, "US", region="US-NY", locality="NYC")
    albany, _ = h.customer_on(on_plan, MAY_1, "US", region="US-NY", locality="ALBANY")
    texas, _ = h.customer_on(on_plan, MAY_1, "US", region="US-TX", locality="NYC")
    h.run("2026-05", MAY_1)

    def names(who):
        return set(h.taxes_of_line(h.lines(h.the_invoice(who), CHARGE)[0]))

    assert names(nyc) == {"country", "NY", "NYC", "last day"}
    assert names(albany) == {"country", "NY", "last day"}
    assert names(texas) == {"country", "last day"}  # a locality rate needs its region too
    assert h.the_invoice(nyc).tax_total == D("7.100000")  # 1 + 2 + 4 + 0.1


@pytest.mark.behavior
def test_a_rate_taxes_only_its_categories(us):
    service_only = h.tax_rate("0.100000", country="US", categories=["service"], name="service only")
    usage_only = h.tax_rate("0.050000", country="US", categories=["usage"], name="usage only")
    on_plan = h.plan("50.00", setup_fee="20.00", included_gb=100, overage="1.00")
    who, sub = h.customer_on(on_plan, MAY_1, "US")
    h.run("2026-05", MAY_1)
    h.usage(sub, datetime.date(2026, 5, 5), 110 * 10**9)  # 10 GB above the allowance
    h.run("2026-06", JUNE_1)
    may, june = h.invoices_of(who)
    (fee,) = h.lines(may, FEE)
    assert fee.category == "fee"
    assert h.taxes_of_line(fee) == {}
    assert h.taxes_of_line(h.lines(may, CHARGE)[0]) == {service_only.name: D("5.000000")}
    (usage_line,) = h.lines(june, USAGE)
    assert h.taxes_of_line(usage_line) == {usage_only.name: D("0.500000")}
    assert may.tax_total == D("5.000000")
    assert may.total == D("75.000000")


@pytest.mark.behavior
def test_credit_lines_are_taxed_negatively(tenant):
    h.tax_rate("0.100000", country=tenant.country, name="ten")
    k = yen(tenant)
    who, sub = h.customer_on(h.plan(40 * k), MAY_1, tenant.country)
    h.run("2026-05", MAY_1)
    h.terminate(sub, datetime.date(2026, 5, 21))
    h.run("2026-06", JUNE_1)
    final = h.the_invoice(who, JUNE_1)
    (credit,) = h.lines(final, CREDIT)
    credit_tax = h.taxes_of_line(credit)["ten"]
    assert credit_tax < 0
    if tenant.tax_inclusive:  # the credit is gross: net = gross / 1.1
        net = q6(Fraction(credit.amount) / Fraction("1.1"))
        assert credit_tax == credit.amount - net
        assert final.total == credit.amount
    else:
        assert credit_tax == q6(Fraction(credit.amount) / 10)  # -14.193548 * 0.1 -> -1.419355
        assert final.total == credit.amount + credit_tax
    h.check_invoice_arithmetic(final)


@pytest.mark.behavior
def test_zero_decimal_currency_rounds_amount_due_and_keeps_the_exact_total(jp):
    assert jp.currency == "JPY"
    h.tax_rate("0.100000", country="JP", name="consumption tax")
    who, _ = h.customer_on(h.plan("4980"), datetime.date(2026, 4, 10), "JP")
    h.run("2026-04", APRIL_1)
    invoice = h.the_invoice(who)
    # 4980 * 21/30 = 3486; tax 348.6; total 3834.6 (exact at 6 places); due 3835 yen
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (D("3486"), D("348.6"), D("3834.6"))
    assert invoice.amount_due == D("3835")
    assert invoice.rounding_adjustment == D("0.4")
    assert invoice.amount_due == invoice.amount_due.to_integral_value()


# === 4. discounts ==============================================================================
@pytest.mark.behavior
def test_percent_discounts_apply_first_then_fixed_ones_prorated(tenant):
    k = yen(tenant)
    who, _ = h.customer_on(h.plan(60 * k), datetime.date(2026, 4, 10), tenant.country)
    fixed = h.discount("fixed", 10 * k, for_customer=who, priority=1)  # priority does not beat "percent first"
    percent = h.discount("percent", "20", for_customer=who, priority=5)
    h.run("2026-04", APRIL_1)
    invoice = h.the_invoice(who)
    (charge,) = h.lines(invoice, CHARGE)
    # 60 * 21/30 = 42; 20 % of 42 = 8.40 -> 33.60; fixed 10 * 21/30 = 7.00 -> 26.60
    assert charge.amount == D(42 * k)
    assert [(d.discount_id, d.amount, d.applies_to_id) for d in h.lines(invoice, DISCOUNT)] == [
        (percent.id, -D("8.4") * k, charge.id),
        (fixed.id, -D(7 * k), charge.id),
    ]
    assert charge.net_amount == D("26.6") * k


@pytest.mark.behavior
def test_a_non_stackable_discount_applies_alone_the_largest_reduction_wins(us):
    who, _ = h.customer_on(h.plan("60.00"), MAY_1, "US")
    h.discount("percent", "10", for_customer=who, stackable=False)  # 6.00
    best = h.discount("fixed", "8.00", for_customer=who, stackable=False)  # 8.00
    h.discount("percent", "5", for_customer=who)  # stackable, but one non-stackable is eligible
    h.run("2026-05", MAY_1)
    assert [(d.discount_id, d.amount) for d in h.lines(h.the_invoice(who), DISCOUNT)] == [(best.id, D("-8.00"))]


@pytest.mark.behavior
def test_non_stackable_ties_go_to_the_lowest_id(us):
    who, _ = h.customer_on(h.plan("60.00"), MAY_1, "US")
    first = h.discount("percent", "10", for_customer=who, stackable=False, priority=9)  # 6.00
    h.discount("fixed", "6.00", for_customer=who, stackable=False, priority=1)  # 6.00, higher id
    h.run("2026-05", MAY_1)
    assert [(d.discount_id, d.amount) for d in h.lines(h.the_invoice(who), DISCOUNT)] == [(first.id, D("-6.00"))]


@pytest.mark.behavior
def test_a_discount_for_n_periods_counts_a_partial_first_period_as_one(tenant):
    k = yen(tenant)
    who, _ = h.customer_on(h.plan(60 * k), datetime.date(2026, 4, 10), tenant.country)
    half = h.discount("percent", "50", for_customer=who, periods=2)
    for label, issue in (("2026-04", APRIL_1), ("2026-05", MAY_1), ("2026-06", JUNE_1)):
        h.run(label, issue)
    per_period = {
        inv.period_start: [d.amount for d in h.lines(inv, DISCOUNT) if d.discount_id == half.id]
        for inv in h.invoices_of(who)
    }
    assert per_period == {
        APRIL_1: [-D(21 * k)],  # period 1 (partial): 42 -> 50 %
        MAY_1: [-D(30 * k)],  # period 2
        JUNE_1: [],  # period 3: over
    }


@pytest.mark.behavior
def test_discounts_never_take_a_line_below_zero(us):
    who, _ = h.customer_on(h.plan("30.00"), MAY_1, "US")
    h.tax_rate("0.100000", country="US")
    h.discount("percent", "50", for_customer=who)
    h.discount("fixed", "100.00", for_customer=who)
    h.run("2026-05", MAY_1)
    invoice = h.the_invoice(who)
    (charge,) = h.lines(invoice, CHARGE)
    assert [d.amount for d in h.lines(invoice, DISCOUNT)] == [D("-15.00"), D("-15.00")]
    assert charge.net_amount == 0
    assert invoice.total == 0
    assert invoice.tax_total == 0


@pytest.mark.behavior
def test_discounts_never_apply_to_usage_fees_or_credits(tenant):
    k = yen(tenant)
    on_plan = h.plan(40 * k, setup_fee=99 * k, included_gb=100, overage=2 * k)
    who, sub = h.customer_on(on_plan, MAY_1, tenant.country)
    h.discount("percent", "50", for_customer=who)
    h.discount("fixed", 5 * k, for_customer=who)
    h.run("2026-05", MAY_1)
    may = h.the_invoice(who, MAY_1)
    assert [line.amount for line in h.lines(may, FEE)] == [D(99 * k)]
    (charge,) = h.lines(may, CHARGE)
    assert charge.net_amount == D(15 * k)  # 40 - 20 - 5
    h.usage(sub, datetime.date(2026, 5, 3), 103 * 10**9)  # 3 GB over
    h.terminate(sub, datetime.date(2026, 5, 21))  # credit 11 days of the discounted line
    h.run("2026-06", JUNE_1)
    june = h.the_invoice(who, JUNE_1)
    assert [line.amount for line in h.lines(june, USAGE)] == [D(6 * k)]
    (credit,) = h.lines(june, CREDIT)
    assert credit.amount == q6(-Fraction(15 * k) * Fraction(11, 31))  # not discounted again
    assert h.lines(june, DISCOUNT) == []
    assert all(d.applies_to.kind == CHARGE for inv in h.invoices_of(who) for d in h.lines(inv, DISCOUNT))


@pytest.mark.behavior
def test_a_plan_discount_applies_only_to_that_plans_lines(us):
    basic, premium = h.plan("40.00"), h.plan("80.00")
    promo = h.discount("percent", "25", for_plan=basic)
    who, sub = h.customer_on(basic, MAY_1, "US")
    h.discount("percent", "25", for_customer=who)  # another discount, same figure: counted on its own
    h.change_plan(sub, premium, datetime.date(2026, 5, 16))  # [16 May, 1 Jun) on premium: 16/31
    h.run("2026-05", MAY_1)
    invoice = h.the_invoice(who)
    charges = {c.plan_id: c for c in h.lines(invoice, CHARGE)}
    discounts_of = {
        plan_id: sorted(d.discount_id for d in h.lines(invoice, DISCOUNT) if d.applies_to_id == c.id)
        for plan_id, c in charges.items()
    }
    assert promo.id in discounts_of[basic.id]
    assert promo.id not in discounts_of[premium.id]
    assert len(discounts_of[premium.id]) == 1


@pytest.mark.behavior
def test_discount_validity_is_judged_on_the_lines_first_service_day(us):
    who, _ = h.customer_on(h.plan("30.00"), datetime.date(2026, 4, 10), "US")
    h.discount("percent", "10", for_customer=who, valid_from=datetime.date(2026, 4, 15))  # starts after 10 Apr
    h.discount("fixed", "3.00", for_customer=who, valid_until=datetime.date(2026, 4, 11))  # valid on 10 Apr
    h.run("2026-04", APRIL_1)
    assert [d.amount for d in h.lines(h.the_invoice(who), DISCOUNT)] == [D("-2.10")]  # 3.00 * 21/30


# === 5. fees, usage, credit balance, numbering, due date =======================================
@pytest.mark.behavior
def test_setup_fee_is_billed_once_on_the_first_invoice(tenant):
    k = yen(tenant)
    who, _ = h.customer_on(h.plan(40 * k, setup_fee=99 * k), datetime.date(2026, 4, 10), tenant.country)
    for label, issue in (("2026-04", APRIL_1), ("2026-05", MAY_1), ("2026-06", JUNE_1)):
        h.run(label, issue)
    fees = [[line.amount for line in h.lines(inv, FEE)] for inv in h.invoices_of(who)]
    assert fees == [[D(99 * k)], [], []]


@pytest.mark.behavior
def test_usage_above_the_allowance_is_billed_in_arrears_once(tenant):
    k = yen(tenant)
    on_plan = h.plan(40 * k, included_gb=300, overage=D("0.25") * k)
    who, sub = h.customer_on(on_plan, MAY_1, tenant.country)
    h.run("2026-05", MAY_1)
    assert h.lines(h.the_invoice(who, MAY_1), USAGE) == []  # arrears: nothing used yet
    h.usage(sub, datetime.date(2026, 5, 2), 200 * 10**9, 12 * 10**9)
    h.usage(sub, datetime.date(2026, 5, 31), 90 * 10**9, 10_500_000_000)  # 312.5 GB in May
    h.usage(sub, datetime.date(2026, 6, 1), 500 * 10**9)  # June: billed with July
    h.run("2026-06", JUNE_1)
    (line,) = h.lines(h.the_invoice(who, JUNE_1), USAGE)
    # (312.5 - 300) GB * 0.25 = 3.125
    assert line.quantity == D("12.5")
    assert line.amount == q6(Fraction("12.5") * Fraction(D("0.25") * k))
    assert (line.period_start, line.period_end, line.category) == (MAY_1, JUNE_1, "usage")
    h.run("2026-07", JULY_1)
    july_usage = h.lines(h.the_invoice(who, JULY_1), USAGE)
    assert [(u.period_start, u.quantity) for u in july_usage] == [(JUNE_1, D("200"))]  # May not again


@pytest.mark.behavior
def test_an_older_period_run_after_a_newer_one_never_bills_usage_twice(us):
    basic = h.plan("40.00", included_gb=100, overage="1.00")
    plus = h.plan("50.00", included_gb=100, overage="1.00")
    who, sub = h.customer_on(basic, APRIL_1, "US")
    h.usage(sub, datetime.date(2026, 5, 10), 110 * 10**9)  # 10 GB over in May
    h.run("2026-06", JUNE_1)  # April, May, June; usage of April (none over) and May
    h.change_plan(sub, plus, datetime.date(2026, 4, 15))  # back-dated, recorded after the run
    h.run("2026-05", MAY_1)  # an older period, run late: it reconciles the plan change
    h.run("2026-07", JULY_1)
    usage_lines = [(u.period_start, u.quantity) for inv in h.invoices_of(who) for u in h.lines(inv, USAGE)]
    assert usage_lines == [(MAY_1, D("10"))]
    may_invoice = h.the_invoice(who, MAY_1)
    assert h.lines(may_invoice, CREDIT)  # the reconciliation went on the late run's invoice


@pytest.mark.behavior
def test_a_change_committed_while_its_subscription_is_being_billed_is_reconciled_next_run(us, monkeypatch):
    """A back-dated plan change recorded after a batch read its facts (as a concurrent staff edit
    would be) is unseen by that batch; the next run must still reconcile every period it touches."""
    basic, plus = h.plan("40.00"), h.plan("50.00")
    who, sub = h.customer_on(basic, MAY_1, "US")
    h.run("2026-05", MAY_1)
    h.run("2026-06", JUNE_1)
    real_load = services.selectors.load_batch

    def load_then_change(*args, **kwargs):
        facts = real_load(*args, **kwargs)
        if not Subscription.objects.get(pk=sub.pk).plan_changes.filter(to_plan=plus).exists():
            h.change_plan(sub, plus, datetime.date(2026, 5, 20))  # while the July batch is running
        return facts

    monkeypatch.setattr(services.selectors, "load_batch", load_then_change)
    h.run("2026-07", JULY_1)
    monkeypatch.setattr(services.selectors, "load_batch", real_load)
    assert [c.plan_id for c in h.lines(h.the_invoice(who, JULY_1), CHARGE)] == [basic.id]  # unseen then
    h.run("2026-08", datetime.date(2026, 8, 1))
    august = h.the_invoice(who, datetime.date(2026, 8, 1))
    credits = sorted((c.service_start, c.service_end, c.amount) for c in h.lines(august, CREDIT))
    assert credits == [
        (datetime.date(2026, 5, 20), JUNE_1, q6(-Fraction(40) * Fraction(12, 31))),  # May, 12 of 31 days
        (JUNE_1, JULY_1, D("-40")),
        (JULY_1, datetime.date(2026, 8, 1), D("-40")),
    ]
    charges = sorted((c.period_start, c.plan_id, c.amount) for c in h.lines(august, CHARGE))
    assert charges == [
        (MAY_1, plus.id, q6(Fraction(50) * Fraction(12, 31))),
        (JUNE_1, plus.id, D("50")),
        (JULY_1, plus.id, D("50")),
        (datetime.date(2026, 8, 1), plus.id, D("50")),
    ]


@pytest.mark.behavior
def test_credit_balance_pays_new_invoices_never_below_zero(tenant):
    k = yen(tenant)
    on_plan = h.plan(40 * k)
    small, _ = h.customer_on(on_plan, MAY_1, tenant.country)
    large, _ = h.customer_on(on_plan, MAY_1, tenant.country)
    balance_add(customer_id=small.id, amount=D(10 * k), reason="overpayment")
    balance_add(customer_id=large.id, amount=D(100 * k), reason="overpayment")
    h.run("2026-05", MAY_1)
    small_invoice, large_invoice = h.the_invoice(small), h.the_invoice(large)
    assert small_invoice.credit_applied == D(10 * k)
    assert credit_of(small.id) == 0
    assert small_invoice.balance_due == D(30 * k)
    assert large_invoice.credit_applied == D(40 * k)
    assert credit_of(large.id) == D(60 * k)
    assert large_invoice.balance_due == 0
    assert large_invoice.status == Invoice.Status.PAID
    assert BalanceMovement.objects.filter(invoice=large_invoice, amount=-D(40 * k)).exists()
    # each use of credit is audited on its invoice, in the run's transaction
    applied = {
        e.object_id: e
        for e in AuditEvent.objects.filter(
            action="invoice.credit_applied", object_id__in=[str(small_invoice.pk), str(large_invoice.pk)]
        )
    }
    assert applied[str(small_invoice.pk)].changed_fields == ["credit_applied", "credit_balance"]
    assert applied[str(large_invoice.pk)].changed_fields == ["credit_applied", "credit_balance", "status"]
    assert (
        applied[str(large_invoice.pk)].reason
        == f"{large_invoice.number}: {large_invoice.credit_applied} of credit applied"
    )


@pytest.mark.behavior
def test_a_negative_invoice_goes_to_the_credit_balance(us):
    who, sub = h.customer_on(h.plan("40.00"), MAY_1, "US")
    h.run("2026-05", MAY_1)
    h.terminate(sub, datetime.date(2026, 5, 21))
    h.run("2026-06", JUNE_1)
    final = h.the_invoice(who, JUNE_1)
    assert final.amount_due == D("-14.19")
    assert final.credit_applied == 0
    assert credit_of(who.id) == D("14.19")
    added = AuditEvent.objects.get(action="invoice.credit_added", object_id=str(final.pk))
    assert added.reason == f"{final.number}: 14.19 to credit"


@pytest.mark.behavior
def test_invoice_numbers_are_per_year_sequential_gap_free_and_due_after_the_terms(tenant):
    h.set_tenant_terms(tenant, payment_terms_days=30)
    on_plan = h.plan(40 * yen(tenant))
    customers = [h.customer_on(on_plan, MAY_1, tenant.country)[0] for _ in range(5)]
    h.run("2026-05", MAY_1, batch_size=2)
    h.run("2026-12", datetime.date(2026, 12, 1), batch_size=3)
    h.run("2027-01", datetime.date(2027, 1, 1), batch_size=2)
    h.check_numbers_gap_free(2026, 10)
    h.check_numbers_gap_free(2027, 5)
    may = sorted(Invoice.objects.filter(period_start=MAY_1), key=lambda i: i.customer_id)
    assert [i.number for i in may] == [f"INV-2026-{n:06d}" for n in range(1, 6)]
    assert [i.customer_id for i in may] == sorted(c.id for c in customers)
    assert {i.due_date for i in Invoice.objects.filter(issue_date=MAY_1)} == {datetime.date(2026, 5, 31)}
    assert {i.due_date for i in Invoice.objects.filter(issue_date=datetime.date(2027, 1, 1))} == {
        datetime.date(2027, 1, 31)
    }


@pytest.mark.behavior
def test_the_same_run_twice_issues_nothing_the_second_time(tenant):
    on_plan = h.plan(40 * yen(tenant))
    customers = [h.customer_on(on_plan, MAY_1, tenant.country)[0] for _ in range(3)]
    first = h.run("2026-05", MAY_1)
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    second = h.run("2026-05", MAY_1)
    assert (first.invoices_issued, second.invoices_issued) == (3, 0)
    assert second.invoices_skipped == 3
    assert second.total_amount == 0
    assert {s["reason"] for s in second.report["skipped"]} == {"already invoiced for this period"}
    assert sorted(Invoice.objects.values_list("number", flat=True)) == numbers
    assert Counter(Invoice.objects.values_list("customer_id", flat=True)) == {c.id: 1 for c in customers}


# === 6. one bad customer =======================================================================
@pytest.mark.behavior
def test_a_customer_whose_drafting_fails_is_reported_and_skipped(tenant, monkeypatch):
    on_plan = h.plan(40 * yen(tenant))
    customers = [h.customer_on(on_plan, MAY_1, tenant.country)[0] for _ in range(4)]
    bad = customers[1]
    real = services.draft_invoice

    def draft_or_fail(customer_id, *args, **kwargs):
        if customer_id == bad.id:
            raise RuntimeError("plan history does not make sense")
        return real(customer_id, *args, **kwargs)

    monkeypatch.setattr(services, "draft_invoice", draft_or_fail)
    run = h.run("2026-05", MAY_1, batch_size=2)
    assert run.invoices_issued == 3
    assert run.customers_failed == 1
    assert run.report["failed"] == [{"customer": bad.id, "reason": "RuntimeError: plan history does not make sense"}]
    assert not Invoice.objects.filter(customer=bad).exists()
    assert not InvoiceLine.objects.filter(subscription__customer=bad).exists()
    h.check_numbers_gap_free(2026, 3)
    monkeypatch.setattr(services, "draft_invoice", real)
    again = h.run("2026-05", MAY_1)
    assert again.invoices_issued == 1
    assert h.the_invoice(bad).number == "INV-2026-000004"


@pytest.mark.behavior
def test_a_customer_the_database_refuses_is_reported_and_the_others_are_invoiced(us):
    # A metering glitch: 9 * 10^9 GB at 50,000 per GB does not fit numeric(20, 6).
    on_plan = h.plan("40.00", included_gb=100, overage="50000")
    customers = [h.customer_on(on_plan, MAY_1, "US") for _ in range(3)]
    h.run("2026-05", MAY_1)
    bad, bad_sub = customers[1]
    h.usage(bad_sub, datetime.date(2026, 5, 9), 9 * 10**18)
    run = h.run("2026-06", JUNE_1)
    assert run.invoices_issued == 2
    assert run.customers_failed == 1
    (failure,) = run.report["failed"]
    assert failure["customer"] == bad.id
    assert "numeric field overflow" in failure["reason"]
    assert not Invoice.objects.filter(customer=bad, period_start=JUNE_1).exists()
    h.check_numbers_gap_free(2026, 5)
    for invoice in Invoice.objects.all():
        h.check_invoice_arithmetic(invoice)


# === 7. independent recomputation of a whole run ===============================================
def _mixed_book(tenant) -> None:
    """A dozen customers with most features: proration, discounts, 2-3 taxes, usage, fees,
    a plan change, a termination."""
    k = yen(tenant)
    country = tenant.country
    region = h.ADDRESSES[country]["region"]
    h.tax_rate("0.062500", country=country, region=region, name="state")
    h.tax_rate("0.022500", country=country, region=region, locality=h.ADDRESSES[country]["locality"], name="local")
    if not tenant.tax_inclusive:
        h.tax_rate("0.003750", country=country, compound=True, categories=["service"], name="surcharge")
    plans = [
        h.plan(D("29.99") * k, included_gb=300, overage=D("0.25") * k),
        h.plan(D("49.99") * k, setup_fee=49 * k, included_gb=500, overage=D("0.10") * k),
        h.plan(D("79.333333") * k),
    ]
    subs = []
    for i in range(12):
        activated = datetime.date(2026, 4, 1 + (i * 7) % 28)
        who, sub = h.customer_on(plans[i % 3], activated, country, billing_day=(None if i % 4 else 5))
        subs.append(sub)
        if i % 2:
            h.discount("percent", 10 + i, for_customer=who, periods=3 if i % 3 else None)
        if i % 3 == 0:
            h.discount("fixed", D("3.50") * k, for_customer=who, stackable=i % 6 != 0)
        h.usage(sub, activated, (250 + 17 * i) * 10**9, 33_333_333_333)
    h.discount("percent", "7.5", for_plan=plans[2])
    h.run("2026-04", APRIL_1)
    h.change_plan(subs[0], plans[2], datetime.date(2026, 4, 20))
    h.terminate(subs[4], datetime.date(2026, 4, 27))
    h.suspend(subs[5], datetime.date(2026, 4, 28))


@pytest.mark.behavior
def test_every_invoice_of_a_run_equals_the_sum_of_its_stored_lines_and_taxes(tenant):
    _mixed_book(tenant)
    h.run("2026-05", MAY_1, batch_size=5)
    invoices = list(Invoice.objects.all())
    assert len(invoices) >= 20
    for invoice in invoices:
        h.check_invoice_arithmetic(invoice)
        _check_taxes_recomputed(invoice)
    runs = list(BillingRun.objects.all())
    assert sum(r.invoices_issued for r in runs) == len(invoices)
    assert sum((r.total_amount for r in runs), Decimal(0)) == sum((i.amount_due for i in invoices), Decimal(0))


def _check_taxes_recomputed(invoice: Invoice) -> None:
    """Every tax row recomputed from its group's stored amounts and the rates (section 6)."""
    stored = h.lines(invoice)
    group_amount: dict[int, Decimal] = {}
    for line in stored:
        head = line.applies_to_id if line.kind == DISCOUNT else line.id
        group_amount[head] = group_amount.get(head, Decimal(0)) + line.amount
    rows: dict[int, list[InvoiceTax]] = {}
    for row in h.taxes(invoice):
        rows.setdefault(row.line_id, []).append(row)
    for head, amount in group_amount.items():
        group_rows = sorted(rows.get(head, []), key=lambda r: r.tax_rate_id)
        if not group_rows:
            continue
        if invoice.tax_inclusive:
            total_rate = sum((Fraction(r.rate) for r in group_rows), Fraction(0))
            tax_part = amount - q6(Fraction(amount) / (1 + total_rate))
            expected = [q6(Fraction(tax_part) * Fraction(r.rate) / total_rate) for r in group_rows[:-1]]
            expected.append(tax_part - sum(expected, Decimal(0)))
        else:
            simple = [q6(Fraction(amount) * Fraction(r.rate)) for r in group_rows if not r.tax_rate.compound]
            base = Fraction(amount) + sum((Fraction(x) for x in simple), Fraction(0))
            by_rate = iter(simple)
            expected = [q6(base * Fraction(r.rate)) if r.tax_rate.compound else next(by_rate) for r in group_rows]
        assert [r.amount for r in group_rows] == expected, f"{invoice.number} line {head}"


# === 8. processes: concurrent runs, a killed run ===============================================
@pytest.fixture
def committed_tenant(django_db_setup, django_db_blocker):
    """A throwaway tenant with committed customers (other processes see them: no `db` fixture,
    no transaction around the test); dropped afterwards."""
    from django.conf import settings as django_settings

    from tenants.services import tenant_create

    name = django_settings.DATABASES["default"]["NAME"]
    assert name.startswith("test_"), f"refusing to commit test data to database {name!r}"

    made = []

    def make(customers: int):
        slug = f"rp-{secrets.token_hex(3)}"
        tenant = tenant_create(
            slug=slug,
            name=f"Revenue {slug}",
            currency="USD",
            country="US",
            admin_email=f"o@{slug}.example",
            actor=h.ACTOR,
        ).tenant
        made.append(tenant)
        connection.set_tenant(tenant)
        h.tax_rate("0.040000", country="US", region="US-NY", name="state")
        h.tax_rate("0.045000", country="US", region="US-NY", locality="NYC", name="local")
        plans = [h.plan("39.99", setup_fee="25.00"), h.plan("59.99")]
        for i in range(customers):
            who, _ = h.customer_on(plans[i % 2], datetime.date(2026, 4, 1 + i % 28), "US")
            if i % 3 == 0:
                h.discount("percent", "15", for_customer=who, periods=2)
        return tenant

    with django_db_blocker.unblock():
        try:
            yield make
        finally:
            problems = [p for tenant in made for p in h.tenant_drop(tenant)]
            connection.set_schema_to_public()
            assert not problems, problems


def _check_run_outcome(tenant, customers: int) -> None:
    connection.set_tenant(tenant)
    per_customer = Counter(Invoice.objects.filter(period_start=MAY_1).values_list("customer_id", flat=True))
    assert len(per_customer) == customers, per_customer
    assert set(per_customer.values()) == {1}, per_customer
    h.check_numbers_gap_free(2026, customers)
    for invoice in Invoice.objects.all():
        h.check_invoice_arithmetic(invoice)


def _run_billing(tenant, batch_size: int, log: Path):
    ARTIFACTS.mkdir(exist_ok=True)
    return h.manage_process(
        "run_billing",
        "--tenant",
        tenant.slug,
        "--period",
        "2026-05",
        "--issue-date",
        "2026-05-01",
        "--batch-size",
        str(batch_size),
        "--no-progress",
        log_path=log,
    )


def _wait(processes, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.wait(timeout=max(1, deadline - time.monotonic()))


def _holder(statement, params):
    """Another connection with an open transaction that has run `statement` (and so holds its
    locks until rolled back)."""
    import psycopg

    from compliance.pii.keystore import _default_conninfo

    holder = psycopg.connect(_default_conninfo(dbname_suffix=""))
    holder.execute(statement, params)
    return holder


def _waiting_on_a_lock(query_part: str) -> int:
    """Backends of this database waiting on a lock in a statement that names `query_part`
    (asked on the autocommit Django connection: pg_stat_activity is a snapshot per transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE %s",
            [f"%{query_part}%"],
        )
        return cursor.fetchone()[0]


def _until(condition, processes, logs, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for process, log in zip(processes, logs, strict=True):
            assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


@pytest.mark.behavior
@pytest.mark.data_safety
@pytest.mark.integration
class TestRunsInOtherProcesses:
    """`manage.py run_billing` processes on a throwaway tenant with committed data."""

    def test_concurrent_runs_of_one_period_invoice_each_customer_once_gap_free(self, committed_tenant):
        from psycopg import sql

        customers = 30
        tenant = committed_tenant(customers)
        first_customer = min(services.selectors.billable_customer_ids())
        # a start line: every process queues on the first customer's row lock, then all go at once
        gate = _holder(
            sql.SQL("SELECT id FROM {}.customers_customer WHERE id = %s FOR UPDATE").format(
                sql.Identifier(tenant.schema_name)
            ),
            [first_customer],
        )
        logs = [ARTIFACTS / f"rp-concurrent-{tenant.slug}-{i}.log" for i in range(4)]
        processes = [_run_billing(tenant, size, log) for size, log in zip((4, 7, 4, 30), logs, strict=True)]
        try:
            _until(lambda: _waiting_on_a_lock("customers_customer") == 4, processes, logs, "4 runs are queued")
            gate.rollback()
            _wait(processes)
        finally:
            gate.close()
            for process in processes:
                h.kill(process)
        assert [p.returncode for p in processes] == [0] * 4, [log.read_text()[-2000:] for log in logs]
        _check_run_outcome(tenant, customers)
        runs = list(BillingRun.objects.all())
        assert len(runs) == 4
        assert sum(r.invoices_issued for r in runs) == customers
        assert sum(r.customers_failed for r in runs) == 0
        assert sum(r.invoices_skipped for r in runs) == 3 * customers  # each run saw every customer once

    def test_a_run_killed_half_way_leaves_whole_invoices_and_a_rerun_finishes_gap_free(self, committed_tenant):
        from psycopg import sql

        customers, batch = 12, 4
        tenant = committed_tenant(customers)
        ids = sorted(services.selectors.billable_customer_ids())
        second_batch_sub = h.Subscription.objects.filter(customer_id=ids[batch]).values_list("id", flat=True)[0]
        # An uncommitted billing-state row of a subscription of the second batch: that batch writes
        # its invoices, lines and taxes, then waits on this row inside its transaction.
        holder = _holder(
            sql.SQL(
                "INSERT INTO {}.billing_subscriptionbillingstate (subscription_id, setup_fee_billed) VALUES (%s, false)"
            ).format(sql.Identifier(tenant.schema_name)),
            [second_batch_sub],
        )
        log = ARTIFACTS / f"rp-killed-{tenant.slug}.log"
        process = _run_billing(tenant, batch, log)
        try:
            _until(
                lambda: (
                    _waiting_on_a_lock("billing_subscriptionbillingstate") == 1 and Invoice.objects.count() == batch
                ),
                [process],
                [log],
                "the first batch committed and the second waits half-way",
            )
            h.kill(process)  # SIGKILL, half-way through the second batch
        finally:
            h.kill(process)
            holder.rollback()
            holder.close()
        assert process.returncode == -9
        connection.set_tenant(tenant)
        assert Invoice.objects.count() == batch  # batch 1 committed, batch 2 rolled back whole
        assert set(Invoice.objects.values_list("customer_id", flat=True)) == set(ids[:batch])
        for invoice in Invoice.objects.all():
            h.check_invoice_arithmetic(invoice)
        h.check_numbers_gap_free(2026, batch)

        rerun_log = log.with_suffix(".rerun.log")
        rerun = _run_billing(tenant, batch, rerun_log)
        try:
            _wait([rerun])
        finally:
            h.kill(rerun)
        assert rerun.returncode == 0, rerun_log.read_text()[-3000:]
        _check_run_outcome(tenant, customers)
        assert InvoiceLine.objects.filter(invoice__isnull=True).count() == 0
        assert not InvoiceTax.objects.exclude(line__invoice_id=models.F("invoice_id")).exists()


# === 9. properties of pure drafting ============================================================
TERMS_EXCLUSIVE = TenantTerms(
    currency="USD", tax_inclusive=False, billing_day=1, bill_during_suspension=True, payment_terms_days=14
)
TERMS_INCLUSIVE = TenantTerms(
    currency="EUR", tax_inclusive=True, billing_day=1, bill_during_suspension=False, payment_terms_days=14
)
PLAN_TERMS = {
    1: PlanTerms(1, "Basic", D("29.99"), setup_fee=D("49.00"), included_bytes=300 * 10**9, overage_rate=D("0.25")),
    2: PlanTerms(2, "Plus", D("49.999999")),
    3: PlanTerms(3, "Max", D("99.00"), included_bytes=10**12, overage_rate=D("0.10")),
}
RATES = [
    tax.TaxRate(1, "state", D("0.0625"), "US", region="US-NY"),
    tax.TaxRate(2, "local", D("0.0225"), "US", region="US-NY", locality="NYC", categories=frozenset({"service"})),
    tax.TaxRate(3, "country", D("0.01"), "US"),
]


@st.composite
def batch_facts(draw):
    """A batch of 1-6 customers built by hand: subscriptions, plan histories, suspensions,
    discounts, usage and charges billed earlier (May's, when the run is June's)."""
    n = draw(st.integers(1, 6))
    customers, subs, billed, by_customer, usage = {}, {}, {}, {}, {}
    sub_id = 100
    for cid in range(1, n + 1):
        customers[cid] = CustomerRow(cid, draw(st.sampled_from([None, 1, 15])), "", None)
        rows = []
        for _ in range(draw(st.integers(1, 2))):
            sub_id += 1
            activated = draw(st.dates(datetime.date(2026, 3, 1), datetime.date(2026, 6, 20)))
            plan_id = draw(st.sampled_from(sorted(PLAN_TERMS)))
            plans = [(activated, plan_id)]
            if draw(st.booleans()):
                plans.append((activated + datetime.timedelta(days=draw(st.integers(1, 40))), 3 - plan_id % 3))
            terminated = draw(st.one_of(st.none(), st.integers(1, 90))) if draw(st.booleans()) else None
            row = SubscriptionRow(
                id=sub_id,
                customer_id=cid,
                status="active",
                activated_on=activated,
                terminated_on=None if terminated is None else activated + datetime.timedelta(days=terminated),
                plan_id=plans[-1][1],
                country="US",
                region=draw(st.sampled_from(["US-NY", "US-TX"])),
                locality="NYC",
                plans=plans,
                status_changes=[(activated + datetime.timedelta(days=5), "active", "suspended")]
                if draw(st.booleans())
                else [],
                setup_fee_billed=draw(st.booleans()),
            )
            rows.append(row)
            if activated < datetime.date(2026, 5, 20) and draw(st.booleans()):
                start = max(activated, MAY_1)
                if start < JUNE_1:
                    days = (JUNE_1 - start).days
                    billed[sub_id] = [
                        BilledCharge(
                            line_id=sub_id * 10,
                            period=Period(MAY_1, JUNE_1),
                            start=start,
                            end=JUNE_1,
                            plan_id=plan_id,
                            net_amount=q6(Fraction(PLAN_TERMS[plan_id].price) * Fraction(days, 31)),
                            billable_days=days,
                        )
                    ]
            usage[(sub_id, MAY_1)] = draw(st.integers(0, 2 * 10**12))
        subs[cid] = rows
        by_customer[cid] = draw(
            st.lists(
                st.builds(
                    disc.Discount,
                    id=st.integers(1, 30),
                    kind=st.sampled_from([disc.PERCENT, disc.FIXED]),
                    value=st.decimals(min_value=D("0.5"), max_value=60, places=2),
                    priority=st.integers(0, 3),
                    stackable=st.booleans(),
                    periods=st.one_of(st.none(), st.integers(1, 3)),
                ),
                max_size=3,
                unique_by=lambda d: d.id,
            )
        )
    plan_discounts = {1: [disc.Discount(99, disc.PERCENT, D("12.5"))]}
    facts = BatchFacts(customers, subs, dict(PLAN_TERMS), billed, by_customer, plan_discounts, usage)
    return facts


def _draft_all(order, facts, terms, rates):
    out = {}
    for cid in order:
        billing_day = facts.customers[cid].billing_day or terms.billing_day
        out[cid] = draft_invoice(
            cid, facts, run_period=period_starting_in(2026, 6, billing_day), terms=terms, rates=rates
        )
    return out


@pytest.mark.property
@settings(max_examples=60, deadline=None)
@given(facts=batch_facts(), data=st.data(), inclusive=st.booleans())
def test_reordering_customers_rates_or_discounts_never_changes_any_invoice(facts, data, inclusive):
    terms = TERMS_INCLUSIVE if inclusive else TERMS_EXCLUSIVE
    order = sorted(facts.customers)
    expected = _draft_all(order, facts, terms, RATES)
    shuffled = data.draw(st.permutations(order))
    facts.discounts_by_customer = {
        cid: data.draw(st.permutations(found)) for cid, found in reversed(list(facts.discounts_by_customer.items()))
    }
    got = _draft_all(shuffled, facts, terms, data.draw(st.permutations(RATES)))
    assert got == expected


@pytest.mark.property
@settings(max_examples=60, deadline=None)
@given(facts=batch_facts(), inclusive=st.booleans())
def test_every_draft_adds_up_and_discounts_only_touch_charges(facts, inclusive):
    terms = TERMS_INCLUSIVE if inclusive else TERMS_EXCLUSIVE
    for draft in _draft_all(sorted(facts.customers), facts, terms, RATES).values():
        if draft is None:
            continue
        by_ref = {line.ref: line for line in draft.lines}
        gross = sum((line.amount for line in draft.lines), Decimal(0))
        tax_total = sum((a for line in draft.lines for _, a in line.taxes), Decimal(0))
        t = draft.totals
        assert t.tax_total == tax_total
        assert t.total == t.subtotal + t.tax_total
        assert (t.total if inclusive else t.subtotal) == gross
        assert t.rounding_adjustment == t.amount_due - t.total
        net_of: dict[int, Decimal] = {}
        for line in draft.lines:
            assert line.amount == line.amount.quantize(Decimal("0.000001"))
            if line.kind == DISCOUNT:
                assert by_ref[line.applies_to].kind == CHARGE
                assert line.amount < 0
                net_of[line.applies_to] += line.amount
                assert line.taxes == []
            elif line.kind == CHARGE:
                net_of[line.ref] = line.amount
        assert all(net >= 0 for net in net_of.values())


money_values = st.decimals(min_value=-(10**12), max_value=10**12, places=6, allow_nan=False, allow_infinity=False)


@pytest.mark.property
@given(
    amount=money_values,
    num=st.one_of(st.integers(-1000, 10**12), money_values),
    den=st.one_of(st.integers(1, 10**9), st.decimals(min_value="0.000001", max_value=10**6, places=6)),
)
def test_scale_is_the_exact_product_rounded_once_half_up(amount, num, den):
    assert scale(amount, num, den) == q6(Fraction(amount) * Fraction(num) / Fraction(den))
    assert scale(amount, num, den).as_tuple().exponent == -6


@pytest.mark.property
@given(amount=money_values, days=st.integers(0, 31), period_days=st.integers(28, 31))
def test_a_fraction_of_a_price_is_rounded_once_never_the_fraction_itself(amount, days, period_days):
    assert scale(amount, days, period_days) == q6(Fraction(amount) * Fraction(days, period_days))
    assert scale(amount, days, period_days) == quantize(Fraction(amount) * Fraction(days, period_days))


@pytest.mark.property
@settings(max_examples=60, deadline=None)
@given(
    price=st.decimals(min_value=1, max_value=500, places=2),
    change_day=st.integers(2, 28),
    plan_value=st.decimals(min_value=1, max_value=60, places=0),
)
def test_a_plan_discount_never_reaches_another_plans_lines(price, change_day, plan_value):
    plans = {1: PlanTerms(1, "A", price), 2: PlanTerms(2, "B", price + 10)}
    facts = SubscriptionFacts(
        subscription_id=1,
        billing_day=1,
        activated_on=MAY_1,
        terminated_on=None,
        plans=((MAY_1, plans[1]), (datetime.date(2026, 5, change_day), plans[2])),
    )
    lines = draft_recurring(
        facts,
        run_period=Period(MAY_1, JUNE_1),
        billed=[],
        discounts=[],
        plan_discounts={1: [disc.Discount(7, disc.PERCENT, plan_value)]},
        numbers=LineNumbers(),
    )
    charges = {line.ref: line for line in lines if line.kind == CHARGE}
    discounted = {charges[line.applies_to].plan_id for line in lines if line.kind == DISCOUNT}
    assert discounted == {1}
