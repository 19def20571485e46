"""Invoice lines, taxable amounts and totals (billing rules, sections 4, 6 and 7)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from . import taxes as tax
from .money import ZERO, quantize, round_to_currency

# Line kinds; the category (service, usage, equipment, fee) decides taxes.
CHARGE = "charge"  # recurring service charge
DISCOUNT = "discount"  # reduction of one charge line
CREDIT = "credit"  # gives back days of an earlier charge line
USAGE = "usage"  # data above the allowance, in arrears
FEE = "fee"  # one-time (setup)


@dataclass(slots=True)
class DraftLine:
    ref: int  # unique within its invoice; discount lines point at their charge's ref
    kind: str
    category: str
    description: str
    amount: Decimal  # 6 places, rounded once
    subscription_id: int | None = None
    period_start: datetime.date | None = None
    period_end: datetime.date | None = None
    service_start: datetime.date | None = None
    service_end: datetime.date | None = None  # exclusive
    quantity: Fraction = Fraction(1)
    unit_price: Decimal = ZERO
    fraction: Fraction = Fraction(1)
    billable_days: int = 0
    plan_id: int | None = None
    discount_id: int | None = None
    applies_to: int | None = None  # discount -> ref of its charge line
    credits_line_id: int | None = None  # credit -> id of the stored charge line it gives back
    taxes: list[tuple[tax.TaxRate, Decimal]] = field(default_factory=list)


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    amount_due: Decimal
    rounding_adjustment: Decimal
    tax_by_rate: dict[int, Decimal]


def taxable_groups(lines: list[DraftLine]) -> list[list[DraftLine]]:
    """A charge with its discount lines is one taxable amount; every other line is its own."""
    by_charge: dict[int, list[DraftLine]] = {}
    groups: list[list[DraftLine]] = []
    for line in lines:
        if line.kind == CHARGE:
            by_charge[line.ref] = [line]
            groups.append(by_charge[line.ref])
    for line in lines:
        if line.kind == DISCOUNT:
            by_charge[line.applies_to].append(line)
        elif line.kind != CHARGE:
            groups.append([line])
    return groups


RatesOf = dict[int | None, list[tax.TaxRate] | tuple[tax.TaxRate, ...]]  # subscription id -> its rates


def apply_taxes(lines: list[DraftLine], rates_of: RatesOf, *, tax_inclusive: bool) -> list[tax.TaxedAmount]:
    """Tax every taxable amount with the rates of its subscription's address. The tax of a group
    is stored on its first line (the charge). Returns the taxed amounts, in group order."""
    taxed = []
    as_tuples: dict[int | None, tuple[tax.TaxRate, ...]] = {}
    for group in taxable_groups(lines):
        head = group[0]
        amount = sum((line.amount for line in group), ZERO)
        rates = as_tuples.get(head.subscription_id)
        if rates is None:
            rates = as_tuples[head.subscription_id] = tuple(rates_of.get(head.subscription_id, ()))
        result = _taxed(amount, head.category, rates, tax_inclusive)
        head.taxes = list(result.taxes)
        taxed.append(result)
    return taxed


@lru_cache(maxsize=16384)
def _taxed(amount: Decimal, category: str, rates: tuple[tax.TaxRate, ...], inclusive: bool) -> tax.TaxedAmount:
    """Memoized: the same amounts (a plan's price, its usual discounts) recur across thousands of
    customers with the same rates; the key holds every value the result depends on."""
    return (tax.tax_inclusive if inclusive else tax.tax_exclusive)(amount, category, list(rates))


def totals(taxed: list[tax.TaxedAmount], *, currency: str) -> Totals:
    """subtotal = sum of nets, tax_total = sum of taxes, total = subtotal + tax_total (exact);
    amount_due = total rounded to the currency's minor unit, the difference kept."""
    subtotal = sum((t.net for t in taxed), ZERO)
    tax_total = sum((t.tax_total for t in taxed), ZERO)
    by_rate: dict[int, Decimal] = {}
    for taxed_amount in taxed:
        for rate, amount in taxed_amount.taxes:
            by_rate[rate.id] = by_rate.get(rate.id, ZERO) + amount
    total = quantize(subtotal + tax_total)
    amount_due = round_to_currency(total, currency)
    return Totals(
        subtotal=quantize(subtotal),
        tax_total=quantize(tax_total),
        total=total,
        amount_due=amount_due,
        rounding_adjustment=quantize(amount_due - total),
        tax_by_rate=by_rate,
    )
