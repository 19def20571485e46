"""GPON against real SNMP agents on loopback (snmpsim, `network.snmp.agents`) playing a Huawei-like
and a ZTE-like OLT, and the provisioning workflow end to end: IP, RADIUS credentials read back
through the same `radius` function FreeRADIUS calls, ONU binding, the subscription's state.

Every test runs once per matrix tenant inside a rolled-back transaction; the two OLT agents are
started once for the module and their records are reset by each test."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import services as cs
from network.gpon.service import OltError, onu_authorise, onu_autofind, onu_deauthorise, onu_poll_optics
from network.inventory import device_register, ip_pool_create
from network.models import Device, IpAssignment, IpPool, Onu, PonPort, PppoeAccount, ProvisioningJob
from network.provisioning import provision, provision_retry
from network.snmp.agents import SimulatedAgent
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

pytestmark = [pytest.mark.network_monitoring, pytest.mark.integration]

ACTOR = Actor.system("gpon tests")
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"

# Huawei-like: <column>.<PON ifIndex>.<ONT id>; serial as 8 octets; power in 0.01 dBm.
HW_SERIAL, HW_RUN, HW_CAUSE = (
    "1.3.6.1.4.1.2011.6.128.1.1.2.43.1.3",
    "1.3.6.1.4.1.2011.6.128.1.1.2.46.1.15",
    "1.3.6.1.4.1.2011.6.128.1.1.2.46.1.24",
)
HW_RX, HW_TX = "1.3.6.1.4.1.2011.6.128.1.1.2.51.1.4", "1.3.6.1.4.1.2011.6.128.1.1.2.51.1.3"
HW_PORT_0, HW_PORT_1 = 4194312192, 4194312448  # 0/1/0, 0/1/1 (ifIndex)
HW_INDEX_0, HW_INDEX_1 = HW_PORT_0, HW_PORT_1  # stored as the ifIndex (the profile's pon_port_offset is 0)
HW_NO_READING = 2147483647

# ZTE-like: serial as ASCII; phase state; power = raw * 0.002 - 30, one more index component.
ZTE_SERIAL, ZTE_PHASE = "1.3.6.1.4.1.3902.1012.3.28.1.1.5", "1.3.6.1.4.1.3902.1012.3.28.2.1.4"
ZTE_RX, ZTE_TX = "1.3.6.1.4.1.3902.1012.3.50.12.1.1.10", "1.3.6.1.4.1.3902.1012.3.50.12.1.1.14"
ZTE_PORT_1, ZTE_PORT_2 = 268501248, 268501249  # gpon-olt_1/1/1, 1/1/2


def huawei_records(onts: list[dict]) -> dict:
    """onts: port, ont, serial (8 bytes), run (1 online, 2 offline), cause, rx, tx (0.01 dBm)."""
    records = {
        SYS_UPTIME: ("TimeTicks", 100),
        f"{IF_NAME}.{HW_PORT_0}": ("OctetString", "GPON 0/1/0"),
        f"{IF_NAME}.{HW_PORT_1}": ("OctetString", "GPON 0/1/1"),
    }
    for o in onts:
        index = f"{o['port']}.{o['ont']}"
        records[f"{HW_SERIAL}.{index}"] = ("Hex", o["serial"])
        records[f"{HW_RUN}.{index}"] = ("Integer", o.get("run", 1))
        records[f"{HW_CAUSE}.{index}"] = ("Integer", o.get("cause", -1))
        records[f"{HW_RX}.{index}"] = ("Integer", o.get("rx", HW_NO_READING))
        records[f"{HW_TX}.{index}"] = ("Integer", o.get("tx", HW_NO_READING))
    return records


def zte_records(onus: list[dict]) -> dict:
    """onus: port, onu, serial (text), phase (3 working, 4 dyingGasp, 1 los, 6 offline), rx, tx (raw)."""
    records = {
        SYS_UPTIME: ("TimeTicks", 100),
        f"{IF_NAME}.{ZTE_PORT_1}": ("OctetString", "gpon-olt_1/1/1"),
        f"{IF_NAME}.{ZTE_PORT_2}": ("OctetString", "gpon-olt_1/1/2"),
    }
    for o in onus:
        index = f"{o['port']}.{o['onu']}"
        records[f"{ZTE_SERIAL}.{index}"] = ("OctetString", o["serial"])
        records[f"{ZTE_PHASE}.{index}"] = ("Integer", o.get("phase", 3))
        records[f"{ZTE_RX}.{index}.1"] = ("Gauge32", o.get("rx", 65535))
        records[f"{ZTE_TX}.{index}.1"] = ("Gauge32", o.get("tx", 65535))
    return records


HUAWEI_ONTS = [
    {"port": HW_PORT_0, "ont": 0, "serial": b"HWTC\x1a\x2b\x3c\x4d", "run": 1, "rx": -2150, "tx": 215},
    {"port": HW_PORT_0, "ont": 1, "serial": b"HWTC\xe1\x00\xff\x10", "run": 2, "cause": 13},
    {"port": HW_PORT_1, "ont": 0, "serial": b"HWTC\x00\x00\x00\x07", "run": 2, "cause": 1},
]
ZTE_ONUS = [
    {"port": ZTE_PORT_1, "onu": 1, "serial": "ZTEGC0A1B2C3", "phase": 3, "rx": 4250, "tx": 16075},
    {"port": ZTE_PORT_1, "onu": 2, "serial": "ZTEGC0A1B2C4", "phase": 4},
    {"port": ZTE_PORT_2, "onu": 1, "serial": "ZTEGC0A1B2C5", "phase": 1},
]


@pytest.fixture(scope="module")
def agents():
    with (
        SimulatedAgent("olt-huawei", huawei_records(HUAWEI_ONTS), community="olt-hw-ro", host="127.0.31.1") as hw,
        SimulatedAgent("olt-zte", zte_records(ZTE_ONUS), community="olt-zte-ro", host="127.0.31.2") as zte,
    ):
        yield {"huawei": hw, "zte": zte}


@pytest.fixture
def olts(agents, tenant, settings):
    """Both OLTs registered in the tenant, their agents serving the default ONU tables."""
    settings.GPON_SNMP_TIMEOUT = 0.5  # an unreachable OLT fails in 1 s (2 tries), not 4
    agents["huawei"].replace(huawei_records(HUAWEI_ONTS))
    agents["zte"].replace(zte_records(ZTE_ONUS))
    return {vendor: _olt(vendor, agent) for vendor, agent in agents.items()}


def _olt(vendor: str, agent: SimulatedAgent) -> Device:
    return device_register(
        name=f"olt-{vendor}",
        kind=Device.Kind.OLT,
        vendor=vendor,
        management_ip=agent.host,
        snmp_port=agent.port,
        community=agent.community,
        actor=ACTOR,
    )


def _subscription(plan=None):
    customer = CustomerFactory()
    address = ServiceAddressFactory(customer=customer)
    return cs.subscription_create(customer=customer, plan=plan or PlanFactory(), service_address=address, actor=ACTOR)


def _radius_check(username: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attribute, value FROM radius.authorize_check(%s, %s)", [connection.schema_name, username]
        )
        return dict(cursor.fetchall())


def _radius_reply(username: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attribute, value FROM radius.authorize_reply(%s, %s)", [connection.schema_name, username]
        )
        return dict(cursor.fetchall())


def _pool(name="fiber-static", network="100.64.10.0/29", gateway="100.64.10.1") -> IpPool:
    return ip_pool_create(name=name, network=network, gateway=gateway, actor=ACTOR)


# --- autofind ----------------------------------------------------------------------------------

EXPECTED_AUTOFIND = {
    "huawei": [
        ("GPON 0/1/0", HW_INDEX_0, 0, "HWTC1A2B3C4D"),
        ("GPON 0/1/0", HW_INDEX_0, 1, "HWTCE100FF10"),
        ("GPON 0/1/1", HW_INDEX_1, 0, "HWTC00000007"),
    ],
    "zte": [
        ("gpon-olt_1/1/1", ZTE_PORT_1, 1, "ZTEGC0A1B2C3"),
        ("gpon-olt_1/1/1", ZTE_PORT_1, 2, "ZTEGC0A1B2C4"),
        ("gpon-olt_1/1/2", ZTE_PORT_2, 1, "ZTEGC0A1B2C5"),
    ],
}


@pytest.mark.behavior
@pytest.mark.parametrize("vendor", ["huawei", "zte"])
def test_autofind_creates_ports_and_discovered_onus_from_the_olt(olts, vendor):
    # given an OLT whose ONU table lists three ONUs on two PON ports
    olt = olts[vendor]
    # when autofind walks it
    found = onu_autofind(olt)
    # then every ONU is there once, with its vendor serial in canonical form, its port and id
    assert [(o.pon_port.name, o.pon_port.index, o.onu_index, o.serial) for o in found] == EXPECTED_AUTOFIND[vendor]
    assert {o.state for o in Onu.objects.filter(olt=olt)} == {Onu.State.DISCOVERED}
    assert PonPort.objects.filter(olt=olt).count() == 2
    assert AuditEvent.objects.filter(action="pon_port.discovered").count() == 2
    # only the ONU that is online counts as seen
    seen = set(Onu.objects.filter(olt=olt, last_seen_at__isnull=False).values_list("onu_index", "pon_port__index"))
    assert seen == {(EXPECTED_AUTOFIND[vendor][0][2], EXPECTED_AUTOFIND[vendor][0][1])}
    assert AuditEvent.objects.filter(action="onu.discovered").count() == 3
    # and a second autofind changes nothing
    again = onu_autofind(olt)
    assert [o.pk for o in again] == [o.pk for o in found]
    assert Onu.objects.filter(olt=olt).count() == 3
    assert AuditEvent.objects.filter(action="onu.discovered").count() == 3
    assert AuditEvent.objects.filter(action="pon_port.discovered").count() == 2


@pytest.mark.behavior
def test_autofind_follows_an_onu_moved_to_another_port_and_adds_new_ones(olts, agents):
    olt = olts["zte"]
    onu_autofind(olt)
    moved = [
        dict(ZTE_ONUS[0], port=ZTE_PORT_2, onu=7),
        *ZTE_ONUS[1:],
        {"port": ZTE_PORT_1, "onu": 9, "serial": "ZTEGDEADBEEF"},
    ]
    agents["zte"].replace(zte_records(moved))
    onu_autofind(olt)
    onu = Onu.objects.get(serial="ZTEGC0A1B2C3")
    assert (onu.pon_port.index, onu.onu_index) == (ZTE_PORT_2, 7)
    assert Onu.objects.get(serial="ZTEGDEADBEEF").state == Onu.State.DISCOVERED
    assert Onu.objects.filter(olt=olt).count() == 4
    assert AuditEvent.objects.filter(action="onu.moved", object_id=str(onu.pk)).count() == 1


@pytest.mark.behavior
def test_autofind_on_an_unreachable_olt_says_so_and_writes_nothing(olts, agents):
    agents["huawei"].pause()
    try:
        with pytest.raises(OltError, match="olt-huawei"):
            onu_autofind(olts["huawei"])
    finally:
        agents["huawei"].resume()
    assert not Onu.objects.exists()


@pytest.mark.behavior
def test_an_olt_of_a_vendor_without_profile_is_refused(olts):
    olt = olts["huawei"]
    olt.vendor = "nokia"
    with pytest.raises(OltError, match="no GPON profile for vendor 'nokia'"):
        onu_autofind(olt)


# --- authorisation -----------------------------------------------------------------------------


@pytest.mark.behavior
def test_authorisation_binds_one_onu_to_one_subscription(olts):
    onu_autofind(olts["huawei"])
    online, dying = Onu.objects.get(serial="HWTC1A2B3C4D"), Onu.objects.get(serial="HWTCE100FF10")
    sub, other_sub = _subscription(), _subscription()

    bound = onu_authorise(onu=online, subscription=sub, actor=ACTOR)
    assert bound.subscription_id == sub.pk
    assert bound.authorised_at is not None
    assert bound.state == Onu.State.ONLINE  # reported online by the autofind a moment ago
    # the same pair again: nothing changes, nothing is audited twice
    onu_authorise(onu=online, subscription=sub, actor=ACTOR)
    assert AuditEvent.objects.filter(action="onu.authorised", object_id=str(online.pk)).count() == 1

    with pytest.raises(ValidationError) as taken:
        onu_authorise(onu=online, subscription=other_sub, actor=ACTOR)
    assert taken.value.error_dict["onu"][0].code == "onu_taken"
    assert f"already authorised for subscription {sub.pk}" in str(taken.value)
    with pytest.raises(ValidationError, match=f"already has ONU {online.serial}"):
        onu_authorise(onu=dying, subscription=sub, actor=ACTOR)

    other_sub = cs.subscription_terminate(
        subscription=other_sub, terminated_on=datetime.date(2026, 11, 1), actor=ACTOR, reason="never installed"
    )
    with pytest.raises(ValidationError, match="is terminated"):
        onu_authorise(onu=dying, subscription=other_sub, actor=ACTOR)
    dying.refresh_from_db()
    assert (dying.subscription_id, dying.state) == (None, Onu.State.DISCOVERED)

    onu_deauthorise(onu=online, actor=ACTOR)
    online.refresh_from_db()
    assert (online.subscription_id, online.authorised_at, online.state) == (None, None, Onu.State.DISCOVERED)
    # freed: it can serve another subscription
    onu_authorise(onu=online, subscription=_subscription(), actor=ACTOR)


# --- optics ------------------------------------------------------------------------------------


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("vendor", "expected"),
    [
        (
            "huawei",
            {
                "HWTC1A2B3C4D": ("online", -21.5, 2.15),
                "HWTCE100FF10": ("dying_gasp", None, None),
                "HWTC00000007": ("los", None, None),
            },
        ),
        (
            "zte",
            {
                "ZTEGC0A1B2C3": ("online", -21.5, 2.15),
                "ZTEGC0A1B2C4": ("dying_gasp", None, None),
                "ZTEGC0A1B2C5": ("los", None, None),
            },
        ),
    ],
)
def test_optics_poll_reports_state_and_power_in_dbm_with_the_vendor_scaling(olts, vendor, expected):
    # given the OLT's ONUs found and authorised
    olt = olts[vendor]
    for onu in onu_autofind(olt):
        onu_authorise(onu=onu, subscription=_subscription(), actor=ACTOR)
    # when the optics are polled
    polls = onu_poll_optics(olt)
    # then each ONU has its state and power in dBm, the same in the poll and on the row
    assert {p.serial: (p.state, p.rx_power_dbm, p.tx_power_dbm) for p in polls} == expected
    online = Onu.objects.get(serial=next(iter(expected)))
    assert (online.rx_power_dbm, online.tx_power_dbm) == (Decimal("-21.50"), Decimal("2.15"))
    assert {p.onu_id for p in polls} == set(Onu.objects.filter(olt=olt).values_list("pk", flat=True))


@pytest.mark.behavior
def test_optics_poll_follows_the_olt_and_keeps_unauthorised_onus_quiet(olts, agents):
    olt = olts["huawei"]
    onu_autofind(olt)
    weak = Onu.objects.get(serial="HWTC1A2B3C4D")
    onu_authorise(onu=weak, subscription=_subscription(), actor=ACTOR)
    polls = {p.serial: p for p in onu_poll_optics(olt)}
    assert polls["HWTC1A2B3C4D"].rx_power_dbm == -21.5
    # not authorised: reported as discovered whatever the OLT says (the faults engine skips it)
    assert polls["HWTCE100FF10"].state == Onu.State.DISCOVERED

    # the fibre degrades: the next poll sees the new value (live agent values)
    agents["huawei"].set(f"{HW_RX}.{HW_PORT_0}.0", "Integer", -2834)
    polls = {p.serial: p for p in onu_poll_optics(olt)}
    assert polls["HWTC1A2B3C4D"].rx_power_dbm == -28.34
    weak.refresh_from_db()
    assert weak.rx_power_dbm == Decimal("-28.34")

    # the ONT vanishes from the OLT's table: offline, no reading
    agents["huawei"].replace(huawei_records(HUAWEI_ONTS[1:]))
    polls = {p.serial: p for p in onu_poll_optics(olt)}
    assert (polls["HWTC1A2B3C4D"].state, polls["HWTC1A2B3C4D"].rx_power_dbm) == ("offline", None)
    weak.refresh_from_db()
    assert (weak.state, weak.rx_power_dbm) == (Onu.State.OFFLINE, None)


# --- provisioning ------------------------------------------------------------------------------


@pytest.mark.behavior
def test_fiber_activation_allocates_ip_creates_radius_binds_onu_and_activates(olts):
    # given a pending subscription, a static pool and an ONU found on the OLT
    onu_autofind(olts["zte"])
    pool = _pool()
    sub = _subscription()
    # when it is provisioned
    job = provision(
        subscription=sub,
        action="activate",
        actor=ACTOR,
        params={"pool": pool.name, "onu_serial": "zteg-c0a1b2c3", "activated_on": "2026-11-03"},
    )
    # then every step ran once, in order
    assert (job.state, job.error, job.attempts) == ("done", "", 1)
    assert job.steps_done == ["allocate_ip", "radius_credentials", "bind_onu", "mark_active"]
    assignment = IpAssignment.objects.get(subscription=sub)
    assert assignment.address == "100.64.10.2"  # the gateway is not given out
    account = PppoeAccount.objects.get(subscription=sub)
    assert account.static_ip == assignment.address
    # FreeRADIUS would now accept the user, with its address
    password = job.result["pppoe_password"]
    assert _radius_check(account.username) == {"Cleartext-Password": password}
    assert _radius_reply(account.username)["Framed-IP-Address"] == "100.64.10.2"
    assert Onu.objects.get(serial="ZTEGC0A1B2C3").subscription_id == sub.pk
    sub.refresh_from_db()
    assert (sub.status, sub.activated_on) == ("active", datetime.date(2026, 11, 3))
    # the password is never stored with the job
    stored = ProvisioningJob.objects.get(pk=job.pk)
    assert password not in str(stored.params)
    assert not hasattr(stored, "result")
    assert list(
        AuditEvent.objects.filter(object_type="network.provisioningjob", object_id=str(job.pk))
        .exclude(action="provisioning.step_done")
        .order_by("pk")
        .values_list("action", flat=True)
    ) == ["provisioning.pending", "provisioning.running", "provisioning.done"]


@pytest.mark.behavior
def test_exhausted_pool_fails_clearly_and_the_retry_completes_without_duplicates(tenant):
    # given a pool with room for one subscriber (a /30: two hosts, one is the gateway)
    pool = _pool(network="100.64.20.0/30", gateway="100.64.20.1")
    first = _subscription()
    activate = {"pool": pool.name, "activated_on": "2026-11-02"}
    assert provision(subscription=first, action="activate", actor=ACTOR, params=activate).state == "done"
    # when a second subscriber is activated on it
    sub = _subscription()
    job = provision(subscription=sub, action="activate", actor=ACTOR, params={"pool": pool.name})
    # then the job stops at the address, says why, and nothing after it happened
    assert (job.state, job.current_step, job.steps_done) == ("failed", "allocate_ip", [])
    assert "has no free address" in job.error
    assert not PppoeAccount.objects.filter(subscription=sub).exists()
    sub.refresh_from_db()
    assert sub.status == "pending"
    # a second activation job is refused while this one is open
    with pytest.raises(ValidationError, match="retry it"):
        provision(subscription=sub, action="activate", actor=ACTOR, params={"pool": pool.name})

    # when the first subscriber leaves (its address goes back to the pool) and the job is retried
    terminated = provision(
        subscription=first,
        action="terminate",
        actor=ACTOR,
        params={"reason": "moved away", "effective_on": "2026-12-01"},
    )
    assert terminated.state == "done"
    job = provision_retry(job, actor=ACTOR)
    # then it completes, with one address and one account, and the retry is counted
    assert (job.state, job.attempts, job.current_step, job.error) == ("done", 2, "", "")
    assert IpAssignment.objects.filter(subscription=sub).count() == 1
    assert IpAssignment.objects.get(subscription=sub).address == "100.64.20.2"
    assert PppoeAccount.objects.filter(subscription=sub).count() == 1
    with pytest.raises(ValidationError, match="only a failed or interrupted job"):
        provision_retry(job, actor=ACTOR)


@pytest.mark.behavior
def test_unknown_onu_fails_at_binding_and_the_retry_after_autofind_resumes_there(olts, agents):
    # given an ONU serial the OLT has not reported yet
    onu_autofind(olts["huawei"])
    pool = _pool()
    sub = _subscription()
    job = provision(
        subscription=sub, action="activate", actor=ACTOR, params={"pool": pool.name, "onu_serial": "HWTC-0BADCAFE"}
    )
    # then address and credentials are done and kept, the binding failed and says what to do
    assert (job.state, job.current_step) == ("failed", "bind_onu")
    assert job.steps_done == ["allocate_ip", "radius_credentials"]
    assert "No ONU HWTC0BADCAFE is known" in job.error
    assert "run autofind" in job.error
    password = job.result["pppoe_password"]  # handed over by the run that created the account
    username = PppoeAccount.objects.get(subscription=sub).username
    assert _radius_check(username)["Auth-Type"] == "Reject"  # pending: not yet
    # when the technician connects the ONU and autofind finds it
    agents["huawei"].replace(
        huawei_records([*HUAWEI_ONTS, {"port": HW_PORT_1, "ont": 3, "serial": b"HWTC\x0b\xad\xca\xfe", "rx": -1990}])
    )
    onu_autofind(olts["huawei"])
    job = provision_retry(job, actor=ACTOR)
    # then the retry resumes at the binding: no second address, account or password
    assert (job.state, job.attempts) == ("done", 2)
    assert job.steps_done == ["allocate_ip", "radius_credentials", "bind_onu", "mark_active"]
    assert "pppoe_password" not in job.result
    assert IpAssignment.objects.filter(subscription=sub).count() == 1
    assert PppoeAccount.objects.filter(subscription=sub).count() == 1
    assert _radius_check(username) == {"Cleartext-Password": password}
    assert Onu.objects.get(serial="HWTC0BADCAFE").subscription_id == sub.pk
    assert AuditEvent.objects.filter(action="ip.allocated").count() == 1


@pytest.mark.behavior
def test_a_mistyped_serial_is_corrected_on_retry_but_a_done_step_cannot_change(olts):
    onu_autofind(olts["zte"])
    pool = _pool()
    sub = _subscription()
    job = provision(
        subscription=sub, action="activate", actor=ACTOR, params={"pool": pool.name, "onu_serial": "ZTEGC0A1B2C9"}
    )
    assert job.state == "failed"
    with pytest.raises(ValidationError, match="already done"):
        provision_retry(job, actor=ACTOR, params={"pool": "another-pool"})
    job = provision_retry(job, actor=ACTOR, params={"onu_serial": "ZTEGC0A1B2C5"})
    assert job.state == "done"
    assert Onu.objects.get(serial="ZTEGC0A1B2C5").subscription_id == sub.pk


@pytest.mark.behavior
def test_terminate_runs_the_reverse_steps(olts):
    # given an active fiber subscriber
    onu_autofind(olts["huawei"])
    pool = _pool()
    sub = _subscription()
    job = provision(
        subscription=sub,
        action="activate",
        actor=ACTOR,
        params={"pool": pool.name, "onu_serial": "HWTC1A2B3C4D", "activated_on": "2026-11-02"},
    )
    username = job.result["pppoe_username"]
    # when it is terminated
    job = provision(
        subscription=sub,
        action="terminate",
        actor=ACTOR,
        params={"reason": "contract ended", "effective_on": "2026-12-31"},
    )
    # then the subscription ends, the ONU is free, RADIUS no longer knows the user, the address is back
    assert job.state == "done"
    assert job.steps_done == ["mark_terminated", "unbind_onu", "revoke_radius", "release_ip"]
    sub.refresh_from_db()
    assert (sub.status, sub.terminated_on) == ("terminated", datetime.date(2026, 12, 31))
    onu = Onu.objects.get(serial="HWTC1A2B3C4D")
    assert (onu.subscription_id, onu.state) == (None, Onu.State.DISCOVERED)
    assert not PppoeAccount.objects.filter(subscription=sub).exists()
    assert _radius_check(username) == {}
    assert not IpAssignment.objects.filter(subscription=sub).exists()
    # and the freed address and ONU serve the next subscriber
    nxt = _subscription()
    job = provision(
        subscription=nxt, action="activate", actor=ACTOR, params={"pool": pool.name, "onu_serial": "HWTC1A2B3C4D"}
    )
    assert job.state == "done"
    assert IpAssignment.objects.get(subscription=nxt).address == "100.64.10.2"
    # terminating again is a no-op job (every step finds its work done)
    again = provision(subscription=sub, action="terminate", actor=ACTOR, params={"reason": "double click"})
    assert (again.state, again.steps_done) == ("done", ["mark_terminated", "unbind_onu", "revoke_radius", "release_ip"])


@pytest.mark.behavior
def test_suspension_rejects_the_login_and_keeps_the_rest(tenant):
    pool = _pool()
    sub = _subscription()
    job = provision(subscription=sub, action="activate", actor=ACTOR, params={"pool": pool.name})
    username = job.result["pppoe_username"]
    job = provision(subscription=sub, action="suspend", actor=ACTOR, params={"reason": "unpaid invoice"})
    assert (job.state, job.steps_done) == ("done", ["mark_suspended"])
    sub.refresh_from_db()
    assert sub.status == "suspended"
    assert _radius_check(username)["Auth-Type"] == "Reject"
    assert IpAssignment.objects.filter(subscription=sub).count() == 1  # kept for the way back
    with pytest.raises(ValidationError, match="it cannot be activated"):
        provision(subscription=sub, action="activate", actor=ACTOR)


@pytest.mark.behavior
def test_wrong_requests_are_refused_before_any_job_exists(tenant):
    sub = _subscription()
    for action, params, message in [
        ("activate", {"password": "hunter2hunter2"}, "Passwords are generated"),
        ("activate", {"static_ip": "300.1.1.1"}, "not an IPv4 address"),
        ("activate", {"onu_serial": "nope"}, "not a GPON serial"),
        ("activate", {"activated_on": "yesterday"}, "not a date"),
        ("suspend", {"reason": "unpaid"}, "pending: it cannot be suspended"),
        ("terminate", {}, "Say why"),
        ("reboot", {}, "Unknown action"),
    ]:
        with pytest.raises(ValidationError, match=message):
            provision(subscription=sub, action=action, actor=ACTOR, params=params)
    assert not ProvisioningJob.objects.exists()


@pytest.mark.behavior
def test_a_static_ip_outside_every_pool_fails_and_a_static_ip_inside_one_is_reserved(tenant):
    pool = _pool()
    sub = _subscription()
    job = provision(subscription=sub, action="activate", actor=ACTOR, params={"static_ip": "192.0.2.10"})
    assert (job.state, job.current_step) == ("failed", "allocate_ip")
    assert "192.0.2.10 is not inside any IP pool" in job.error
    job = provision_retry(job, actor=ACTOR, params={"static_ip": "100.64.10.6"})
    assert job.state == "done"
    assert IpAssignment.objects.get(subscription=sub).pool == pool
    assert PppoeAccount.objects.get(subscription=sub).static_ip == "100.64.10.6"
    taken = provision(subscription=_subscription(), action="activate", actor=ACTOR, params={"static_ip": "100.64.10.6"})
    assert (taken.state, taken.current_step) == ("failed", "allocate_ip")
    assert "already assigned" in taken.error


# --- polling an OLT: ONU alarms and the outage of the whole OLT ---------------------------------------


@pytest.mark.behavior
def test_polling_an_olt_raises_onu_alarms_and_an_olt_outage_lists_its_subscribers(olts, agents, settings):
    """poll_and_store on an OLT reads its ONUs (network.gpon) in the same pass, so fault detection
    opens ONU alarms for authorised ONUs; when the OLT stops answering, one device alarm lists the
    subscribers behind it, and recovery clears it."""
    from network.models import Alarm
    from network.outage import outage_report
    from network.snmp.poller import poll_and_store

    settings.SNMP_POLL_TIMEOUT = 0.5
    settings.SNMP_POLL_RETRIES = 0
    olt = olts["huawei"]
    onu_autofind(olt)
    online, gasping = Onu.objects.get(serial="HWTC1A2B3C4D"), Onu.objects.get(serial="HWTCE100FF10")
    subs = [
        cs.subscription_activate(subscription=_subscription(), activated_on=datetime.date(2026, 11, 1), actor=ACTOR)
        for _ in range(2)
    ]
    onu_authorise(onu=online, subscription=subs[0], actor=ACTOR)
    onu_authorise(onu=gasping, subscription=subs[1], actor=ACTOR)
    # The online ONU receives -29.00 dBm: below the low-Rx threshold.
    agents["huawei"].set(f"{HW_RX}.{HW_PORT_0}.0", "Integer", -2900)

    poll_and_store([olt])
    kinds = set(Alarm.objects.filter(state="open").values_list("kind", flat=True))
    assert {"onu_low_rx", "onu_dying_gasp"} <= kinds
    assert "device_unreachable" not in kinds

    agents["huawei"].pause()
    try:
        poll_and_store([olt])
        [down] = Alarm.objects.filter(state="open", kind="device_unreachable")
        report = outage_report(down)
        assert report.count == 2
        assert {row.subscription_id for row in report.subscriptions} == {s.pk for s in subs}
    finally:
        agents["huawei"].resume()
    agents["huawei"].set(f"{HW_RX}.{HW_PORT_0}.0", "Integer", -2150)
    poll_and_store([olt])
    down.refresh_from_db()
    assert down.state == "cleared"
    assert not Alarm.objects.filter(state="open", kind="onu_low_rx").exists()
