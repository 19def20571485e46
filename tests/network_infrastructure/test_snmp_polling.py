"""SNMP polling against real agents on loopback (snmpsim via `network.snmp.agents`): interface
discovery, rates from moving counters, 64-bit wrap, reboot and counter reset (no spike stored),
a dead device that costs only its own timeout, wrong credentials, SNMPv3, storage (samples,
roll-ups, retention), the command and the Celery fan-out; and the inventory services (secrets
sealed at rest, concurrency-safe IP allocation with committed data and one connection per thread).

Most tests run once per matrix tenant inside a rolled-back transaction: the polling threads only
talk SNMP, storage happens in the test's thread. The allocation race needs committed rows, so it
has a throwaway tenant of its own, dropped at the end."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import threading
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection

from compliance.audit import Actor
from compliance.models import AuditEvent
from network import inventory
from network.models import Device, Interface, InterfaceRollup, InterfaceSample, IpAssignment
from network.snmp.agents import SimulatedAgent, if_mib_records
from network.snmp.credentials import open_field, target_for
from network.snmp.poller import discover_interfaces, poll_devices, store_polls
from network.snmp.retention import purge, rollup_hours, traffic_series
from network.snmp.session import SnmpAuthError, SnmpTimeout, open_session

pytestmark = [pytest.mark.network_monitoring, pytest.mark.integration]

ACTOR = Actor.system("snmp polling tests")
COMMUNITY = "ro-edge-7"
V3 = {"v3_user": "pollster", "v3_auth_key": "auth-key-123", "v3_priv_key": "priv-key-456"}
TEN_G, ONE_G = 10_000_000_000, 1_000_000_000
HOSTS = {"edge1": "127.0.41.1", "edge2": "127.0.41.2", "dead": "127.0.41.3", "v3": "127.0.41.4"}


def router(uptime_s: int, *, in1=0, out1=0, in2=0, out2=0, oper2=1, errors1=0, alias1="to core") -> dict:
    return if_mib_records(
        [
            {
                "if_index": 1,
                "name": "uplink0",
                "alias": alias1,
                "speed_bps": TEN_G,
                "in_octets": in1,
                "out_octets": out1,
                "in_errors": errors1,
            },
            {
                "if_index": 2,
                "name": "ge-0/0/1",
                "descr": "GigabitEthernet0/0/1",
                "alias": "customer 1",
                "speed_bps": ONE_G,
                "oper_status": oper2,
                "in_octets": in2,
                "out_octets": out2,
            },
        ],
        sys_uptime_cs=uptime_s * 100,
        sys_descr="Simulated edge router",
    )


@pytest.fixture(scope="module")
def agents():
    with contextlib.ExitStack() as stack:
        started = {
            "edge1": SimulatedAgent("edge1", router(1000), community=COMMUNITY, host=HOSTS["edge1"]),
            "edge2": SimulatedAgent("edge2", router(1000), community=COMMUNITY, host=HOSTS["edge2"]),
            "dead": SimulatedAgent("dead", router(1000), community=COMMUNITY, host=HOSTS["dead"]),
            "v3": SimulatedAgent("v3", router(1000), community="unused-v2", host=HOSTS["v3"], **V3),
        }
        yield {name: stack.enter_context(agent) for name, agent in started.items()}


@pytest.fixture
def net(agents):
    """The agents back at their initial records and answering; resumed after the test."""
    for agent in agents.values():
        agent.resume()
        agent.replace(router(1000))
    yield agents
    for agent in agents.values():
        agent.resume()


def _register(name: str, agent: SimulatedAgent, **overrides) -> Device:
    fields = {"name": name, "kind": "router", "management_ip": agent.host, "snmp_port": agent.port, "actor": ACTOR}
    fields.update({"community": COMMUNITY} if not agent.v3_user else {"snmp_version": "3", **V3})
    return inventory.device_register(**{**fields, **overrides})


def _poll(*devices: Device, timeout: float = 1.0, **kwargs):
    polls = poll_devices(list(devices), workers=len(devices), timeout=timeout, retries=0, **kwargs)
    store_polls(polls, evaluate_faults=False)
    for device in devices:
        device.refresh_from_db()
    return polls


def _iface(device: Device, if_index: int) -> Interface:
    return Interface.objects.get(device=device, if_index=if_index)


def _rates(poll) -> dict[int, tuple]:
    return {i.if_index: (i.in_bps, i.out_bps) for i in poll.interfaces}


# --- discovery -------------------------------------------------------------------------------------


@pytest.mark.behavior
def test_discovery_creates_interfaces_from_if_mib_and_updates_them_in_place(tenant, net):
    # given a router registered with its agent
    device = _register("edge-1", net["edge1"])
    # when its interfaces are discovered
    result = discover_interfaces(device, timeout=1.0, retries=0)
    # then both IF-MIB rows are there, with names, aliases and the ifHighSpeed speed
    assert (result.reachable, result.created, result.updated) == (True, 2, 0)
    rows = {
        i.if_index: (i.name, i.descr, i.alias, i.speed_bps, i.admin_status, i.oper_status)
        for i in Interface.objects.filter(device=device)
    }
    assert rows == {
        1: ("uplink0", "uplink0", "to core", TEN_G, 1, 1),
        2: ("ge-0/0/1", "GigabitEthernet0/0/1", "customer 1", ONE_G, 1, 1),
    }
    device.refresh_from_db()
    assert device.sys_descr == "Simulated edge router"
    # when the alias changes on the device and discovery runs again
    net["edge1"].replace(router(1010, alias1="to core (new fibre)"))
    again = discover_interfaces(device, timeout=1.0, retries=0)
    # then the same rows are updated, none added
    assert (again.created, again.updated) == (0, 2)
    assert Interface.objects.filter(device=device).count() == 2
    assert _iface(device, 1).alias == "to core (new fibre)"
    # and each discovery is in the audit trail, as the system's
    reasons = list(
        AuditEvent.objects.filter(action="device.discovered", object_id=str(device.pk))
        .order_by("id")
        .values_list("actor_type", "reason")
    )
    assert reasons == [
        ("system", "2 interface(s) added (ifIndex 1, 2), 0 refreshed"),
        ("system", "0 interface(s) added, 2 refreshed"),
    ]


@pytest.mark.behavior
def test_a_loopback_interface_is_discovered_unmonitored_and_an_operators_choice_is_kept(tenant, net):
    from network.snmp.poller import DiscoveryResult, discovery_store

    device = _register("edge-lo", net["edge1"])
    row = {
        "if_index": 9,
        "name": "lo",
        "descr": "lo",
        "alias": "",
        "speed_bps": 10_000_000,
        "admin_status": 1,
        "oper_status": 1,
    }
    discovery_store(DiscoveryResult(device.pk, reachable=True, rows=[{**row, "monitored": False}]))
    assert _iface(device, 9).monitored is False  # ifType softwareLoopback: no utilisation alarms on lo
    Interface.objects.filter(device=device, if_index=9).update(monitored=True)  # the operator wants it
    discovery_store(DiscoveryResult(device.pk, reachable=True, rows=[{**row, "monitored": False}]))
    assert _iface(device, 9).monitored is True


# --- rates ----------------------------------------------------------------------------------------


@pytest.mark.behavior
def test_rates_come_from_moving_counters_over_the_agents_uptime(tenant, net):
    device = _register("edge-1", net["edge1"])
    discover_interfaces(device, timeout=1.0, retries=0)
    net["edge1"].replace(router(1000, in1=10**12, out1=5 * 10**11, in2=7, out2=9))
    # when the device is polled a first time: a baseline, no rate yet
    (first,) = _poll(device)
    assert first.reachable
    assert not first.rebooted
    assert _rates(first) == {1: (None, None), 2: (None, None)}
    assert InterfaceSample.objects.filter(interface__device=device).count() == 0
    assert device.status == Device.Status.UP
    assert device.sys_uptime_cs == 100_000
    # when 300 s pass on the device and the counters move
    net["edge1"].update(
        router(1300, in1=10**12 + 3_750_000_000, out1=5 * 10**11 + 375_000_000, in2=7 + 37_500, out2=9, errors1=30)
    )
    (second,) = _poll(device)
    # then the rates are the deltas over the agent's 300 s (hand-checked: 3.75 GB * 8 / 300 = 100 Mbit/s)
    assert _rates(second) == {1: (100_000_000.0, 10_000_000.0), 2: (1000.0, 0.0)}
    uplink = next(i for i in second.interfaces if i.if_index == 1)
    assert uplink.in_errors_per_s == pytest.approx(0.1)
    assert uplink.utilisation == pytest.approx(0.01)
    # and they are stored: one sample per interface, the new baseline and last rates on the rows
    samples = InterfaceSample.objects.filter(interface__device=device).order_by("interface__if_index")
    assert [(s.in_bps, s.out_bps, s.oper_status) for s in samples] == [(1e8, 1e7, 1), (1000.0, 0.0, 1)]
    row = _iface(device, 1)
    assert (int(row.last_in_octets), row.last_uptime_cs, row.in_bps) == (10**12 + 3_750_000_000, 130_000, 1e8)


@pytest.mark.behavior
def test_a_64_bit_counter_wrap_gives_the_true_rate_not_a_negative_one(tenant, net):
    device = _register("edge-1", net["edge1"])
    discover_interfaces(device, timeout=1.0, retries=0)
    top = 2**64
    net["edge1"].replace(router(5000, in1=top - 1_000_000, out1=top - 10))
    _poll(device)
    # when the counters wrap through 2**64 within the interval
    net["edge1"].update(router(5100, in1=24_000_000 - 1_000_000, out1=90))
    (poll,) = _poll(device)
    # then the rate counts the octets across the wrap: (1e6 + 23e6) * 8 / 100 s
    assert _rates(poll)[1] == (1_920_000.0, 8.0)
    assert InterfaceSample.objects.get(interface=_iface(device, 1)).in_bps == 1_920_000.0


@pytest.mark.behavior
def test_a_reboot_stores_no_spike_and_the_next_interval_is_measured_from_the_new_baseline(tenant, net):
    device = _register("edge-1", net["edge1"])
    discover_interfaces(device, timeout=1.0, retries=0)
    net["edge1"].replace(router(100_000, in1=9 * 10**12, out1=8 * 10**12))
    _poll(device)
    # when the device reboots: sysUpTime goes back, counters restart near zero
    net["edge1"].update(router(50, in1=1_000, out1=2_000))
    (rebooted,) = _poll(device)
    # then the poll says so and no rate (no spike, nothing negative) is derived or stored
    assert rebooted.reachable
    assert rebooted.rebooted
    assert _rates(rebooted) == {1: (None, None), 2: (None, None)}
    assert InterfaceSample.objects.filter(interface__device=device).count() == 0
    row = _iface(device, 1)
    assert (int(row.last_in_octets), row.last_uptime_cs) == (1_000, 5_000)  # re-baselined
    assert device.sys_uptime_cs == 5_000
    # when the next poll comes 300 s later
    net["edge1"].update(router(350, in1=1_000 + 30_000_000, out1=2_000))
    (after,) = _poll(device)
    # then the rate is measured from the post-reboot baseline
    assert not after.rebooted
    assert _rates(after)[1] == (800_000.0, 0.0)


@pytest.mark.behavior
def test_a_counter_reset_without_reboot_is_discarded_as_implausible_not_stored_as_a_spike(tenant, net):
    device = _register("edge-1", net["edge1"])
    discover_interfaces(device, timeout=1.0, retries=0)
    net["edge1"].replace(router(1000, in2=5 * 10**12, out2=10**6))
    _poll(device)
    # when the counters of port 2 are cleared (no reboot): the modular delta is ~2**64
    net["edge1"].update(router(1300, in2=10, out2=10**6 + 100))
    (poll,) = _poll(device)
    # then the implausible in-rate (way above twice the 1 Gbit/s port) is dropped, not stored
    assert _rates(poll)[2] == (None, pytest.approx(100 * 8 / 300))
    assert not InterfaceSample.objects.filter(interface=_iface(device, 2)).exists()
    assert int(_iface(device, 2).last_in_octets) == 10  # the new baseline


# --- reachability -----------------------------------------------------------------------------------


@pytest.mark.behavior
def test_a_dead_device_costs_its_own_timeout_while_the_others_are_polled(tenant, net):
    devices = [_register("edge-1", net["edge1"]), _register("dead-1", net["dead"]), _register("edge-2", net["edge2"])]
    for device in devices:
        discover_interfaces(device, timeout=1.0, retries=0)
    for name in ("edge1", "edge2"):
        net[name].update(router(1300, in1=3_000_000))
    # when one device stops answering (its port stays bound: packets go nowhere)
    net["dead"].pause()
    finished = []
    polls = poll_devices(devices, workers=3, timeout=0.5, retries=0, on_result=finished.append)
    store_polls(polls, evaluate_faults=False)
    # then it is unreachable, with a clear reason, after its own timeout...
    edge1, dead, edge2 = polls
    assert not dead.reachable
    assert "timeout" in dead.error
    assert net["dead"].host in dead.error
    assert dead.duration_s >= 0.45
    # ...and the others were polled all the same, with their data, in the order of the input
    assert [p.device_id for p in polls] == [d.pk for d in devices]
    assert edge1.reachable
    assert edge2.reachable
    assert len(edge1.interfaces) == len(edge2.interfaces) == 2
    assert len(finished) == 3
    statuses = dict(Device.objects.filter(pk__in=[d.pk for d in devices]).values_list("name", "status"))
    assert statuses == {"edge-1": "up", "dead-1": "down", "edge-2": "up"}
    # when it answers again, it is up again
    net["dead"].resume()
    (back,) = _poll(devices[1])
    assert back.reachable
    assert devices[1].status == Device.Status.UP


@pytest.mark.behavior
def test_a_wrong_v2c_community_is_unreachable_with_a_clear_error(tenant, net):
    device = _register("edge-1", net["edge1"], community="not-the-community")
    (poll,) = _poll(device, timeout=0.3)
    assert not poll.reachable
    assert poll.error.startswith("timeout: no answer from 127.0.41.1")
    assert "wrong community" in poll.error
    assert device.status == Device.Status.DOWN
    assert device.last_seen_at is None


@pytest.mark.behavior
def test_snmpv3_authpriv_polls_and_a_wrong_key_is_refused(tenant, net):
    device = _register("edge-v3", net["v3"])
    assert discover_interfaces(device, timeout=1.0, retries=0).created == 2
    net["v3"].update(router(1100, in1=1_250_000))
    (poll,) = _poll(device)
    assert poll.reachable
    assert {i.if_index for i in poll.interfaces} == {1, 2}
    # when the stored auth key is wrong, the agent refuses it (the USM key cache does not hide it)
    device = inventory.device_update(device=device, actor=ACTOR, v3_auth_key="wrong-key-999")
    (refused,) = _poll(device)
    assert not refused.reachable
    assert refused.error.startswith("authentication refused by 127.0.41.4")


@pytest.mark.contract
def test_v2c_and_v3_sessions_close_in_any_order_and_cached_v3_keys_do_not_outlive_them(net):
    """easysnmp 0.2.6 crashes the process when a v2c session is freed while a v3 user is cached,
    and Net-SNMP's USM cache would accept a wrong key after a right one: session.py closes
    sessions itself and empties that cache when the last v3 session closes."""
    v2 = dataclasses.replace(net["edge1"].target(), community=COMMUNITY)
    v3 = net["v3"].target()
    with open_session(v2, timeout=1, retries=0) as first, open_session(v3, timeout=1, retries=0) as second:
        assert second.get_one("1.3.6.1.2.1.1.3.0") == 100_000
        assert first.get_one("1.3.6.1.2.1.1.3.0") == 100_000
    with open_session(v3, timeout=1, retries=0) as secure, open_session(v2, timeout=1, retries=0) as plain:
        secure.get_one("1.3.6.1.2.1.1.1.0")
        plain.get_one("1.3.6.1.2.1.1.1.0")
    with pytest.raises(SnmpAuthError), open_session(dataclasses.replace(v3, v3_auth_key="wrong-key-000")) as s:
        s.get_one("1.3.6.1.2.1.1.3.0")
    with pytest.raises(SnmpTimeout), open_session(dataclasses.replace(v2, community="nope"), timeout=0.2) as s:
        s.get_one("1.3.6.1.2.1.1.3.0")


# --- storage, faults hook ----------------------------------------------------------------------------


@pytest.mark.contract
def test_store_polls_hands_the_stored_batch_to_fault_evaluation(tenant, net, monkeypatch):
    from network import faults

    seen = []
    monkeypatch.setattr(faults, "evaluate_polls", lambda polls: seen.append(polls) or "evaluated")
    devices = [_register("edge-1", net["edge1"]), _register("dead-1", net["dead"])]
    net["dead"].pause()
    polls = poll_devices(devices, workers=2, timeout=0.3, retries=0)
    summary = store_polls(polls)
    assert summary.faults == "evaluated"
    assert [[(p.device_id, p.reachable) for p in batch] for batch in seen] == [
        [(devices[0].pk, True), (devices[1].pk, False)]
    ]


@pytest.mark.behavior
def test_an_older_poll_never_overwrites_a_newer_ones_state(tenant, net):
    device = _register("edge-1", net["edge1"])
    discover_interfaces(device, timeout=1.0, retries=0)
    (newer,) = poll_devices([device], timeout=1.0, retries=0)
    older = dataclasses.replace(newer, polled_at=newer.polled_at - datetime.timedelta(minutes=5), reachable=False)
    store_polls([newer], evaluate_faults=False)
    store_polls([older], evaluate_faults=False)
    device.refresh_from_db()
    assert (device.status, device.last_polled_at) == ("up", newer.polled_at)


# --- roll-ups, retention, series -------------------------------------------------------------------------

NOW = datetime.datetime(2026, 11, 20, 12, 30, tzinfo=datetime.UTC)


def _samples(interface: Interface, start: datetime.datetime, count: int, *, step_min: int = 5, base: float = 0.0):
    InterfaceSample.objects.bulk_create(
        InterfaceSample(
            interface=interface,
            sampled_at=start + datetime.timedelta(minutes=step_min * i),
            in_bps=base + 10.0 * i,
            out_bps=base + 1.0 * i,
        )
        for i in range(count)
    )


@pytest.fixture
def uplink(tenant, net) -> Interface:
    device = _register("edge-1", net["edge1"])
    discover_interfaces(device, timeout=1.0, retries=0)
    return _iface(device, 1)


@pytest.mark.behavior
def test_hourly_rollups_are_exact_and_idempotent(uplink):
    # given 12 samples in 10:00-11:00 and 6 in the current, incomplete hour
    _samples(uplink, datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.UTC), 12)
    _samples(uplink, datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC), 6)
    # when the roll-up runs twice
    assert rollup_hours(now=NOW) == 1
    first = list(InterfaceRollup.objects.values_list("hour", "samples", "in_bps_avg", "in_bps_max", "out_bps_max"))
    rollup_hours(now=NOW)
    # then one row for the complete hour only, the same after the second run
    assert first == [(datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.UTC), 12, 55.0, 110.0, 11.0)]
    assert (
        list(InterfaceRollup.objects.values_list("hour", "samples", "in_bps_avg", "in_bps_max", "out_bps_max")) == first
    )
    # when a late sample of that hour arrives, the next run counts it
    _samples(uplink, datetime.datetime(2026, 11, 20, 10, 59, tzinfo=datetime.UTC), 1, base=1300.0)
    rollup_hours(now=NOW)
    assert InterfaceRollup.objects.get().samples == 13


@pytest.mark.behavior
def test_retention_purges_old_samples_after_rolling_them_up_and_old_rollups(uplink):
    old = datetime.datetime(2026, 11, 12, 8, 0, tzinfo=datetime.UTC)  # 8 days before NOW, never rolled up
    _samples(uplink, old, 4, base=100.0)
    _samples(uplink, datetime.datetime(2026, 11, 20, 11, 0, tzinfo=datetime.UTC), 3)
    ancient = datetime.datetime(2025, 10, 1, 0, 0, tzinfo=datetime.UTC)  # > 400 days
    InterfaceRollup.objects.create(
        interface=uplink, hour=ancient, samples=1, in_bps_avg=1, out_bps_avg=1, in_bps_max=1, out_bps_max=1
    )
    result = purge(now=NOW, slice_size=2)
    assert (result.samples, result.rollups, result.rolled_up_first) == (4, 1, 1)
    assert InterfaceSample.objects.filter(interface=uplink).count() == 3
    kept = InterfaceRollup.objects.get(interface=uplink)
    assert (kept.hour, kept.samples, kept.in_bps_avg) == (old, 4, 115.0)


@pytest.mark.behavior
def test_traffic_series_uses_raw_samples_where_kept_and_rollups_elsewhere(uplink):
    _samples(uplink, datetime.datetime(2026, 11, 20, 11, 0, tzinfo=datetime.UTC), 3)
    for hour, value in ((2, 500.0), (11, 999.0)):  # 11:00 also has raw samples: those win
        InterfaceRollup.objects.create(
            interface=uplink,
            hour=datetime.datetime(2026, 11, 20, hour, 0, tzinfo=datetime.UTC),
            samples=12,
            in_bps_avg=value,
            out_bps_avg=value / 10,
            in_bps_max=value,
            out_bps_max=value,
        )
    series = traffic_series(uplink.pk, hours=24, now=NOW)
    assert [(p.at.hour, p.at.minute, p.in_bps, p.source) for p in series] == [
        (2, 0, 500.0, "rollup"),
        (11, 0, 0.0, "sample"),
        (11, 5, 10.0, "sample"),
        (11, 10, 20.0, "sample"),
    ]


# --- the command and Celery ---------------------------------------------------------------------------


@pytest.mark.smoke
def test_poll_devices_command_polls_and_prints_a_summary(tenant, net):
    _register("edge-1", net["edge1"])
    _register("dead-1", net["dead"])
    net["dead"].pause()
    out = io.StringIO()
    call_command("poll_devices", tenant=tenant.slug, timeout=0.3, retries=0, no_progress=True, stdout=out)
    text = out.getvalue()
    assert f"{tenant.slug}: 2 devices" in text
    assert "devices/s" in text
    assert "1 up, 1 down" in text
    assert "2 interfaces discovered" in text
    assert "dead-1: timeout" in text


@pytest.mark.behavior
def test_beat_task_sends_one_chunk_task_per_slice_of_devices_in_the_tenants_schema(tenant, net, settings, monkeypatch):
    from network import tasks_snmp

    settings.SNMP_POLL_CHUNK = 2
    settings.SNMP_POLL_INTERVAL = 60
    devices = [_register("edge-1", net["edge1"])]
    devices += [_register(f"edge-{i}", net["edge1"], management_ip=f"127.0.42.{i}") for i in (2, 3)]
    sent = []
    monkeypatch.setattr(
        tasks_snmp.snmp_poll_chunk,
        "apply_async",
        lambda kwargs, countdown, expires: sent.append((connection.schema_name, kwargs, countdown, expires)),
    )
    result = tasks_snmp.snmp_poll_all_tenants()
    assert result[tenant.slug] == 2
    mine = [s for s in sent if s[0] == tenant.schema_name]
    assert [s[1]["device_ids"] for s in mine] == [[devices[0].pk, devices[1].pk], [devices[2].pk]]
    assert [s[2] for s in mine] == [0.0, 15.0]
    assert {s[3] for s in mine} == {60.0}
    # the chunk task itself polls and stores (here inline, in the tenant's schema)
    connection.set_tenant(tenant)
    summary = tasks_snmp.snmp_poll_chunk(device_ids=[devices[0].pk])
    assert summary["devices"] == summary["reachable"] == 1


# --- inventory: secrets, validation, IP allocation ----------------------------------------------------------


@pytest.mark.behavior
def test_snmp_secrets_are_sealed_at_rest_and_never_audited(tenant):
    v2 = inventory.device_register(
        name="sw-1", kind="switch", management_ip="10.0.0.2", community="c0mmunity-secret", actor=ACTOR
    )
    v3 = inventory.device_register(
        name="r-1",
        kind="router",
        management_ip="10.0.0.3",
        snmp_version="3",
        v3_user="pollster",
        v3_auth_key="auth-secret-1",
        v3_priv_key="priv-secret-2",
        actor=ACTOR,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT snmp_community, snmp_v3_auth_key, snmp_v3_priv_key FROM network_device WHERE id IN (%s, %s)",
            [v2.pk, v3.pk],
        )
        stored = b"".join(bytes(value) for row in cursor.fetchall() for value in row if value is not None)
    for secret in (b"c0mmunity-secret", b"auth-secret-1", b"priv-secret-2"):
        assert secret not in stored
    assert target_for(v2).community == "c0mmunity-secret"
    assert (target_for(v3).v3_auth_key, target_for(v3).v3_priv_key) == ("auth-secret-1", "priv-secret-2")
    # a sealed value cannot be moved to another field (the purpose is bound to the ciphertext)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the key ring's own authentication error
        open_field(v3.snmp_v3_auth_key, "snmp_v3_priv_key")
    events = AuditEvent.objects.filter(action="device.registered", object_id__in=[str(v2.pk), str(v3.pk)])
    assert {tuple(e.changed_fields) for e in events} >= {
        ("kind", "management_ip", "name", "snmp_community", "snmp_port", "snmp_version")
    }
    audit_text = str(list(AuditEvent.objects.values()))
    assert not any(secret in audit_text for secret in ("c0mmunity-secret", "auth-secret-1", "priv-secret-2"))


@pytest.mark.behavior
def test_device_register_refuses_incomplete_or_malformed_input_clearly(tenant):
    cases = [
        ({"community": None}, "community", "needs a community"),
        ({"management_ip": "10.0.0.300"}, "management_ip", "not an IP address"),
        ({"kind": "toaster"}, "kind", "is not one of"),
        ({"snmp_version": "3", "v3_user": "u", "v3_auth_key": "short"}, "v3_auth_key", "8-64 characters"),
        ({"snmp_version": "3", "v3_user": "", "v3_auth_key": "long-enough"}, "v3_user", "needs a user name"),
    ]
    for overrides, field, message in cases:
        arguments = {"name": "x-1", "kind": "router", "management_ip": "10.9.9.9", "community": "public", **overrides}
        with pytest.raises(ValidationError) as caught:
            inventory.device_register(actor=ACTOR, **arguments)
        assert message in " ".join(caught.value.message_dict[field]), (overrides, caught.value.message_dict)
    assert not Device.objects.filter(name="x-1").exists()


def _subscription():
    from customers import services as cs
    from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

    customer = CustomerFactory()
    address = ServiceAddressFactory(customer=customer)
    return cs.subscription_create(customer=customer, plan=PlanFactory(), service_address=address, actor=ACTOR)


@pytest.mark.behavior
def test_ip_allocation_skips_reserved_addresses_is_idempotent_and_reports_exhaustion(tenant):
    with pytest.raises(ValidationError, match="host bits set; did you mean 100.64.50.0/29"):
        inventory.ip_pool_create(name="bad", network="100.64.50.1/29", actor=ACTOR)
    pool = inventory.ip_pool_create(name="static-1", network="100.64.50.0/29", gateway="100.64.50.1", actor=ACTOR)
    with pytest.raises(ValidationError, match="overlaps pool static-1"):
        inventory.ip_pool_create(name="other", network="100.64.50.4/30", actor=ACTOR)
    subs = [_subscription() for _ in range(6)]
    first = inventory.ip_allocate(pool=pool, subscription=subs[0], actor=ACTOR)
    assert first.address == "100.64.50.2"  # .0 network, .1 gateway
    assert inventory.ip_allocate(pool=pool, subscription=subs[0], actor=ACTOR).pk == first.pk  # idempotent
    for reserved in ("100.64.50.0", "100.64.50.1", "100.64.50.7"):
        with pytest.raises(ValidationError, match="network, broadcast or gateway"):
            inventory.ip_allocate(pool=pool, subscription=subs[1], actor=ACTOR, address=reserved)
    assert inventory.ip_allocate(pool=pool, subscription=subs[1], actor=ACTOR, address="100.64.50.6").address == (
        "100.64.50.6"
    )
    given = [inventory.ip_allocate(pool=pool, subscription=s, actor=ACTOR).address for s in subs[2:5]]
    assert given == ["100.64.50.3", "100.64.50.4", "100.64.50.5"]
    with pytest.raises(ValidationError, match="has no free address"):
        inventory.ip_allocate(pool=pool, subscription=subs[5], actor=ACTOR)
    inventory.ip_release(subscription=subs[2], actor=ACTOR)
    assert inventory.ip_allocate(pool=pool, subscription=subs[5], actor=ACTOR).address == "100.64.50.3"
    assert AuditEvent.objects.filter(action="ip.allocated").count() == 6
    assert AuditEvent.objects.filter(action="ip.released").count() == 1


@pytest.fixture(scope="module")
def committed_tenant(django_db_setup, django_db_blocker):
    """A throwaway tenant whose rows are committed (other connections see them); dropped after."""
    from compliance.pii.bench import bench_tenant_cleanup
    from tenants.services import tenant_create

    slug = f"snmp-{uuid.uuid4().hex[:6]}"
    with django_db_blocker.unblock():
        tenant = tenant_create(
            slug=slug, name="SNMP race", currency="USD", country="US", admin_email=f"owner@{slug}.example", actor=ACTOR
        ).tenant
        connection.set_schema_to_public()
    try:
        yield tenant
    finally:
        with django_db_blocker.unblock():
            bench_tenant_cleanup(schema=tenant.schema_name, slug=slug, actor=ACTOR, say=lambda _m: None)


@pytest.mark.data_safety
@pytest.mark.behavior
def test_concurrent_allocations_never_give_an_address_twice(committed_tenant, django_db_blocker):
    # given a /28 pool (13 hosts besides the gateway) and 18 subscriptions, committed
    with django_db_blocker.unblock():
        connection.set_tenant(committed_tenant)
        pool = inventory.ip_pool_create(name="race", network="100.64.60.0/28", gateway="100.64.60.1", actor=ACTOR)
        subs = [_subscription() for _ in range(18)]
        connection.set_schema_to_public()
        # when 18 threads (one connection each) allocate at once, plus 4 more for one subscription
        callers = [s.pk for s in subs] + [subs[0].pk] * 4
        barrier = threading.Barrier(len(callers))
        outcomes: list = [None] * len(callers)

        def allocate(position: int, sub_id: int) -> None:
            from customers.models import Subscription

            try:
                connection.set_tenant(committed_tenant)
                sub = Subscription.objects.get(pk=sub_id)
                barrier.wait()
                outcomes[position] = inventory.ip_allocate(pool=pool, subscription=sub, actor=ACTOR).address
            except ValidationError as exc:
                outcomes[position] = "; ".join(exc.messages)
            finally:
                connection.close()

        threads = [threading.Thread(target=allocate, args=(i, s)) for i, s in enumerate(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        connection.set_tenant(committed_tenant)
        rows = list(IpAssignment.objects.filter(pool=pool).values_list("subscription_id", "address"))
        connection.set_schema_to_public()
    # then every host went to exactly one subscription, the rest were told the pool is full
    addresses = [address for _, address in rows]
    assert len(addresses) == len(set(addresses)) == 13
    assert "100.64.60.1" not in addresses
    assert "100.64.60.0" not in addresses
    assert "100.64.60.15" not in addresses
    assert len({sub for sub, _ in rows}) == 13
    full = [o for o in outcomes if "has no free address" in o]
    assert len(full) == len(callers) - 13 - (4 if subs[0].pk in {s for s, _ in rows} else 0)
    # and the repeated calls for one subscription all got its one address (or all found the pool full)
    repeated = {outcomes[0], *outcomes[18:]}
    assert len(repeated) == 1


# --- the demo network -------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_demo_network_starts_answers_with_moving_counters_and_stops_cleanly():
    import json
    import signal
    import subprocess
    import sys
    import time

    from django.conf import settings

    from network.snmp.credentials import SnmpTarget

    command = [sys.executable, "-m", "network.snmp.agents", "--demo", "--routers", "2", "--olts", "0", "--json"]
    command += ["--tick", "0.5"]
    command += ["--host-prefix", "127.0.43."]
    demo = subprocess.Popen(command, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, text=True)
    try:
        agents = [json.loads(demo.stdout.readline()) for _ in range(2)]
        assert [a["host"] for a in agents] == ["127.0.43.1", "127.0.43.2"]
        target = SnmpTarget(host=agents[0]["host"], port=agents[0]["port"], version="2c", community="public")
        uplink_in = "1.3.6.1.2.1.31.1.1.1.6.1"
        with open_session(target, timeout=1, retries=1) as snmp:
            before = snmp.get([uplink_in, "1.3.6.1.2.1.1.3.0"])
            time.sleep(2.0)  # four ticks: robust on a loaded machine
            after = snmp.get([uplink_in, "1.3.6.1.2.1.1.3.0"])
        assert after[uplink_in] > before[uplink_in]
        assert after["1.3.6.1.2.1.1.3.0"] > before["1.3.6.1.2.1.1.3.0"]
    finally:
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(15) == 0
    with pytest.raises(SnmpTimeout), open_session(target, timeout=0.3, retries=0) as snmp:
        snmp.get_one("1.3.6.1.2.1.1.3.0")
