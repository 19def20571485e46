"""The tenant's calendar: dates that bill, fall due or take effect are the tenant's local dates."""

from __future__ import annotations

import datetime
import zoneinfo

from django.db import connection
from django.utils import timezone


def tenant_today() -> datetime.date:
    """Today in the current tenant's time zone."""
    return timezone.now().astimezone(zoneinfo.ZoneInfo(connection.tenant.time_zone)).date()
