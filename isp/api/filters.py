"""Filters shared by the API's filter sets: values the database would refuse are refused first (400)."""

from __future__ import annotations

import datetime

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC before it reaches a query.

    Python accepts UTC offsets up to +-23:59, PostgreSQL only up to +-15:59: `?after=...+21:00`
    passed on as it came was a database error (500). In UTC it is the same instant; an instant
    without a UTC date-time (year 1 ahead of UTC, year 9999 behind it) is an invalid value (400)."""

    def to_python(self, value):
        result = super().to_python(value)
        if result is None or timezone.is_naive(result):
            return result
        try:
            return result.astimezone(datetime.UTC)
        except OverflowError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class IsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class IPAddressFilter(filters.CharFilter):
    """An IPv4 or IPv6 address (an `inet` column: anything else was a database error, 500)."""

    field_class = forms.GenericIPAddressField
