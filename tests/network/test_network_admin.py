"""The tenant admin of the network: a device page with traffic graphs a network engineer can read,
alarms acknowledged and cleared through their services, NAS secrets that never come back out, and
read-only for the auditor."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from compliance.models import AuditEvent
from network.models import Alarm, Device, Interface, InterfaceSample, Nas
from tenants import roles
from tests.billing.test_billing_admin import admin_as  # noqa: F401 - the fixture

pytestmark = [pytest.mark.django_db, pytest.mark.network_monitoring]


def _device():
    device = Device.objects.create(name="core-1", kind="router", management_ip="192.0.2.1")
    iface = Interface.objects.create(device=device, if_index=3, name="xe-0/0/1", speed_bps=10**10, in_bps=4e9)
    now = timezone.now()
    InterfaceSample.objects.bulk_create(
        InterfaceSample(interface=iface, sampled_at=now - datetime.timedelta(minutes=5 * i), in_bps=4e9, out_bps=1e9)
        for i in range(30)
    )
    alarm = Alarm.objects.create(
        kind="interface_down",
        severity="major",
        dedupe_key=f"interface_down:iface:{iface.pk}",
        device=device,
        interface=iface,
        summary="core-1 xe-0/0/1 down",
        opened_at=now,
        last_seen_at=now,
    )
    return device, iface, alarm


@pytest.mark.behavior
def test_device_page_shows_a_traffic_graph(tenant, admin_as):  # noqa: F811
    device, _iface, _alarm = _device()
    page = admin_as(roles.NETWORK_OPS).get(f"/admin/network/device/{device.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "<svg" in body
    assert "core-1 xe-0/0/1 - last 24 h" in body
    assert "in: 95th 4 Gbit/s" in body
    assert "snmp_community" not in body


@pytest.mark.behavior
def test_alarm_actions_go_through_services_and_the_auditor_only_reads(tenant, admin_as):  # noqa: F811
    _device_row, _iface, alarm = _device()
    auditor = admin_as(roles.AUDITOR)
    assert auditor.get("/admin/network/alarm/").status_code == 200
    auditor.post("/admin/network/alarm/", {"action": "acknowledge", "_selected_action": [alarm.pk]})
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None
    ops = admin_as(roles.NETWORK_OPS)
    ops.post("/admin/network/alarm/", {"action": "acknowledge", "_selected_action": [alarm.pk]})
    ops.post("/admin/network/alarm/", {"action": "clear_by_hand", "_selected_action": [alarm.pk]})
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is not None
    assert alarm.state == "cleared"
    assert AuditEvent.objects.filter(object_id=str(alarm.pk), action="alarm.cleared_manually").exists()


@pytest.mark.behavior
def test_nas_added_in_the_admin_keeps_its_secret_write_only(tenant, admin_as):  # noqa: F811
    ops = admin_as(roles.NETWORK_OPS)
    response = ops.post(
        "/admin/network/nas/add/",
        {
            "name": "bras-9",
            "ip_address": "127.0.0.99",
            "vendor": "mikrotik",
            "coa_port": 3799,
            "description": "",
            "is_active": "on",
            "shared_secret": "admin-secret-9",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    nas = Nas.objects.get(name="bras-9")
    page = ops.get(f"/admin/network/nas/{nas.pk}/change/").content.decode()
    assert "admin-secret-9" not in page
    assert AuditEvent.objects.filter(action="nas.registered", object_id=str(nas.pk)).exists()
