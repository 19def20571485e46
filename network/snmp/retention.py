"""Retention of interface traffic: hourly roll-ups, purge of old raw samples and roll-ups, and
the series a traffic graph draws.

- `rollup_hours` aggregates the raw samples of complete hours into `InterfaceRollup` (one row
  per interface and hour; an idempotent upsert: running it twice, or after late samples arrived,
  gives the same rows as running it once at the end).
- `purge` deletes raw samples older than SNMP_SAMPLE_RETENTION_DAYS (default 7) and roll-ups
  older than SNMP_ROLLUP_RETENTION_DAYS (default 400), in slices so no statement holds locks for
  long. Hours about to lose their raw samples get their roll-up first if they have none, so a
  missed hourly run never loses data.
- `traffic_series` gives 24 h (or any span) for one interface: raw samples where they are still
  kept, hourly averages where only the roll-up is left.

Hours are UTC hours (`date_trunc('hour', ...)` under Django's UTC connection time zone)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from ..models import InterfaceRollup, InterfaceSample

HOUR = datetime.timedelta(hours=1)
PURGE_SLICE = 50_000


def sample_retention() -> datetime.timedelta:
    return datetime.timedelta(days=float(getattr(settings, "SNMP_SAMPLE_RETENTION_DAYS", 7)))


def rollup_retention() -> datetime.timedelta:
    return datetime.timedelta(days=float(getattr(settings, "SNMP_ROLLUP_RETENTION_DAYS", 400)))


def hour_floor(moment: datetime.datetime) -> datetime.datetime:
    moment = moment.astimezone(datetime.UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _names() -> dict[str, sql.Identifier]:
    def col(model, name):
        return sql.Identifier(model._meta.get_field(name).column)

    return {
        "samples": sql.Identifier(InterfaceSample._meta.db_table),
        "rollups": sql.Identifier(InterfaceRollup._meta.db_table),
        "s_iface": col(InterfaceSample, "interface"),
        "s_at": col(InterfaceSample, "sampled_at"),
        "s_in": col(InterfaceSample, "in_bps"),
        "s_out": col(InterfaceSample, "out_bps"),
        "r_iface": col(InterfaceRollup, "interface"),
        "r_hour": col(InterfaceRollup, "hour"),
        "r_n": col(InterfaceRollup, "samples"),
        "r_in_avg": col(InterfaceRollup, "in_bps_avg"),
        "r_out_avg": col(InterfaceRollup, "out_bps_avg"),
        "r_in_max": col(InterfaceRollup, "in_bps_max"),
        "r_out_max": col(InterfaceRollup, "out_bps_max"),
    }


_ROLLUP_SELECT = (
    "INSERT INTO {rollups} ({r_iface}, {r_hour}, {r_n}, {r_in_avg}, {r_out_avg}, {r_in_max}, {r_out_max}) "
    "SELECT s.{s_iface}, date_trunc('hour', s.{s_at}), count(*), avg(s.{s_in}), avg(s.{s_out}), "
    "max(s.{s_in}), max(s.{s_out}) FROM {samples} s "
    "WHERE s.{s_at} >= %s AND s.{s_at} < %s GROUP BY 1, 2 "
)
ROLLUP_UPSERT = sql.SQL(
    _ROLLUP_SELECT + "ON CONFLICT ({r_iface}, {r_hour}) DO UPDATE SET {r_n} = EXCLUDED.{r_n}, "
    "{r_in_avg} = EXCLUDED.{r_in_avg}, {r_out_avg} = EXCLUDED.{r_out_avg}, "
    "{r_in_max} = EXCLUDED.{r_in_max}, {r_out_max} = EXCLUDED.{r_out_max}"
)
ROLLUP_MISSING = sql.SQL(_ROLLUP_SELECT + "ON CONFLICT ({r_iface}, {r_hour}) DO NOTHING")
PURGE_SAMPLES = sql.SQL(
    "DELETE FROM {samples} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {samples} WHERE {s_at} < %s LIMIT %s))"
)
PURGE_ROLLUPS = sql.SQL(
    "DELETE FROM {rollups} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {rollups} WHERE {r_hour} < %s LIMIT %s))"
)


def rollup_hours(
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    now: datetime.datetime | None = None,
) -> int:
    """Roll up the complete hours in [since, until) (default: the last 3 complete hours, so late
    samples are counted on the next runs). Never reaches back past the raw retention, where raw
    samples may already be partly purged. Returns the number of roll-up rows written."""
    now = now or timezone.now()
    until = hour_floor(min(until or now, now))
    since = hour_floor(since) if since else until - 3 * HOUR
    oldest_complete = hour_floor(now - sample_retention()) + HOUR
    since = max(since, oldest_complete)
    if since >= until:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(ROLLUP_UPSERT.format(**_names()), [since, until])
        return cursor.rowcount


@dataclass(frozen=True)
class PurgeResult:
    samples: int
    rollups: int
    rolled_up_first: int


def purge(*, now: datetime.datetime | None = None, slice_size: int = PURGE_SLICE) -> PurgeResult:
    """Delete raw samples and roll-ups past their retention (hours without a roll-up get one first)."""
    now = now or timezone.now()
    names = _names()
    sample_cutoff = hour_floor(now - sample_retention())  # whole hours only
    rollup_cutoff = hour_floor(now - rollup_retention())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            ROLLUP_MISSING.format(**names), [datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC), sample_cutoff]
        )
        rolled = cursor.rowcount
    deleted = {"samples": 0, "rollups": 0}
    for key, statement, cutoff in (
        ("samples", PURGE_SAMPLES, sample_cutoff),
        ("rollups", PURGE_ROLLUPS, rollup_cutoff),
    ):
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement.format(**names), [cutoff, slice_size])
                count = cursor.rowcount
            deleted[key] += count
            if count < slice_size:
                break
    return PurgeResult(samples=deleted["samples"], rollups=deleted["rollups"], rolled_up_first=rolled)


def retention_run(*, now: datetime.datetime | None = None) -> dict:
    """The hourly job: roll up the last hours, then purge."""
    rolled = rollup_hours(now=now)
    purged = purge(now=now)
    return {
        "rolled_up": rolled + purged.rolled_up_first,
        "samples_purged": purged.samples,
        "rollups_purged": purged.rollups,
    }


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime.datetime
    in_bps: float
    out_bps: float
    source: str  # "sample" or "rollup" (an hour's average, at the start of the hour)


def traffic_series(interface_id: int, hours: int = 24, *, now: datetime.datetime | None = None) -> list[SeriesPoint]:
    """The traffic of one interface over the last `hours`, oldest first: raw samples where they
    exist, the hourly roll-up for hours that have no raw sample any more."""
    now = now or timezone.now()
    start = now - datetime.timedelta(hours=hours)
    samples = list(
        InterfaceSample.objects.filter(interface_id=interface_id, sampled_at__gte=start, sampled_at__lte=now)
        .order_by("sampled_at")
        .values_list("sampled_at", "in_bps", "out_bps")
    )
    covered = {hour_floor(at) for at, _, _ in samples}
    points = [SeriesPoint(at, in_bps, out_bps, "sample") for at, in_bps, out_bps in samples]
    rollups = InterfaceRollup.objects.filter(interface_id=interface_id, hour__gte=hour_floor(start), hour__lte=now)
    for hour, in_avg, out_avg in rollups.order_by("hour").values_list("hour", "in_bps_avg", "out_bps_avg"):
        if hour_floor(hour) not in covered:
            points.append(SeriesPoint(hour, in_avg, out_avg, "rollup"))
    points.sort(key=lambda p: p.at)
    return points


def traffic_points(interface_id: int, *, end: datetime.datetime, hours: int = 24) -> list[tuple]:
    """`traffic_series` as (at, in_bps, out_bps) tuples, the shape network.graphs draws."""
    return [(p.at, p.in_bps, p.out_bps) for p in traffic_series(interface_id, hours, now=end)]
