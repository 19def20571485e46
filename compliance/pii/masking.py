"""Masked forms of personal data, for staff who may not see it in clear."""

from __future__ import annotations

import datetime

from .fields import ERASED

MASK = "***"


def _first(value: str) -> str:
    return value[:1] + MASK if value else MASK


def mask_email(value: str | None) -> str | None:
    """'john.doe@example.com' -> 'j***@e***.com'."""
    if value in (None, "", ERASED):
        return value
    local, _, domain = value.partition("@")
    host, dot, tld = domain.rpartition(".")
    if not dot:
        return f"{_first(local)}@{_first(domain)}"
    return f"{_first(local)}@{_first(host)}.{tld}"


def mask_phone(value: str | None) -> str | None:
    """'+14155550123' -> '+1********23': the first two characters and the last two digits."""
    if value in (None, "", ERASED):
        return value
    if len(value) <= 5:
        return MASK
    return value[:2] + "*" * (len(value) - 4) + value[-2:]


def mask_text(value: str | None) -> str | None:
    """'Jane Q. Public' -> 'J*** Q*** P***'."""
    if value in (None, "", ERASED):
        return value
    return " ".join(_first(word) for word in value.split())


def mask_date(value: datetime.date | None) -> str | None:
    return None if value is None else "****-**-**"
