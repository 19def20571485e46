"""Discounts (billing rules, section 5). They reduce recurring service charge lines only."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from .money import ensure_money, scale

PERCENT = "percent"
FIXED = "fixed"


@dataclass(frozen=True)
class Discount:
    id: int
    kind: str  # "percent" | "fixed"
    value: Decimal  # percent: 0 < value <= 100; fixed: an amount per full period
    priority: int = 100
    stackable: bool = True
    valid_from: datetime.date | None = None
    valid_until: datetime.date | None = None  # exclusive
    periods: int | None = None  # lasts this many billed periods from activation

    def __post_init__(self):
        ensure_money(self.value)
        if self.kind not in (PERCENT, FIXED):
            raise ValueError(f"discount kind is percent or fixed, not {self.kind!r}")
        if self.kind == PERCENT and not Decimal(0) < self.value <= Decimal(100):
            raise ValueError("a percent discount is more than 0 and at most 100")
        if self.kind == FIXED and self.value < 0:
            raise ValueError("a fixed discount is not negative")
        if self.periods is not None and self.periods < 1:
            raise ValueError("a limited discount lasts at least one period")

    def is_eligible(self, *, service_start: datetime.date, period_index: int) -> bool:
        """Valid on the line's first service day, and within its number of periods (the period
        of activation is period 1, a partial first period included)."""
        if self.valid_from is not None and service_start < self.valid_from:
            return False
        if self.valid_until is not None and service_start >= self.valid_until:
            return False
        return self.periods is None or period_index <= self.periods


def _reduction_alone(discount: Discount, amount: Decimal, fraction: Fraction) -> Decimal:
    if discount.kind == PERCENT:
        return min(scale(amount, discount.value, 100), amount)
    return min(scale(discount.value, fraction), amount)


def select(discounts: list[Discount], amount: Decimal, fraction: Fraction) -> list[Discount]:
    """Order by (priority, id); if any is not stackable, only the non-stackable one with the
    largest reduction applies (ties: lowest id)."""
    ordered = sorted(discounts, key=lambda d: (d.priority, d.id))
    exclusive = [d for d in ordered if not d.stackable]
    if not exclusive:
        return ordered
    best = max(exclusive, key=lambda d: (_reduction_alone(d, amount, fraction), -d.id))
    return [best]


def apply(discounts: list[Discount], amount: Decimal, fraction: Fraction) -> list[tuple[Discount, Decimal]]:
    """The reductions for a charge line of `amount` covering `fraction` of its period, as
    (discount, negative amount) pairs: percents first on the running amount, then fixed amounts
    prorated by the fraction; the running amount never goes below zero."""
    amount = ensure_money(amount)
    if amount <= 0 or not discounts:
        return []
    chosen = select(discounts, amount, fraction)
    running = amount
    out: list[tuple[Discount, Decimal]] = []
    for discount in [d for d in chosen if d.kind == PERCENT] + [d for d in chosen if d.kind == FIXED]:
        if discount.kind == PERCENT:
            reduction = min(scale(running, discount.value, 100), running)
        else:
            reduction = min(scale(discount.value, fraction), running)
        if reduction > 0:
            running -= reduction
            out.append((discount, -reduction))
    return out
