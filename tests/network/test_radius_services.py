"""The RADIUS side of the back office without FreeRADIUS in the loop: the `radius` functions are
called directly (as FreeRADIUS would, same arguments), inside the test's transaction, across the
tenant matrix. The end-to-end path through the real FreeRADIUS is in
tests/network_infrastructure/test_isp_network_operations.py."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import services as cs
from network import services as ns
from network.models import CoaRequest, Nas, PppoeAccount, RadiusSession
from network.radius.nas_simulator import NasSimulator
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

ACTOR = Actor.system("radius service tests")
GB = 10**9


def _subscriber(plan, *, username, password="pppoe-pass-1", activated_on=datetime.date(2026, 10, 1)):
    customer = CustomerFactory()
    address = ServiceAddressFactory(customer=customer)
    sub = cs.subscription_create(customer=customer, plan=plan, service_address=address, actor=ACTOR)
    sub = cs.subscription_activate(subscription=sub, activated_on=activated_on, actor=ACTOR)
    account, _ = ns.pppoe_account_create(subscription=sub, actor=ACTOR, username=username, password=password)
    return sub, account


def _acct(status, *, user, session, nas_ip="127.0.0.1", octets_in=0, octets_out=0, secs=0, when=None, cause=""):
    def split(n):
        return str(n & 0xFFFFFFFF), str(n >> 32)

    i_oct, i_gw = split(octets_in)
    o_oct, o_gw = split(octets_out)
    event = str(int(when.timestamp())) if when else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT radius.accounting(%s, %s, %s, %s, %s, %s, '', 'Virtual', '', '', '', %s, %s, %s, %s, %s, %s, %s)",
            [
                connection.schema_name,
                status,
                f"u-{session}",
                session,
                user,
                nas_ip,
                str(secs),
                i_oct,
                i_gw,
                o_oct,
                o_gw,
                cause,
                event,
            ],
        )
        return cursor.fetchone()[0]


def _reply(user):
    with connection.cursor() as cursor:
        cursor.execute("SELECT attribute, value FROM radius.authorize_reply(%s, %s)", [connection.schema_name, user])
        return dict(cursor.fetchall())


def _check(user, tenant_schema=None):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attribute, value FROM radius.authorize_check(%s, %s)",
            [tenant_schema or connection.schema_name, user],
        )
        return dict(cursor.fetchall())


# --- revenue: accounting -> usage -> the overage line ------------------------------------------------


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
def test_accounting_usage_bills_as_overage_in_arrears(tenant):
    from billing.models import InvoiceLine
    from billing.services import billing_run_execute

    plan = PlanFactory(monthly_price=Decimal("30.00"), included_bytes=1 * GB, overage_rate_per_gb=Decimal("2.000000"))
    sub, account = _subscriber(plan, username="meter-1")
    october = datetime.datetime(2026, 10, 15, 12, 0, tzinfo=datetime.UTC)
    used = 5_500_000_000  # past the 32-bit wrap: one gigaword + 1,205,032,704 octets
    assert _acct("Start", user="meter-1", session="s1", when=october) == 1
    assert _acct("Interim-Update", user="meter-1", session="s1", octets_out=used - 10**6, secs=600, when=october)
    assert _acct(
        "Stop",
        user="meter-1",
        session="s1",
        octets_out=used - 10**6,
        octets_in=10**6,
        secs=700,
        when=october,
        cause="User-Request",
    )
    billing_run_execute(period="2026-11", actor=ACTOR, issue_date=datetime.date(2026, 11, 1))
    usage = InvoiceLine.objects.get(invoice__customer=sub.customer, kind=InvoiceLine.Kind.USAGE)
    # (5.5 GB - 1 GB allowance) x 2.00 per GB = 9.00, hand-checked.
    assert usage.amount == Decimal("9.000000")
    assert usage.quantity == Decimal("4.5")


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.data_safety
@pytest.mark.behavior
def test_replayed_and_out_of_order_accounting_never_counts_twice(tenant):
    from billing.models import UsageRecord

    plan = PlanFactory(included_bytes=None)
    sub, _ = _subscriber(plan, username="meter-2")
    for _ in range(3):  # the same Start/Interim/Stop replayed from a detail file three times
        _acct("Start", user="meter-2", session="r1")
        _acct("Interim-Update", user="meter-2", session="r1", octets_in=700, octets_out=3 * 2**32, secs=60)
        _acct("Interim-Update", user="meter-2", session="r1", octets_in=100, octets_out=2**32, secs=30)  # older
        _acct(
            "Stop", user="meter-2", session="r1", octets_in=900, octets_out=3 * 2**32 + 5, secs=90, cause="Idle-Timeout"
        )
    [session] = RadiusSession.objects.filter(acct_session_id="r1")
    assert (session.input_octets, session.output_octets, session.session_time) == (900, 3 * 2**32 + 5, 90)
    assert session.terminate_cause == "Idle-Timeout"
    total = sum(r.bytes_in + r.bytes_out for r in UsageRecord.objects.filter(subscription=sub))
    assert total == 900 + 3 * 2**32 + 5


# --- payments and dunning reach the network ----------------------------------------------------------


@pytest.mark.payment_flow
@pytest.mark.behavior
def test_suspension_and_reactivation_disconnect_the_open_session(tenant):
    plan = PlanFactory()
    sub, _ = _subscriber(plan, username="dun-1")
    with NasSimulator(secret=b"nas-secret-1", host="127.0.0.1") as nas_sim:
        ns.nas_register(name="bras", ip_address="127.0.0.1", secret="nas-secret-1", actor=ACTOR, coa_port=nas_sim.port)
        _acct("Start", user="dun-1", session="d1")
        sub = cs.subscription_suspend(
            subscription=sub, effective_on=datetime.date(2026, 11, 25), actor=ACTOR, reason="unpaid"
        )
        # Inside the test transaction on_commit never fires: deliver as a commit would.
        ns.on_status_changed(_event(sub, "active", "suspended"))
        assert nas_sim.wait_for(1)
        cs.subscription_reactivate(subscription=sub, effective_on=datetime.date(2026, 11, 26), actor=ACTOR)
        ns.on_status_changed(_event(sub, "suspended", "active"))
        assert nas_sim.wait_for(2)
        kinds = [(r.code_name, r.session_id) for r in nas_sim.received]
    assert kinds == [("Disconnect-Request", "d1"), ("Disconnect-Request", "d1")]
    reasons = list(CoaRequest.objects.filter(subscription=sub).order_by("pk").values_list("reason", "outcome"))
    assert reasons == [("suspended", "ack"), ("reactivated", "ack")]


def _event(sub, from_status, to_status):
    from customers.events import SubscriptionStatusChanged

    return SubscriptionStatusChanged(
        schema=connection.schema_name,
        subscription_id=sub.pk,
        from_status=from_status,
        to_status=to_status,
        effective_on=datetime.date(2026, 11, 25),
    )


# --- data safety: nothing half-written -------------------------------------------------------------


@pytest.mark.data_safety
@pytest.mark.behavior
def test_refused_nas_registration_leaves_nothing_behind(tenant):
    ns.nas_register(name="bras-1", ip_address="127.0.0.41", secret="first-secret", actor=ACTOR)
    before = AuditEvent.objects.count()
    for bad in (
        {"ip_address": "not-an-ip"},
        {"ip_address": "127.0.0.41"},  # taken
        {"secret": "short"},
        {"secret": "has space inside"},
        {"coa_port": 70000},
    ):
        fields = {"name": "bras-2", "ip_address": "127.0.0.42", "secret": "second-secret", **bad}
        with pytest.raises(ValidationError):
            ns.nas_register(actor=ACTOR, **fields)
    assert list(Nas.objects.values_list("name", flat=True)) == ["bras-1"]
    assert AuditEvent.objects.count() == before
    with connection.cursor() as cursor:
        cursor.execute("SELECT host(ip) FROM radius.nas_directory WHERE tenant = %s", [connection.schema_name])
        assert [r[0] for r in cursor.fetchall()] == ["127.0.0.41"]


@pytest.mark.data_safety
@pytest.mark.behavior
def test_pppoe_account_input_is_validated(tenant):
    plan = PlanFactory()
    sub, account = _subscriber(plan, username="valid-1")
    with pytest.raises(ValidationError):
        ns.pppoe_account_create(subscription=sub, actor=ACTOR, username="other-1")  # one per subscription
    other = cs.subscription_create(
        customer=sub.customer, plan=plan, service_address=ServiceAddressFactory(customer=sub.customer), actor=ACTOR
    )
    for bad in (
        {"username": "valid-1"},
        {"username": "a b"},
        {"username": "x"},
        {"password": "short"},
        {"static_ip": "999.1.1.1"},
    ):
        with pytest.raises(ValidationError):
            ns.pppoe_account_create(subscription=other, actor=ACTOR, **{"username": "fresh-1", **bad})
    assert PppoeAccount.objects.count() == 1


# --- customer data protection ------------------------------------------------------------------------


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_pppoe_password_is_sealed_shown_once_and_never_logged(tenant, caplog):
    plan = PlanFactory()
    customer = CustomerFactory()
    sub = cs.subscription_create(
        customer=customer, plan=plan, service_address=ServiceAddressFactory(customer=customer), actor=ACTOR
    )
    with caplog.at_level("DEBUG"):
        account, password = ns.pppoe_account_create(subscription=sub, actor=ACTOR)
    assert len(password) >= 16
    assert password.encode() not in bytes(account.secret_sealed)
    assert password not in caplog.text
    assert _check(account.username)["Cleartext-Password"] == password
    new = ns.pppoe_password_set(account=account, actor=ACTOR)
    assert new != password
    assert _check(account.username)["Cleartext-Password"] == new
    events = AuditEvent.objects.filter(object_type="network.pppoeaccount", object_id=str(account.pk))
    assert set(events.values_list("action", flat=True)) == {"pppoe.created", "pppoe.password_set"}
    assert all(password not in str(e.changed_fields) + e.reason for e in events)


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_radius_functions_answer_only_for_the_tenant_named_by_the_nas(tenant, other_tenant):
    plan = PlanFactory()
    _subscriber(plan, username="iso-1")
    assert "Cleartext-Password" in _check("iso-1")
    assert _check("iso-1", other_tenant.schema_name) == {}
    # Not a tenant (or an injection attempt): nothing, no error that would leak.
    assert _check("iso-1", 'public"; DROP TABLE x; --') == {}
    assert _check("iso-1", "public") == {}


@pytest.mark.customer_data_protection
@pytest.mark.behavior
def test_nas_secret_is_encrypted_at_rest(tenant):
    nas = ns.nas_register(name="bras-9", ip_address="127.0.0.49", secret="very-secret-nas", actor=ACTOR)
    raw = bytes(Nas.objects.get(pk=nas.pk).secret)
    assert b"very-secret-nas" not in raw
    assert ns.nas_secret(nas) == b"very-secret-nas"
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM radius.nas_directory WHERE ip = '127.0.0.49'")
        assert b"very-secret-nas" not in bytes(cursor.fetchone()[0])
        cursor.execute("SELECT secret, tenant FROM radius.nas_client('127.0.0.49')")
        assert cursor.fetchone() == ("very-secret-nas", connection.schema_name)


# --- business rules of the reply (golden) ----------------------------------------------------------


@pytest.mark.business_logic_protection
@pytest.mark.behavior
def test_golden_reply_attributes_per_plan_and_state(tenant):
    plan = PlanFactory(
        download_kbps=50_000,
        upload_kbps=10_000,
        included_bytes=100 * GB,
        fair_use_download_kbps=5_000,
        fair_use_upload_kbps=1_000,
    )
    sub, account = _subscriber(plan, username="gold-1")
    assert _reply("gold-1") == {
        "Mikrotik-Rate-Limit": "10000k/50000k",
        "WISPr-Bandwidth-Max-Down": "50000000",
        "WISPr-Bandwidth-Max-Up": "10000000",
        "Session-Timeout": "86400",
        "Acct-Interim-Interval": "300",
    }
    assert _check("gold-1") == {"Cleartext-Password": "pppoe-pass-1"}
    PppoeAccount.objects.filter(pk=account.pk).update(over_cap=True)
    assert _reply("gold-1")["Mikrotik-Rate-Limit"] == "1000k/5000k"
    ns.pppoe_account_update(account=account, changes={"static_ip": "198.51.100.7"}, actor=ACTOR)
    assert _reply("gold-1")["Framed-IP-Address"] == "198.51.100.7"
    cs.subscription_suspend(subscription=sub, effective_on=datetime.date(2026, 11, 25), actor=ACTOR, reason="test")
    assert _check("gold-1")["Auth-Type"] == "Reject"
    assert _reply("gold-1") == {}
    ns.radius_settings_update(changes={"suspended_access": "walled_garden"}, actor=ACTOR)
    assert "Auth-Type" not in _check("gold-1")
    assert _reply("gold-1") == {
        "Framed-Pool": "walled-garden",
        "Reply-Message": "Service suspended: please settle your account",
        "Mikrotik-Rate-Limit": "256k/256k",
        "WISPr-Bandwidth-Max-Down": "256000",
        "WISPr-Bandwidth-Max-Up": "256000",
        "Session-Timeout": "86400",
        "Acct-Interim-Interval": "300",
    }


@pytest.mark.business_logic_protection
@pytest.mark.behavior
def test_fair_use_follows_usage_in_the_current_period(tenant):
    plan = PlanFactory(included_bytes=2 * GB, fair_use_download_kbps=1_000, fair_use_upload_kbps=500)
    sub, account = _subscriber(plan, username="fair-1")
    today = ns.tenant_today()
    noon = datetime.datetime.combine(today, datetime.time(12), tzinfo=datetime.UTC)
    _acct("Start", user="fair-1", session="f1", when=noon)
    _acct("Interim-Update", user="fair-1", session="f1", octets_out=2 * GB, when=noon)
    assert ns.radius_enforce_fair_use(today=today, send=False)["over_cap"] == []  # at the cap, not over
    _acct("Interim-Update", user="fair-1", session="f1", octets_out=2 * GB + 1, when=noon)
    assert ns.radius_enforce_fair_use(today=today, send=False)["over_cap"] == [sub.pk]
    account.refresh_from_db()
    assert account.over_cap
    assert account.over_cap_since is not None
    # Next period: back under the cap.
    next_month = today + datetime.timedelta(days=32)
    assert ns.radius_enforce_fair_use(today=next_month, send=False)["back_under_cap"] == [sub.pk]


@pytest.mark.business_logic_protection
@pytest.mark.behavior
def test_freeradius_sees_every_change_that_decides_a_reply_in_the_same_transaction(tenant):
    """radius.subscriber follows the tables through triggers: plan speeds, plan profile, tenant
    settings, subscription status and account fields, without any call from the code."""
    from network.models import PlanRadiusProfile

    plan = PlanFactory(download_kbps=30_000, upload_kbps=5_000)
    sub, account = _subscriber(plan, username="sync-1")
    assert _reply("sync-1")["Mikrotik-Rate-Limit"] == "5000k/30000k"
    cs.plan_update(plan=plan, changes={"download_kbps": 60_000}, actor=ACTOR)
    assert _reply("sync-1")["Mikrotik-Rate-Limit"] == "5000k/60000k"
    PlanRadiusProfile.objects.create(plan=plan, session_timeout_s=3600, framed_pool="p1")
    assert _reply("sync-1")["Session-Timeout"] == "3600"
    assert _reply("sync-1")["Framed-Pool"] == "p1"
    ns.radius_settings_update(changes={"interim_interval_s": 600}, actor=ACTOR)
    assert _reply("sync-1")["Acct-Interim-Interval"] == "600"
    ns.pppoe_account_update(account=account, changes={"simultaneous_use": 2}, actor=ACTOR)
    _acct("Start", user="sync-1", session="y1")
    assert "Auth-Type" not in _check("sync-1")  # 1 open of 2 allowed
    _acct("Start", user="sync-1", session="y2")
    assert _check("sync-1")["Auth-Type"] == "Reject"  # 2 open of 2
    _acct("Stop", user="sync-1", session="y2", cause="User-Request")
    assert "Auth-Type" not in _check("sync-1")
    cs.subscription_terminate(subscription=sub, terminated_on=datetime.date(2026, 11, 30), actor=ACTOR, reason="moved")
    assert _check("sync-1")["Auth-Type"] == "Reject"
