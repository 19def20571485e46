"""GPON writes: ONU autofind and optics polling over SNMP, authorisation of an ONU to a subscription.

SNMP I/O never runs inside a transaction: the OLT is walked first, then the rows are written in
one transaction that locks the OLT's row (two autofinds or polls of one OLT never interleave).

States (`Onu.State`): an ONU nobody has authorised stays `discovered` whatever the OLT says, so it
raises no alarm (the faults engine ignores `discovered`); an authorised ONU carries the state the
OLT reports (online, offline, dying_gasp, los). `last_seen_at` is the last time the OLT reported
the ONU online, for every ONU.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from compliance.audit import Actor, audit_record
from customers.models import Subscription

from ..models import Device, Onu, PonPort
from ..snmp.types import OnuPoll
from .profiles import GponProfile, OnuRow, profile_load, serial_normalize

logger = logging.getLogger(__name__)

# An ONU reported online this recently counts as online when it is authorised (before the next poll).
SEEN_RECENTLY = datetime.timedelta(minutes=10)


class OltError(Exception):
    """The OLT could not be read (unreachable, wrong credentials, not an OLT, no profile)."""


# --- SNMP -------------------------------------------------------------------------------------


def _check_olt(olt: Device) -> GponProfile:
    if olt.kind != Device.Kind.OLT:
        raise OltError(f"{olt.name} is a {olt.kind}, not an OLT")
    try:
        return profile_load(olt.vendor)
    except ValueError as exc:
        raise OltError(f"{olt.name}: {exc}") from None


def _walk_columns(olt: Device, columns: dict) -> dict[str, list[tuple[str, object]]]:
    """{name: Column} -> {name: [(full numeric OID, raw value)]}, all columns in one table walk."""
    from ..snmp.credentials import target_for
    from ..snmp.session import SnmpError, open_session

    timeout = float(getattr(settings, "GPON_SNMP_TIMEOUT", 2.0))
    retries = int(getattr(settings, "GPON_SNMP_RETRIES", 1))
    walks: dict[str, list[tuple[str, object]]] = {name: [] for name in columns}
    try:
        with open_session(target_for(olt), timeout=timeout, retries=retries) as snmp:
            table = snmp.table({name: column.oid for name, column in columns.items()})
    except SnmpError as exc:
        raise OltError(f"{olt.name}: {exc}") from exc
    for row in table.values():
        for name, varbind in row.items():
            walks[name].append((varbind.oid, varbind.value))
    return walks


def _read_rows(olt: Device, profile: GponProfile, columns: dict) -> list[OnuRow]:
    rows, problems = profile.rows(_walk_columns(olt, columns))
    for problem in problems:
        logger.warning("gpon: %s: %s", olt.name, problem)
    return rows


def _port_names(olt: Device, profile: GponProfile, ports: Iterable[int]) -> dict[int, str]:
    if profile.pon_port_name is None:
        return {}
    wanted = set(ports)
    if not wanted:
        return {}
    column = profile.pon_port_name
    names = {}
    for oid, raw in _walk_columns(olt, {"name": column})["name"]:
        key = column.key(oid)
        port = profile.port_index(key[0]) if key is not None else None
        if port in wanted:
            names[port] = str(raw or "").strip()[:64]
    return names


# --- autofind ---------------------------------------------------------------------------------


def onu_autofind(olt: Device, *, actor: Actor | None = None) -> list[Onu]:
    """Walk the OLT's ONU table: create the PON ports and ONUs it reports (new ONUs `discovered`),
    move ONUs that changed port or id, refresh the state of authorised ones. Returns every ONU the
    OLT reported, by port and ONU id. Raises OltError when the OLT cannot be read."""
    actor = actor or Actor.system("gpon autofind")
    profile = _check_olt(olt)
    rows = _read_rows(olt, profile, profile.autofind_columns())
    known_ports = set(PonPort.objects.filter(olt=olt).values_list("index", flat=True))
    new_port_names = _port_names(olt, profile, {r.pon_port for r in rows} - known_ports)
    now = timezone.now()
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=olt.pk).first()
        ports = {p.index: p for p in PonPort.objects.filter(olt=olt)}
        for index in sorted({r.pon_port for r in rows} - set(ports)):
            ports[index] = PonPort.objects.create(olt=olt, index=index, name=new_port_names.get(index, ""))
            audit_record(
                actor=actor,
                action="pon_port.discovered",
                target=ports[index],
                changed_fields=["index", "name"],
                reason=f"autofind on {olt.name}",
            )
        existing = {o.serial: o for o in Onu.objects.select_for_update().filter(serial__in=[r.serial for r in rows])}
        seen, created, moved = [], [], []
        for row in rows:
            port = ports[row.pon_port]
            onu = existing.get(row.serial)
            if onu is None:
                onu = Onu.objects.create(
                    olt=olt,
                    pon_port=port,
                    serial=row.serial,
                    onu_index=row.onu_index,
                    state=Onu.State.DISCOVERED,
                    last_seen_at=now if row.state == Onu.State.ONLINE else None,
                )
                created.append(onu)
            else:
                fields = []
                if (onu.olt_id, onu.pon_port_id, onu.onu_index) != (olt.pk, port.pk, row.onu_index):
                    onu.olt, onu.pon_port, onu.onu_index = olt, port, row.onu_index
                    fields += ["olt", "pon_port", "onu_index"]
                    moved.append(onu)
                state = row.state if onu.subscription_id else Onu.State.DISCOVERED
                if onu.state != state:
                    onu.state = state
                    fields.append("state")
                if row.state == Onu.State.ONLINE:
                    onu.last_seen_at = now
                    fields.append("last_seen_at")
                if fields:
                    onu.save(update_fields=fields)
            seen.append(onu)
        for onu in created:
            audit_record(
                actor=actor,
                action="onu.discovered",
                target=onu,
                changed_fields=["serial", "pon_port", "onu_index"],
                reason=f"autofind on {olt.name}, PON {onu.pon_port}",
            )
        for onu in moved:
            audit_record(
                actor=actor,
                action="onu.moved",
                target=onu,
                changed_fields=["olt", "pon_port", "onu_index"],
                reason=f"autofind on {olt.name}, PON {onu.pon_port}",
            )
    return seen


# --- optics -----------------------------------------------------------------------------------


def onu_poll_optics(olt: Device) -> list[OnuPoll]:
    """Read state and optical power of every known ONU of the OLT and store them on the ONU rows.

    Returns one OnuPoll per ONU of this OLT (for the faults engine): ONUs the OLT reports, plus
    authorised ONUs it no longer lists (offline, no reading). ONUs the OLT reports that are not
    known yet are left to autofind. Raises OltError when the OLT cannot be read."""
    profile = _check_olt(olt)
    rows = {row.serial: row for row in _read_rows(olt, profile, profile.poll_columns())}
    now = timezone.now()
    polls, changed = [], []
    with transaction.atomic():
        Device.objects.select_for_update().filter(pk=olt.pk).first()
        onus = Onu.objects.select_for_update(of=("self",)).filter(olt=olt)
        for onu in onus.order_by("pon_port__index", "onu_index", "pk"):
            row = rows.get(onu.serial)
            if row is None and onu.subscription_id is None:
                continue  # found once, gone since, nobody's: nothing to report
            observed = row.state if row is not None else Onu.State.OFFLINE
            state = observed if onu.subscription_id else Onu.State.DISCOVERED
            onu.state = state
            onu.rx_power_dbm = row.rx_power_dbm if row is not None else None
            onu.tx_power_dbm = row.tx_power_dbm if row is not None else None
            if observed == Onu.State.ONLINE:
                onu.last_seen_at = now
            changed.append(onu)
            polls.append(
                OnuPoll(
                    onu_id=onu.pk,
                    serial=onu.serial,
                    state=state,
                    rx_power_dbm=float(onu.rx_power_dbm) if onu.rx_power_dbm is not None else None,
                    tx_power_dbm=float(onu.tx_power_dbm) if onu.tx_power_dbm is not None else None,
                )
            )
        Onu.objects.bulk_update(changed, ["state", "rx_power_dbm", "tx_power_dbm", "last_seen_at"], batch_size=500)
    return polls


# --- authorisation ----------------------------------------------------------------------------


def _error(field: str, message: str, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def onu_by_serial(serial: str) -> Onu | None:
    """The ONU with this serial, typed in any usual form (ValidationError when it is not a serial)."""
    try:
        canonical = serial_normalize(serial)
    except ValueError as exc:
        raise _error("onu_serial", str(exc), "invalid_serial") from None
    return Onu.objects.filter(serial=canonical).first()


def onu_binding_problem(onu: Onu, subscription: Subscription, bound_serial: str | None) -> ValidationError | None:
    """Why `onu` may not be bound to `subscription` (None: it may). `bound_serial` is the serial of
    the ONU the subscription already has, if any. One ONU per subscription, one subscription per ONU."""
    if onu.subscription_id is not None and onu.subscription_id != subscription.pk:
        return _error(
            "onu", f"ONU {onu.serial} is already authorised for subscription {onu.subscription_id}.", "onu_taken"
        )
    if bound_serial is not None and bound_serial != onu.serial:
        return _error(
            "subscription",
            f"Subscription {subscription.pk} already has ONU {bound_serial}; deauthorise it first.",
            "subscription_has_onu",
        )
    if subscription.status == Subscription.Status.TERMINATED:
        return _error("subscription", f"Subscription {subscription.pk} is terminated.", "subscription_terminated")
    return None


def onu_bind(onu: Onu, subscription: Subscription, *, now) -> None:
    """Set the binding on the instance (the caller saves and audits): online if seen recently,
    else offline until the next optics poll says."""
    recently_seen = onu.last_seen_at is not None and now - onu.last_seen_at <= SEEN_RECENTLY
    onu.subscription = subscription
    onu.authorised_at = now
    onu.state = Onu.State.ONLINE if recently_seen else Onu.State.OFFLINE


@transaction.atomic
def onu_authorise(*, onu: Onu, subscription: Subscription, actor: Actor, source_ip: str | None = None) -> Onu:
    """Bind the ONU to the subscription: one ONU per subscription, one subscription per ONU.
    Authorising the same pair again changes nothing."""
    onu = Onu.objects.select_for_update().select_related("olt").get(pk=onu.pk)
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if onu.subscription_id == subscription.pk:
        return onu
    other = Onu.objects.filter(subscription=subscription).values_list("serial", flat=True).first()
    problem = onu_binding_problem(onu, subscription, other)
    if problem is not None:
        raise problem
    onu_bind(onu, subscription, now=timezone.now())
    onu.save(update_fields=["subscription", "authorised_at", "state"])
    audit_record(
        actor=actor,
        action="onu.authorised",
        target=onu,
        changed_fields=["subscription", "authorised_at", "state"],
        reason=f"subscription {subscription.pk}",
        source_ip=source_ip,
    )
    return onu


@transaction.atomic
def onu_deauthorise(*, onu: Onu, actor: Actor, reason: str = "", source_ip: str | None = None) -> Onu:
    """Unbind the ONU from its subscription; it goes back to `discovered`. Idempotent."""
    onu = Onu.objects.select_for_update().get(pk=onu.pk)
    if onu.subscription_id is None:
        return onu
    previous = onu.subscription_id
    onu.subscription = None
    onu.authorised_at = None
    onu.state = Onu.State.DISCOVERED
    onu.save(update_fields=["subscription", "authorised_at", "state"])
    audit_record(
        actor=actor,
        action="onu.deauthorised",
        target=onu,
        changed_fields=["subscription", "authorised_at", "state"],
        reason=(reason or f"was subscription {previous}")[:500],
        source_ip=source_ip,
    )
    return onu


@dataclass(frozen=True)
class OnuOptics:
    """An ONU's last optical readings against its vendor's window (for screens and reports)."""

    rx_power_dbm: object
    tx_power_dbm: object
    rx_status: str | None
    tx_status: str | None


def onu_optics(onu: Onu) -> OnuOptics:
    thresholds = profile_load(onu.olt.vendor).thresholds
    return OnuOptics(
        rx_power_dbm=onu.rx_power_dbm,
        tx_power_dbm=onu.tx_power_dbm,
        rx_status=thresholds.rx_status(onu.rx_power_dbm),
        tx_status=thresholds.tx_status(onu.tx_power_dbm),
    )
