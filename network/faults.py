"""Fault detection: which conditions a poll shows, and applying them to the Alarm table.

The first part is pure (no ORM, no Django imports): given one `DevicePoll`, what is wrong with
the device now, what is observed to be fine now, and what cannot be known. The second part,
`evaluate_polls`, is the entry the poller calls after storing a batch; it reads what it needs
and applies each device's evaluation through the services of `network.alarms`.

Rules (the thresholds live in `FaultThresholds`):

- device_unreachable (critical) while the device does not answer. An unreachable device says
  nothing about its interfaces and ONUs: their conditions are neither raised nor cleared.
- device_rebooted (warning) when sysUpTime went back; held while the uptime is below
  `rebooted_hold_s`, then cleared.
- interface_down (major) when ifAdminStatus is up and ifOperStatus is down, notPresent or
  lowerLayerDown; cleared when the interface is up or dormant again, or administratively down
  (someone shut it on purpose). Unmonitored interfaces raise nothing, and open alarms on them
  are cleared (monitoring was switched off).
- error_rate (minor; major from `error_rate_major_per_s`) when in + out errors per second reach
  `error_rate_per_s`; cleared below `error_rate_clear_per_s`.
- utilisation (minor; major from `utilisation_major`) when the busier direction reaches
  `utilisation` of the speed; cleared below `utilisation_clear`.
- onu_low_rx (minor; major below `onu_rx_major_dbm`, the class B+ sensitivity) when an online
  ONU receives less than `onu_rx_low_dbm`; cleared at or above `onu_rx_clear_dbm`. Offline ONUs
  report no meaningful power: unknown.
- onu_offline (minor; major on loss of signal) and onu_dying_gasp (minor) from the ONU state;
  both clear when the ONU is online again. ONUs found but not authorised raise nothing.

Between an opening and a clearing threshold (hysteresis) a condition stays as it is: present if
its alarm is open, nothing otherwise. A value the poller could not derive (None) is unknown.
"""

from __future__ import annotations

import datetime
import enum
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .snmp.types import DevicePoll, InterfacePoll, OnuPoll

if TYPE_CHECKING:  # pragma: no cover
    from .notifications import AlarmNotifier

logger = logging.getLogger(__name__)


class Kind(enum.StrEnum):
    """The values of `network.models.Alarm.Kind` (a contract test keeps the two equal)."""

    DEVICE_UNREACHABLE = "device_unreachable"
    INTERFACE_DOWN = "interface_down"
    ERROR_RATE = "error_rate"
    UTILISATION = "utilisation"
    ONU_LOW_RX = "onu_low_rx"
    ONU_OFFLINE = "onu_offline"
    ONU_DYING_GASP = "onu_dying_gasp"
    DEVICE_REBOOTED = "device_rebooted"


class Severity(enum.StrEnum):
    """The values of `network.models.Alarm.Severity`."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


# IF-MIB values
IF_UP = 1
IF_DOWN = 2
OPER_DOWN = frozenset({2, 6, 7})  # down, notPresent, lowerLayerDown
OPER_RUNNING = frozenset({1, 5})  # up, dormant (e.g. a dial-on-demand link waiting): not a fault
# network.models.Onu.State values
ONU_ONLINE = "online"
ONU_OFFLINE = "offline"
ONU_LOS = "los"
ONU_DYING_GASP = "dying_gasp"
ONU_DISCOVERED = "discovered"

INTERFACE_KINDS = (Kind.INTERFACE_DOWN, Kind.ERROR_RATE, Kind.UTILISATION)
ONU_KINDS = (Kind.ONU_LOW_RX, Kind.ONU_OFFLINE, Kind.ONU_DYING_GASP)


@dataclass(frozen=True)
class FaultThresholds:
    """When a condition opens and when it clears. Defaults suit an access network; a tenant may
    pass its own to `evaluate_polls`."""

    error_rate_per_s: float = 1.0
    error_rate_clear_per_s: float = 0.2
    error_rate_major_per_s: float = 10.0
    utilisation: float = 0.9
    utilisation_clear: float = 0.8
    utilisation_major: float = 0.98
    onu_rx_low_dbm: float = -27.0  # opens strictly below
    onu_rx_clear_dbm: float = -26.0  # clears at or above
    onu_rx_major_dbm: float = -28.0  # GPON class B+ receiver sensitivity
    rebooted_hold_s: int = 600
    flap_reopens: int = 3  # re-opened this many times ...
    flap_window: datetime.timedelta = datetime.timedelta(minutes=30)  # ... within this window: flapping

    def __post_init__(self):
        if not self.error_rate_clear_per_s <= self.error_rate_per_s <= self.error_rate_major_per_s:
            raise ValueError("error rate thresholds: clear <= open <= major")
        if not 0 < self.utilisation_clear <= self.utilisation <= self.utilisation_major:
            raise ValueError("utilisation thresholds: 0 < clear <= open <= major")
        if not self.onu_rx_major_dbm <= self.onu_rx_low_dbm <= self.onu_rx_clear_dbm:
            raise ValueError("ONU rx thresholds: major <= low <= clear")
        if self.flap_reopens < 1 or self.flap_window <= datetime.timedelta(0):
            raise ValueError("flapping needs at least one re-open within a positive window")


DEFAULT_THRESHOLDS = FaultThresholds()


@dataclass(frozen=True)
class DeviceInfo:
    """What the rules need to know about a device beyond its poll."""

    device_id: int
    name: str = ""
    kind: str = ""  # network.models.Device.Kind value
    unmonitored_interface_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Condition:
    """One thing wrong now. `dedupe_key` names the condition: at most one open alarm per key."""

    kind: Kind
    dedupe_key: str
    severity: Severity
    summary: str
    device_id: int
    interface_id: int | None = None
    onu_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class DeviceEvaluation:
    """What one poll says: conditions present, keys observed clear; any other key is unknown."""

    device_id: int
    observed_at: datetime.datetime
    present: tuple[Condition, ...]
    clear: frozenset[str]

    @property
    def present_keys(self) -> frozenset[str]:
        return frozenset(c.dedupe_key for c in self.present)


@dataclass(frozen=True)
class AlarmPlan:
    """What to do with the alarm table: raise (open or refresh) and clear, by key."""

    raise_: tuple[Condition, ...]
    clear: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.raise_ and not self.clear


def device_key(kind: str, device_id: int) -> str:
    return f"{kind}:device:{device_id}"


def interface_key(kind: str, interface_id: int) -> str:
    return f"{kind}:iface:{interface_id}"


def onu_key(kind: str, onu_id: int) -> str:
    return f"{kind}:onu:{onu_id}"


def _hysteresis(value: float | None, *, opens: bool, clears: bool, key: str, open_keys: Collection[str]) -> str:
    """'present', 'clear' or 'unknown' for a measured value with separate open/clear thresholds."""
    if value is None:
        return "unknown"
    if opens:
        return "present"
    if clears:
        return "clear"
    return "present" if key in open_keys else "unknown"


def _error_rate(iface: InterfacePoll) -> float | None:
    rates = [r for r in (iface.in_errors_per_s, iface.out_errors_per_s) if r is not None]
    return sum(rates) if rates else None


def _interface(
    iface: InterfacePoll, device: DeviceInfo, t: FaultThresholds, open_keys: Collection[str]
) -> tuple[list[Condition], set[str]]:
    present: list[Condition] = []
    clear: set[str] = set()
    label = iface.name or f"ifIndex {iface.if_index}"
    where = f"{device.name}: {label}" if device.name else label
    refs = {"device_id": device.device_id, "interface_id": iface.interface_id}
    keys = {k: interface_key(k, iface.interface_id) for k in INTERFACE_KINDS}
    if iface.interface_id in device.unmonitored_interface_ids:
        return present, set(keys.values())

    key = keys[Kind.INTERFACE_DOWN]
    if iface.admin_status == IF_UP and iface.oper_status in OPER_DOWN:
        present.append(
            Condition(
                Kind.INTERFACE_DOWN,
                key,
                Severity.MAJOR,
                f"Interface down: {where}",
                details={"admin_status": iface.admin_status, "oper_status": iface.oper_status},
                **refs,
            )
        )
    elif iface.admin_status == IF_DOWN or (iface.admin_status == IF_UP and iface.oper_status in OPER_RUNNING):
        clear.add(key)

    key = keys[Kind.ERROR_RATE]
    rate = _error_rate(iface)
    state = _hysteresis(
        rate,
        opens=rate is not None and rate >= t.error_rate_per_s,
        clears=rate is not None and rate < t.error_rate_clear_per_s,
        key=key,
        open_keys=open_keys,
    )
    if state == "present":
        severity = Severity.MAJOR if rate >= t.error_rate_major_per_s else Severity.MINOR
        details = {
            "errors_per_s": round(rate, 3),
            "in_errors_per_s": iface.in_errors_per_s,
            "out_errors_per_s": iface.out_errors_per_s,
            "threshold_per_s": t.error_rate_per_s,
        }
        summary = f"Interface errors {rate:.1f}/s: {where}"
        present.append(Condition(Kind.ERROR_RATE, key, severity, summary, details=details, **refs))
    elif state == "clear":
        clear.add(key)

    key = keys[Kind.UTILISATION]
    use = iface.utilisation
    state = _hysteresis(
        use,
        opens=use is not None and use >= t.utilisation,
        clears=use is not None and use < t.utilisation_clear,
        key=key,
        open_keys=open_keys,
    )
    if state == "present":
        severity = Severity.MAJOR if use >= t.utilisation_major else Severity.MINOR
        details = {
            "utilisation": round(use, 4),
            "in_bps": iface.in_bps,
            "out_bps": iface.out_bps,
            "speed_bps": iface.speed_bps,
            "threshold": t.utilisation,
        }
        summary = f"Interface at {use:.0%} of {_speed(iface.speed_bps)}: {where}"
        present.append(Condition(Kind.UTILISATION, key, severity, summary, details=details, **refs))
    elif state == "clear":
        clear.add(key)
    return present, clear


def _speed(bps: int | None) -> str:
    if not bps:
        return "?"
    for unit, size in (("Gb/s", 10**9), ("Mb/s", 10**6), ("kb/s", 10**3)):
        if bps >= size:
            return f"{bps / size:g} {unit}"
    return f"{bps} b/s"


def _onu(
    onu: OnuPoll, device: DeviceInfo, t: FaultThresholds, open_keys: Collection[str]
) -> tuple[list[Condition], set[str]]:
    present: list[Condition] = []
    clear: set[str] = set()
    where = f"ONU {onu.serial} on {device.name}" if device.name else f"ONU {onu.serial}"
    refs = {"device_id": device.device_id, "onu_id": onu.onu_id}
    keys = {k: onu_key(k, onu.onu_id) for k in ONU_KINDS}

    if onu.state == ONU_DISCOVERED:  # not authorised: nobody's service, nothing to watch
        return present, set(keys.values())
    if onu.state == ONU_ONLINE:
        clear |= {keys[Kind.ONU_OFFLINE], keys[Kind.ONU_DYING_GASP]}
    elif onu.state in (ONU_OFFLINE, ONU_LOS):
        severity = Severity.MAJOR if onu.state == ONU_LOS else Severity.MINOR
        reason = "loss of signal" if onu.state == ONU_LOS else "offline"
        present.append(
            Condition(
                Kind.ONU_OFFLINE,
                keys[Kind.ONU_OFFLINE],
                severity,
                f"{where} {reason}",
                details={"state": onu.state, "serial": onu.serial},
                **refs,
            )
        )
        clear.add(keys[Kind.ONU_DYING_GASP])
    elif onu.state == ONU_DYING_GASP:
        present.append(
            Condition(
                Kind.ONU_DYING_GASP,
                keys[Kind.ONU_DYING_GASP],
                Severity.MINOR,
                f"{where}: dying gasp (power lost at the subscriber)",
                details={"state": onu.state, "serial": onu.serial},
                **refs,
            )
        )
        clear.add(keys[Kind.ONU_OFFLINE])

    key = keys[Kind.ONU_LOW_RX]
    rx = onu.rx_power_dbm if onu.state == ONU_ONLINE else None
    state = _hysteresis(
        rx,
        opens=rx is not None and rx < t.onu_rx_low_dbm,
        clears=rx is not None and rx >= t.onu_rx_clear_dbm,
        key=key,
        open_keys=open_keys,
    )
    if state == "present":
        severity = Severity.MAJOR if rx < t.onu_rx_major_dbm else Severity.MINOR
        details = {
            "rx_power_dbm": rx,
            "tx_power_dbm": onu.tx_power_dbm,
            "threshold_dbm": t.onu_rx_low_dbm,
            "serial": onu.serial,
        }
        present.append(Condition(Kind.ONU_LOW_RX, key, severity, f"{where}: rx {rx:.2f} dBm", details=details, **refs))
    elif state == "clear":
        clear.add(key)
    return present, clear


def evaluate_device(
    poll: DevicePoll,
    *,
    device: DeviceInfo | None = None,
    thresholds: FaultThresholds = DEFAULT_THRESHOLDS,
    open_keys: Collection[str] = frozenset(),
) -> DeviceEvaluation:
    """The conditions `poll` shows. `open_keys`: the keys with an open alarm now (hysteresis)."""
    device = device or DeviceInfo(poll.device_id)
    if device.device_id != poll.device_id:
        raise ValueError("the poll is of another device")
    name = device.name or f"device {device.device_id}"
    unreachable = device_key(Kind.DEVICE_UNREACHABLE, device.device_id)
    if not poll.reachable:
        condition = Condition(
            Kind.DEVICE_UNREACHABLE,
            unreachable,
            Severity.CRITICAL,
            f"Device unreachable: {name}",
            device_id=device.device_id,
            details={"error": poll.error[:200], "device_kind": device.kind},
        )
        return DeviceEvaluation(device.device_id, poll.polled_at, (condition,), frozenset())

    present: list[Condition] = []
    clear: set[str] = {unreachable}
    rebooted = device_key(Kind.DEVICE_REBOOTED, device.device_id)
    uptime_s = poll.sys_uptime_cs / 100 if poll.sys_uptime_cs is not None else None
    held = rebooted in open_keys and uptime_s is not None and uptime_s < thresholds.rebooted_hold_s
    if poll.rebooted or held:
        present.append(
            Condition(
                Kind.DEVICE_REBOOTED,
                rebooted,
                Severity.WARNING,
                f"Device rebooted: {name}",
                device_id=device.device_id,
                details={"uptime_s": uptime_s},
            )
        )
    else:
        clear.add(rebooted)
    for iface in poll.interfaces:
        found, cleared = _interface(iface, device, thresholds, open_keys)
        present += found
        clear |= cleared
    for onu in poll.onus:
        found, cleared = _onu(onu, device, thresholds, open_keys)
        present += found
        clear |= cleared
    # A key is either present or clear, never both (one object listed twice: present wins).
    keys = {c.dedupe_key for c in present}
    unique = list({c.dedupe_key: c for c in present}.values())
    return DeviceEvaluation(device.device_id, poll.polled_at, tuple(unique), frozenset(clear - keys))


def conditions(
    poll: DevicePoll,
    *,
    device: DeviceInfo | None = None,
    thresholds: FaultThresholds = DEFAULT_THRESHOLDS,
    open_keys: Collection[str] = frozenset(),
) -> list[Condition]:
    """The conditions present now (see `evaluate_device` for what is clear and what unknown)."""
    return list(evaluate_device(poll, device=device, thresholds=thresholds, open_keys=open_keys).present)


def reconcile(evaluation: DeviceEvaluation, open_keys: Collection[str]) -> AlarmPlan:
    """Raise every present condition (open or refresh) and clear the open alarms observed clear,
    in key order (a stable lock order for concurrent evaluators)."""
    return AlarmPlan(
        raise_=tuple(sorted(evaluation.present, key=lambda c: c.dedupe_key)),
        clear=tuple(sorted(k for k in evaluation.clear if k in open_keys)),
    )


# --- applying a batch to the alarm table ---------------------------------------------------------


@dataclass
class EvaluationSummary:
    devices: int = 0
    skipped: int = 0  # polls of devices that no longer exist
    failed: int = 0  # devices whose changes hit a database error (logged; the next poll retries)
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, events: Iterable[str]) -> None:
        for event in events:
            self.events[event] += 1


def evaluate_polls(
    polls: list[DevicePoll],
    *,
    now: datetime.datetime | None = None,
    notifier: AlarmNotifier | None = None,
    thresholds: FaultThresholds = DEFAULT_THRESHOLDS,
) -> EvaluationSummary:
    """Apply a stored batch of polls to the alarm table (in the current tenant's schema).

    Alarm times are the polls' times; `now` (default: the clock) decides when a flapping alarm
    has stayed clear long enough. One transaction per device, notifications sent after each
    commits (default notifier: from settings, see network.notifications). Healthy devices with
    no open alarm cost no write: the batch reads devices, unmonitored interfaces and open alarms
    once. Polls of one device are applied oldest first. A database error on one device (e.g. it
    was deleted meanwhile) is logged and does not stop the batch."""
    from django.db import DatabaseError
    from django.utils import timezone

    from . import alarms
    from .models import Alarm, Device, Interface
    from .notifications import default_notifier

    now = now or timezone.now()
    notifier = notifier if notifier is not None else default_notifier()
    summary = EvaluationSummary()
    ids = sorted({p.device_id for p in polls})
    devices = {d.pk: d for d in Device.objects.filter(pk__in=ids).only("pk", "name", "kind")}
    unmonitored: dict[int, set[int]] = defaultdict(set)
    for device_id, iface_id in Interface.objects.filter(device_id__in=ids, monitored=False).values_list(
        "device_id", "pk"
    ):
        unmonitored[device_id].add(iface_id)
    open_keys: dict[int, set[str]] = defaultdict(set)
    for device_id, key in Alarm.objects.filter(device_id__in=ids, state=Alarm.State.OPEN).values_list(
        "device_id", "dedupe_key"
    ):
        open_keys[device_id].add(key)
    unsettled = alarms.unsettled_flapping(device_ids=ids)

    for poll in sorted(polls, key=lambda p: (p.device_id, p.polled_at)):
        device = devices.get(poll.device_id)
        if device is None:
            summary.skipped += 1
            continue
        summary.devices += 1
        info = DeviceInfo(device.pk, device.name, device.kind, frozenset(unmonitored[device.pk]))
        evaluation = evaluate_device(poll, device=info, thresholds=thresholds, open_keys=open_keys[device.pk])
        todo = reconcile(evaluation, open_keys[device.pk])
        settle = [a for a in unsettled.get(device.pk, ()) if a.cleared_at <= now - thresholds.flap_window]
        if todo.empty and not settle:
            continue
        try:
            result = alarms.alarm_apply_plan(
                plan=todo, evaluation=evaluation, settle=settle, thresholds=thresholds, notifier=notifier, now=now
            )
        except DatabaseError:
            logger.exception("fault detection: device %s not evaluated", device.pk)
            summary.failed += 1
            continue
        open_keys[device.pk] = result.open_keys_after(open_keys[device.pk])
        unsettled[device.pk] = [a for a in unsettled.get(device.pk, ()) if a.pk not in result.settled]
        summary.count(result.events)
    return summary
