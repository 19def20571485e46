"""Taxes (billing rules, section 6), computed per taxable amount."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from .money import ZERO, ensure_money, scale

CATEGORIES = frozenset({"service", "usage", "equipment", "fee"})


class CompoundTaxOnInclusiveTenant(ValueError):
    pass


@dataclass(frozen=True)
class TaxRate:
    id: int
    name: str
    rate: Decimal  # e.g. Decimal("0.072500")
    country: str
    region: str = ""
    locality: str = ""
    compound: bool = False
    categories: frozenset[str] = CATEGORIES
    valid_from: datetime.date | None = None
    valid_until: datetime.date | None = None  # exclusive

    def __post_init__(self):
        ensure_money(self.rate)
        if self.rate < 0:
            raise ValueError("a tax rate is not negative")
        if not self.categories or not set(self.categories) <= CATEGORIES:
            raise ValueError(f"tax categories are among {sorted(CATEGORIES)}")

    def matches(self, *, country: str, region: str, locality: str) -> bool:
        """The rate's jurisdiction contains the address: same country, and same region and
        locality where the rate names them."""
        return (
            self.country == country
            and (not self.region or self.region == region)
            and (not self.locality or self.locality == locality)
        )

    def valid_on(self, day: datetime.date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day < self.valid_until
        )


def rates_for(
    rates: list[TaxRate], *, country: str, region: str, locality: str, on: datetime.date, exempt: bool
) -> list[TaxRate]:
    """The rates of an address valid on `on` (the first day of the invoice's period), by id."""
    if exempt:
        return []
    return sorted(
        (r for r in rates if r.matches(country=country, region=region, locality=locality) and r.valid_on(on)),
        key=lambda r: r.id,
    )


@lru_cache(maxsize=4096)
def rates_for_cached(
    rates: tuple[TaxRate, ...], *, country: str, region: str, locality: str, on: datetime.date, exempt: bool
) -> tuple[TaxRate, ...]:
    """`rates_for` memoized (same few addresses and dates across a run); a tuple, never shared mutable."""
    return tuple(rates_for(list(rates), country=country, region=region, locality=locality, on=on, exempt=exempt))


def validate_for_tenant(rates: list[TaxRate], *, tax_inclusive: bool) -> None:
    if tax_inclusive and any(r.compound for r in rates):
        raise CompoundTaxOnInclusiveTenant("compound taxes are not allowed on a tax-inclusive tenant")


@dataclass(frozen=True)
class TaxedAmount:
    gross: Decimal  # the amount as stated on the lines
    net: Decimal
    taxes: tuple[tuple[TaxRate, Decimal], ...]

    @property
    def tax_total(self) -> Decimal:
        return sum((amount for _, amount in self.taxes), Decimal("0.000000"))


def tax_exclusive(taxable: Decimal, category: str, rates: list[TaxRate]) -> TaxedAmount:
    """Non-compound taxes first (taxable x rate), then compound taxes on taxable + those taxes."""
    applicable = [r for r in rates if category in r.categories]
    taxes: list[tuple[TaxRate, Decimal]] = []
    for rate in (r for r in applicable if not r.compound):
        taxes.append((rate, scale(taxable, rate.rate)))
    if any(r.compound for r in applicable):
        base = taxable + sum((a for _, a in taxes), ZERO)  # exact: 6-place Decimals
        for rate in (r for r in applicable if r.compound):
            taxes.append((rate, scale(base, rate.rate)))
    return TaxedAmount(gross=taxable, net=taxable, taxes=tuple(taxes))


def tax_inclusive(gross: Decimal, category: str, rates: list[TaxRate]) -> TaxedAmount:
    """VAT style: net = gross / (1 + sum of rates); the tax is split across the rates in
    proportion to them, the last rate taking the remainder so the parts add up exactly."""
    applicable = [r for r in rates if category in r.categories]
    if any(r.compound for r in applicable):
        raise CompoundTaxOnInclusiveTenant("compound taxes are not allowed on a tax-inclusive tenant")
    if not applicable:
        return TaxedAmount(gross=gross, net=gross, taxes=())
    total_rate = sum((r.rate for r in applicable), Decimal(0))  # exact: 6-place Decimals
    net = scale(gross, 1, 1 + total_rate)
    tax = gross - net
    parts: list[tuple[TaxRate, Decimal]] = []
    if total_rate == 0:
        parts = [(r, Decimal("0.000000")) for r in applicable]
    else:
        for rate in applicable[:-1]:
            parts.append((rate, scale(tax, rate.rate, total_rate)))
        parts.append((applicable[-1], tax - sum((a for _, a in parts), Decimal("0.000000"))))
    return TaxedAmount(gross=gross, net=net, taxes=tuple(parts))
