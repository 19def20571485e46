"""Alarm services: open-or-refresh, clear, flapping, acknowledge, manual clear, notification.

One open alarm per condition (`dedupe_key`), enforced by the partial unique index
`alarm_one_open_per_condition`: an evaluator locks the open alarm (select_for_update) and
refreshes it; when there is none it inserts inside a savepoint, and if a concurrent evaluator
inserted first it refreshes that one instead (the IntegrityError of the index is the signal).
Changes of one device are made in key order, so two evaluators never wait on each other in a
cycle.

Lifecycle of one condition:

- opened: a new row. A condition that comes back within the flap window of its last clearing
  re-opens that row instead (`flap_count` = re-openings within the window, their times in
  `details["reopens"]`); at `flap_reopens` re-openings it is `flapping`.
- refreshed: each poll that still sees it (occurrences, last_seen_at, measured values, severity).
- cleared: when a poll of the reachable device observes the condition gone (never on silence).
- notifications (after commit, each delivery recorded in AlarmNotification): "opened" and
  "cleared"; once flapping, a single "flapping" message and nothing for its comings and goings,
  until it has stayed clear for the flap window: then one "cleared" (the alarm is "settled").

Every state change is audited in its transaction: alarm.opened, alarm.reopened, alarm.flapping,
alarm.severity_changed, alarm.cleared, alarm.flapping_ended, alarm.acknowledged,
alarm.cleared_manually. Refreshes without a severity change are not audited (one per poll).
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from compliance.audit import Actor, audit_record

from .faults import DEFAULT_THRESHOLDS, AlarmPlan, Condition, DeviceEvaluation, FaultThresholds
from .models import Alarm, AlarmNotification
from .notifications import FAILED, AlarmMessage, AlarmNotifier, Delivery, default_notifier
from .outage import affected_by_alarm, outage_report

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = Actor.system("fault detection")
OPEN_CONSTRAINT = "alarm_one_open_per_condition"

# Events that are notified
OPENED = "opened"
CLEARED = "cleared"
FLAPPING = "flapping"
# Other changes (returned and counted)
REOPENED = "reopened"
REFRESHED = "refreshed"
SETTLED = "settled"

# Bookkeeping kept in Alarm.details next to the measured values
REOPENS = "reopens"
SETTLED_AT = "settled_at"
CLEARED_MANUALLY = "cleared_manually"
AFFECTED = "affected_subscriptions"
BOOKKEEPING = (REOPENS, SETTLED_AT, CLEARED_MANUALLY, AFFECTED)
AFFECTED_IN_MESSAGE = 50


def _details(measured: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    kept = {k: v for k, v in (previous or {}).items() if k in BOOKKEEPING}
    return {**{k: v for k, v in measured.items() if k not in BOOKKEEPING}, **kept}


def _is_open_conflict(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == OPEN_CONSTRAINT


def _locked_open(dedupe_key: str) -> Alarm | None:
    return Alarm.objects.select_for_update().filter(dedupe_key=dedupe_key, state=Alarm.State.OPEN).first()


def _notify_after_commit(alarm: Alarm, event: str | None, notifier: AlarmNotifier | None) -> None:
    if event is None or notifier is None:
        return
    tenant = connection.tenant
    alarm_id = alarm.pk
    transaction.on_commit(
        lambda: alarm_notify(alarm_id=alarm_id, event=event, notifier=notifier, tenant=tenant), robust=True
    )


def _affected_count(alarm: Alarm) -> int | None:
    rows = affected_by_alarm(alarm)
    return None if rows is None else len(rows)


# --- open or refresh ------------------------------------------------------------------------------


def _refresh(alarm: Alarm, condition: Condition, observed_at: datetime.datetime, actor: Actor) -> str:
    alarm.occurrences += 1
    fields = ["occurrences"]
    if observed_at >= alarm.last_seen_at:  # an older poll processed late counts, but changes nothing
        alarm.last_seen_at = observed_at
        alarm.summary = condition.summary[:255]
        alarm.details = _details(condition.details, alarm.details)
        fields += ["last_seen_at", "summary", "details"]
        if alarm.severity != condition.severity:
            reason = f"{alarm.severity} -> {condition.severity}"
            alarm.severity = condition.severity
            fields.append("severity")
            audit_record(
                actor=actor, action="alarm.severity_changed", target=alarm, changed_fields=["severity"], reason=reason
            )
    alarm.save(update_fields=fields)
    return REFRESHED


def _open(
    condition: Condition, observed_at: datetime.datetime, thresholds: FaultThresholds, actor: Actor
) -> tuple[Alarm, str, str | None]:
    """A new alarm, or the re-opening of the one cleared within the flap window.
    Returns (alarm, change, event to notify)."""
    window_start = observed_at - thresholds.flap_window
    previous = (
        Alarm.objects.select_for_update()
        .filter(dedupe_key=condition.dedupe_key, state=Alarm.State.CLEARED, cleared_at__gte=window_start)
        .exclude(details__has_key=CLEARED_MANUALLY)
        .exclude(details__has_key=SETTLED_AT)
        .order_by("-cleared_at", "-pk")
        .first()
    )
    if previous is None:
        alarm = Alarm(
            kind=condition.kind,
            severity=condition.severity,
            state=Alarm.State.OPEN,
            dedupe_key=condition.dedupe_key,
            device_id=condition.device_id,
            interface_id=condition.interface_id,
            onu_id=condition.onu_id,
            summary=condition.summary[:255],
            details=_details(condition.details),
            opened_at=observed_at,
            last_seen_at=observed_at,
        )
        affected = _affected_count(alarm)
        if affected is not None:
            alarm.details[AFFECTED] = affected
        alarm.save()
        audit_record(
            actor=actor,
            action="alarm.opened",
            target=alarm,
            changed_fields=["state"],
            reason=f"{alarm.dedupe_key} ({alarm.severity})",
        )
        return alarm, OPENED, OPENED

    alarm = previous
    reopens = [
        stamp for stamp in alarm.details.get(REOPENS, []) if datetime.datetime.fromisoformat(stamp) >= window_start
    ] + [observed_at.isoformat()]
    became_flapping = not alarm.flapping and len(reopens) >= thresholds.flap_reopens
    alarm.state = Alarm.State.OPEN
    alarm.cleared_at = None
    alarm.last_seen_at = max(alarm.last_seen_at, observed_at)
    alarm.occurrences += 1
    alarm.flap_count = len(reopens)
    alarm.flapping = alarm.flapping or became_flapping
    alarm.severity = condition.severity
    alarm.summary = condition.summary[:255]
    alarm.details = {**_details(condition.details, alarm.details), REOPENS: reopens}
    affected = _affected_count(alarm)
    if affected is not None:
        alarm.details[AFFECTED] = affected
    if not alarm.flapping:  # a new occurrence needs a new look; a flapping one keeps its owner
        alarm.acknowledged_at, alarm.acknowledged_by = None, ""
    alarm.save()
    audit_record(
        actor=actor,
        action="alarm.reopened",
        target=alarm,
        changed_fields=["state", "cleared_at", "flap_count"],
        reason=f"{alarm.dedupe_key}: re-opened {alarm.flap_count} time(s) within {thresholds.flap_window}",
    )
    if became_flapping:
        audit_record(
            actor=actor,
            action="alarm.flapping",
            target=alarm,
            changed_fields=["flapping"],
            reason=f"{alarm.flap_count} re-openings within {thresholds.flap_window}",
        )
        return alarm, FLAPPING, FLAPPING
    return alarm, REOPENED, (None if alarm.flapping else OPENED)


@transaction.atomic
def alarm_raise(
    *,
    condition: Condition,
    observed_at: datetime.datetime,
    thresholds: FaultThresholds = DEFAULT_THRESHOLDS,
    notifier: AlarmNotifier | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> tuple[Alarm, str]:
    """Open the alarm of `condition`, or refresh the open one. Safe against concurrent callers:
    at most one open alarm per key. Returns (alarm, change): opened / reopened / flapping /
    refreshed."""
    alarm = _locked_open(condition.dedupe_key)
    if alarm is not None:
        return alarm, _refresh(alarm, condition, observed_at, actor)
    try:
        with transaction.atomic():  # savepoint: the insert may lose a race
            alarm, change, event = _open(condition, observed_at, thresholds, actor)
    except IntegrityError as exc:
        if not _is_open_conflict(exc):
            raise
        # A concurrent evaluator opened it and committed: lock theirs and count this poll.
        alarm = _locked_open(condition.dedupe_key)
        if alarm is None:  # opened and cleared again in between: take the next poll
            raise
        return alarm, _refresh(alarm, condition, observed_at, actor)
    _notify_after_commit(alarm, event, notifier)
    return alarm, change


# --- clear ----------------------------------------------------------------------------------------


@transaction.atomic
def alarm_clear(
    *,
    dedupe_key: str,
    observed_at: datetime.datetime,
    notifier: AlarmNotifier | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> Alarm | None:
    """Clear the open alarm of `dedupe_key`, observed gone at `observed_at`. A poll older than
    the alarm's last sighting changes nothing. A flapping alarm clears silently."""
    alarm = _locked_open(dedupe_key)
    if alarm is None or observed_at < alarm.last_seen_at:
        return None
    alarm.state = Alarm.State.CLEARED
    alarm.cleared_at = observed_at
    alarm.save(update_fields=["state", "cleared_at"])
    audit_record(actor=actor, action="alarm.cleared", target=alarm, changed_fields=["state", "cleared_at"])
    _notify_after_commit(alarm, None if alarm.flapping else CLEARED, notifier)
    return alarm


def unsettled_flapping(*, device_ids: Iterable[int]) -> dict[int, list[Alarm]]:
    """Cleared flapping alarms whose all-clear has not been sent yet, by device."""
    found: dict[int, list[Alarm]] = defaultdict(list)
    rows = (
        Alarm.objects.filter(device_id__in=list(device_ids), state=Alarm.State.CLEARED, flapping=True)
        .exclude(details__has_key=SETTLED_AT)
        .only("pk", "device_id", "dedupe_key", "cleared_at")
    )
    for alarm in rows:
        found[alarm.device_id].append(alarm)
    return found


@transaction.atomic
def alarm_settle(
    *,
    alarm: Alarm,
    at: datetime.datetime,
    notify: bool,
    notifier: AlarmNotifier | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> Alarm | None:
    """A cleared flapping alarm has stayed clear for the flap window: send its one 'cleared'
    (`notify`), or only mark it when its condition is back under a new alarm."""
    alarm = Alarm.objects.select_for_update().filter(pk=alarm.pk, state=Alarm.State.CLEARED).first()
    if alarm is None or SETTLED_AT in alarm.details:
        return None
    alarm.details = {**alarm.details, SETTLED_AT: at.isoformat()}
    alarm.save(update_fields=["details"])
    audit_record(actor=actor, action="alarm.flapping_ended", target=alarm, changed_fields=["details"])
    _notify_after_commit(alarm, CLEARED if notify else None, notifier)
    return alarm


# --- one device's evaluation ----------------------------------------------------------------------


@dataclass
class ApplyResult:
    raised: set[str] = field(default_factory=set)
    cleared: set[str] = field(default_factory=set)
    settled: set[int] = field(default_factory=set)
    events: list[str] = field(default_factory=list)

    def open_keys_after(self, before: Iterable[str]) -> set[str]:
        return (set(before) | self.raised) - self.cleared


@transaction.atomic
def alarm_apply_plan(
    *,
    plan: AlarmPlan,
    evaluation: DeviceEvaluation,
    settle: Iterable[Alarm] = (),
    thresholds: FaultThresholds = DEFAULT_THRESHOLDS,
    notifier: AlarmNotifier | None = None,
    actor: Actor = SYSTEM_ACTOR,
    now: datetime.datetime | None = None,
) -> ApplyResult:
    """Raise and clear one device's conditions in one transaction, in key order."""
    result = ApplyResult()
    ops: list[tuple[str, Condition | None]] = [(c.dedupe_key, c) for c in plan.raise_]
    ops += [(key, None) for key in plan.clear]
    for key, condition in sorted(ops, key=lambda op: op[0]):
        if condition is not None:
            _, change = alarm_raise(
                condition=condition,
                observed_at=evaluation.observed_at,
                thresholds=thresholds,
                notifier=notifier,
                actor=actor,
            )
            result.raised.add(key)
            result.events.append(change)
        elif alarm_clear(dedupe_key=key, observed_at=evaluation.observed_at, notifier=notifier, actor=actor):
            result.cleared.add(key)
            result.events.append(CLEARED)
    present = evaluation.present_keys
    for alarm in sorted(settle, key=lambda a: a.pk):
        if alarm.dedupe_key in evaluation.clear:
            notify = True
        elif alarm.dedupe_key in present:
            notify = False  # back under a new alarm, which was notified as such
        else:
            continue  # unknown now: wait for a poll that sees it
        at = now or evaluation.observed_at
        if alarm_settle(alarm=alarm, at=at, notify=notify, notifier=notifier, actor=actor):
            result.settled.add(alarm.pk)
            result.events.append(SETTLED)
    return result


# --- people ---------------------------------------------------------------------------------------


def _actor_label(actor: Actor) -> str:
    return (actor.label or actor.id or actor.type)[:150]


@transaction.atomic
def alarm_acknowledge(*, alarm: Alarm, actor: Actor, note: str = "", source_ip: str | None = None) -> Alarm:
    """Someone is on it. Only open alarms; acknowledging twice keeps the first."""
    alarm = Alarm.objects.select_for_update().get(pk=alarm.pk)
    if alarm.state != Alarm.State.OPEN:
        raise ValidationError({"alarm": "Only an open alarm can be acknowledged."}, code="alarm_not_open")
    if alarm.acknowledged_at is not None:
        return alarm
    alarm.acknowledged_at = timezone.now()
    alarm.acknowledged_by = _actor_label(actor)
    alarm.save(update_fields=["acknowledged_at", "acknowledged_by"])
    audit_record(
        actor=actor,
        action="alarm.acknowledged",
        target=alarm,
        changed_fields=["acknowledged_at", "acknowledged_by"],
        reason=note,
        source_ip=source_ip,
    )
    return alarm


@transaction.atomic
def alarm_clear_manually(
    *,
    alarm: Alarm,
    actor: Actor,
    reason: str,
    notifier: AlarmNotifier | None = None,
    source_ip: str | None = None,
) -> Alarm:
    """Clear by hand (e.g. the device was retired). If the condition is still there, the next
    poll opens a new alarm (a manual clearing never counts as flapping)."""
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why the alarm is cleared by hand."}, code="reason_required")
    alarm = Alarm.objects.select_for_update().get(pk=alarm.pk)
    if alarm.state != Alarm.State.OPEN:
        raise ValidationError({"alarm": "This alarm is not open."}, code="alarm_not_open")
    alarm.state = Alarm.State.CLEARED
    alarm.cleared_at = timezone.now()
    alarm.details = {**alarm.details, CLEARED_MANUALLY: _actor_label(actor)}
    alarm.save(update_fields=["state", "cleared_at", "details"])
    audit_record(
        actor=actor,
        action="alarm.cleared_manually",
        target=alarm,
        changed_fields=["state", "cleared_at"],
        reason=reason.strip(),
        source_ip=source_ip,
    )
    notifier = notifier if notifier is not None else default_notifier()
    _notify_after_commit(alarm, None if alarm.flapping else CLEARED, notifier)
    return alarm


# --- notification (after commit) ------------------------------------------------------------------


def alarm_message(alarm: Alarm, event: str) -> AlarmMessage:
    device = alarm.device if alarm.device_id is not None else None
    affected = None
    if alarm.kind in (
        Alarm.Kind.DEVICE_UNREACHABLE,
        Alarm.Kind.INTERFACE_DOWN,
        Alarm.Kind.ONU_OFFLINE,
        Alarm.Kind.ONU_DYING_GASP,
    ):
        affected = outage_report(alarm).as_json(limit=AFFECTED_IN_MESSAGE)
    return AlarmMessage(
        alarm_id=alarm.pk,
        event=event,
        kind=alarm.kind,
        severity=alarm.severity,
        state=alarm.state,
        summary=alarm.summary,
        dedupe_key=alarm.dedupe_key,
        opened_at=alarm.opened_at,
        last_seen_at=alarm.last_seen_at,
        cleared_at=alarm.cleared_at,
        occurrences=alarm.occurrences,
        flap_count=alarm.flap_count,
        flapping=alarm.flapping,
        device_id=alarm.device_id,
        device_name=device.name if device else "",
        device_kind=device.kind if device else "",
        management_ip=device.management_ip if device else "",
        tenant=connection.schema_name,
        tenant_name=getattr(connection.tenant, "name", "") or "",
        details={k: v for k, v in alarm.details.items() if k != REOPENS},
        affected=affected,
    )


def _deliver(alarm_id: int, event: str, notifier: AlarmNotifier) -> list[AlarmNotification]:
    alarm = Alarm.objects.select_related("device").filter(pk=alarm_id).first()
    if alarm is None:  # deleted with its device in the meantime
        return []
    message = alarm_message(alarm, event)
    try:
        deliveries = notifier.notify(message)
    except Exception as exc:  # a notifier must not raise; if one does, it is a failed delivery
        logger.exception("alarm %s: notifier %s raised", alarm_id, type(notifier).__name__)
        channel = str(getattr(notifier, "channel", type(notifier).__name__))[:16]
        deliveries = [Delivery(channel, "", FAILED, type(exc).__name__)]
    return AlarmNotification.objects.bulk_create(
        AlarmNotification(
            alarm_id=alarm_id,
            event=event,
            channel=d.channel[:16],
            target=d.target[:255],
            outcome=d.outcome[:16],
            detail=d.detail[:300],
        )
        for d in deliveries
    )


def alarm_notify(*, alarm_id: int, event: str, notifier: AlarmNotifier, tenant=None) -> list[AlarmNotification]:
    """Send one event of an alarm through `notifier` and record each delivery. Runs after the
    alarm's change committed (in the tenant the change was made in)."""
    if tenant is not None and connection.schema_name != tenant.schema_name:
        with tenant_context(tenant):
            return _deliver(alarm_id, event, notifier)
    return _deliver(alarm_id, event, notifier)
