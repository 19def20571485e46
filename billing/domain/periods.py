"""Billing periods (billing rules, section 2): [start, end) from the billing day to the same day
one month later; the billing day is 1-28 so every month has it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, order=True)
class Period:
    start: datetime.date
    end: datetime.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, day: datetime.date) -> bool:
        return self.start <= day < self.end

    def next(self) -> Period:
        return _period_from(self.end)

    def previous(self) -> Period:
        return Period(sub_month(self.start), self.start)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


@lru_cache(maxsize=8192)
def _period_from(start: datetime.date) -> Period:
    return Period(start, add_month(start))


def _check_day(billing_day: int) -> None:
    if not 1 <= billing_day <= 28:
        raise ValueError(f"the billing day is 1-28, not {billing_day}")


def add_month(day: datetime.date) -> datetime.date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month)


def sub_month(day: datetime.date) -> datetime.date:
    year, month = (day.year - 1, 12) if day.month == 1 else (day.year, day.month - 1)
    return day.replace(year=year, month=month)


@lru_cache(maxsize=8192)  # pure, and asked for the same few dates over and over in a run
def period_containing(day: datetime.date, billing_day: int) -> Period:
    """The period [start, end) that contains `day`: start is the latest date <= day whose
    day-of-month is `billing_day`."""
    _check_day(billing_day)
    start = day.replace(day=billing_day)
    if start > day:
        start = sub_month(start)
    return Period(start, add_month(start))


def period_starting_in(year: int, month: int, billing_day: int) -> Period:
    """The period that starts in the given calendar month (what `run_billing --period YYYY-MM` bills)."""
    _check_day(billing_day)
    start = datetime.date(year, month, billing_day)
    return Period(start, add_month(start))


def periods_between(first: Period, last: Period) -> list[Period]:
    """`first`, its successors, up to and including `last`."""
    out, current = [], first
    while current.start <= last.start:
        out.append(current)
        current = current.next()
    return out
