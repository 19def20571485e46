"""Demo data of the network app for `make demo`: a NAS on 127.0.0.1 (radclient and radius_probe
send from there), PPPoE accounts for the demo subscriptions, a few accounting sessions.
Idempotent. The demo PPPoE passwords are DEV-ONLY and kept in .local/demo-pppoe.json."""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from compliance.audit import Actor
from customers.models import Subscription

from . import services
from .models import Nas, PppoeAccount

DEMO_NAS_IP = "127.0.0.1"
PPPOE_FILE = "demo-pppoe.json"


def seed_demo_network() -> dict[str, int]:
    actor = Actor.system("manage.py demo_seed")
    path = settings.BASE_DIR / ".local" / PPPOE_FILE
    stored = json.loads(path.read_text()) if path.exists() else {}
    created_nas = 0
    if not Nas.objects.filter(ip_address=DEMO_NAS_IP).exists():
        with connection.cursor() as cursor:
            cursor.execute("SELECT tenant FROM radius.nas_directory WHERE ip = %s", [DEMO_NAS_IP])
            taken = cursor.fetchone()
        if taken is None:
            secret = stored.get("nas_secret") or secrets.token_urlsafe(16)
            services.nas_register(name="bras-1", ip_address=DEMO_NAS_IP, secret=secret, actor=actor, vendor="mikrotik")
            stored["nas_secret"] = secret
            created_nas = 1
    accounts = stored.setdefault("accounts", {})
    created_accounts = 0
    subs = Subscription.objects.filter(status__in=["active", "suspended"], pppoe__isnull=True).order_by("pk")
    for sub in subs:
        with transaction.atomic():
            account, password = services.pppoe_account_create(subscription=sub, actor=actor)
        accounts[account.username] = password
        created_accounts += 1
    sessions = 0
    if created_accounts:
        now = int(timezone.now().timestamp())
        with connection.cursor() as cursor:
            for i, account in enumerate(PppoeAccount.objects.filter(subscription__status="active")[:10]):
                used = (i + 1) * 3_700_000_000  # a few GB each, past the 32-bit wrap for most
                cursor.execute(
                    "SELECT radius.accounting(%s, 'Interim-Update', %s, %s, %s, %s, 'pppoe-1', 'Virtual', '', '', '', "
                    "'3600', %s, %s, %s, %s, '', %s)",
                    [
                        connection.schema_name,
                        f"demo-{account.pk}",
                        f"demo-{account.pk}",
                        account.username,
                        DEMO_NAS_IP,
                        str((used // 10) & 0xFFFFFFFF),
                        str((used // 10) >> 32),
                        str(used & 0xFFFFFFFF),
                        str(used >> 32),
                        str(now),
                    ],
                )
                sessions += 1
    if created_nas or created_accounts:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=1))
        path.chmod(0o600)
    return {"nas": created_nas, "pppoe_accounts": created_accounts, "sessions": sessions}


# --- SNMP side: the simulated routers `make demo` starts (python -m network.snmp.agents --demo) ---

DEMO_ROUTERS = 3
DEMO_SNMP_HOST_PREFIX = "127.0.1."
DEMO_SNMP_PORT = 16100


def seed_demo_devices(*, routers: int = DEMO_ROUTERS, port: int = DEMO_SNMP_PORT) -> dict[str, int]:
    """Register the demo routers, poll them once (discovering their interfaces) and give every
    interface a day of history: a daily traffic curve around today's measured rate, so the 24 h
    graphs are readable at once (DEV-ONLY: samples older than the demo are synthetic)."""
    import datetime
    import math

    from .inventory import device_register
    from .models import Device, Interface, InterfaceSample
    from .snmp.poller import poll_and_store

    actor = Actor.system("manage.py demo_seed")
    created = 0
    for seed in range(1, routers + 1):
        name = f"demo-edge-{seed}"
        if not Device.objects.filter(name=name).exists():
            with transaction.atomic():
                device_register(
                    name=name,
                    kind=Device.Kind.ROUTER,
                    management_ip=f"{DEMO_SNMP_HOST_PREFIX}{seed}",
                    snmp_port=port,
                    community="public",
                    vendor="simulated",
                    actor=actor,
                )
            created += 1
    if not Device.objects.filter(name="demo-olt-1").exists():
        with transaction.atomic():
            device_register(
                name="demo-olt-1",
                kind=Device.Kind.OLT,
                management_ip=f"{DEMO_SNMP_HOST_PREFIX}101",
                snmp_port=port,
                community="public",
                vendor="huawei",
                actor=actor,
            )
        created += 1
    _demo_onus(Device.objects.get(name="demo-olt-1"), actor)
    devices = list(Device.objects.filter(name__startswith="demo-"))
    summary = poll_and_store(devices, discover=True, timeout=1.0, retries=0)
    history = 0
    now = timezone.now()
    for interface in Interface.objects.filter(device__in=devices):
        if InterfaceSample.objects.filter(
            interface=interface, sampled_at__lt=now - datetime.timedelta(hours=1)
        ).exists():
            continue
        base = interface.in_bps or (interface.speed_bps or 10**9) * 0.3
        rows = []
        for step in range(1, 288):
            at = now - datetime.timedelta(minutes=5 * step)
            evening = 0.55 + 0.45 * math.sin((at.hour + at.minute / 60 - 14) / 24 * 2 * math.pi)
            wobble = 1 + 0.08 * math.sin(step * 1.7 + interface.pk)
            rows.append(
                InterfaceSample(
                    interface=interface,
                    sampled_at=at,
                    in_bps=base * evening * wobble,
                    out_bps=base * 0.25 * evening * wobble,
                    oper_status=interface.oper_status,
                )
            )
        InterfaceSample.objects.bulk_create(rows, batch_size=1000)
        history += len(rows)
    return {"devices": created, "reachable": summary.reachable, "samples": history}


def _demo_onus(olt, actor: Actor) -> None:
    """ONU autofind on the demo OLT, and the ONUs bound to the first active subscriptions (so the
    OLT's alarms - low Rx, a dying gasp - and an OLT outage name real subscribers)."""
    from .gpon.service import OltError, onu_authorise, onu_autofind
    from .models import Onu

    try:
        onu_autofind(olt)
    except OltError:
        return  # the simulated OLT is not running: `make demo` starts it
    free_subscriptions = Subscription.objects.filter(status="active", onu__isnull=True).order_by("pk")
    for onu, subscription in zip(
        Onu.objects.filter(olt=olt, subscription__isnull=True).order_by("serial"), free_subscriptions[:8], strict=False
    ):
        with transaction.atomic():
            onu_authorise(onu=onu, subscription=subscription, actor=actor)
