"""Fault detection: the pure rules (network.faults), the alarm services (network.alarms), the
notifiers (network.notifications) and outages (network.outage).

Rules are tested without a database (plain and hypothesis). Alarm tests run across the tenant
matrix inside the test's transaction; `on_commit` callbacks (notifications) are executed with
`django_capture_on_commit_callbacks(execute=True)`, as a commit would. The concurrency test
commits for real from threads (one connection each) and removes what it wrote.
Devices, interfaces and ONUs are created with the ORM (not through the inventory services)."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import itertools
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import services as cs
from network import alarms, faults
from network.faults import (
    DEFAULT_THRESHOLDS,
    DeviceInfo,
    FaultThresholds,
    Kind,
    Severity,
    evaluate_device,
    reconcile,
)
from network.models import (
    Alarm,
    AlarmNotification,
    Device,
    Interface,
    Nas,
    Onu,
    PonPort,
    RadiusSession,
    SubscriptionPort,
)
from network.notifications import (
    AlarmMessage,
    CompositeNotifier,
    EmailAlarmNotifier,
    RecordingNotifier,
    WebhookAlarmNotifier,
    default_notifier,
    webhook_signature,
    webhook_verify,
)
from network.outage import affected_subscriptions, outage_report
from network.snmp.types import DevicePoll, InterfacePoll, OnuPoll
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

pytestmark = [pytest.mark.network_monitoring]

ACTOR = Actor.system("fault tests")
T0 = datetime.datetime(2026, 11, 2, 8, 0, tzinfo=datetime.UTC)
MIN = datetime.timedelta(minutes=1)
GIG = 10**9


# --- builders -------------------------------------------------------------------------------------


def iface(interface_id=1, *, admin=1, oper=1, speed=GIG, in_bps=0.0, out_bps=0.0, in_err=0.0, out_err=0.0, name=""):
    return InterfacePoll(
        interface_id=interface_id,
        if_index=interface_id,
        name=name or f"ge-0/0/{interface_id}",
        admin_status=admin,
        oper_status=oper,
        speed_bps=speed,
        in_bps=in_bps,
        out_bps=out_bps,
        in_errors_per_s=in_err,
        out_errors_per_s=out_err,
    )


def onu(onu_id=1, *, state="online", rx=-20.0, tx=2.0, serial=None):
    return OnuPoll(onu_id=onu_id, serial=serial or f"HWTC{onu_id:08X}", state=state, rx_power_dbm=rx, tx_power_dbm=tx)


def poll(device_id=1, *, at=T0, reachable=True, interfaces=(), onus=(), rebooted=False, uptime_cs=10**8, error=""):
    return DevicePoll(
        device_id=device_id,
        polled_at=at,
        reachable=reachable,
        error=error,
        sys_uptime_cs=uptime_cs if reachable else None,
        rebooted=rebooted,
        interfaces=list(interfaces),
        onus=list(onus),
    )


def kinds(evaluation) -> dict[str, str]:
    return {c.dedupe_key: c.severity for c in evaluation.present}


# --- the rules (pure) -----------------------------------------------------------------------------


@pytest.mark.contract
def test_rule_kinds_and_severities_are_the_alarm_models_values():
    assert {k.value for k in Kind} == set(Alarm.Kind.values)
    assert {s.value for s in Severity} == set(Alarm.Severity.values)
    longest = max(len(faults.interface_key(k, 2**31)) for k in Kind)
    assert longest <= Alarm._meta.get_field("dedupe_key").max_length


@pytest.mark.business_logic_protection
@pytest.mark.behavior
def test_golden_thresholds_and_severities():
    """The defaults and what each reading means. Changing any of these is a product decision."""
    t = DEFAULT_THRESHOLDS
    assert (t.error_rate_per_s, t.error_rate_clear_per_s, t.error_rate_major_per_s) == (1.0, 0.2, 10.0)
    assert (t.utilisation, t.utilisation_clear, t.utilisation_major) == (0.9, 0.8, 0.98)
    assert (t.onu_rx_low_dbm, t.onu_rx_clear_dbm, t.onu_rx_major_dbm) == (-27.0, -26.0, -28.0)
    assert (t.flap_reopens, t.flap_window, t.rebooted_hold_s) == (3, datetime.timedelta(minutes=30), 600)

    cases = [
        (poll(reachable=False, error="timeout"), {"device_unreachable:device:1": "critical"}),
        (poll(rebooted=True, uptime_cs=3000), {"device_rebooted:device:1": "warning"}),
        (poll(interfaces=[iface(oper=2)]), {"interface_down:iface:1": "major"}),
        (poll(interfaces=[iface(oper=7)]), {"interface_down:iface:1": "major"}),  # lowerLayerDown
        (poll(interfaces=[iface(admin=2, oper=2)]), {}),  # shut on purpose
        (poll(interfaces=[iface(oper=5)]), {}),  # dormant
        (poll(interfaces=[iface(in_err=0.6, out_err=0.4)]), {"error_rate:iface:1": "minor"}),  # 1.0/s
        (poll(interfaces=[iface(in_err=0.99)]), {}),
        (poll(interfaces=[iface(in_err=10.0)]), {"error_rate:iface:1": "major"}),
        (poll(interfaces=[iface(out_bps=0.9 * GIG)]), {"utilisation:iface:1": "minor"}),
        (poll(interfaces=[iface(in_bps=0.899 * GIG)]), {}),
        (poll(interfaces=[iface(in_bps=0.98 * GIG)]), {"utilisation:iface:1": "major"}),
        (poll(interfaces=[iface(in_bps=5e8, speed=None)]), {}),  # speed unknown: no utilisation
        (poll(onus=[onu(rx=-27.0)]), {}),  # at the threshold: fine
        (poll(onus=[onu(rx=-27.01)]), {"onu_low_rx:onu:1": "minor"}),
        (poll(onus=[onu(rx=-28.5)]), {"onu_low_rx:onu:1": "major"}),  # below B+ sensitivity
        (poll(onus=[onu(state="offline", rx=None)]), {"onu_offline:onu:1": "minor"}),
        (poll(onus=[onu(state="los", rx=None)]), {"onu_offline:onu:1": "major"}),
        (poll(onus=[onu(state="dying_gasp", rx=None)]), {"onu_dying_gasp:onu:1": "minor"}),
        (poll(onus=[onu(state="discovered", rx=-35.0)]), {}),  # not authorised: not watched
    ]
    for given_poll, expected in cases:
        assert kinds(evaluate_device(given_poll)) == expected, given_poll


@pytest.mark.behavior
def test_interface_down_only_when_admin_up_and_only_for_monitored_interfaces():
    device = DeviceInfo(1, "core-1", "router", unmonitored_interface_ids=frozenset({2}))
    evaluation = evaluate_device(
        poll(interfaces=[iface(1, oper=2), iface(2, oper=2), iface(3, admin=2, oper=2), iface(4, admin=None, oper=2)]),
        device=device,
    )
    assert kinds(evaluation) == {"interface_down:iface:1": "major"}
    assert evaluation.present[0].summary == "Interface down: core-1: ge-0/0/1"
    assert (evaluation.present[0].device_id, evaluation.present[0].interface_id) == (1, 1)
    # unmonitored: everything about it is clear (an alarm left from before is closed)
    assert {"interface_down:iface:2", "error_rate:iface:2", "utilisation:iface:2"} <= evaluation.clear
    assert "interface_down:iface:3" in evaluation.clear  # administratively down
    assert "interface_down:iface:4" not in evaluation.clear  # admin status unknown: unknown


@pytest.mark.behavior
def test_an_unreachable_device_hides_its_interfaces_and_onus_and_clears_nothing():
    down = poll(reachable=False, interfaces=[iface(oper=2)], onus=[onu(rx=-30.0)])
    evaluation = evaluate_device(down, open_keys={"interface_down:iface:1", "onu_low_rx:onu:1"})
    assert kinds(evaluation) == {"device_unreachable:device:1": "critical"}
    assert evaluation.clear == frozenset()
    plan = reconcile(evaluation, {"interface_down:iface:1", "onu_low_rx:onu:1"})
    assert plan.clear == ()  # unknown is not clear


@pytest.mark.behavior
def test_hysteresis_holds_an_open_condition_between_the_thresholds():
    band = poll(interfaces=[iface(in_bps=0.85 * GIG)], onus=[onu(rx=-26.5)])
    assert evaluate_device(band).present == ()
    assert evaluate_device(band).clear == evaluate_device(band).clear - {"utilisation:iface:1", "onu_low_rx:onu:1"}
    held = evaluate_device(band, open_keys={"utilisation:iface:1", "onu_low_rx:onu:1"})
    assert set(kinds(held)) == {"utilisation:iface:1", "onu_low_rx:onu:1"}
    cleared = evaluate_device(poll(interfaces=[iface(in_bps=0.79 * GIG)], onus=[onu(rx=-26.0)]))
    assert {"utilisation:iface:1", "onu_low_rx:onu:1"} <= cleared.clear
    # an offline ONU says nothing about its optical power
    offline = evaluate_device(poll(onus=[onu(state="offline", rx=-40.0)]), open_keys={"onu_low_rx:onu:1"})
    assert "onu_low_rx:onu:1" not in offline.clear
    assert "onu_low_rx:onu:1" not in kinds(offline)


@pytest.mark.behavior
def test_a_reboot_alarm_is_held_while_the_uptime_is_short():
    key = "device_rebooted:device:1"
    assert key in kinds(evaluate_device(poll(rebooted=True, uptime_cs=500)))
    assert key in kinds(evaluate_device(poll(uptime_cs=30_000), open_keys={key}))  # 300 s < 600 s
    assert key in evaluate_device(poll(uptime_cs=60_000), open_keys={key}).clear
    assert key in evaluate_device(poll(uptime_cs=30_000)).clear  # no reboot seen, nothing open


@pytest.mark.contract
def test_thresholds_refuse_inconsistent_values():
    with pytest.raises(ValueError):
        FaultThresholds(utilisation=0.7, utilisation_clear=0.8)
    with pytest.raises(ValueError):
        FaultThresholds(onu_rx_low_dbm=-25.0, onu_rx_clear_dbm=-26.0)
    with pytest.raises(ValueError):
        FaultThresholds(flap_reopens=0)


# hypothesis: random polls of one device

rates = st.one_of(st.none(), st.floats(min_value=0, max_value=50, allow_nan=False))
interfaces = st.builds(
    iface,
    st.integers(1, 6),
    admin=st.sampled_from([None, 1, 2, 3]),
    oper=st.sampled_from([None, 1, 2, 3, 4, 5, 6, 7]),
    speed=st.sampled_from([None, 0, 10**8, GIG]),
    in_bps=st.one_of(st.none(), st.floats(0, 1.2 * GIG)),
    out_bps=st.one_of(st.none(), st.floats(0, 1.2 * GIG)),
    in_err=rates,
    out_err=rates,
)
onus = st.builds(
    onu,
    st.integers(1, 6),
    state=st.sampled_from(["online", "offline", "los", "dying_gasp", "discovered"]),
    rx=st.one_of(st.none(), st.floats(-40, -10)),
)
polls = st.builds(
    poll,
    reachable=st.booleans(),
    interfaces=st.lists(interfaces, max_size=6, unique_by=lambda i: i.interface_id),
    onus=st.lists(onus, max_size=6, unique_by=lambda o: o.onu_id),
    rebooted=st.booleans(),
    uptime_cs=st.integers(0, 10**9),
)
open_key_sets = st.frozensets(
    st.sampled_from(
        [faults.interface_key(k, i) for k in faults.INTERFACE_KINDS for i in range(1, 7)]
        + [faults.onu_key(k, i) for k in faults.ONU_KINDS for i in range(1, 7)]
        + ["device_unreachable:device:1", "device_rebooted:device:1"]
    )
)


def _apply(open_keys: frozenset[str], evaluation) -> frozenset[str]:
    """The alarm table as a set of open keys (what alarm_apply_plan does to it)."""
    plan = reconcile(evaluation, open_keys)
    return (open_keys | {c.dedupe_key for c in plan.raise_}) - set(plan.clear)


@pytest.mark.property
@given(given_poll=polls, open_keys=open_key_sets)
def test_a_key_is_present_or_clear_never_both_and_only_for_what_was_polled(given_poll, open_keys):
    evaluation = evaluate_device(given_poll, open_keys=open_keys)
    keys = [c.dedupe_key for c in evaluation.present]
    assert len(keys) == len(set(keys))
    assert not (set(keys) & evaluation.clear)
    polled = {f"iface:{i.interface_id}" for i in given_poll.interfaces} | {f"onu:{o.onu_id}" for o in given_poll.onus}
    for key in set(keys) | evaluation.clear:
        kind, _, obj = key.partition(":")
        assert kind in Kind.__members__.values()
        assert obj == "device:1" or obj in polled
    if not given_poll.reachable:
        assert keys == ["device_unreachable:device:1"]
        assert evaluation.clear == frozenset()


@pytest.mark.property
@given(given_poll=polls, open_keys=open_key_sets)
def test_evaluating_the_same_poll_twice_opens_nothing_the_second_time(given_poll, open_keys):
    after_first = _apply(open_keys, evaluate_device(given_poll, open_keys=open_keys))
    second = reconcile(evaluate_device(given_poll, open_keys=after_first), after_first)
    assert {c.dedupe_key for c in second.raise_} <= after_first  # refreshes only
    assert second.clear == ()
    assert _apply(after_first, evaluate_device(given_poll, open_keys=after_first)) == after_first


@pytest.mark.property
@given(first=polls, second=polls, open_keys=open_key_sets)
def test_a_condition_is_cleared_only_when_a_poll_observes_it_clear(first, second, open_keys):
    t = DEFAULT_THRESHOLDS
    state = _apply(open_keys, evaluate_device(first, open_keys=open_keys))
    evaluation = evaluate_device(second, open_keys=state)
    for key in reconcile(evaluation, state).clear:
        assert second.reachable
        kind, _, obj = key.partition(":")
        if obj.startswith("iface:"):
            seen = next(i for i in second.interfaces if f"iface:{i.interface_id}" == obj)
            if kind == Kind.INTERFACE_DOWN:
                assert seen.admin_status == 2 or (seen.admin_status == 1 and seen.oper_status in (1, 5))
            elif kind == Kind.UTILISATION:
                assert seen.utilisation is not None
                assert seen.utilisation < t.utilisation_clear
            else:
                known = [r for r in (seen.in_errors_per_s, seen.out_errors_per_s) if r is not None]
                assert known
                assert sum(known) < t.error_rate_clear_per_s
        elif obj.startswith("onu:"):
            seen = next(o for o in second.onus if f"onu:{o.onu_id}" == obj)
            if seen.state == "discovered":
                continue
            if kind == Kind.ONU_LOW_RX:
                assert seen.state == "online"
                assert seen.rx_power_dbm >= t.onu_rx_clear_dbm
            elif kind == Kind.ONU_OFFLINE:
                assert seen.state in ("online", "dying_gasp")
            else:
                assert seen.state in ("online", "offline", "los")
        elif kind == Kind.DEVICE_REBOOTED:
            assert not second.rebooted


@pytest.mark.property
@given(value=st.floats(0, 1.5), is_open=st.booleans())
def test_utilisation_hysteresis(value, is_open):
    key = "utilisation:iface:1"
    evaluation = evaluate_device(poll(interfaces=[iface(in_bps=value * GIG)]), open_keys={key} if is_open else set())
    present, clear = key in kinds(evaluation), key in evaluation.clear
    if value >= 0.9:
        assert present
    elif value < 0.8:
        assert clear
    else:
        assert present == is_open
        assert not clear


# --- alarms in the database (tenant matrix) -------------------------------------------------------


_addresses = itertools.count(1)


def _device(name="r1", kind=Device.Kind.ROUTER, ip=None, **fields) -> Device:
    ip = ip or str(ipaddress.IPv4Address("10.0.0.0") + next(_addresses))
    return Device.objects.create(name=name, kind=kind, management_ip=ip, status=Device.Status.UP, **fields)


def _interface(device, if_index=1, **fields) -> Interface:
    return Interface.objects.create(device=device, if_index=if_index, name=f"ge-0/0/{if_index}", **fields)


def _live_subscription(plan=None):
    customer = CustomerFactory()
    address = ServiceAddressFactory(customer=customer)
    sub = cs.subscription_create(customer=customer, plan=plan or PlanFactory(), service_address=address, actor=ACTOR)
    return cs.subscription_activate(subscription=sub, activated_on=datetime.date(2026, 10, 1), actor=ACTOR)


@pytest.fixture
def evaluate(django_capture_on_commit_callbacks):
    """evaluate_polls, then the on_commit callbacks (notifications) as a commit would run them."""

    def run(*given_polls, notifier, now=None, thresholds=DEFAULT_THRESHOLDS):
        with django_capture_on_commit_callbacks(execute=True):
            return faults.evaluate_polls(
                list(given_polls),
                now=now or max(p.polled_at for p in given_polls),
                notifier=notifier,
                thresholds=thresholds,
            )

    return run


def _audits(alarm, action) -> int:
    return AuditEvent.objects.filter(object_type="network.alarm", object_id=str(alarm.pk), action=action).count()


@pytest.mark.behavior
def test_a_condition_opens_one_alarm_and_repeated_polls_refresh_it(tenant, evaluate):
    # given
    device = _device()
    port = _interface(device)
    notifier = RecordingNotifier()
    down = [iface(port.pk, oper=2)]
    # when
    for minute in range(3):
        evaluate(poll(device.pk, at=T0 + minute * MIN, interfaces=down), notifier=notifier)
    # then
    [alarm] = Alarm.objects.filter(device=device)
    assert (alarm.kind, alarm.severity, alarm.state) == ("interface_down", "major", "open")
    assert alarm.dedupe_key == f"interface_down:iface:{port.pk}"
    assert (alarm.interface_id, alarm.occurrences) == (port.pk, 3)
    assert (alarm.opened_at, alarm.last_seen_at) == (T0, T0 + 2 * MIN)
    assert notifier.events == [("opened", alarm.dedupe_key)]
    assert _audits(alarm, "alarm.opened") == 1
    [record] = AlarmNotification.objects.filter(alarm=alarm)
    assert (record.event, record.channel, record.outcome) == ("opened", "recording", "sent")


@pytest.mark.behavior
def test_an_alarm_clears_only_when_a_reachable_poll_observes_the_condition_gone(tenant, evaluate):
    device = _device()
    port, other = _interface(device, 1), _interface(device, 2)
    notifier = RecordingNotifier()
    evaluate(poll(device.pk, at=T0, interfaces=[iface(port.pk, oper=2), iface(other.pk, oper=2)]), notifier=notifier)
    # the device stops answering: its interface alarms are unknown, not cleared
    evaluate(poll(device.pk, at=T0 + MIN, reachable=False, error="timeout"), notifier=notifier)
    # reachable again, one port seen up, the other not in the poll at all
    summary = evaluate(poll(device.pk, at=T0 + 2 * MIN, interfaces=[iface(port.pk, oper=1)]), notifier=notifier)

    by_key = {a.dedupe_key: a for a in Alarm.objects.filter(device=device)}
    assert by_key[f"interface_down:iface:{port.pk}"].state == "cleared"
    assert by_key[f"interface_down:iface:{port.pk}"].cleared_at == T0 + 2 * MIN
    assert by_key[f"interface_down:iface:{other.pk}"].state == "open"
    unreachable = by_key[f"device_unreachable:device:{device.pk}"]
    assert (unreachable.state, unreachable.severity, unreachable.details["error"]) == ("cleared", "critical", "timeout")
    assert summary.events == {"cleared": 2}
    # one poll's alarms are raised in the order of their keys (as strings: iface:10 before iface:9)
    first_poll = sorted([f"interface_down:iface:{port.pk}", f"interface_down:iface:{other.pk}"])
    assert notifier.events == [
        *(("opened", key) for key in first_poll),
        ("opened", unreachable.dedupe_key),
        ("cleared", unreachable.dedupe_key),
        ("cleared", f"interface_down:iface:{port.pk}"),
    ]
    assert _audits(by_key[f"interface_down:iface:{port.pk}"], "alarm.cleared") == 1


@pytest.mark.data_safety
@pytest.mark.behavior
def test_a_late_older_poll_neither_clears_nor_rewinds_an_alarm(tenant, evaluate):
    device = _device()
    port = _interface(device)
    notifier = RecordingNotifier()
    evaluate(poll(device.pk, at=T0 + 5 * MIN, interfaces=[iface(port.pk, oper=2)]), notifier=notifier)
    evaluate(poll(device.pk, at=T0, interfaces=[iface(port.pk, oper=1)]), notifier=notifier)  # older, seen late
    [alarm] = Alarm.objects.filter(device=device)
    assert (alarm.state, alarm.last_seen_at) == ("open", T0 + 5 * MIN)


@pytest.mark.behavior
def test_flapping_sends_one_flapping_message_then_one_all_clear(tenant, evaluate):
    # given: a port that goes down and up every 4 minutes
    device = _device()
    port = _interface(device)
    key = f"interface_down:iface:{port.pk}"
    notifier = RecordingNotifier()
    at = T0
    for _ in range(6):
        evaluate(poll(device.pk, at=at, interfaces=[iface(port.pk, oper=2)]), notifier=notifier)
        evaluate(poll(device.pk, at=at + 2 * MIN, interfaces=[iface(port.pk, oper=1)]), notifier=notifier)
        at += 4 * MIN
    # then: one row; opened/cleared until the 3rd re-opening within 30 min, then silence
    [alarm] = Alarm.objects.filter(dedupe_key=key)
    assert (alarm.state, alarm.flapping, alarm.flap_count, alarm.occurrences) == ("cleared", True, 5, 6)
    assert [e for e, _ in notifier.events] == [
        "opened",
        "cleared",
        "opened",
        "cleared",
        "opened",
        "cleared",
        "flapping",
    ]
    assert _audits(alarm, "alarm.flapping") == 1
    assert _audits(alarm, "alarm.reopened") == 5

    # when: it stays up, but not yet for the whole window: nothing
    last_clear = alarm.cleared_at
    evaluate(poll(device.pk, at=last_clear + 10 * MIN, interfaces=[iface(port.pk, oper=1)]), notifier=notifier)
    assert notifier.events[-1][0] == "flapping"
    # when: up for the whole window: one all-clear, once
    for minutes in (31, 35):
        evaluate(poll(device.pk, at=last_clear + minutes * MIN, interfaces=[iface(port.pk, oper=1)]), notifier=notifier)
    assert [e for e, _ in notifier.events][-2:] == ["flapping", "cleared"]
    assert notifier.messages[-1].flapping
    alarm.refresh_from_db()
    assert "settled_at" in alarm.details
    assert _audits(alarm, "alarm.flapping_ended") == 1

    # and a new fault later is a new alarm, notified again
    evaluate(poll(device.pk, at=last_clear + 60 * MIN, interfaces=[iface(port.pk, oper=2)]), notifier=notifier)
    assert Alarm.objects.filter(dedupe_key=key).count() == 2
    assert notifier.events[-1] == ("opened", key)


@pytest.mark.behavior
def test_reopening_after_the_flap_window_is_a_new_alarm(tenant, evaluate):
    device = _device()
    port = _interface(device)
    notifier = RecordingNotifier()
    evaluate(poll(device.pk, at=T0, interfaces=[iface(port.pk, oper=2)]), notifier=notifier)
    evaluate(poll(device.pk, at=T0 + MIN, interfaces=[iface(port.pk, oper=1)]), notifier=notifier)
    evaluate(poll(device.pk, at=T0 + 10 * MIN, interfaces=[iface(port.pk, oper=2)]), notifier=notifier)  # re-open
    evaluate(poll(device.pk, at=T0 + 11 * MIN, interfaces=[iface(port.pk, oper=1)]), notifier=notifier)
    evaluate(poll(device.pk, at=T0 + 50 * MIN, interfaces=[iface(port.pk, oper=2)]), notifier=notifier)  # new
    rows = list(Alarm.objects.filter(device=device).order_by("pk").values_list("state", "flap_count", "opened_at"))
    assert rows == [("cleared", 1, T0), ("open", 0, T0 + 50 * MIN)]


@pytest.mark.data_safety
@pytest.mark.behavior
def test_a_lost_race_to_open_refreshes_the_winners_alarm(tenant, monkeypatch):
    """The path a concurrent evaluator takes: its lookup found nothing, its insert hits the
    partial unique index; the savepoint rolls back and it refreshes the open alarm."""
    device = _device()
    condition = evaluate_device(poll(device.pk, reachable=False), device=DeviceInfo(device.pk, "r1")).present[0]
    first, _ = alarms.alarm_raise(condition=condition, observed_at=T0)
    real_lookup, calls = alarms._locked_open, []

    def blind_once(key):
        calls.append(key)
        return None if len(calls) == 1 else real_lookup(key)

    monkeypatch.setattr(alarms, "_locked_open", blind_once)
    second, change = alarms.alarm_raise(condition=condition, observed_at=T0 + MIN)
    assert (second.pk, change, len(calls)) == (first.pk, "refreshed", 2)
    assert Alarm.objects.filter(dedupe_key=condition.dedupe_key).count() == 1
    assert Alarm.objects.get(pk=first.pk).occurrences == 2
    assert _audits(first, "alarm.opened") == 1  # the loser's audit rolled back with its savepoint


def _in_own_connection(tenant, fn):
    """Run `fn` in this thread's own connection (autocommit: it commits), then close it."""
    from django.db import connection as thread_connection

    try:
        thread_connection.set_tenant(tenant)
        return fn()
    finally:
        thread_connection.close()


@pytest.mark.data_safety
@pytest.mark.behavior
def test_concurrent_evaluators_open_one_alarm(tenant):
    """Eight evaluators raise the same condition at once, each in its own committed
    transaction: one alarm, opened once, seen eight times."""
    # given: a device committed where other connections can see it
    tag = uuid.uuid4().hex[:10]
    with ThreadPoolExecutor(max_workers=1) as pool:
        device = pool.submit(_in_own_connection, tenant, lambda: _device(name=f"race-{tag}")).result()
    condition = evaluate_device(poll(device.pk, reachable=False), device=DeviceInfo(device.pk, device.name)).present[0]
    barrier = threading.Barrier(8)

    def raise_it(n):
        def go():
            barrier.wait(timeout=10)
            return alarms.alarm_raise(condition=condition, observed_at=T0 + n * datetime.timedelta(seconds=1))[1]

        return _in_own_connection(tenant, go)

    try:
        # when
        with ThreadPoolExecutor(max_workers=8) as pool:
            changes = sorted(pool.map(raise_it, range(8)))

        # then
        def check():
            rows = list(Alarm.objects.filter(dedupe_key=condition.dedupe_key))
            opened = AuditEvent.objects.filter(action="alarm.opened", object_id__in=[str(a.pk) for a in rows]).count()
            return [(a.state, a.occurrences) for a in rows], opened

        with ThreadPoolExecutor(max_workers=1) as pool:
            rows, opened = pool.submit(_in_own_connection, tenant, check).result()
        assert changes == ["opened"] + ["refreshed"] * 7
        assert rows == [("open", 8)]
        assert opened == 1
    finally:

        def cleanup():
            Device.objects.filter(pk=device.pk).delete()

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(_in_own_connection, tenant, cleanup).result()


@pytest.mark.behavior
def test_acknowledge_and_manual_clear_are_audited(tenant, evaluate, django_capture_on_commit_callbacks):
    from tests.factories import StaffUserFactory

    device = _device()
    notifier = RecordingNotifier()
    evaluate(poll(device.pk, reachable=False), notifier=notifier)
    alarm = Alarm.objects.get(device=device)
    engineer = Actor.from_user(StaffUserFactory())

    alarm = alarms.alarm_acknowledge(alarm=alarm, actor=engineer, note="driving to the POP")
    again = alarms.alarm_acknowledge(alarm=alarm, actor=ACTOR)
    assert again.acknowledged_by == alarm.acknowledged_by == engineer.label
    event = AuditEvent.objects.get(action="alarm.acknowledged", object_id=str(alarm.pk))
    assert (event.actor_type, event.actor_id, event.reason) == ("user", engineer.id, "driving to the POP")

    with pytest.raises(ValidationError):
        alarms.alarm_clear_manually(alarm=alarm, actor=engineer, reason=" ", notifier=notifier)
    with django_capture_on_commit_callbacks(execute=True):
        alarms.alarm_clear_manually(alarm=alarm, actor=engineer, reason="device retired", notifier=notifier)
    alarm.refresh_from_db()
    assert (alarm.state, alarm.details["cleared_manually"]) == ("cleared", engineer.label)
    assert AuditEvent.objects.get(action="alarm.cleared_manually", object_id=str(alarm.pk)).reason == "device retired"
    assert notifier.events[-1] == ("cleared", alarm.dedupe_key)
    with pytest.raises(ValidationError):
        alarms.alarm_acknowledge(alarm=alarm, actor=engineer)
    # still down: the next poll opens a new alarm (a manual clearing is not a flap)
    evaluate(poll(device.pk, at=T0 + MIN, reachable=False), notifier=notifier)
    assert list(Alarm.objects.filter(device=device).values_list("state", "flap_count")) == [("open", 0), ("cleared", 0)]


@pytest.mark.behavior
def test_notification_failures_are_recorded_and_never_raised(tenant, evaluate):
    class Broken:
        channel = "broken"

        def notify(self, message):
            raise RuntimeError("boom")

    device = _device()
    summary = evaluate(
        poll(device.pk, reachable=False), notifier=CompositeNotifier([RecordingNotifier(fail=True), Broken()])
    )
    assert summary.events == {"opened": 1}
    outcomes = set(AlarmNotification.objects.values_list("channel", "outcome", "detail"))
    assert outcomes == {("recording", "failed", "simulated failure"), ("broken", "failed", "RuntimeError: boom")}


@pytest.mark.regression_detection
@pytest.mark.behavior
def test_a_healthy_batch_costs_four_queries_whatever_its_size(tenant, evaluate, django_assert_num_queries):
    devices = [_device(name=f"sw{n}", kind=Device.Kind.SWITCH) for n in range(20)]
    ports = {d.pk: [_interface(d, i) for i in range(1, 9)] for d in devices}
    batch = [poll(d.pk, interfaces=[iface(p.pk, in_bps=1e6) for p in ports[d.pk]]) for d in devices]
    # devices, unmonitored interfaces, open alarms, unsettled flapping alarms
    with django_assert_num_queries(4):
        summary = evaluate(*batch, notifier=RecordingNotifier())
    assert (summary.devices, dict(summary.events)) == (20, {})


# --- notifiers ------------------------------------------------------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers, body))
        if self.server.delay:
            time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received, server.status, server.delay = [], 204, 0.0
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alarms?token=abc"
    yield server
    server.shutdown()
    server.server_close()


SECRET = "webhook-secret-0123456789"


@pytest.mark.contract
def test_webhook_posts_signed_json_to_a_real_server(tenant, evaluate, receiver):
    device = _device(name="olt-east", kind=Device.Kind.OLT)
    notifier = WebhookAlarmNotifier(receiver.url, SECRET, timeout=2)
    evaluate(poll(device.pk, reachable=False, error="timeout"), notifier=notifier)

    [(headers, body)] = receiver.received
    payload = json.loads(body)
    alarm = Alarm.objects.get(device=device)
    assert (payload["alarm_id"], payload["event"], payload["kind"]) == (alarm.pk, "opened", "device_unreachable")
    assert (payload["device_name"], payload["tenant"], payload["affected"]["count"]) == (
        "olt-east",
        connection.schema_name,
        0,
    )
    assert headers["Content-Type"] == "application/json"
    assert headers["X-ISP-Event"] == "opened"
    assert webhook_verify(SECRET, timestamp=headers["X-ISP-Timestamp"], body=body, signature=headers["X-ISP-Signature"])
    assert not webhook_verify(
        "another-secret", timestamp=headers["X-ISP-Timestamp"], body=body, signature=headers["X-ISP-Signature"]
    )
    assert not webhook_verify(
        SECRET, timestamp=headers["X-ISP-Timestamp"], body=body + b" ", signature=headers["X-ISP-Signature"]
    )
    [record] = AlarmNotification.objects.filter(alarm=alarm)
    assert (record.channel, record.outcome) == ("webhook", "sent")
    assert record.target == receiver.url.split("?")[0]  # no query string (tokens) in the record


@pytest.mark.contract
def test_webhook_failures_are_outcomes(receiver):
    message = AlarmMessage(
        alarm_id=1,
        event="opened",
        kind="interface_down",
        severity="major",
        state="open",
        summary="x",
        dedupe_key="interface_down:iface:1",
        opened_at=T0,
        last_seen_at=T0,
    )
    receiver.status = 500
    [failed] = WebhookAlarmNotifier(receiver.url, SECRET).notify(message)
    assert (failed.outcome, failed.detail) == ("failed", "HTTP 500")
    receiver.status = 302  # redirects are not followed
    assert WebhookAlarmNotifier(receiver.url, SECRET).notify(message)[0].detail == "HTTP 302"
    receiver.status, receiver.delay = 204, 1.0
    started = time.monotonic()
    [slow] = WebhookAlarmNotifier(receiver.url, SECRET, timeout=0.2).notify(message)
    assert slow.outcome == "failed"
    assert "timed out" in slow.detail
    assert time.monotonic() - started < 0.9
    closed = f"http://127.0.0.1:{_closed_port()}/"
    [refused] = WebhookAlarmNotifier(closed, SECRET, timeout=1).notify(message)
    assert refused.outcome == "failed"
    assert "refused" in refused.detail.lower()
    with pytest.raises(ValueError):
        WebhookAlarmNotifier("file:///etc/passwd", SECRET)
    with pytest.raises(ValueError):
        WebhookAlarmNotifier(receiver.url, "")
    assert webhook_signature("k", "1", b"{}") == webhook_signature(b"k", "1", b"{}")
    assert not webhook_verify("k", timestamp="1", body=b"{}", signature=webhook_signature("k", "1", b"{}"))  # old


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.contract
def test_email_goes_to_the_configured_addresses_through_the_mail_backend(tenant, evaluate, settings):
    settings.NETWORK_ALARM_EMAILS = "noc@isp.example, oncall@isp.example"
    settings.NETWORK_ALARM_WEBHOOK_URL = "http://127.0.0.1:9/unsigned"  # no secret: not used
    device = _device(name="core-1")
    port = _interface(device, 3)
    evaluate(poll(device.pk, interfaces=[iface(port.pk, oper=2, name="xe-0/0/3\r\nBcc: evil@x")]), notifier=None)

    [email] = mail.outbox
    assert email.to == ["noc@isp.example", "oncall@isp.example"]
    assert email.subject.startswith(f"[{tenant.name}] [MAJOR] OPEN: Interface down: core-1: xe-0/0/3")
    assert "\n" not in email.subject
    assert "\r" not in email.subject
    assert f"#{Alarm.objects.get().pk} interface_down (major)" in email.body
    [record] = AlarmNotification.objects.all()
    assert (record.channel, record.outcome, record.target) == ("email", "sent", "noc@isp.example, oncall@isp.example")
    assert [type(n).__name__ for n in default_notifier().notifiers] == ["EmailAlarmNotifier"]


@pytest.mark.contract
def test_a_mail_server_failure_is_a_failed_delivery(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 1
    message = AlarmMessage(
        alarm_id=1,
        event="cleared",
        kind="onu_low_rx",
        severity="minor",
        state="cleared",
        summary="ONU x",
        dedupe_key="onu_low_rx:onu:1",
        opened_at=T0,
        last_seen_at=T0,
        cleared_at=T0,
    )
    [delivery] = EmailAlarmNotifier(["noc@isp.example"]).notify(message)
    assert delivery.outcome == "failed"
    assert delivery.detail.startswith("ConnectionRefusedError")


# --- outages --------------------------------------------------------------------------------------


@pytest.mark.behavior
def test_an_olt_outage_lists_the_subscriptions_behind_its_onus(tenant, evaluate):
    # given: an OLT with two bound ONUs, one found but not authorised, one bound to a pending sub
    plan = PlanFactory(code="gpon-300")
    olt = _device(name="olt-1", kind=Device.Kind.OLT, vendor="huawei")
    port = PonPort.objects.create(olt=olt, index=1, name="0/1/0")
    subs = [_live_subscription(plan), _live_subscription(plan)]
    pending = cs.subscription_create(
        customer=(c := CustomerFactory()), plan=plan, service_address=ServiceAddressFactory(customer=c), actor=ACTOR
    )
    for n, sub in enumerate([*subs, None, pending]):
        Onu.objects.create(
            olt=olt,
            pon_port=port,
            serial=f"HWTC{olt.pk:04X}{n:04X}",
            onu_index=n,
            state=Onu.State.ONLINE,
            subscription=sub,
        )
    notifier = RecordingNotifier()
    # when
    evaluate(poll(olt.pk, reachable=False, error="timeout"), notifier=notifier)
    # then
    alarm = Alarm.objects.get(device=olt)
    report = outage_report(alarm)
    assert (report.count, report.by_plan, report.by_status) == (2, {"gpon-300": 2}, {"active": 2})
    assert [(r.subscription_id, r.account_code, r.plan_code) for r in report.subscriptions] == [
        (s.pk, s.customer.account_code, "gpon-300") for s in subs
    ]
    assert all(r.via.startswith("onu HWTC") for r in report.subscriptions)
    assert alarm.details["affected_subscriptions"] == 2
    [message] = notifier.messages
    assert message.affected["count"] == 2
    assert {r["account_code"] for r in message.affected["subscriptions"]} == {s.customer.account_code for s in subs}


@pytest.mark.behavior
def test_a_bras_outage_lists_the_subscriptions_with_open_sessions(tenant, evaluate):
    nas = Nas.objects.create(name="bras-1", ip_address="10.255.0.1", secret=b"sealed")
    bras = _device(name="bras-1", kind=Device.Kind.BRAS, nas=nas)
    online, gone, elsewhere = _live_subscription(), _live_subscription(), _live_subscription()
    for n, (sub, nas_ip, stopped) in enumerate(
        [
            (online, "10.255.0.1", None),
            (online, "10.255.0.1", None),
            (gone, "10.255.0.1", T0),
            (elsewhere, "10.9.9.9", None),
        ]
    ):
        RadiusSession.objects.create(
            acct_unique_id=f"u{n}",
            acct_session_id=f"s{n}",
            username=f"user{n}",
            subscription=sub,
            nas_ip_address=nas_ip,
            start_time=T0 - 60 * MIN,
            update_time=T0 - MIN,
            stop_time=stopped,
        )
    evaluate(poll(bras.pk, reachable=False), notifier=RecordingNotifier())
    report = outage_report(Alarm.objects.get(device=bras))
    assert [(r.subscription_id, r.via) for r in report.subscriptions] == [(online.pk, "session on 10.255.0.1")]
    assert [s.subscription_id for s in affected_subscriptions(bras)] == [online.pk]


@pytest.mark.behavior
def test_a_switch_port_down_lists_the_subscription_plugged_into_it(tenant, evaluate):
    switch = _device(name="sw-access-1", kind=Device.Kind.SWITCH)
    port, spare = _interface(switch, 7), _interface(switch, 8)
    sub = _live_subscription()
    SubscriptionPort.objects.create(subscription=sub, interface=port)
    evaluate(
        poll(switch.pk, interfaces=[iface(port.pk, oper=2), iface(spare.pk, oper=2)]), notifier=RecordingNotifier()
    )
    reports = {a.interface_id: outage_report(a) for a in Alarm.objects.filter(device=switch)}
    assert [(r.subscription_id, r.via) for r in reports[port.pk].subscriptions] == [(sub.pk, "port ge-0/0/7")]
    assert reports[spare.pk].count == 0
    assert [s.subscription_id for s in affected_subscriptions(switch)] == [sub.pk]


@pytest.mark.smoke
def test_a_deleted_device_in_the_batch_is_skipped(tenant, evaluate):
    device = _device()
    summary = evaluate(poll(device.pk), poll(device.pk + 10_000, reachable=False), notifier=RecordingNotifier())
    assert (summary.devices, summary.skipped, dict(summary.events)) == (1, 1, {})
