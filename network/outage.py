"""Who is hit by an outage: the subscriptions behind a device, an interface or an ONU (reads only).

- an OLT: the subscriptions bound to its ONUs;
- a BRAS / NAS (a device with `nas` set): the subscriptions with an open RADIUS session on that
  NAS's address. Sessions of a dead NAS stay open until they are closed as stale
  (`radius_close_stale_sessions`), so the list is exact when the alarm opens; the count at that
  moment is kept in the alarm's details (`affected_subscriptions`);
- a router or switch: the subscriptions plugged into its ports (`SubscriptionPort`), direct
  ports only (nothing is inferred downstream through other devices).

A device can be more than one of these (a BRAS with access ports): the union, each subscription
once. Only live subscriptions count (active or suspended; pending and terminated ones have no
service to lose). Rows name the customer by account code only, never by name.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import asdict, dataclass, field

from customers.models import Subscription

from .models import Alarm, Device, Interface, Onu, RadiusSession, SubscriptionPort

LIVE = (Subscription.Status.ACTIVE, Subscription.Status.SUSPENDED)


@dataclass(frozen=True)
class AffectedSubscription:
    subscription_id: int
    account_code: str
    plan_code: str
    plan_name: str
    status: str
    via: str  # "onu HWTC12345678", "session on 10.0.0.1", "port ge-0/0/1"


@dataclass(frozen=True)
class OutageReport:
    alarm_id: int
    kind: str
    device_id: int | None
    device_name: str
    device_kind: str
    opened_at: datetime.datetime
    state: str
    count: int
    by_plan: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    subscriptions: list[AffectedSubscription] = field(default_factory=list)

    def as_json(self, *, limit: int | None = None) -> dict:
        rows = self.subscriptions if limit is None else self.subscriptions[:limit]
        return {
            "count": self.count,
            "by_plan": dict(self.by_plan),
            "by_status": dict(self.by_status),
            "subscriptions": [asdict(r) for r in rows],
        }


def _rows(queryset, via: dict[int, str]) -> list[AffectedSubscription]:
    subscriptions = (
        queryset.filter(status__in=LIVE)
        .select_related("customer", "plan")
        .only("pk", "status", "customer__account_number", "plan__code", "plan__name")
        .order_by("pk")
    )
    return [
        AffectedSubscription(
            subscription_id=s.pk,
            account_code=s.customer.account_code,
            plan_code=s.plan.code,
            plan_name=s.plan.name,
            status=s.status,
            via=via.get(s.pk, ""),
        )
        for s in subscriptions
    ]


def _via_onus(onus) -> dict[int, str]:
    return {sub_id: f"onu {serial}" for sub_id, serial in onus.values_list("subscription_id", "serial")}


def _via_ports(interfaces) -> dict[int, str]:
    ports = SubscriptionPort.objects.filter(interface__in=interfaces).values_list(
        "subscription_id", "interface__name", "interface__if_index"
    )
    return {sub_id: f"port {name or if_index}" for sub_id, name, if_index in ports}


def affected_subscriptions(device: Device) -> list[AffectedSubscription]:
    """The live subscriptions that lose service when `device` is down, in id order."""
    via: dict[int, str] = {}
    if device.kind == Device.Kind.OLT:
        via |= _via_onus(Onu.objects.filter(olt=device, subscription__isnull=False))
    if device.nas_id is not None:
        nas_ip = device.nas.ip_address
        sessions = RadiusSession.objects.filter(
            nas_ip_address=nas_ip, stop_time__isnull=True, subscription__isnull=False
        ).values_list("subscription_id", flat=True)
        for sub_id in sessions:
            via.setdefault(sub_id, f"session on {nas_ip}")
    for sub_id, label in _via_ports(Interface.objects.filter(device=device)).items():
        via.setdefault(sub_id, label)
    return _rows(Subscription.objects.filter(pk__in=list(via)), via) if via else []


def affected_by_alarm(alarm: Alarm) -> list[AffectedSubscription] | None:
    """The subscriptions an alarm takes service from; None for kinds that do not (utilisation,
    error rate, low optical power, reboot: degraded, not down)."""
    if alarm.kind == Alarm.Kind.DEVICE_UNREACHABLE and alarm.device_id is not None:
        return affected_subscriptions(alarm.device)
    if alarm.kind == Alarm.Kind.INTERFACE_DOWN and alarm.interface_id is not None:
        via = _via_ports(Interface.objects.filter(pk=alarm.interface_id))
        return _rows(Subscription.objects.filter(pk__in=list(via)), via) if via else []
    if alarm.kind in (Alarm.Kind.ONU_OFFLINE, Alarm.Kind.ONU_DYING_GASP) and alarm.onu_id is not None:
        via = _via_onus(Onu.objects.filter(pk=alarm.onu_id, subscription__isnull=False))
        return _rows(Subscription.objects.filter(pk__in=list(via)), via) if via else []
    return None


def outage_report(alarm: Alarm) -> OutageReport:
    """Counts and the list of affected subscriptions (account code, subscription id, plan).
    Made for the device-unreachable alarm of an OLT or a BRAS; an interface-down or ONU alarm
    gives its own subscribers, other kinds an empty report."""
    rows = affected_by_alarm(alarm) or []
    device = alarm.device if alarm.device_id is not None else None
    return OutageReport(
        alarm_id=alarm.pk,
        kind=alarm.kind,
        device_id=alarm.device_id,
        device_name=device.name if device else "",
        device_kind=device.kind if device else "",
        opened_at=alarm.opened_at,
        state=alarm.state,
        count=len(rows),
        by_plan=dict(sorted(Counter(r.plan_code for r in rows).items())),
        by_status=dict(sorted(Counter(r.status for r in rows).items())),
        subscriptions=rows,
    )
