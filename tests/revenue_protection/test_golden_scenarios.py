"""Golden scenarios: whole invoices checked by hand, figure by figure.

Each scenario runs the real billing run on the tenant profile it fits (us_isp: USD, tax added on
top; eu_isp: EUR, VAT included in prices; jp_isp: JPY, no minor unit) and compares every amount
with a literal. The arithmetic is written next to it, so a reviewer can redo it on paper: every
rounding is half-up, to 6 places unless said otherwise, and happens exactly where the comment
shows it. A change to any billing rule (proration, credits, discount order, N-period discounts,
tax order, compound and inclusive taxes, categories, currency rounding, credit balance, setup fee,
usage, suspension, numbering, due dates) breaks at least one of these tests.

Dates: April 2026 has 30 days, May 31, June 30. Billing day 1, payment terms 14 days.
"""

from __future__ import annotations

import datetime

import pytest
from django.db import connection

from billing.balances import credit_of
from billing.domain.invoice import CHARGE, CREDIT, DISCOUNT, FEE, USAGE
from tests.revenue_protection import helpers as h
from tests.revenue_protection.helpers import D

pytestmark = [pytest.mark.business_logic_protection, pytest.mark.revenue_critical, pytest.mark.behavior]

APRIL_1 = datetime.date(2026, 4, 1)
MAY_1 = datetime.date(2026, 5, 1)
JUNE_1 = datetime.date(2026, 6, 1)
JULY_1 = datetime.date(2026, 7, 1)


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


def amounts(invoice, kind=None) -> list:
    return [line.amount for line in h.lines(invoice, kind)]


def head_taxes(invoice) -> list[list]:
    """Per taxable amount (in line order): its taxes, in rate order."""
    return [
        [t.amount for t in h.taxes(invoice) if t.line_id == line.id]
        for line in h.lines(invoice)
        if line.kind != DISCOUNT
    ]


def totals(invoice) -> tuple:
    return invoice.subtotal, invoice.tax_total, invoice.total, invoice.amount_due, invoice.rounding_adjustment


# --- USD, tax-exclusive ------------------------------------------------------------------------
def test_g1_activated_mid_month_with_50_percent_for_3_periods_and_8_875_percent_tax(us):
    # New York City: state 4 % + city 4.5 % + MCTD 0.375 % = 8.875 %, all non-compound.
    h.tax_rate("0.040000", country="US", region="US-NY", name="NY state")
    h.tax_rate("0.045000", country="US", region="US-NY", locality="NYC", name="NYC")
    h.tax_rate("0.003750", country="US", region="US-NY", name="MCTD")
    who, _ = h.customer_on(h.plan("59.99"), datetime.date(2026, 4, 16), "US")
    h.discount("percent", "50", for_customer=who, periods=3)
    for label, issue in (("2026-05", MAY_1), ("2026-06", JUNE_1), ("2026-07", JULY_1)):
        h.run(label, issue)
    may, june, july = h.invoices_of(who)

    # May invoice (the first run after the activation catches April up, one line per period):
    #   April [16 Apr, 1 May) = 15/30: 59.99 * 15/30 = 29.995    ; 50 % = -14.9975 -> net 14.9975
    #   May in full:                    59.99                    ; 50 % = -29.995  -> net 29.995
    assert amounts(may) == [D("29.995"), D("-14.9975"), D("59.99"), D("-29.995")]
    # taxes of 14.9975: *0.04 = 0.5999; *0.045 = 0.6748875 -> 0.674888; *0.00375 = 0.05624062 -> 0.056241
    # taxes of 29.995:  *0.04 = 1.1998; *0.045 = 1.349775;             *0.00375 = 0.11248125 -> 0.112481
    assert head_taxes(may) == [
        [D("0.5999"), D("0.674888"), D("0.056241")],
        [D("1.1998"), D("1.349775"), D("0.112481")],
    ]
    # subtotal 14.9975 + 29.995 = 44.9925; tax 3.993085; total 48.985585 -> due 48.99 (+0.004415)
    assert totals(may) == (D("44.9925"), D("3.993085"), D("48.985585"), D("48.99"), D("0.004415"))
    # June is period 3 of 3: still 50 %. 29.995 + (1.1998 + 1.349775 + 0.112481) = 32.657056 -> 32.66
    assert amounts(june) == [D("59.99"), D("-29.995")]
    assert totals(june) == (D("29.995"), D("2.662056"), D("32.657056"), D("32.66"), D("0.002944"))
    # July is period 4: full price. 59.99 * 0.04 = 2.3996; * 0.045 = 2.69955; * 0.00375 = 0.2249625
    # -> 0.224963; tax 5.324113; total 65.314113 -> 65.31
    assert amounts(july) == [D("59.99")]
    assert totals(july) == (D("59.99"), D("5.324113"), D("65.314113"), D("65.31"), D("-0.004113"))
    # numbers in issue order, due 14 days after issue
    assert [(i.number, i.due_date) for i in (may, june, july)] == [
        ("INV-2026-000001", datetime.date(2026, 5, 15)),
        ("INV-2026-000002", datetime.date(2026, 6, 15)),
        ("INV-2026-000003", datetime.date(2026, 7, 15)),
    ]


def test_g2_upgrade_mid_cycle_after_the_period_was_billed(us):
    # Illinois: state 6.25 % + Cook County 1.75 %.
    h.tax_rate("0.062500", country="US", region="US-IL", name="IL state")
    h.tax_rate("0.017500", country="US", region="US-IL", locality="COOK", name="Cook County")
    basic, premium = h.plan("49.99"), h.plan("79.99")
    who, sub = h.customer_on(basic, MAY_1, "US", region="US-IL", locality="COOK")
    h.run("2026-05", MAY_1)
    h.change_plan(sub, premium, datetime.date(2026, 5, 16))  # upgrade from 16 May, after May was billed
    h.run("2026-06", JUNE_1)
    may, june = h.invoices_of(who)

    # May: 49.99; tax 49.99 * 0.0625 = 3.124375, * 0.0175 = 0.874825; total 53.9892 -> 53.99
    assert totals(may) == (D("49.99"), D("3.9992"), D("53.9892"), D("53.99"), D("0.0008"))
    # June:
    #   credit [16 May, 1 Jun) = 16 of the May line's 31 days: -(49.99 * 16/31) = -25.8012903 -> -25.801290
    #   charge premium for the same days: 79.99 * 16/31 = 41.2851612 -> 41.285161
    #   June in full on premium: 79.99
    assert [(line.kind, line.amount) for line in h.lines(june)] == [
        (CREDIT, D("-25.801290")),
        (CHARGE, D("41.285161")),
        (CHARGE, D("79.99")),
    ]
    # taxes: credit  -25.80129 * 0.0625 = -1.61258062 -> -1.612581; * 0.0175 = -0.45152257 -> -0.451523
    #        charge   41.285161 * 0.0625 = 2.58032256 -> 2.580323;    * 0.0175 = 0.72249032 -> 0.722490
    #        June     79.99 * 0.0625 = 4.999375;                      * 0.0175 = 1.399825
    assert head_taxes(june) == [
        [D("-1.612581"), D("-0.451523")],
        [D("2.580323"), D("0.722490")],
        [D("4.999375"), D("1.399825")],
    ]
    # subtotal -25.80129 + 41.285161 + 79.99 = 95.473871; tax 7.637909; total 103.11178 -> 103.11
    assert totals(june) == (D("95.473871"), D("7.637909"), D("103.11178"), D("103.11"), D("-0.00178"))


def test_g3_termination_with_a_fixed_discount_ends_on_a_credit(us):
    h.tax_rate("0.080000", country="US", region="US-TX", name="TX 8%")
    who, sub = h.customer_on(h.plan("65.00"), MAY_1, "US", region="US-TX", locality="")
    h.discount("fixed", "10.00", for_customer=who)
    h.run("2026-05", MAY_1)
    h.terminate(sub, datetime.date(2026, 5, 12))  # last billable day 11 May
    h.run("2026-06", JUNE_1)
    july = h.run("2026-07", JULY_1)
    may, final = h.invoices_of(who)

    # May: 65.00 - 10.00 (fixed, full period) = 55.00; tax 55 * 0.08 = 4.40; total 59.40
    assert amounts(may) == [D("65"), D("-10")]
    assert totals(may) == (D("55"), D("4.4"), D("59.4"), D("59.4"), D("0"))
    # Final invoice: credit [12 May, 1 Jun) = 20 of 31 days of the line's net (after its discount):
    #   -(55 * 20/31) = -35.4838709 -> -35.483871 (not discounted again); tax -2.8387097 -> -2.838710
    #   total -38.322581 -> due -38.32 (+0.002581), which goes to the credit balance
    assert [(line.kind, line.amount) for line in h.lines(final)] == [(CREDIT, D("-35.483871"))]
    assert head_taxes(final) == [[D("-2.838710")]]
    assert totals(final) == (D("-35.483871"), D("-2.83871"), D("-38.322581"), D("-38.32"), D("0.002581"))
    assert credit_of(who.id) == D("38.32")
    assert july.invoices_issued == 0  # nothing left to bill


def test_g4_over_cap_usage_312_5_gb_on_a_300_gb_plan_at_0_25_per_gb(us):
    # Colorado: state 6.25 % on everything; county 1 % on service only; a 1 % compound fee
    # (on the taxable amount plus the non-compound taxes of that amount).
    h.tax_rate("0.062500", country="US", region="US-CO", name="CO state")
    h.tax_rate("0.010000", country="US", region="US-CO", locality="DENVER", categories=["service"], name="county")
    h.tax_rate("0.010000", country="US", region="US-CO", compound=True, name="compound fee")
    on_plan = h.plan("45.00", included_gb=300, overage="0.25")
    who, sub = h.customer_on(on_plan, MAY_1, "US", region="US-CO", locality="DENVER")
    h.run("2026-05", MAY_1)
    h.usage(sub, datetime.date(2026, 5, 3), 180 * 10**9, 20 * 10**9)
    h.usage(sub, datetime.date(2026, 5, 30), 100 * 10**9, 12_500_000_000)  # May: 312.5 GB in all
    h.run("2026-06", JUNE_1)
    may, june = h.invoices_of(who)

    # May: 45.00; state 2.8125; county 0.45; compound (45 + 2.8125 + 0.45) * 0.01 = 0.482625
    # total 48.745125 -> 48.75 (+0.004875). No usage yet: usage bills in arrears.
    assert totals(may) == (D("45"), D("3.745125"), D("48.745125"), D("48.75"), D("0.004875"))
    assert h.lines(may, USAGE) == []
    # June: June's 45.00 (same taxes) + May's usage: (312.5 - 300) GB = 12.5 GB * 0.25 = 3.125
    (usage_line,) = h.lines(june, USAGE)
    assert (usage_line.quantity, usage_line.amount, usage_line.period_start) == (D("12.5"), D("3.125"), MAY_1)
    # usage taxes: state 3.125 * 0.0625 = 0.1953125 -> 0.195313; county: not on usage;
    #              compound (3.125 + 0.195313) * 0.01 = 0.03320313 -> 0.033203
    assert head_taxes(june) == [[D("2.8125"), D("0.45"), D("0.482625")], [D("0.195313"), D("0.033203")]]
    # total 48.745125 + 3.125 + 0.195313 + 0.033203 = 52.098641 -> 52.10
    assert totals(june) == (D("48.125"), D("3.973641"), D("52.098641"), D("52.10"), D("0.001359"))


# --- EUR, tax-inclusive (VAT 19 %) -------------------------------------------------------------
def test_g5_vat_inclusive_29_99_eur_with_a_setup_fee(eu):
    h.tax_rate("0.190000", country="DE", name="USt 19%")
    who, _ = h.customer_on(h.plan("29.99", setup_fee="19.99"), MAY_1, "DE")
    h.run("2026-05", MAY_1)
    h.run("2026-06", JUNE_1)
    may, june = h.invoices_of(who)

    # prices include VAT: net = gross / 1.19, tax = gross - net
    #   29.99 / 1.19 = 25.2016806 -> 25.201681; tax 4.788319
    #   19.99 / 1.19 = 16.7983193 -> 16.798319; tax 3.191681   (the setup fee: first invoice only)
    assert [(line.kind, line.amount) for line in h.lines(may)] == [(CHARGE, D("29.99")), (FEE, D("19.99"))]
    assert head_taxes(may) == [[D("4.788319")], [D("3.191681")]]
    # subtotal 25.201681 + 16.798319 = 42.00; tax 7.98; total = sum of the gross amounts 49.98
    assert totals(may) == (D("42"), D("7.98"), D("49.98"), D("49.98"), D("0"))
    assert amounts(june) == [D("29.99")]
    assert totals(june) == (D("25.201681"), D("4.788319"), D("29.99"), D("29.99"), D("0"))


def test_g6_vat_inclusive_proration_with_a_fixed_discount(eu):
    h.tax_rate("0.190000", country="DE", name="USt 19%")
    who, _ = h.customer_on(h.plan("39.99"), datetime.date(2026, 6, 11), "DE")
    h.discount("fixed", "6.00", for_customer=who)
    h.run("2026-06", datetime.date(2026, 6, 11))
    (invoice,) = h.invoices_of(who)

    # [11 Jun, 1 Jul) = 20 of 30 days = 2/3: 39.99 * 2/3 = 26.66; fixed 6.00 * 2/3 = 4.00
    assert amounts(invoice) == [D("26.66"), D("-4")]
    # gross 22.66; net 22.66 / 1.19 = 19.0420168 -> 19.042017; VAT 3.617983
    assert head_taxes(invoice) == [[D("3.617983")]]
    assert totals(invoice) == (D("19.042017"), D("3.617983"), D("22.66"), D("22.66"), D("0"))
    assert (invoice.number, invoice.due_date) == ("INV-2026-000001", datetime.date(2026, 6, 25))


def test_g7_suspended_days_not_billed_when_the_tenant_says_so(eu):
    h.set_tenant_terms(eu, bill_during_suspension=False)
    h.tax_rate("0.190000", country="DE", name="USt 19%")
    who, sub = h.customer_on(h.plan("35.70"), MAY_1, "DE")
    h.suspend(sub, datetime.date(2026, 5, 11))
    h.run("2026-05", MAY_1)
    h.reactivate(sub, datetime.date(2026, 6, 6))
    h.run("2026-06", JUNE_1)
    may, june = h.invoices_of(who)

    # May: billable [1 May, 11 May) = 10/31: 35.70 * 10/31 = 11.5161290 -> 11.516129
    #      net 11.516129 / 1.19 = 9.6774193 -> 9.677419; VAT 1.83871
    assert amounts(may) == [D("11.516129")]
    assert totals(may) == (D("9.677419"), D("1.83871"), D("11.516129"), D("11.52"), D("0.003871"))
    # June: billable [6 Jun, 1 Jul) = 25/30: 35.70 * 25/30 = 29.75; net 29.75 / 1.19 = 25; VAT 4.75
    assert amounts(june) == [D("29.75")]
    assert totals(june) == (D("25"), D("4.75"), D("29.75"), D("29.75"), D("0"))


# --- JPY, no minor unit ------------------------------------------------------------------------
def test_g8_jpy_4980_with_10_percent_consumption_tax_and_rounding(jp):
    h.tax_rate("0.100000", country="JP", name="consumption tax")
    who, _ = h.customer_on(h.plan("4980"), datetime.date(2026, 4, 10), "JP")
    h.run("2026-05", MAY_1)
    (invoice,) = h.invoices_of(who)

    # April [10 Apr, 1 May) = 21/30: 4980 * 21/30 = 3486; May: 4980
    assert amounts(invoice) == [D("3486"), D("4980")]
    # tax per taxable amount: 348.6 and 498; total 9312.6 stays exact, the amount due is whole yen
    assert head_taxes(invoice) == [[D("348.6")], [D("498")]]
    assert totals(invoice) == (D("8466"), D("846.6"), D("9312.6"), D("9313"), D("0.4"))


def test_g9_jpy_termination_credit_rounds_to_whole_yen(jp):
    h.tax_rate("0.100000", country="JP", name="consumption tax")
    who, sub = h.customer_on(h.plan("4980"), MAY_1, "JP")
    h.run("2026-05", MAY_1)
    h.terminate(sub, datetime.date(2026, 5, 20))
    h.run("2026-06", JUNE_1)
    may, final = h.invoices_of(who)

    assert totals(may) == (D("4980"), D("498"), D("5478"), D("5478"), D("0"))
    # credit [20 May, 1 Jun) = 12/31: -(4980 * 12/31) = -1927.7419354 -> -1927.741935
    # tax -192.7741935 -> -192.774194 (half-up rounds away from zero)
    # total -2120.516129 -> due -2121 yen (-0.483871), kept as credit
    assert amounts(final) == [D("-1927.741935")]
    assert head_taxes(final) == [[D("-192.774194")]]
    assert totals(final) == (D("-1927.741935"), D("-192.774194"), D("-2120.516129"), D("-2121"), D("-0.483871"))
    assert credit_of(who.id) == D("2121")
