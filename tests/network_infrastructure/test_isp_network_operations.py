"""RADIUS AAA through the real FreeRADIUS (Debian's 3.2, the project's configuration) on the
back office's database: PAP/CHAP, reply attributes per plan, suspended and over-cap subscribers,
NAS-based tenant resolution, accounting with gigawords, the detail-file replay while the database
is down, CoA/Disconnect to a NAS simulator - with pyrad and with `radclient`.

FreeRADIUS is another process with its own database connection (role isp_radius), so the data
it reads is committed: the module provisions two tenants of its own (net-a, net-b) and drops
them at the end. Tests that change shared state put it back."""

from __future__ import annotations

import datetime
import subprocess
import time
import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from compliance.audit import Actor
from network.radius.client import account, authenticate
from network.radius.nas_simulator import NasSimulator
from network.radius.server import DatabaseParams, FreeRadiusServer
from tests.network_infrastructure.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.network_monitoring, pytest.mark.integration]

ACTOR = Actor.system("network tests")
NAS_A_IP, NAS_A_SECRET = "127.0.0.1", "nas-a-secret-1"  # radclient sends from 127.0.0.1
NAS_B_IP, NAS_B_SECRET = "127.0.0.12", "nas-b-secret-2"
PASSWORD = "s3cret-Pass"
GIB = 1024**3


class Net:
    """What the module set up: tenants, subscribers, NAS simulators, the FreeRADIUS server."""

    def __init__(self):
        self.tenants = {}
        self.subs = {}
        self.users = {}


def _activate(slug):
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug=slug)
    connection.set_tenant(tenant)
    return tenant


def _subscriber(name: str, plan, *, username: str, static_ip: str | None = None, status: str = "active"):
    from customers import services as cs
    from network import services as ns

    customer = cs.customer_create(actor=ACTOR, name=name, email=f"{username.replace('@', '.')}@example.net")
    address = cs.service_address_create(
        customer=customer, street="1 Fiber Road", city="Springfield", postal_code="12345", country="US", actor=ACTOR
    )
    sub = cs.subscription_create(customer=customer, plan=plan, service_address=address, actor=ACTOR)
    if status in ("active", "suspended"):
        sub = cs.subscription_activate(subscription=sub, activated_on=datetime.date(2026, 11, 1), actor=ACTOR)
    account, _ = ns.pppoe_account_create(
        subscription=sub, actor=ACTOR, username=username, password=PASSWORD, static_ip=static_ip
    )
    if status == "suspended":
        sub = cs.subscription_suspend(
            subscription=sub, effective_on=datetime.date(2026, 11, 20), actor=ACTOR, reason="unpaid"
        )
    return sub, account


@pytest.fixture(scope="module")
def net(django_db_setup, django_db_blocker, tmp_path_factory):
    from compliance.pii.bench import bench_tenant_cleanup
    from customers import services as cs
    from network import services as ns
    from tenants.services import tenant_create

    state = Net()
    suffix = uuid.uuid4().hex[:6]
    state.sims = {}
    state.server = None
    try:
        state.sims["a"] = NasSimulator(secret=NAS_A_SECRET.encode(), host=NAS_A_IP).start()
        state.sims["b"] = NasSimulator(secret=NAS_B_SECRET.encode(), host=NAS_B_IP).start()
        with django_db_blocker.unblock():
            for key, currency, nas_ip, nas_secret in (
                ("a", "USD", NAS_A_IP, NAS_A_SECRET),
                ("b", "EUR", NAS_B_IP, NAS_B_SECRET),
            ):
                tenant = tenant_create(
                    slug=f"net-{key}-{suffix}",
                    name=f"Net {key.upper()}",
                    currency=currency,
                    country="US",
                    admin_email=f"owner@net-{key}.example",
                    actor=ACTOR,
                ).tenant
                state.tenants[key] = tenant
                connection.set_tenant(tenant)
                with transaction.atomic():
                    plan = cs.plan_create(
                        actor=ACTOR,
                        code="fiber-100",
                        name="Fiber 100",
                        download_kbps=100_000,
                        upload_kbps=20_000,
                        monthly_price="49.00",
                        included_bytes=10 * GIB,
                        overage_rate_per_gb="0",
                        fair_use_download_kbps=2_000,
                        fair_use_upload_kbps=1_000,
                    )
                    ns.nas_register(
                        name=f"bras-{key}",
                        ip_address=nas_ip,
                        secret=nas_secret,
                        actor=ACTOR,
                        coa_port=state.sims[key].port,
                    )
                    users = {
                        "plain": _subscriber("Alice", plan, username=f"alice@{key}"),
                        "static": _subscriber("Sam", plan, username=f"sam@{key}", static_ip=f"100.64.{ord(key)}.10"),
                        "suspended": _subscriber("Sue", plan, username=f"sue@{key}", status="suspended"),
                        "pending": _subscriber("Pat", plan, username=f"pat@{key}", status="pending"),
                        "capped": _subscriber("Carl", plan, username=f"carl@{key}"),
                        "coa": _subscriber("Cody", plan, username=f"cody@{key}"),
                    }
                state.users[key] = {k: (sub.pk, acc.username) for k, (sub, acc) in users.items()}
                connection.set_schema_to_public()
        state.run_root = tmp_path_factory.mktemp("freeradius")
        state.server = FreeRadiusServer(
            mode="sql", database=DatabaseParams.from_settings(), name="net-tests", run_dir=state.run_root / "main"
        ).start()
        yield state
    finally:
        if state.server is not None:
            state.server.stop()
        for sim in state.sims.values():
            sim.stop()
        with django_db_blocker.unblock():
            connection.set_schema_to_public()
            for tenant in state.tenants.values():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT radius.forget_tenant(%s)", [tenant.schema_name])
                bench_tenant_cleanup(schema=tenant.schema_name, slug=tenant.slug, actor=ACTOR, say=lambda _m: None)


@pytest.fixture
def committed(net, django_db_blocker):
    """Run committed ORM work in a net tenant: `with committed("a"): ...`."""
    import contextlib

    @contextlib.contextmanager
    def within(key: str):
        with django_db_blocker.unblock():
            connection.set_tenant(net.tenants[key])
            try:
                yield
            finally:
                connection.set_schema_to_public()

    return within


def _auth(net, user, *, via="a", password=PASSWORD, method="pap", secret=None, timeout=2.0, server=None):
    nas_ip = NAS_A_IP if via == "a" else NAS_B_IP
    secret = secret or (NAS_A_SECRET if via == "a" else NAS_B_SECRET)
    server = server or net.server
    return authenticate(
        server="127.0.0.1",
        port=server.auth_port,
        secret=secret.encode(),
        username=user,
        password=password,
        method=method,
        nas_ip=nas_ip,
        source_ip=nas_ip,
        timeout=timeout,
        retries=0,
    )


def _acct(net, status, attrs, *, via="a", server=None, timeout=2.0):
    nas_ip = NAS_A_IP if via == "a" else NAS_B_IP
    secret = NAS_A_SECRET if via == "a" else NAS_B_SECRET
    server = server or net.server
    return account(
        server="127.0.0.1",
        port=server.acct_port,
        secret=secret.encode(),
        status=status,
        attributes={"NAS-IP-Address": nas_ip, **attrs},
        source_ip=nas_ip,
        timeout=timeout,
        retries=1,
    )


def _session_attrs(user: str, session_id: str, **extra) -> dict:
    return {"User-Name": user, "Acct-Session-Id": session_id, "NAS-Port-Id": "pppoe-1", **extra}


def _sessions(committed, key, **filters):
    from network.models import RadiusSession

    with committed(key):
        return list(RadiusSession.objects.filter(**filters).order_by("pk"))


def _stop_all(net, key, user):
    """Close every open session of `user` (Stop from the NAS) so other tests start clean."""
    from network.models import RadiusSession

    connection.set_tenant(net.tenants[key])
    for s in RadiusSession.objects.filter(username=user, stop_time__isnull=True):
        _acct(net, "Stop", _session_attrs(user, s.acct_session_id, **{"Acct-Terminate-Cause": "User-Request"}), via=key)


# --- authentication -------------------------------------------------------------------------


@pytest.mark.behavior
@pytest.mark.parametrize("method", ["pap", "chap"])
def test_right_password_is_accepted_with_the_plan_in_the_reply(net, method):
    user = net.users["a"]["plain"][1]
    result = _auth(net, user, method=method)
    assert result.accepted, (result, net.server.log_tail())
    attrs = {k: v[0] for k, v in result.attributes.items()}
    # Plan: 100 Mbit/s down, 20 Mbit/s up. MikroTik reads rx/tx from its side: rx = upload.
    assert attrs["Mikrotik-Rate-Limit"] == "20000k/100000k"
    assert int(attrs["WISPr-Bandwidth-Max-Down"]) == 100_000_000
    assert int(attrs["WISPr-Bandwidth-Max-Up"]) == 20_000_000
    assert int(attrs["Session-Timeout"]) == 86400
    assert int(attrs["Acct-Interim-Interval"]) == 300
    assert "Framed-IP-Address" not in attrs


@pytest.mark.behavior
@pytest.mark.parametrize("method", ["pap", "chap"])
def test_wrong_password_and_unknown_user_are_rejected(net, method):
    user = net.users["a"]["plain"][1]
    wrong = _auth(net, user, password="not-the-password", method=method)
    assert wrong.code is not None
    assert not wrong.accepted
    unknown = _auth(net, "nobody@a", method=method)
    assert unknown.code is not None
    assert not unknown.accepted


@pytest.mark.behavior
def test_static_ip_is_returned_as_framed_ip_address(net):
    result = _auth(net, net.users["a"]["static"][1])
    assert result.accepted
    assert result.attributes["Framed-IP-Address"] == [f"100.64.{ord('a')}.10"]


@pytest.mark.behavior
def test_pool_from_tenant_settings_or_plan_profile(net, committed):
    from network import services as ns
    from network.models import PlanRadiusProfile, PppoeAccount

    user = net.users["a"]["plain"][1]
    with committed("a"):
        ns.radius_settings_update(changes={"default_pool": "residential"}, actor=ACTOR)
    try:
        assert _auth(net, user).attributes["Framed-Pool"] == ["residential"]
        with committed("a"):
            plan = PppoeAccount.objects.get(username=user).subscription.plan
            PlanRadiusProfile.objects.create(plan=plan, framed_pool="fiber-pool", session_timeout_s=7200)
        attrs = _auth(net, user).attributes
        assert attrs["Framed-Pool"] == ["fiber-pool"]
        assert attrs["Session-Timeout"] == [7200]
    finally:
        with committed("a"):
            PlanRadiusProfile.objects.all().delete()
            ns.radius_settings_update(changes={"default_pool": ""}, actor=ACTOR)


@pytest.mark.behavior
def test_pending_subscription_is_rejected(net):
    assert not _auth(net, net.users["a"]["pending"][1]).accepted


@pytest.mark.behavior
def test_suspended_subscriber_rejected_or_walled_garden_by_tenant_setting(net, committed):
    from network import services as ns

    user = net.users["a"]["suspended"][1]
    rejected = _auth(net, user)
    assert rejected.code is not None
    assert not rejected.accepted
    with committed("a"):
        ns.radius_settings_update(changes={"suspended_access": "walled_garden", "walled_garden_kbps": 256}, actor=ACTOR)
    try:
        garden = _auth(net, user)
        assert garden.accepted
        assert garden.attributes["Framed-Pool"] == ["walled-garden"]
        assert garden.attributes["Mikrotik-Rate-Limit"] == ["256k/256k"]
        # Walled garden never hands out the subscriber's static/public service.
        assert "Framed-IP-Address" not in garden.attributes
        assert not _auth(net, user, password="wrong-password").accepted
    finally:
        with committed("a"):
            ns.radius_settings_update(changes={"suspended_access": "reject"}, actor=ACTOR)


# --- tenant resolution by NAS ---------------------------------------------------------------


@pytest.mark.behavior
def test_subscriber_cannot_log_in_through_another_tenants_nas(net):
    user_a = net.users["a"]["plain"][1]
    user_b = net.users["b"]["plain"][1]
    assert _auth(net, user_b, via="b").accepted
    # Right password, right NAS secret - but the NAS belongs to tenant B: A's subscriber is unknown there.
    cross = _auth(net, user_a, via="b")
    assert cross.code is not None
    assert not cross.accepted
    cross_back = _auth(net, user_b, via="a")
    assert cross_back.code is not None
    assert not cross_back.accepted


@pytest.mark.behavior
def test_unknown_nas_gets_no_answer(net):
    result = authenticate(
        server="127.0.0.1",
        port=net.server.auth_port,
        secret=NAS_A_SECRET.encode(),
        username=net.users["a"]["plain"][1],
        password=PASSWORD,
        nas_ip="127.0.0.99",
        source_ip="127.0.0.99",
        timeout=1.0,
        retries=0,
    )
    assert result.code is None
    assert not result.accepted
    assert "no answer" in (result.error or "")


@pytest.mark.contract
def test_radclient_from_freeradius_utils_accepts_and_rejects(net):
    """The real client, not only pyrad: radclient sends from 127.0.0.1 = tenant A's NAS."""
    user = net.users["a"]["plain"][1]

    def radclient(password: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["radclient", "-x", "-r", "1", "-t", "2", f"127.0.0.1:{net.server.auth_port}", "auth", NAS_A_SECRET],
            input=f'User-Name = "{user}"\nUser-Password = "{password}"\nNAS-IP-Address = 127.0.0.1\n',
            capture_output=True,
            text=True,
            timeout=30,
        )

    good = radclient(PASSWORD)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Access-Accept" in good.stdout, good.stdout + good.stderr
    assert 'Mikrotik-Rate-Limit = "20000k/100000k"' in good.stdout
    bad = radclient("wrong-password")
    assert "Access-Reject" in bad.stdout, bad.stdout + bad.stderr


# --- accounting -----------------------------------------------------------------------------


@pytest.mark.behavior
def test_accounting_start_interim_stop_counts_gigawords_and_feeds_billing_usage(net, committed):
    from billing.domain.periods import period_containing
    from billing.models import UsageRecord
    from billing.selectors import usage_bytes

    key = "b"
    sub_id, user = net.users[key]["plain"]
    sid = f"gw-{uuid.uuid4().hex[:8]}"
    assert _acct(net, "Start", _session_attrs(user, sid, **{"Framed-IP-Address": "100.64.0.77"}), via=key)
    # 2 gigawords + 5 octets = 8 GiB + 5 bytes in; 1 gigaword + 7 out: past the 32-bit wrap.
    interim = _session_attrs(
        user,
        sid,
        **{
            "Acct-Session-Time": 600,
            "Acct-Input-Octets": 5,
            "Acct-Input-Gigawords": 2,
            "Acct-Output-Octets": 7,
            "Acct-Output-Gigawords": 1,
        },
    )
    assert _acct(net, "Interim-Update", interim, via=key)
    [session] = _sessions(committed, key, acct_session_id=sid)
    assert session.input_octets == 2 * 2**32 + 5
    assert session.output_octets == 2**32 + 7
    assert session.subscription_id == sub_id
    assert session.stop_time is None
    assert session.framed_ip_address == "100.64.0.77"
    # A replayed (duplicate) interim changes nothing; an older one never moves counters back.
    assert _acct(net, "Interim-Update", interim, via=key)
    older = {**interim, "Acct-Input-Gigawords": 1, "Acct-Session-Time": 300}
    assert _acct(net, "Interim-Update", older, via=key)
    stop = {**interim, "Acct-Session-Time": 900, "Acct-Input-Gigawords": 3, "Acct-Terminate-Cause": "User-Request"}
    assert _acct(net, "Stop", stop, via=key)
    [session] = _sessions(committed, key, acct_session_id=sid)
    assert session.stop_time is not None
    assert session.terminate_cause == "User-Request"
    assert session.input_octets == 3 * 2**32 + 5
    assert session.session_time == 900
    with committed(key):
        rows = list(UsageRecord.objects.filter(subscription_id=sub_id))
        total = sum(r.bytes_in + r.bytes_out for r in rows)
        # Every increase counted once: exactly the session's final counters.
        assert total == (3 * 2**32 + 5) + (2**32 + 7)
        today = rows[0].day
        period = period_containing(today, connection.tenant.billing_day)
        assert usage_bytes(sub_id, period) == total


@pytest.mark.behavior
def test_simultaneous_use_one_by_default(net, committed):
    key = "a"
    user = net.users[key]["plain"][1]
    sid = f"su-{uuid.uuid4().hex[:8]}"
    assert _auth(net, user).accepted
    assert _acct(net, "Start", _session_attrs(user, sid), via=key)
    try:
        second = _auth(net, user)
        assert second.code is not None, "FreeRADIUS must answer"
        assert not second.accepted, "a second session must be refused"
    finally:
        assert _acct(net, "Stop", _session_attrs(user, sid, **{"Acct-Terminate-Cause": "User-Request"}), via=key)
    assert _auth(net, user).accepted


@pytest.mark.behavior
def test_accounting_on_closes_the_nas_sessions_and_stale_sessions_are_closed(net, committed):
    from network import services as ns
    from network.models import RadiusSession

    key = "b"
    user = net.users[key]["static"][1]
    s1, s2 = f"on-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    assert _acct(net, "Start", _session_attrs(user, s1), via=key)
    assert _acct(net, "Accounting-On", {"Acct-Session-Id": "0"}, via=key)
    [session] = _sessions(committed, key, acct_session_id=s1)
    assert session.stop_time is not None
    assert session.terminate_cause == "NAS-Reboot"

    assert _acct(net, "Start", _session_attrs(user, s2), via=key)
    with committed(key):
        RadiusSession.objects.filter(acct_session_id=s2).update(
            update_time=timezone.now() - datetime.timedelta(hours=2)
        )
        assert ns.radius_close_stale_sessions() == 1
    [session] = _sessions(committed, key, acct_session_id=s2)
    assert session.terminate_cause == "Stale-Session"
    assert session.stop_time == session.update_time
    # The NAS still reports it: the session reopens; then a real Stop is final.
    assert _acct(net, "Interim-Update", _session_attrs(user, s2, **{"Acct-Session-Time": 60}), via=key)
    [session] = _sessions(committed, key, acct_session_id=s2)
    assert session.stop_time is None
    assert _acct(net, "Stop", _session_attrs(user, s2, **{"Acct-Terminate-Cause": "Lost-Carrier"}), via=key)
    [session] = _sessions(committed, key, acct_session_id=s2)
    assert session.terminate_cause == "Lost-Carrier"


@pytest.mark.behavior
def test_accounting_survives_a_database_outage_through_the_detail_file(net, committed):
    """FreeRADIUS reaches the database through a proxy; cut it, send accounting (answered from
    the spool), restore it: every record arrives, exactly once."""
    from django.conf import settings

    key = "a"
    user = net.users[key]["static"][1]
    db_port = int(settings.DATABASES["default"].get("PORT") or 5432)
    proxy = TcpProxy(target_host=DatabaseParams.from_settings().host, target_port=db_port).up()
    server = FreeRadiusServer(
        mode="sql",
        database=DatabaseParams.from_settings(port=proxy.port),
        name="net-outage",
        run_dir=net.run_root / "outage",
    )
    server.start()
    ids = [f"out-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    try:
        assert _acct(net, "Start", _session_attrs(user, ids[0]), via=key, server=server)
        proxy.down()
        for sid in ids[1:]:
            attrs = _session_attrs(
                user,
                sid,
                **{
                    "Acct-Session-Time": 120,
                    "Acct-Input-Octets": 1000,
                    "Acct-Output-Octets": 5000,
                    "Acct-Terminate-Cause": "User-Request",
                },
            )
            assert _acct(net, "Start", _session_attrs(user, sid), via=key, server=server, timeout=5)
            assert _acct(net, "Stop", attrs, via=key, server=server, timeout=5)
        assert _sessions(committed, key, acct_session_id__in=ids[1:]) == []
        proxy.up()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = _sessions(committed, key, acct_session_id__in=ids)
            if len(got) == 3 and all(s.stop_time for s in got if s.acct_session_id != ids[0]):
                break
            time.sleep(0.5)
        got = _sessions(committed, key, acct_session_id__in=ids)
        assert sorted(s.acct_session_id for s in got) == sorted(ids), server.log_tail()
        for s in got:
            if s.acct_session_id != ids[0]:
                assert (s.input_octets, s.output_octets, s.terminate_cause) == (1000, 5000, "User-Request")
    finally:
        server.stop()
        proxy.down()
        with committed(key):
            _stop_all(net, key, user)


# --- fair use, CoA and Disconnect ---------------------------------------------------------------


@pytest.mark.behavior
def test_over_cap_subscriber_gets_fair_use_speed_and_a_coa(net, committed):
    from network import services as ns
    from network.models import CoaRequest, PppoeAccount

    key = "a"
    sub_id, user = net.users[key]["capped"]
    sid = f"cap-{uuid.uuid4().hex[:8]}"
    assert _acct(net, "Start", _session_attrs(user, sid), via=key)
    before = len(net.sims[key].received)
    try:
        # 11 GiB down on a 10 GiB plan.
        assert _acct(
            net,
            "Interim-Update",
            _session_attrs(
                user, sid, **{"Acct-Session-Time": 60, "Acct-Output-Gigawords": 2, "Acct-Output-Octets": 3 * GIB}
            ),
            via=key,
        )
        with committed(key):
            result = ns.radius_enforce_fair_use()
            assert result["over_cap"] == [sub_id]
            assert PppoeAccount.objects.get(username=user).over_cap
            [coa_req] = CoaRequest.objects.filter(subscription_id=sub_id, reason="fair_use")
            assert coa_req.kind == "coa"
            assert coa_req.outcome == "ack", coa_req.detail
        assert net.sims[key].wait_for(before + 1)
        packet = net.sims[key].received[-1]
        assert packet.code_name == "CoA-Request"
        assert packet.attributes["Acct-Session-Id"] == [sid]
        assert packet.attributes["Mikrotik-Rate-Limit"] == ["1000k/2000k"]
    finally:
        assert _acct(net, "Stop", _session_attrs(user, sid, **{"Acct-Terminate-Cause": "User-Request"}), via=key)
    # A new login gets the fair-use speed too.
    assert _auth(net, user).attributes["Mikrotik-Rate-Limit"] == ["1000k/2000k"]


@pytest.mark.behavior
def test_suspension_sends_disconnect_to_the_nas_and_audits_it(net, committed):
    from compliance.models import AuditEvent
    from customers import services as cs
    from customers.models import Subscription
    from network.models import CoaRequest

    key = "b"
    sub_id, user = net.users[key]["coa"]
    sid = f"dc-{uuid.uuid4().hex[:8]}"
    assert _auth(net, user, via=key).accepted
    assert _acct(net, "Start", _session_attrs(user, sid), via=key)
    before = len(net.sims[key].received)
    with committed(key), transaction.atomic():
        cs.subscription_suspend(
            subscription=Subscription.objects.get(pk=sub_id),
            effective_on=datetime.date(2026, 11, 25),
            actor=ACTOR,
            reason="unpaid",
        )
        # Nothing leaves before the commit.
        assert len(net.sims[key].received) == before
    assert net.sims[key].wait_for(before + 1)
    packet = net.sims[key].received[-1]
    assert packet.code_name == "Disconnect-Request"
    assert packet.attributes["User-Name"] == [user]
    assert packet.attributes["Acct-Session-Id"] == [sid]
    with committed(key):
        [req] = CoaRequest.objects.filter(subscription_id=sub_id, reason="suspended")
        assert (req.kind, req.outcome, req.attempts) == ("disconnect", "ack", 1)
        assert AuditEvent.objects.filter(action="radius.disconnect.ack", object_id=str(sub_id)).count() == 1
    # The NAS would now re-authenticate: rejected (tenant setting: reject).
    assert not _auth(net, user, via=key).accepted
    with committed(key):
        cs.subscription_reactivate(
            subscription=Subscription.objects.get(pk=sub_id), effective_on=datetime.date(2026, 11, 26), actor=ACTOR
        )
        assert CoaRequest.objects.filter(subscription_id=sub_id, reason="reactivated", outcome="ack").count() == 1
        _stop_all(net, key, user)
    assert _auth(net, user, via=key).accepted


@pytest.mark.behavior
def test_unanswered_disconnect_is_retried_and_recorded_as_timeout(net, committed):
    from network import services as ns
    from network.models import CoaRequest, Nas

    key = "a"
    sub_id, user = net.users[key]["coa"]
    sid = f"to-{uuid.uuid4().hex[:8]}"
    assert _acct(net, "Start", _session_attrs(user, sid), via=key)
    try:
        with committed(key):
            nas = Nas.objects.get(ip_address=NAS_A_IP)
            Nas.objects.filter(pk=nas.pk).update(coa_port=net.sims["a"].port + 1 if net.sims["a"].port < 65535 else 1)
            [req] = ns.coa_send(subscription_id=sub_id, kind="disconnect", reason="test", timeout=0.2)
            assert req.outcome == "timeout"
            assert req.attempts == 4
            assert CoaRequest.objects.get(pk=req.pk).outcome == "timeout"
    finally:
        with committed(key):
            Nas.objects.filter(pk=nas.pk).update(coa_port=net.sims["a"].port)
            _stop_all(net, key, user)


# --- the secrets FreeRADIUS sees -----------------------------------------------------------------


@pytest.mark.behavior
def test_pppoe_secret_is_sealed_and_only_the_radius_role_can_use_it(net, committed, django_db_blocker):
    import psycopg
    from psycopg import sql

    from network.models import PppoeAccount

    user = net.users["a"]["plain"][1]
    tenant = net.tenants["a"].schema_name
    with committed("a"):
        sealed = bytes(PppoeAccount.objects.get(username=user).secret_sealed)
    assert PASSWORD.encode() not in sealed
    db = DatabaseParams.from_settings()
    outsider = f"probe_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(outsider)))
    try:
        with psycopg.connect(host=db.host, port=db.port, dbname=db.dbname, user=db.user) as c:
            rows = c.execute("SELECT attribute, value FROM radius.authorize_check(%s, %s)", [tenant, user]).fetchall()
            assert ("Cleartext-Password", PASSWORD) in rows
            for forbidden in (
                sql.SQL("SELECT * FROM {}.network_pppoeaccount").format(sql.Identifier(tenant)),
                sql.SQL("SELECT * FROM radius.sealing_key"),
                sql.SQL("SELECT radius.reveal(%s)"),
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege), c.transaction():
                    c.execute(forbidden, [sealed] if "reveal" in forbidden.as_string(c) else None)
        with (
            psycopg.connect(host=db.host, port=db.port, dbname=db.dbname, user=outsider) as c,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            c.execute("SELECT * FROM radius.authorize_check(%s, %s)", [tenant, user])
    finally:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(outsider)))


@pytest.mark.behavior
def test_nas_ip_is_unique_across_tenants_without_naming_the_owner(net, committed):
    from django.core.exceptions import ValidationError

    from network import services as ns
    from network.models import Nas

    with committed("b"):
        with pytest.raises(ValidationError) as err:
            ns.nas_register(name="stolen", ip_address=NAS_A_IP, secret="whatever-123", actor=ACTOR)
        assert "already registered" in str(err.value)
        assert net.tenants["a"].slug not in str(err.value)
        assert not Nas.objects.filter(name="stolen").exists()


@pytest.mark.contract
def test_radius_probe_plays_a_registered_nas(net, django_db_blocker):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    with django_db_blocker.unblock():
        call_command(
            "radius_probe",
            "--server",
            "127.0.0.1",
            "--port",
            str(net.server.auth_port),
            "--nas",
            "bras-b",
            "--tenant",
            net.tenants["b"].slug,
            "--user",
            net.users["b"]["plain"][1],
            "--password",
            PASSWORD,
            "--expect",
            "accept",
            stdout=out,
        )
    assert "Access-Accept" in out.getvalue()
    assert "Mikrotik-Rate-Limit" in out.getvalue()
