"""SNMP polling of devices (IF-MIB, numeric OIDs) and storage of what it finds.

- `poll_devices` polls many devices at once on a thread pool (easysnmp releases the GIL while it
  waits on the network), so a slow or dead device costs its own timeout x tries, never the
  others'. The threads only talk SNMP: everything they need from the database (credentials, last
  counters) is read before, everything they found is written after, in the calling thread.
- One poll of a device: GETs of sysUpTime, sysDescr and, for each known monitored interface,
  ifAdminStatus, ifOperStatus, ifHCIn/OutOctets (ifIn/OutOctets when a device has no 64-bit
  counters), ifIn/OutErrors and ifHighSpeed - 40 variables per request: one or two round trips
  for a typical router, however many other interfaces it has.
- Rates come from `network.snmp.counters` (wrap, reboot, implausible jumps: no spike stored).
- `store_polls` writes batches in one transaction each: devices and interfaces with one
  UPDATE ... FROM unnest() each, samples with COPY; then hands the polls to `network.faults`
  (when that module is installed).
- `discover_interfaces` creates/updates `Interface` rows from ifTable/ifXTable.

Settings (with defaults): SNMP_POLL_TIMEOUT 2.0 s, SNMP_POLL_RETRIES 1, SNMP_POLL_WORKERS 32,
SNMP_STORE_BATCH 500 devices."""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import importlib.util
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from compliance.audit import Actor, audit_record

from ..models import Device, Interface, InterfaceSample
from .counters import CounterReading, Interval, interface_rates, uptime_interval
from .credentials import SnmpTarget, target_for
from .session import SnmpError, open_session
from .types import DevicePoll, InterfacePoll

logger = logging.getLogger(__name__)

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"

POLL_COLUMNS = {
    "admin": f"{IF_ENTRY}.7",
    "oper": f"{IF_ENTRY}.8",
    "in_octets32": f"{IF_ENTRY}.10",
    "in_errors": f"{IF_ENTRY}.14",
    "out_octets32": f"{IF_ENTRY}.16",
    "out_errors": f"{IF_ENTRY}.20",
    "in_octets": f"{IFX_ENTRY}.6",
    "out_octets": f"{IFX_ENTRY}.10",
    "high_speed": f"{IFX_ENTRY}.15",
}
DISCOVERY_COLUMNS = {
    "descr": f"{IF_ENTRY}.2",
    "type": f"{IF_ENTRY}.3",
    "speed": f"{IF_ENTRY}.5",
    "admin": f"{IF_ENTRY}.7",
    "oper": f"{IF_ENTRY}.8",
    "name": f"{IFX_ENTRY}.1",
    "high_speed": f"{IFX_ENTRY}.15",
    "alias": f"{IFX_ENTRY}.18",
}
SMALLINT_MAX = 32767
IF_TYPE_SOFTWARE_LOOPBACK = 24  # IANAifType: a loopback carries no customer traffic; not monitored by default


def _setting(name: str, default):
    return getattr(settings, name, default)


def default_timeout() -> float:
    return float(_setting("SNMP_POLL_TIMEOUT", 2.0))


def default_retries() -> int:
    return int(_setting("SNMP_POLL_RETRIES", 1))


def default_workers() -> int:
    return int(_setting("SNMP_POLL_WORKERS", 32))


# --- what a poll needs and what it gives -------------------------------------------------------------


@dataclass(frozen=True)
class InterfaceState:
    """An interface as the database knows it before the poll."""

    interface_id: int
    if_index: int
    name: str
    speed_bps: int | None
    last: CounterReading | None
    last_uptime_cs: int | None
    last_sample_at: datetime.datetime | None


@dataclass(frozen=True)
class PollJob:
    """Everything a polling thread needs (no ORM objects cross into threads)."""

    device_id: int
    name: str
    target: SnmpTarget
    sys_uptime_cs: int | None
    last_polled_at: datetime.datetime | None
    interfaces: tuple[InterfaceState, ...]


@dataclass(frozen=True)
class InterfaceReading:
    """What `store_polls` writes to an Interface row: the new baseline and the last rates."""

    interface_id: int
    reading: CounterReading
    uptime_cs: int | None
    speed_bps: int | None
    admin_status: int | None
    oper_status: int | None
    in_bps: float | None
    out_bps: float | None
    in_errors_per_s: float | None
    out_errors_per_s: float | None


@dataclass(frozen=True)
class DevicePollResult(DevicePoll):
    """A DevicePoll with what storage needs besides (raw counters, sysDescr)."""

    sys_descr: str | None = None
    readings: tuple[InterfaceReading, ...] = ()
    requests: int = 0


# --- polling (no database access from here to `poll_devices`) -------------------------------------------


def _small(value) -> int | None:
    return value if isinstance(value, int) and 0 <= value <= SMALLINT_MAX else None


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _reading(row: dict) -> CounterReading:
    in64, out64 = _int(row.get("in_octets")), _int(row.get("out_octets"))
    in_errors, out_errors = _int(row.get("in_errors")), _int(row.get("out_errors"))
    if in64 is not None and out64 is not None:
        return CounterReading(in64, out64, in_errors, out_errors, bits=64)
    in32, out32 = _int(row.get("in_octets32")), _int(row.get("out_octets32"))
    return CounterReading(in32, out32, in_errors, out_errors, bits=32)


def _poll_oids(job: PollJob) -> list[str]:
    """sysUpTime, sysDescr and every poll column of every known interface: plain GETs (the
    interfaces are known), so a device costs ceil((2 + 9 x interfaces) / 40) round trips and
    the agent reads nothing it is not asked for."""
    oids = [SYS_UPTIME, SYS_DESCR]
    for state in job.interfaces:
        oids.extend(f"{column}.{state.if_index}" for column in POLL_COLUMNS.values())
    return oids


def poll_job(
    job: PollJob, *, timeout: float | None = None, retries: int | None = None, now: datetime.datetime | None = None
) -> DevicePollResult:
    """Poll one device. Never raises for the device's sake: an unreachable or broken device gives
    a poll with `reachable=False` and the reason in `error`."""
    timeout = default_timeout() if timeout is None else timeout
    retries = default_retries() if retries is None else retries
    started = time.perf_counter()
    polled_at = now or timezone.now()
    requests = 0
    try:
        with open_session(job.target, timeout=timeout, retries=retries) as snmp:
            values = snmp.get_many(_poll_oids(job))
            requests = snmp.requests
    except SnmpError as exc:
        return DevicePollResult(
            device_id=job.device_id,
            polled_at=polled_at,
            reachable=False,
            error=str(exc),
            duration_s=time.perf_counter() - started,
        )
    except Exception as exc:  # a device that answers nonsense must not stop the others
        logger.exception("snmp poll of %s failed", job.name)
        return DevicePollResult(
            device_id=job.device_id,
            polled_at=polled_at,
            reachable=False,
            error=f"poll error: {type(exc).__name__}: {exc}",
            duration_s=time.perf_counter() - started,
        )
    uptime = _int(values.get(SYS_UPTIME))
    descr = values.get(SYS_DESCR)
    wall = (polled_at - job.last_polled_at).total_seconds() if job.last_polled_at else None
    device_interval = uptime_interval(job.sys_uptime_cs, uptime, wall_elapsed_s=wall)
    rebooted = device_interval.rebooted
    interfaces, readings = [], []
    for state in job.interfaces:
        row = {name: values.get(f"{column}.{state.if_index}") for name, column in POLL_COLUMNS.items()}
        if all(value is None for value in row.values()):
            continue  # gone from the device (rediscovery will tell)
        reading = _reading(row)
        high_speed = _int(row.get("high_speed"))
        speed = high_speed * 1_000_000 if high_speed else state.speed_bps
        if rebooted:
            interval = Interval(None, rebooted=True, reason="rebooted")
        else:
            since = (polled_at - state.last_sample_at).total_seconds() if state.last_sample_at else None
            interval = uptime_interval(state.last_uptime_cs, uptime, wall_elapsed_s=since)
        previous = dataclasses.replace(state.last, bits=reading.bits) if state.last is not None else None
        rates = interface_rates(previous, reading, interval, speed_bps=speed)
        admin, oper = _small(row.get("admin")), _small(row.get("oper"))
        interfaces.append(
            InterfacePoll(
                interface_id=state.interface_id,
                if_index=state.if_index,
                name=state.name,
                admin_status=admin,
                oper_status=oper,
                speed_bps=speed,
                in_bps=rates.in_bps,
                out_bps=rates.out_bps,
                in_errors_per_s=rates.in_errors_per_s,
                out_errors_per_s=rates.out_errors_per_s,
            )
        )
        readings.append(
            InterfaceReading(
                interface_id=state.interface_id,
                reading=reading,
                uptime_cs=uptime,
                speed_bps=speed,
                admin_status=admin,
                oper_status=oper,
                in_bps=rates.in_bps,
                out_bps=rates.out_bps,
                in_errors_per_s=rates.in_errors_per_s,
                out_errors_per_s=rates.out_errors_per_s,
            )
        )
    return DevicePollResult(
        device_id=job.device_id,
        polled_at=polled_at,
        reachable=True,
        sys_uptime_cs=uptime,
        rebooted=rebooted,
        interfaces=interfaces,
        duration_s=time.perf_counter() - started,
        sys_descr=descr if isinstance(descr, str) else None,
        readings=tuple(readings),
        requests=requests,
    )


def _decimal_int(value) -> int | None:
    return int(value) if value is not None else None


def build_jobs(devices: Iterable[Device]) -> list[PollJob]:
    """The poll jobs of `devices` (credentials decrypted, monitored interfaces and their last
    counters read in one query)."""
    devices = list(devices)
    states: dict[int, list[InterfaceState]] = {d.pk: [] for d in devices}
    interfaces = Interface.objects.filter(device_id__in=list(states), monitored=True).order_by("device_id", "if_index")
    for iface in interfaces.iterator(chunk_size=2000):
        last = None
        if iface.last_in_octets is not None or iface.last_out_octets is not None:
            last = CounterReading(
                _decimal_int(iface.last_in_octets),
                _decimal_int(iface.last_out_octets),
                iface.last_in_errors,
                iface.last_out_errors,
            )
        states[iface.device_id].append(
            InterfaceState(
                interface_id=iface.pk,
                if_index=iface.if_index,
                name=iface.name or iface.descr or str(iface.if_index),
                speed_bps=iface.speed_bps,
                last=last,
                last_uptime_cs=iface.last_uptime_cs,
                last_sample_at=iface.last_sample_at,
            )
        )
    return [
        PollJob(
            device_id=d.pk,
            name=d.name,
            target=target_for(d),
            sys_uptime_cs=d.sys_uptime_cs,
            last_polled_at=d.last_polled_at,
            interfaces=tuple(states[d.pk]),
        )
        for d in devices
    ]


def _run_parallel(jobs: Sequence, work: Callable, *, workers: int, on_result: Callable | None) -> list:
    results: list = [None] * len(jobs)
    if not jobs:
        return results
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="snmp") as pool:
        futures = {pool.submit(work, job): position for position, job in enumerate(jobs)}
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            if on_result is not None:
                on_result(result)
    return results


def poll_device(device: Device, *, timeout: float | None = None, retries: int | None = None) -> DevicePoll:
    """Poll one device (not stored: see `store_polls`)."""
    return poll_job(build_jobs([device])[0], timeout=timeout, retries=retries)


def poll_devices(
    devices: Iterable[Device],
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    on_result: Callable[[DevicePoll], None] | None = None,
) -> list[DevicePoll]:
    """Poll many devices at once (`workers` in flight); results in the order of `devices`.
    `on_result` is called (in this thread) as each device finishes - e.g. a progress bar."""
    jobs = build_jobs(devices)
    return _run_parallel(
        jobs,
        lambda job: poll_job(job, timeout=timeout, retries=retries),
        workers=workers or default_workers(),
        on_result=on_result,
    )


# --- storing ----------------------------------------------------------------------------------------


@dataclass
class StoreSummary:
    devices: int = 0
    reachable: int = 0
    interfaces: int = 0
    samples: int = 0
    rebooted: int = 0
    faults: object | None = None


def _table(model) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def _column(model, name: str) -> sql.Identifier:
    return sql.Identifier(model._meta.get_field(name).column)


DEVICE_UPDATE = sql.SQL(
    "UPDATE {device} AS d SET {status} = u.status, {uptime} = COALESCE(u.uptime, d.{uptime}), "
    "{descr} = COALESCE(u.descr, d.{descr}), {polled} = u.polled_at, "
    "{seen} = CASE WHEN u.reachable THEN u.polled_at ELSE d.{seen} END "
    "FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[], %s::timestamptz[], %s::boolean[]) "
    "AS u(id, status, uptime, descr, polled_at, reachable) "
    "WHERE d.id = u.id AND (d.{polled} IS NULL OR d.{polled} <= u.polled_at)"
).format(
    device=_table(Device),
    status=_column(Device, "status"),
    uptime=_column(Device, "sys_uptime_cs"),
    descr=_column(Device, "sys_descr"),
    polled=_column(Device, "last_polled_at"),
    seen=_column(Device, "last_seen_at"),
)

INTERFACE_UPDATE = sql.SQL(
    "UPDATE {iface} AS i SET {admin} = u.admin, {oper} = u.oper, {speed} = COALESCE(u.speed, i.{speed}), "
    "{in_oct} = u.in_octets, {out_oct} = u.out_octets, {in_err} = u.in_errors, {out_err} = u.out_errors, "
    "{uptime} = u.uptime, {at} = u.sampled_at, {in_bps} = u.in_bps, {out_bps} = u.out_bps "
    "FROM unnest(%s::bigint[], %s::smallint[], %s::smallint[], %s::bigint[], %s::numeric[], %s::numeric[], "
    "%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[], %s::float8[], %s::float8[]) "
    "AS u(id, admin, oper, speed, in_octets, out_octets, in_errors, out_errors, uptime, sampled_at, in_bps, out_bps) "
    "WHERE i.id = u.id AND (i.{at} IS NULL OR i.{at} < u.sampled_at)"
).format(
    iface=_table(Interface),
    admin=_column(Interface, "admin_status"),
    oper=_column(Interface, "oper_status"),
    speed=_column(Interface, "speed_bps"),
    in_oct=_column(Interface, "last_in_octets"),
    out_oct=_column(Interface, "last_out_octets"),
    in_err=_column(Interface, "last_in_errors"),
    out_err=_column(Interface, "last_out_errors"),
    uptime=_column(Interface, "last_uptime_cs"),
    at=_column(Interface, "last_sample_at"),
    in_bps=_column(Interface, "in_bps"),
    out_bps=_column(Interface, "out_bps"),
)

SAMPLE_FIELDS = ("interface", "sampled_at", "in_bps", "out_bps", "in_errors_per_s", "out_errors_per_s", "oper_status")
SAMPLE_COPY = sql.SQL("COPY {} ({}) FROM STDIN").format(
    _table(InterfaceSample), sql.SQL(", ").join(_column(InterfaceSample, name) for name in SAMPLE_FIELDS)
)


def _bigint(value) -> int | None:
    return value if value is not None and -(2**63) <= value < 2**63 else None


def _store_batch(cursor, polls: Sequence[DevicePoll], summary: StoreSummary) -> None:
    cursor.execute(
        DEVICE_UPDATE,
        [
            [p.device_id for p in polls],
            [Device.Status.UP if p.reachable else Device.Status.DOWN for p in polls],
            [p.sys_uptime_cs if p.reachable else None for p in polls],
            [(getattr(p, "sys_descr", None) or None) if p.reachable else None for p in polls],
            [p.polled_at for p in polls],
            [p.reachable for p in polls],
        ],
    )
    rows, samples = [], []
    for poll in polls:
        if not poll.reachable:
            continue
        readings = getattr(poll, "readings", None)
        if readings is None:  # a plain DevicePoll: states and rates, no counters
            readings = [
                InterfaceReading(
                    i.interface_id,
                    CounterReading(None, None),
                    poll.sys_uptime_cs,
                    i.speed_bps,
                    i.admin_status,
                    i.oper_status,
                    i.in_bps,
                    i.out_bps,
                    i.in_errors_per_s,
                    i.out_errors_per_s,
                )
                for i in poll.interfaces
            ]
        for r in readings:
            rows.append((poll.polled_at, r))
            if r.in_bps is not None and r.out_bps is not None:
                samples.append(
                    (
                        r.interface_id,
                        poll.polled_at,
                        r.in_bps,
                        r.out_bps,
                        r.in_errors_per_s or 0.0,
                        r.out_errors_per_s or 0.0,
                        r.oper_status,
                    )
                )
    if rows:

        def octets(value):
            return Decimal(value) if value is not None else None

        cursor.execute(
            INTERFACE_UPDATE,
            [
                [r.interface_id for _, r in rows],
                [r.admin_status for _, r in rows],
                [r.oper_status for _, r in rows],
                [_bigint(r.speed_bps) for _, r in rows],
                [octets(r.reading.in_octets) for _, r in rows],
                [octets(r.reading.out_octets) for _, r in rows],
                [_bigint(r.reading.in_errors) for _, r in rows],
                [_bigint(r.reading.out_errors) for _, r in rows],
                [r.uptime_cs for _, r in rows],
                [at for at, _ in rows],
                [r.in_bps for _, r in rows],
                [r.out_bps for _, r in rows],
            ],
        )
    if samples:
        with cursor.copy(SAMPLE_COPY) as copy:
            for sample in samples:
                copy.write_row(sample)
    summary.devices += len(polls)
    summary.reachable += sum(1 for p in polls if p.reachable)
    summary.rebooted += sum(1 for p in polls if p.rebooted)
    summary.interfaces += len(rows)
    summary.samples += len(samples)


def _fault_evaluator() -> Callable | None:
    """network.faults.evaluate_polls when that module is installed (written separately)."""
    if importlib.util.find_spec("network.faults") is None:
        return None
    return getattr(importlib.import_module("network.faults"), "evaluate_polls", None)


def store_polls(
    polls: Sequence[DevicePoll], *, batch_size: int | None = None, evaluate_faults: bool = True
) -> StoreSummary:
    """Write polls: device status/uptime, interface states and last counters, one sample per
    interface with rates. One transaction per batch of devices; an older poll never overwrites a
    newer one's state. Then fault evaluation (network.faults), after the batches committed."""
    batch_size = batch_size or int(_setting("SNMP_STORE_BATCH", 500))
    summary = StoreSummary()
    polls = [p for p in polls if p is not None]
    for start in range(0, len(polls), batch_size):
        batch = polls[start : start + batch_size]
        with transaction.atomic(), connection.cursor() as wrapper, connection.wrap_database_errors:
            _store_batch(wrapper.cursor, batch, summary)
    evaluate = _fault_evaluator() if evaluate_faults else None
    if evaluate is not None and polls:
        summary.faults = evaluate(list(polls))
    return summary


# --- discovery ---------------------------------------------------------------------------------------


@dataclass
class DiscoveryResult:
    device_id: int
    reachable: bool
    error: str = ""
    sys_descr: str | None = None
    rows: list[dict] = field(default_factory=list)
    created: int = 0
    updated: int = 0


def discovery_walk(
    device_id: int, target: SnmpTarget, *, timeout: float | None = None, retries: int | None = None
) -> DiscoveryResult:
    """Read the device's ifTable/ifXTable (no database access)."""
    timeout = default_timeout() if timeout is None else timeout
    retries = default_retries() if retries is None else retries
    try:
        with open_session(target, timeout=timeout, retries=retries) as snmp:
            descr = snmp.get_one(SYS_DESCR)
            table = snmp.table(DISCOVERY_COLUMNS)
    except SnmpError as exc:
        return DiscoveryResult(device_id, reachable=False, error=str(exc))
    rows = []
    for index, row in table.items():
        if not index.isdigit():
            continue
        values = {name: varbind.value for name, varbind in row.items()}
        high_speed, speed = _int(values.get("high_speed")), _int(values.get("speed"))
        name, descr_text = values.get("name"), values.get("descr")
        rows.append(
            {
                "if_index": int(index),
                "name": str(name or descr_text or index)[:100],
                "descr": str(descr_text or "")[:255],
                "alias": str(values.get("alias") or "")[:255],
                "speed_bps": high_speed * 1_000_000 if high_speed else speed,
                "admin_status": _small(values.get("admin")),
                "oper_status": _small(values.get("oper")),
                # Only for interfaces discovered now: an operator's later choice is never overwritten.
                "monitored": _int(values.get("type")) != IF_TYPE_SOFTWARE_LOOPBACK,
            }
        )
    return DiscoveryResult(device_id, reachable=True, sys_descr=descr if isinstance(descr, str) else None, rows=rows)


def discovery_store(result: DiscoveryResult) -> DiscoveryResult:
    """Create or update the device's Interface rows from a discovery walk (one transaction)."""
    if not result.reachable:
        return result
    with transaction.atomic():
        existing = set(Interface.objects.filter(device_id=result.device_id).values_list("if_index", flat=True))
        Interface.objects.bulk_create(
            [Interface(device_id=result.device_id, **row) for row in result.rows],
            update_conflicts=True,
            unique_fields=["device", "if_index"],
            update_fields=["name", "descr", "alias", "speed_bps", "admin_status", "oper_status"],
            batch_size=500,
        )
        if result.sys_descr is not None:
            Device.objects.filter(pk=result.device_id).update(sys_descr=result.sys_descr[:255])
        result.created = sum(1 for row in result.rows if row["if_index"] not in existing)
        result.updated = len(result.rows) - result.created
        added = sorted(row["if_index"] for row in result.rows if row["if_index"] not in existing)
        audit_record(
            actor=Actor.system("snmp discovery"),
            action="device.discovered",
            object_type=Device._meta.label_lower,
            object_id=str(result.device_id),
            changed_fields=["interfaces", "sys_descr"],
            reason=(
                f"{result.created} interface(s) added"
                + (f" (ifIndex {', '.join(map(str, added[:20]))}{', ...' if len(added) > 20 else ''})" if added else "")
                + f", {result.updated} refreshed"
            ),
        )
    return result


def discover_interfaces(device: Device, *, timeout: float | None = None, retries: int | None = None) -> DiscoveryResult:
    """Walk IF-MIB on the device and create/update its interfaces."""
    return discovery_store(discovery_walk(device.pk, target_for(device), timeout=timeout, retries=retries))


def discover_devices(
    devices: Iterable[Device],
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    on_result: Callable[[DiscoveryResult], None] | None = None,
) -> list[DiscoveryResult]:
    """Discovery of many devices: walks in parallel, writes in this thread."""
    jobs = [(d.pk, target_for(d)) for d in devices]
    walks = _run_parallel(
        jobs,
        lambda job: discovery_walk(job[0], job[1], timeout=timeout, retries=retries),
        workers=workers or default_workers(),
        on_result=on_result,
    )
    return [discovery_store(walk) for walk in walks]


# --- one run: what the command and the Celery task call -----------------------------------------------


@dataclass
class PollRunSummary:
    devices: int = 0
    reachable: int = 0
    unreachable: int = 0
    rebooted: int = 0
    interfaces: int = 0
    samples: int = 0
    discovered: int = 0
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)  # device name -> why unreachable

    @property
    def devices_per_second(self) -> float:
        return self.devices / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "devices_per_second": round(self.devices_per_second, 1)}


def with_onu_optics(polls: Sequence[DevicePoll], devices: dict[int, Device]) -> list[DevicePoll]:
    """For every reachable OLT: its ONUs' state and optical levels (network.gpon), attached to the
    OLT's poll so that fault detection sees ONU offline / dying gasp / low Rx in the same pass.
    An OLT whose ONU table cannot be read keeps its poll without ONUs (unknown, not cleared)."""
    from network.gpon.service import OltError, onu_poll_optics

    out = []
    for poll in polls:
        device = devices.get(poll.device_id)
        if poll.reachable and device is not None and device.kind == Device.Kind.OLT:
            try:
                poll = dataclasses.replace(poll, onus=onu_poll_optics(device))
            except OltError as exc:
                logger.warning("gpon: ONU poll of OLT %s failed: %s", device.pk, exc)
        out.append(poll)
    return out


def poll_and_store(
    devices: Sequence[Device],
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    discover: bool = False,
    on_result: Callable[[DevicePoll], None] | None = None,
) -> PollRunSummary:
    """Poll `devices` (discovering their interfaces first when asked or when they have none yet)
    and store the results."""
    started = time.perf_counter()
    devices = list(devices)
    summary = PollRunSummary(devices=len(devices))
    known = set(Interface.objects.filter(device__in=devices).values_list("device_id", flat=True).distinct())
    to_discover = [d for d in devices if discover or d.pk not in known]
    if to_discover:
        results = discover_devices(to_discover, workers=workers, timeout=timeout, retries=retries)
        summary.discovered = sum(r.created for r in results)
    polls = poll_devices(devices, workers=workers, timeout=timeout, retries=retries, on_result=on_result)
    stored = store_polls(polls, evaluate_faults=False)
    polls = with_onu_optics(polls, {d.pk: d for d in devices})
    evaluate = _fault_evaluator()
    if evaluate is not None and polls:
        stored.faults = evaluate(list(polls))
    names = {d.pk: d.name for d in devices}
    summary.reachable = stored.reachable
    summary.unreachable = stored.devices - stored.reachable
    summary.rebooted = stored.rebooted
    summary.interfaces = stored.interfaces
    summary.samples = stored.samples
    summary.errors = {names[p.device_id]: p.error for p in polls if not p.reachable}
    summary.seconds = time.perf_counter() - started
    return summary
