"""How amounts and dates are shown to people (invoice PDF, admin): pure, no Django.

Stored amounts keep 6 decimal places; they are shown rounded (half-up, billing.domain.money)
to the currency's ISO 4217 minor unit - JPY without decimals, KWD with 3 - with the separators,
symbol placement and date order of the tenant's country. A small table, not a locale library:
unknown countries fall back to ISO dates and "1,234.56 XYZ"."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from .domain.money import minor_unit, quantize

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "JPY": "¥", "GBP": "£", "CAD": "CA$", "AUD": "A$", "INR": "₹"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Conventions:
    decimal: str = "."
    group: str = ","
    symbol_first: bool = True
    space_after_symbol: bool = False
    date_order: str = "iso"  # iso | us | dmy_dots | dmy_text | ymd_slashes
    city_first: bool = False  # "Springfield 62701" (US, GB) or "62701 Springfield" (most of Europe, Japan)


# Thin non-breaking space for French-style grouping; a plain space would wrap in a table cell.
_NNBSP = "\u202f"
COUNTRY_CONVENTIONS: dict[str, Conventions] = {
    "US": Conventions(date_order="us", city_first=True),
    "CA": Conventions(date_order="iso", city_first=True),
    "GB": Conventions(date_order="dmy_text", city_first=True),
    "IE": Conventions(date_order="dmy_text", city_first=True),
    "AU": Conventions(date_order="dmy_text", city_first=True),
    "JP": Conventions(date_order="ymd_slashes"),
    "DE": Conventions(decimal=",", group=".", symbol_first=False, date_order="dmy_dots"),
    "AT": Conventions(decimal=",", group=".", symbol_first=False, date_order="dmy_dots"),
    "NL": Conventions(decimal=",", group=".", symbol_first=True, space_after_symbol=True, date_order="dmy_dots"),
    "IT": Conventions(decimal=",", group=".", symbol_first=False, date_order="dmy_dots"),
    "ES": Conventions(decimal=",", group=".", symbol_first=False, date_order="dmy_dots"),
    "FR": Conventions(decimal=",", group=_NNBSP, symbol_first=False, date_order="dmy_dots"),
    "CH": Conventions(decimal=".", group="'", symbol_first=True, space_after_symbol=True, date_order="dmy_dots"),
}


def conventions_for(country: str) -> Conventions:
    return COUNTRY_CONVENTIONS.get((country or "").upper(), Conventions())


def _group(digits: str, separator: str) -> str:
    out = []
    while len(digits) > 3:
        out.insert(0, digits[-3:])
        digits = digits[:-3]
    out.insert(0, digits)
    return separator.join(out)


def format_number(value: Decimal, places: int, conventions: Conventions) -> str:
    """`value` rounded half-up to `places` and written with the conventions' separators."""
    rounded = quantize(value, places)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    text = _group(whole, conventions.group)
    if places:
        text += conventions.decimal + fraction.ljust(places, "0")[:places]
    return sign + text


def format_money(
    value: Decimal, currency: str, conventions: Conventions, *, places: int | None = None, symbol: bool = True
) -> str:
    """An amount for people: '$1,234.56', '1.234,56 €', '¥1,235'. `places` overrides the minor
    unit (unit prices of a few cents per GB may need more than two)."""
    places = minor_unit(currency) if places is None else places
    number = format_number(value, places, conventions)
    if not symbol:
        return number
    mark = CURRENCY_SYMBOLS.get(currency)
    if mark is None:
        return f"{number} {currency}"
    sign, number = ("-", number[1:]) if number.startswith("-") else ("", number)
    if conventions.symbol_first:
        return f"{sign}{mark}{' ' if conventions.space_after_symbol else ''}{number}"
    return f"{sign}{number}\u00a0{mark}"


def price_places(value: Decimal, currency: str) -> int:
    """Places to show a unit price with: the minor unit, or more when the price has them
    (an overage rate of 0.125 per GB is not shown as 0.13), at most 6."""
    places = minor_unit(currency)
    normalized = Decimal(value).normalize()
    exponent = normalized.as_tuple().exponent
    needed = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return min(max(places, needed), 6)


def format_quantity(value: Decimal, conventions: Conventions, *, max_places: int = 3) -> str:
    """A quantity without needless zeros: 1 -> '1', 12.3456789 GB -> '12.346'."""
    rounded = quantize(Decimal(value), max_places).normalize()
    exponent = rounded.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return format_number(rounded, places, conventions)


def format_percent(rate: Decimal, conventions: Conventions) -> str:
    """0.062500 -> '6.25 %' (as many places as the rate needs, at least none)."""
    percent = (Decimal(rate) * 100).normalize()
    exponent = percent.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{format_number(percent, places, conventions)}\u00a0%"


def format_date(day: datetime.date | None, conventions: Conventions) -> str:
    if day is None:
        return ""
    order = conventions.date_order
    if order == "us":
        return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"
    if order == "dmy_dots":
        return f"{day.day:02d}.{day.month:02d}.{day.year}"
    if order == "dmy_text":
        return f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    if order == "ymd_slashes":
        return f"{day.year}/{day.month:02d}/{day.day:02d}"
    return day.isoformat()


def format_span(start: datetime.date | None, end_exclusive: datetime.date | None, conventions: Conventions) -> str:
    """A service span [start, end) as people read it: first and last day, both inclusive, the
    year written once when both days share it ('Feb 10 – Feb 28, 2026', '10.02. – 28.02.2026')."""
    if start is None or end_exclusive is None:
        return ""
    last = end_exclusive - datetime.timedelta(days=1)
    if last <= start:
        return format_date(start, conventions)
    end = format_date(last, conventions)
    if start.year == last.year:
        order = conventions.date_order
        if order == "us":
            return f"{MONTHS[start.month - 1]} {start.day} – {end}"
        if order == "dmy_dots":
            return f"{start.day:02d}.{start.month:02d}. – {end}"
        if order == "dmy_text":
            return f"{start.day} {MONTHS[start.month - 1]} – {end}"
    return f"{format_date(start, conventions)} – {end}"
