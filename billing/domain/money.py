"""Money: Decimal only, 6 stored places, ROUND_HALF_UP, rounded once where the rules say."""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from functools import lru_cache

from iso4217 import Currency

STORED_PLACES = 6
ZERO = Decimal("0.000000")
_QUANTA = {places: Decimal(1).scaleb(-places) for places in range(0, 10)}
# Enough digits that nothing in billing is ever rounded by the context: the only roundings are the
# explicit half-up ones below.
_EXACT = Context(prec=200, rounding=ROUND_HALF_UP, Emax=MAX_EMAX, Emin=MIN_EMIN)


def ensure_money(value) -> Decimal | Fraction:
    """Accept Decimal, Fraction and int; a float is a bug (billing rules, section 1)."""
    if isinstance(value, float):
        raise TypeError("money is never float")
    if isinstance(value, bool) or not isinstance(value, Decimal | Fraction | int):
        raise TypeError(f"money must be Decimal, Fraction or int, not {type(value).__name__}")
    return value


def quantize(amount, places: int = STORED_PLACES) -> Decimal:
    """Round once, half-up, to `places` decimal places. Exact for Fractions (no float on the way)."""
    kind = type(amount)
    if kind is not Decimal:
        amount = ensure_money(amount)
        if isinstance(amount, Fraction):
            return _round_ratio(amount.numerator, amount.denominator, places)
        amount = Decimal(amount)
    return amount.quantize(_QUANTA[places], rounding=ROUND_HALF_UP, context=_EXACT)


def _ratio(value) -> tuple[int, int]:
    kind = type(value)
    if kind is int:
        return value, 1
    if kind is not Decimal and kind is not Fraction:
        ensure_money(value)  # a float (or anything else) is a TypeError
    return value.as_integer_ratio()


def scale(amount, num=1, den=1, places: int = STORED_PLACES) -> Decimal:
    """`amount * num / den`, rounded once, half-up, to `places` (6) decimal places.

    The exact value is rounded (integer arithmetic on the operands' exact ratios), so this is
    `quantize(Fraction(amount) * Fraction(num) / Fraction(den))` - without building Fractions,
    which is what billing does for every line, discount, credit and tax."""
    a_num, a_den = _ratio(amount)
    n_num, n_den = _ratio(num)
    d_num, d_den = _ratio(den)
    if d_num == 0:
        raise ZeroDivisionError("scale by a zero denominator")
    return _round_ratio(a_num * n_num * d_den, a_den * n_den * d_num, places)


def _round_ratio(numerator: int, denominator: int, places: int) -> Decimal:
    """numerator / denominator, rounded half-up (away from zero) to `places`, exactly."""
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    whole, remainder = divmod(abs(numerator) * 10**places, denominator)
    if 2 * remainder >= denominator:
        whole += 1
    return Decimal(-whole if numerator < 0 else whole).scaleb(-places, _EXACT)


def to_fraction(value) -> Fraction:
    value = ensure_money(value)
    return value if isinstance(value, Fraction) else Fraction(value)


@lru_cache(maxsize=64)
def minor_unit(currency: str) -> int:
    """Decimal places of a currency per ISO 4217 (USD 2, JPY 0, KWD 3)."""
    exponent = Currency(currency).exponent
    if exponent is None:
        raise ValueError(f"{currency} has no minor unit")
    return exponent


def round_to_currency(amount: Decimal, currency: str) -> Decimal:
    return quantize(amount, minor_unit(currency))
