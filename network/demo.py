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
