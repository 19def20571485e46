"""Staff API of the network app: NAS registry and PPPoE accounts through the real endpoints,
with each role's rights, secrets that go in and never come out, and errors in the one shape."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import services as cs
from network.models import Nas, PppoeAccount
from tenants import roles
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

pytestmark = [pytest.mark.network_monitoring]

ACTOR = Actor.system("network api tests")


def _subscription():
    customer = CustomerFactory()
    sub = cs.subscription_create(
        customer=customer, plan=PlanFactory(), service_address=ServiceAddressFactory(customer=customer), actor=ACTOR
    )
    return cs.subscription_activate(subscription=sub, activated_on=datetime.date(2026, 11, 1), actor=ACTOR)


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_nas_secret_is_write_only_and_registration_is_audited(tenant, staff_client):
    ops = staff_client(tenant, roles.NETWORK_OPS)
    response = ops.post(
        "/api/v1/nas/",
        {"name": "bras-1", "ip_address": "127.0.0.61", "secret": "nas-secret-61", "coa_port": 3799},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert "secret" not in response.json()
    nas = Nas.objects.get(name="bras-1")
    assert b"nas-secret-61" not in bytes(nas.secret)
    listed = ops.get("/api/v1/nas/").json()
    assert "nas-secret-61" not in str(listed)
    assert AuditEvent.objects.filter(action="nas.registered", object_id=str(nas.pk)).count() == 1
    # Same address again (here or on any tenant): refused in the one error shape, nothing written.
    again = ops.post(
        "/api/v1/nas/", {"name": "bras-2", "ip_address": "127.0.0.61", "secret": "other-secret"}, format="json"
    )
    assert again.status_code == 400
    assert "ip_address" in again.json()["error"]["fields"]
    assert Nas.objects.count() == 1


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_pppoe_password_is_returned_once(tenant, staff_client):
    ops = staff_client(tenant, roles.NETWORK_OPS)
    sub = _subscription()
    created = ops.post("/api/v1/pppoe-accounts/", {"subscription": sub.pk, "username": "api-user-1"}, format="json")
    assert created.status_code == 201, created.content
    password = created.json()["password"]
    assert len(password) >= 16
    assert created["Cache-Control"] == "no-store"
    account = PppoeAccount.objects.get(username="api-user-1")
    shown = ops.get(f"/api/v1/pppoe-accounts/{account.pk}/").json()
    assert "password" not in shown
    assert password not in str(shown)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT value FROM radius.authorize_check(%s, %s) WHERE attribute = 'Cleartext-Password'",
            [connection.schema_name, "api-user-1"],
        )
        assert cursor.fetchone()[0] == password
    reset = ops.post(f"/api/v1/pppoe-accounts/{account.pk}/reset-password/", {}, format="json")
    assert reset.status_code == 200
    assert reset.json()["password"] != password


@pytest.mark.behavior
def test_roles_on_the_network_api(tenant, staff_client):
    sub = _subscription()
    body = {"subscription": sub.pk, "username": "role-user-1"}
    billing = staff_client(tenant, roles.BILLING_ADMIN)
    assert billing.get("/api/v1/nas/").status_code == 403
    assert billing.post("/api/v1/pppoe-accounts/", body, format="json").status_code == 403
    support = staff_client(tenant, roles.SUPPORT)
    assert support.get("/api/v1/radius-sessions/").status_code == 200
    assert support.post("/api/v1/pppoe-accounts/", body, format="json").status_code == 403
    auditor = staff_client(tenant, roles.AUDITOR)
    assert (
        auditor.patch("/api/v1/radius-settings/", {"suspended_access": "walled_garden"}, format="json").status_code
        == 403
    )
    assert not PppoeAccount.objects.exists()
    owner = staff_client(tenant, roles.OWNER)
    changed = owner.patch("/api/v1/radius-settings/", {"suspended_access": "walled_garden"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["suspended_access"] == "walled_garden"
    bad = owner.patch("/api/v1/radius-settings/", {"session_timeout_s": 5, "colour": "red"}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"session_timeout_s", "colour"}


def _device_with_alarm():
    from django.utils import timezone

    from network.models import Alarm, Device, Interface

    device = Device.objects.create(name="edge-1", kind="router", management_ip="192.0.2.10")
    iface = Interface.objects.create(device=device, if_index=1, name="ge-0/0/1", speed_bps=1_000_000_000)
    now = timezone.now()
    alarm = Alarm.objects.create(
        kind="device_unreachable",
        severity="critical",
        dedupe_key=f"device_unreachable:device:{device.pk}",
        device=device,
        summary="edge-1 unreachable",
        opened_at=now,
        last_seen_at=now,
    )
    return device, iface, alarm


@pytest.mark.behavior
def test_alarm_acknowledge_and_clear_through_the_api(tenant, staff_client):
    device, _iface, alarm = _device_with_alarm()
    support = staff_client(tenant, roles.SUPPORT)
    assert support.get("/api/v1/alarms/?state=open").json()["results"][0]["id"] == alarm.pk
    assert support.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/", {}, format="json").status_code == 403
    ops = staff_client(tenant, roles.NETWORK_OPS)
    acked = ops.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/", {"note": "on site at 10:00"}, format="json")
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"]
    no_reason = ops.post(f"/api/v1/alarms/{alarm.pk}/clear/", {}, format="json")
    assert no_reason.status_code == 400
    cleared = ops.post(f"/api/v1/alarms/{alarm.pk}/clear/", {"reason": "device retired"}, format="json")
    assert cleared.json()["state"] == "cleared"
    actions = set(AuditEvent.objects.filter(object_id=str(alarm.pk)).values_list("action", flat=True))
    assert {"alarm.acknowledged", "alarm.cleared_manually"} <= actions
    outage = ops.get(f"/api/v1/alarms/{alarm.pk}/outage/")
    assert outage.status_code == 200
    assert outage.json()["count"] == 0


@pytest.mark.behavior
def test_interface_traffic_as_json_and_as_a_graph(tenant, staff_client):
    from django.utils import timezone

    from network.models import InterfaceSample

    _device, iface, _alarm = _device_with_alarm()
    now = timezone.now()
    InterfaceSample.objects.bulk_create(
        InterfaceSample(
            interface=iface, sampled_at=now - datetime.timedelta(minutes=5 * i), in_bps=1e8 + i, out_bps=2e7
        )
        for i in range(12)
    )
    ops = staff_client(tenant, roles.NETWORK_OPS)
    series = ops.get(f"/api/v1/interfaces/{iface.pk}/traffic/").json()
    assert len(series) == 12
    assert series[0]["in_bps"] == 1e8 + 11  # oldest first
    svg = ops.get(f"/api/v1/interfaces/{iface.pk}/traffic/?as=svg")
    assert svg["Content-Type"] == "image/svg+xml"
    assert b"edge-1 ge-0/0/1" in svg.content
    assert b"<polyline" in svg.content


@pytest.mark.behavior
def test_provisioning_through_the_api_and_devices_with_write_only_secrets(tenant, staff_client):
    from network.models import Device, IpPool, Onu, PonPort

    ops = staff_client(tenant, roles.NETWORK_OPS)
    created = ops.post(
        "/api/v1/devices/",
        {"name": "olt-9", "kind": "olt", "management_ip": "192.0.2.90", "community": "s3cret-ro", "vendor": "zte"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert "community" not in created.json()
    olt = Device.objects.get(name="olt-9")
    assert b"s3cret-ro" not in bytes(olt.snmp_community)
    port = PonPort.objects.create(olt=olt, index=268501248, name="gpon-olt_1/1/1")
    onu = Onu.objects.create(olt=olt, pon_port=port, serial="ZTEGC0000001", onu_index=1)
    IpPool.objects.create(name="api-pool", network="100.64.50.0/29", gateway="100.64.50.1")
    customer = CustomerFactory()
    sub = cs.subscription_create(
        customer=customer, plan=PlanFactory(), service_address=ServiceAddressFactory(customer=customer), actor=ACTOR
    )
    job = ops.post(
        "/api/v1/provisioning-jobs/",
        {"subscription": sub.pk, "action": "activate", "params": {"pool": "api-pool", "onu_serial": "ZTEGC0000001"}},
        format="json",
    )
    assert job.status_code == 201, job.content
    body = job.json()
    assert body["state"] == "done"
    assert body["steps_done"] == ["allocate_ip", "radius_credentials", "bind_onu", "mark_active"]
    assert body["pppoe_password"]
    onu.refresh_from_db()
    assert onu.subscription_id == sub.pk
    listed = ops.get(f"/api/v1/provisioning-jobs/{body['id']}/").json()
    assert "pppoe_password" not in listed
    # Activating again is idempotent: nothing is allocated or created twice, no new password.
    again = ops.post("/api/v1/provisioning-jobs/", {"subscription": sub.pk, "action": "activate"}, format="json")
    assert again.json()["state"] == "done"
    assert again.json()["pppoe_password"] is None
    from network.models import IpAssignment

    assert IpAssignment.objects.filter(subscription=sub).count() == 1
    assert PppoeAccount.objects.filter(subscription=sub).count() == 1
    bad = ops.post("/api/v1/provisioning-jobs/", {"subscription": sub.pk, "action": "explode"}, format="json")
    assert bad.status_code == 400


@pytest.mark.behavior
def test_a_failed_provisioning_job_is_cancelled_with_a_reason_and_a_new_one_can_start(tenant, staff_client):
    from network.models import IpPool, ProvisioningJob

    ops = staff_client(tenant, roles.NETWORK_OPS)
    IpPool.objects.create(name="cancel-pool", network="100.64.60.0/29", gateway="100.64.60.1")
    customer = CustomerFactory()
    sub = cs.subscription_create(
        customer=customer, plan=PlanFactory(), service_address=ServiceAddressFactory(customer=customer), actor=ACTOR
    )
    body = {
        "subscription": sub.pk,
        "action": "activate",
        "params": {"pool": "cancel-pool", "onu_serial": "HWTC0BADBEEF"},
    }
    failed = ops.post("/api/v1/provisioning-jobs/", body, format="json").json()
    assert (failed["state"], failed["current_step"]) == ("failed", "bind_onu")
    assert ops.post(f"/api/v1/provisioning-jobs/{failed['id']}/cancel/", {}, format="json").status_code == 400
    cancelled = ops.post(
        f"/api/v1/provisioning-jobs/{failed['id']}/cancel/", {"reason": "customer changed to copper"}, format="json"
    )
    assert cancelled.json()["state"] == "cancelled"
    assert AuditEvent.objects.filter(action="provisioning.cancelled", object_id=str(failed["id"])).exists()
    # The done steps stay done; a new job (without the ONU) reuses them and completes.
    again = ops.post("/api/v1/provisioning-jobs/", {**body, "params": {"pool": "cancel-pool"}}, format="json").json()
    assert again["state"] == "done"
    assert ProvisioningJob.objects.filter(subscription=sub).count() == 2


@pytest.mark.behavior
def test_many_subscriptions_activated_in_one_request_each_with_its_outcome(tenant, staff_client):
    from network.models import IpAssignment, IpPool, ProvisioningJob

    ops = staff_client(tenant, roles.NETWORK_OPS)
    IpPool.objects.create(name="street-pool", network="100.64.70.0/29", gateway="100.64.70.1")
    pending = []
    for _ in range(3):
        customer = CustomerFactory()
        pending.append(
            cs.subscription_create(
                customer=customer,
                plan=PlanFactory(),
                service_address=ServiceAddressFactory(customer=customer),
                actor=ACTOR,
            )
        )
    items = [{"subscription": sub.pk, "params": {"pool": "street-pool"}} for sub in pending]
    items[2]["params"]["onu_serial"] = "HWTC0BADBEEF"  # not found by autofind yet
    items.append({"subscription": pending[0].pk + 10_000, "params": {}})
    # support may look but not activate
    support = staff_client(tenant, roles.SUPPORT)
    refused = support.post("/api/v1/provisioning-jobs/activate-many/", {"items": items}, format="json")
    assert refused.status_code == 403
    assert not ProvisioningJob.objects.exists()
    response = ops.post("/api/v1/provisioning-jobs/activate-many/", {"items": items}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["done"], body["failed"], body["refused"]) == (2, 1, 1)
    by_sub = {r["subscription"]: r for r in body["results"]}
    for sub in pending[:2]:
        job = by_sub[sub.pk]["job"]
        assert job["state"] == "done"
        assert job["pppoe_password"]
        sub.refresh_from_db()
        assert sub.status == "active"
    failed = by_sub[pending[2].pk]["job"]
    assert (failed["state"], failed["current_step"]) == ("failed", "bind_onu")
    assert "HWTC0BADBEEF" in failed["error"]
    assert by_sub[pending[0].pk + 10_000]["errors"] == {
        "subscription": [f"There is no subscription {pending[0].pk + 10_000}."]
    }
    assert sorted(IpAssignment.objects.values_list("address", flat=True)) == [
        "100.64.70.2",
        "100.64.70.3",
        "100.64.70.4",
    ]
    # the passwords are in this response only
    listed = ops.get(f"/api/v1/provisioning-jobs/{by_sub[pending[0].pk]['job']['id']}/").json()
    assert "pppoe_password" not in listed
    too_many = ops.post(
        "/api/v1/provisioning-jobs/activate-many/", {"items": [{"subscription": 1}] * 1001}, format="json"
    )
    assert too_many.status_code == 400
    assert "items" in too_many.json()["error"]["fields"]
