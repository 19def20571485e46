"""GPON vendor profiles without an OLT: decoding of serials, states and optical power (golden values
per vendor encoding), row assembly from walks, validation of profile files, and a third vendor as
a new file. The SNMP path against simulated OLTs is in
tests/network_infrastructure/test_gpon_and_provisioning.py."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from network.gpon.profiles import (
    OBSERVED_STATES,
    PROFILE_DIR,
    ProfileError,
    profile_load,
    profile_names,
    profile_parse,
    profile_read,
    serial_decode,
    serial_normalize,
)

pytestmark = [pytest.mark.network_monitoring]

HUAWEI_SERIAL_OID = "1.3.6.1.4.1.2011.6.128.1.1.2.43.1.3"
HUAWEI_STATE_OID = "1.3.6.1.4.1.2011.6.128.1.1.2.46.1.15"
HUAWEI_CAUSE_OID = "1.3.6.1.4.1.2011.6.128.1.1.2.46.1.24"
HUAWEI_RX_OID = "1.3.6.1.4.1.2011.6.128.1.1.2.51.1.4"
HUAWEI_TX_OID = "1.3.6.1.4.1.2011.6.128.1.1.2.51.1.3"
ZTE_SERIAL_OID = "1.3.6.1.4.1.3902.1012.3.28.1.1.5"
ZTE_STATE_OID = "1.3.6.1.4.1.3902.1012.3.28.2.1.4"
ZTE_RX_OID = "1.3.6.1.4.1.3902.1012.3.50.12.1.1.10"


def _data(vendor: str) -> dict:
    return json.loads((PROFILE_DIR / f"{vendor}.json").read_text())


# --- golden decoding: these numbers are what the vendors send; they must not change unnoticed ----


@pytest.mark.business_logic_protection
@pytest.mark.contract
@pytest.mark.parametrize(
    ("vendor", "column", "raw", "dbm"),
    [
        # Huawei: Integer32 in 0.01 dBm; 2147483647 while the ONT is offline.
        ("huawei", "rx", "-2150", Decimal("-21.50")),
        ("huawei", "rx", -812, Decimal("-8.12")),
        ("huawei", "rx", "-2801", Decimal("-28.01")),
        ("huawei", "tx", "215", Decimal("2.15")),
        ("huawei", "tx", "0", Decimal("0.00")),
        ("huawei", "rx", "2147483647", None),
        ("huawei", "rx", None, None),
        ("huawei", "rx", "", None),
        # ZTE: unsigned, dBm = raw * 0.002 - 30; 65535 = no reading.
        ("zte", "rx", "4250", Decimal("-21.50")),
        ("zte", "rx", "4251", Decimal("-21.50")),  # -21.498
        ("zte", "rx", "4253", Decimal("-21.49")),  # -21.494
        ("zte", "rx", "4252", Decimal("-21.50")),  # -21.496
        ("zte", "rx", 0, Decimal("-30.00")),
        ("zte", "rx", "1000", Decimal("-28.00")),
        ("zte", "tx", "15250", Decimal("0.50")),
        ("zte", "tx", "16075", Decimal("2.15")),  # 2.150
        ("zte", "rx", "65535", None),
        # A decoded value no fibre can carry is a broken reading, not a power level.
        ("zte", "tx", "65534", None),  # +101.068 dBm
        ("huawei", "rx", "-900000", None),  # -9000 dBm
    ],
)
def test_optical_power_decodes_to_the_vendors_dbm(vendor, column, raw, dbm):
    profile = profile_load(vendor)
    assert getattr(profile, column).decode(raw) == dbm


@pytest.mark.business_logic_protection
@pytest.mark.contract
@pytest.mark.parametrize(
    ("vendor", "raw_state", "raw_cause", "state"),
    [
        ("huawei", "1", None, "online"),
        ("huawei", "1", "13", "online"),  # the last down cause of an ONT that came back
        ("huawei", "2", "13", "dying_gasp"),
        ("huawei", "2", "1", "los"),
        ("huawei", "2", "2", "los"),
        ("huawei", "2", "9", "offline"),  # reset by the operator
        ("huawei", "2", None, "offline"),
        ("huawei", "7", None, "offline"),  # unknown run state
        ("zte", "3", None, "online"),
        ("zte", "4", None, "dying_gasp"),
        ("zte", "1", None, "los"),
        ("zte", "6", None, "offline"),
        ("zte", "0", None, "offline"),  # still logging in
        ("zte", None, None, "offline"),
    ],
)
def test_onu_states_decode_per_vendor(vendor, raw_state, raw_cause, state):
    assert profile_load(vendor).decode_state(raw_state, raw_cause) == state


@pytest.mark.business_logic_protection
@pytest.mark.contract
@pytest.mark.parametrize(
    ("raw", "encoding", "serial"),
    [
        (b"HWTC\x1a\x2b\x3c\x4d", "gpon_octets", "HWTC1A2B3C4D"),
        ("HWTC\x1a\x2b\x3c\x4d", "gpon_octets", "HWTC1A2B3C4D"),  # easysnmp: one character per octet
        ("HWTC\xe1\x00\xff\x10", "gpon_octets", "HWTCE100FF10"),
        ("48 57 54 43 1A 2B 3C 4D", "gpon_octets", "HWTC1A2B3C4D"),  # an agent that prints hex
        ("HWTC1A2B3C4D", "gpon_octets", "HWTC1A2B3C4D"),
        ("ZTEGC0A1B2C3", "ascii", "ZTEGC0A1B2C3"),
        (' "zteg-c0a1b2c3" ', "ascii", "ZTEGC0A1B2C3"),
        ("5A544547C0A1B2C3", "hex", "ZTEGC0A1B2C3"),
        ("5a:54:45:47:c0:a1:b2:c3", "hex", "ZTEGC0A1B2C3"),
    ],
)
def test_serials_decode_to_one_canonical_form(raw, encoding, serial):
    assert serial_decode(raw, encoding) == serial


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (b"HWTC\x1a\x2b\x3c", "gpon_octets"),  # 7 octets
        (b"HW\x00C\x1a\x2b\x3c\x4d", "gpon_octets"),  # vendor id not printable
        ("ZTEG-C0A1B2", "ascii"),
        ("ZTEGXYZ1B2C3", "ascii"),  # not hex after the vendor id
        ("5A5445", "hex"),
        ("", "ascii"),
    ],
)
def test_what_is_not_a_serial_is_refused(raw, encoding):
    with pytest.raises(ValueError):
        serial_decode(raw, encoding)


@pytest.mark.behavior
def test_a_serial_typed_by_an_installer_normalises_like_the_olt_reports_it():
    for typed in ("HWTC1A2B3C4D", "hwtc1a2b3c4d", "HWTC-1A2B-3C4D", "hwtc 1a2b3c4d", "485754431A2B3C4D"):
        assert serial_normalize(typed) == "HWTC1A2B3C4D"
    with pytest.raises(ValueError, match="not a GPON serial"):
        serial_normalize("HWTC1A2B3C4")


@pytest.mark.property
@given(
    vendor_id=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=4, max_size=4),
    specific=st.binary(min_size=4, max_size=4),
)
def test_every_gpon_serial_reads_the_same_as_octets_hex_and_text(vendor_id, specific):
    octets = vendor_id.encode() + specific
    canonical = serial_decode(octets, "gpon_octets")
    assert canonical == vendor_id + specific.hex().upper()
    assert serial_decode(octets.decode("latin-1"), "gpon_octets") == canonical
    assert serial_decode(octets.hex(" "), "hex") == canonical
    assert serial_decode(canonical, "ascii") == canonical
    assert serial_normalize(canonical.lower()) == canonical


@pytest.mark.property
@given(centi_dbm=st.integers(min_value=-5000, max_value=2000))
def test_huawei_hundredths_of_a_dbm_round_trip_exactly(centi_dbm):
    assert profile_load("huawei").rx.decode(str(centi_dbm)) == Decimal(centi_dbm) / 100


# --- rows from walks ---------------------------------------------------------------------------


@pytest.mark.behavior
def test_zte_rows_join_columns_with_an_extra_index_component():
    profile = profile_load("zte")
    port = 268501248
    rows, problems = profile.rows(
        {
            "serial": [
                (f".{ZTE_SERIAL_OID}.{port}.1", "ZTEGC0A1B2C3"),
                (f"{ZTE_SERIAL_OID}.{port}.2", "ZTEGC0A1B2C4"),
                (f"{ZTE_SERIAL_OID}.{port}.3", "garbage"),
            ],
            "state": [(f"{ZTE_STATE_OID}.{port}.1", "3"), (f"{ZTE_STATE_OID}.{port}.2", "4")],
            "rx": [(f"{ZTE_RX_OID}.{port}.1.1", "4250"), (f"{ZTE_RX_OID}.{port}.2.1", "65535")],
        }
    )
    assert [(r.pon_port, r.onu_index, r.serial, r.state, r.rx_power_dbm) for r in rows] == [
        (port, 1, "ZTEGC0A1B2C3", "online", Decimal("-21.50")),
        (port, 2, "ZTEGC0A1B2C4", "dying_gasp", None),
    ]
    assert len(problems) == 1
    assert "ONU 3" in problems[0]
    assert "garbage" in problems[0]


@pytest.mark.behavior
def test_huawei_rows_ignore_oids_of_other_columns_and_malformed_suffixes():
    profile = profile_load("huawei")
    port = 4194312192
    rows, problems = profile.rows(
        {
            "serial": [
                (f"{HUAWEI_SERIAL_OID}.{port}.0", b"HWTC\x00\x00\x00\x01"),
                (f"{HUAWEI_SERIAL_OID}.{port}", b"HWTC\x00\x00\x00\x02"),  # no ONT id
                (f"{HUAWEI_STATE_OID}.{port}.5", b"HWTC\x00\x00\x00\x03"),  # another column
            ],
            "state": [(f"{HUAWEI_STATE_OID}.{port}.0", "2")],
            "refine": [(f"{HUAWEI_CAUSE_OID}.{port}.0", "13")],
            "tx": [(f"{HUAWEI_TX_OID}.{port}.0", "2147483647")],
        }
    )
    # Huawei's port ifIndex (0/1/0) is stored as it is (PonPort.index is 64-bit)
    assert rows == [type(rows[0])(4194312192, 0, "HWTC00000001", "dying_gasp", None, None)]
    assert problems == []


@pytest.mark.behavior
def test_a_port_index_outside_the_profiles_range_is_reported_not_stored():
    import dataclasses

    # A profile that stores ports relative to a base (pon_port_offset): a port below it is refused.
    profile = dataclasses.replace(profile_load("huawei"), pon_port_offset=4194304000)
    rows, problems = profile.rows({"serial": [(f"{HUAWEI_SERIAL_OID}.4096.0", b"HWTC\x00\x00\x00\x01")]})
    assert rows == []
    assert problems == ["PON port 4096 ONU 0: the port index is out of range for this profile"]
    assert profile_load("zte").port_index(268501248) == 268501248


# --- profile files -----------------------------------------------------------------------------


@pytest.mark.contract
def test_the_shipped_profiles_load_and_map_onto_onu_states():
    from network.models import Onu

    assert {"huawei", "zte"} <= set(profile_names())
    assert set(Onu.State.values) - {Onu.State.DISCOVERED} >= OBSERVED_STATES
    for name in profile_names():
        profile = profile_load(name)
        assert profile.vendor == name
        assert set(profile.state_map.values()) <= OBSERVED_STATES
        assert profile.thresholds.rx_status(Decimal("-20")) == "ok"
        assert profile.thresholds.rx_status(Decimal("-29.5")) == "low"
        assert profile.thresholds.rx_status(Decimal("-7")) == "high"
    assert profile_load(" Huawei ") is profile_load("huawei")


@pytest.mark.behavior
def test_a_third_vendor_is_a_new_file(tmp_path: Path):
    """A FiberHome-like OLT: serial as 16 hex digits, Rx in 0.001 dBm - no code change."""
    data = {
        "vendor": "fiberhome",
        "index": ["pon_port", "onu_index"],
        "serial": {"oid": "1.3.6.1.4.1.5875.800.3.10.1.1.10", "encoding": "hex"},
        "state": {"oid": "1.3.6.1.4.1.5875.800.3.10.1.1.11", "map": {"1": "online", "2": "los", "3": "offline"}},
        "optics": {
            "rx": {"oid": "1.3.6.1.4.1.5875.800.3.9.3.3.1.6", "scale": "0.001", "invalid": [-2147483648]},
            "tx": {"oid": "1.3.6.1.4.1.5875.800.3.9.3.3.1.7", "scale": "0.001", "invalid": [-2147483648]},
        },
        "thresholds": {"rx_low_dbm": "-27", "rx_high_dbm": "-8", "tx_low_dbm": "0.5", "tx_high_dbm": "5"},
    }
    path = tmp_path / "fiberhome.json"
    path.write_text(json.dumps(data))
    profile = profile_read(path)
    rows, _ = profile.rows(
        {
            "serial": [("1.3.6.1.4.1.5875.800.3.10.1.1.10.16842752.7", "46485454 1A2B3C4D")],
            "state": [("1.3.6.1.4.1.5875.800.3.10.1.1.11.16842752.7", "2")],
            "rx": [("1.3.6.1.4.1.5875.800.3.9.3.3.1.6.16842752.7", "-19876")],
        }
    )
    assert [(r.serial, r.state, r.rx_power_dbm) for r in rows] == [("FHTT1A2B3C4D", "los", Decimal("-19.88"))]


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(vendor="zte"), "file is named 'huawei'"),
        (lambda d: d["serial"].update(oid="iso.3.6.1"), "not a numeric OID"),
        (lambda d: d["serial"].update(encoding="base64"), "serial.encoding"),
        (lambda d: d["state"]["map"].update({"3": "sleeping"}), "'sleeping' is not one of"),
        (lambda d: d["state"]["map"].update({"x": "online"}), "not an integer"),
        (lambda d: d["state"].update(default="discovered"), "state.default"),
        (lambda d: d["optics"]["rx"].update(scale=0.01), "write numbers as strings"),
        (lambda d: d["optics"]["rx"].update(scale="0"), "must not be 0"),
        (lambda d: d["optics"]["tx"].update(invalid="none"), "optics.tx.invalid"),
        (lambda d: d.update(index=["onu_index", "pon_port"]), "in that order"),
        (lambda d: d["optics"]["rx"].update(index=["pon_port", "*"]), "optics.rx.index"),
        (lambda d: d["optics"]["tx"].update(oid=d["optics"]["rx"]["oid"]), "share an OID"),
        (lambda d: d["thresholds"].update(rx_low_dbm="-5"), "low limit must be below"),
        (lambda d: d.pop("optics"), "`optics` is missing"),
        (lambda d: d.update(pon_port_offset=-1), "pon_port_offset"),
    ],
)
def test_a_broken_profile_is_refused_with_the_field_at_fault(change, message):
    data = _data("huawei")
    change(data)
    with pytest.raises(ProfileError, match=message):
        profile_parse(data, name="huawei")


@pytest.mark.behavior
def test_an_olt_without_a_profile_names_the_ones_there_are():
    with pytest.raises(ProfileError, match=r"no GPON profile for vendor 'nokia' \(profiles: .*huawei.*zte"):
        profile_load("nokia")
    with pytest.raises(ProfileError, match="no GPON profile"):
        profile_load("../huawei")


# --- activation through provisioning starts billing on the activation date ----------------------


@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_activation_through_provisioning_is_billable_from_the_activation_date(tenant):
    from billing.models import InvoiceLine
    from billing.services import billing_run_execute
    from compliance.audit import Actor
    from customers import services as cs
    from customers.models import SubscriptionPlanChange
    from network.inventory import ip_pool_create
    from network.provisioning import provision, provision_retry
    from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

    actor = Actor.system("gpon revenue test")
    # given a pending subscription whose first activation attempt fails (no address left)
    pool = ip_pool_create(name="tiny", network="100.64.30.0/31", actor=actor)
    customer = CustomerFactory()
    plan = PlanFactory(monthly_price=Decimal("30.000000"))
    sub = cs.subscription_create(
        customer=customer, plan=plan, service_address=ServiceAddressFactory(customer=customer), actor=actor
    )
    job = provision(
        subscription=sub, action="activate", actor=actor, params={"pool": "missing", "activated_on": "2026-11-16"}
    )
    assert job.state == "failed"
    sub.refresh_from_db()
    assert (sub.status, sub.activated_on) == ("pending", None)  # not billable while it is not served
    # when the retry completes
    job = provision_retry(job, actor=actor, params={"pool": pool.name})
    # then the subscription is billable from the requested activation date, not from the retry
    sub.refresh_from_db()
    assert (sub.status, sub.activated_on) == ("active", datetime.date(2026, 11, 16))
    assert SubscriptionPlanChange.objects.get(subscription=sub).effective_on == datetime.date(2026, 11, 16)
    billing_run_execute(
        period="2026-12", actor=actor, issue_date=datetime.date(2026, 12, 1), customer_ids=[customer.pk]
    )
    lines = InvoiceLine.objects.filter(subscription=sub, kind=InvoiceLine.Kind.CHARGE)
    assert lines.exists()
    assert min(line.service_start for line in lines) == datetime.date(2026, 11, 16)
