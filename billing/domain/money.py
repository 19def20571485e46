"""Money: Decimal only, 6 stored places, ROUND_HALF_UP, rounded once where the rules say."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from iso4217 import Currency

STORED_PLACES = 6
ZERO = Decimal("0.000000")
_QUANTA = {places: Decimal(1).scaleb(-places) for places in range(0, 10)}


def ensure_money(value) -> Decimal | Fraction:
    """Accept Decimal, Fraction and int; a float is a bug (billing rules, section 1)."""
    if isinstance(value, float):
        raise TypeError("money is never float")
    if isinstance(value, bool) or not isinstance(value, Decimal | Fraction | int):
        raise TypeError(f"money must be Decimal, Fraction or int, not {type(value).__name__}")
    return value


def quantize(amount, places: int = STORED_PLACES) -> Decimal:
    """Round once, half-up, to `places` decimal places. Exact for Fractions (no float on the way)."""
    amount = ensure_money(amount)
    if isinstance(amount, Fraction):
        numerator, denominator = amount.numerator, amount.denominator
        scaled = Fraction(numerator * 10**places, denominator)
        sign = -1 if scaled < 0 else 1
        whole, remainder = divmod(abs(scaled.numerator), scaled.denominator)
        if 2 * remainder >= scaled.denominator:
            whole += 1
        return (Decimal(sign * whole).scaleb(-places)).quantize(_QUANTA[places])
    return Decimal(amount).quantize(_QUANTA[places], rounding=ROUND_HALF_UP)


def to_fraction(value) -> Fraction:
    value = ensure_money(value)
    return value if isinstance(value, Fraction) else Fraction(value)


def minor_unit(currency: str) -> int:
    """Decimal places of a currency per ISO 4217 (USD 2, JPY 0, KWD 3)."""
    exponent = Currency(currency).exponent
    if exponent is None:
        raise ValueError(f"{currency} has no minor unit")
    return exponent


def round_to_currency(amount: Decimal, currency: str) -> Decimal:
    return quantize(amount, minor_unit(currency))
