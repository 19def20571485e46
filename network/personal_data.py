"""What network holds about a data subject, for export and erasure (compliance.dsr.registry),
and the retention purge of RADIUS accounting.

Erasure:
- before the erasure's transaction, a Disconnect-Request goes to the NAS of every open session
  (`coa_send`, recorded and audited as usual; network I/O never runs inside the transaction);
- in the transaction: sessions still open are closed (Admin-Reset), the PPPoE accounts are deleted
  (the triggers drop their row of `radius.subscriber`, so FreeRADIUS rejects the user from then
  on), every accounting session of the subject loses its user name, calling-station id and framed
  IP (octets and times stay: they billed usage), and the CoA log loses the user names it sent.
The PPPoE password is never exported: the back office cannot read it."""

from __future__ import annotations

import datetime

from django.utils import timezone

from compliance.dsr.registry import BeforeErasure, Category, ErasureContext, Purger, model_row, register

from . import services
from .models import CoaRequest, IpAssignment, Onu, PppoeAccount, RadiusSession

IDENTIFYING_COA_ATTRIBUTES = ("User-Name", "Calling-Station-Id", "Framed-IP-Address")


def _subscription_ids(customer) -> list[int]:
    return list(customer.subscriptions.values_list("pk", flat=True))


def export_pppoe(customer) -> list[dict]:
    accounts = PppoeAccount.objects.filter(subscription__customer=customer).order_by("pk")
    return [model_row(a, exclude=("secret_sealed",)) for a in accounts]  # never the password


def export_sessions(customer) -> list[dict]:
    sessions = RadiusSession.objects.filter(subscription_id__in=_subscription_ids(customer)).order_by("start_time")
    return [model_row(s) for s in sessions]


def export_equipment(customer) -> list[dict]:
    ids = _subscription_ids(customer)
    rows = [
        {
            "kind": "ip_assignment",
            "subscription_id": a.subscription_id,
            "address": a.address,
            "assigned_at": a.assigned_at,
        }
        for a in IpAssignment.objects.filter(subscription_id__in=ids)
    ]
    rows += [
        {"kind": "onu", "subscription_id": o.subscription_id, "serial": o.serial, "authorised_at": o.authorised_at}
        for o in Onu.objects.filter(subscription_id__in=ids)
    ]
    return rows


def _pppoe_objects(customer):
    for pk in PppoeAccount.objects.filter(subscription__customer=customer).values_list("pk", flat=True):
        yield "network.pppoeaccount", str(pk)


def disconnect(*, subject, actor) -> int:
    """Disconnect-Request for every open session of the subject (outside the erasure's transaction)."""
    sent = 0
    for subscription_id in services.subscription_ids_with_sessions(_subscription_ids(subject)):
        sent += len(
            services.coa_send(
                subscription_id=subscription_id,
                kind=CoaRequest.Kind.DISCONNECT,
                reason="data-subject erasure",
                actor=actor,
            )
        )
    return sent


def erase_network(ctx: ErasureContext) -> int:
    ids = _subscription_ids(ctx.subject)
    sessions = RadiusSession.objects.filter(subscription_id__in=ids)
    # Close what the NAS did not end, under the user name the session counter is kept by.
    changed = sessions.filter(stop_time__isnull=True).update(
        stop_time=ctx.now, update_time=ctx.now, terminate_cause="Admin-Reset"
    )
    # Deleting the account drops its row of radius.subscriber (trigger): no more logins.
    deleted, _ = PppoeAccount.objects.filter(subscription_id__in=ids).delete()
    changed += sessions.update(username="", calling_station_id="", framed_ip_address=None)
    for request in CoaRequest.objects.select_for_update().filter(subscription_id__in=ids):
        attributes = {k: v for k, v in request.attributes.items() if k not in IDENTIFYING_COA_ATTRIBUTES}
        if attributes != request.attributes:
            request.attributes = attributes
            request.save(update_fields=["attributes"])
            changed += 1
    return changed + deleted


def purge_sessions(*, policy, now: datetime.datetime | None = None) -> int:
    """Delete closed accounting sessions that stopped before the retention period (their usage
    is already in billing's usage table)."""
    now = now or timezone.now()
    limit = now - datetime.timedelta(days=policy.radius_session_retention_days)
    deleted, _ = RadiusSession.objects.filter(stop_time__isnull=False, stop_time__lt=limit).delete()
    return deleted


register(
    Category(
        name="network.pppoe_accounts",
        title="PPPoE accounts",
        description="Login names, static IP addresses and session limits (never the password).",
        export=export_pppoe,
        erasure_effect="Deleted: the credentials are revoked and RADIUS rejects them.",
        audit_objects=_pppoe_objects,
    ),
    Category(
        name="network.radius_sessions",
        title="Internet sessions (RADIUS accounting)",
        description="Each connection: start, stop, duration, bytes, NAS, user name, IP address, "
        "calling-station id (the router's MAC).",
        export=export_sessions,
        erase=erase_network,
        erasure_effect="Open sessions disconnected and closed; user name, IP address and calling-station id "
        "cleared (times and bytes stay, they billed usage).",
        erase_order=20,
    ),
    Category(
        name="network.equipment",
        title="Addresses and equipment",
        description="Static IP assignments and the fiber ONU serving the customer.",
        export=export_equipment,
        erasure_effect="Kept with the (terminated) subscription: network inventory, no identity of its own.",
    ),
    BeforeErasure(name="network.disconnect", run=disconnect),
    Purger(
        name="network.radius_sessions",
        description="Closed RADIUS sessions older than PrivacyPolicy.radius_session_retention_days.",
        run=purge_sessions,
    ),
)
