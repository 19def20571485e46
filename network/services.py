"""Writes of the RADIUS side: NAS registry, PPPoE accounts, CoA / Disconnect, session housekeeping.

Every write is atomic and audited in the same transaction. Network I/O (CoA to a NAS) never
runs inside a transaction: it is sent after the change committed, then its outcome is recorded
and audited in a transaction of its own."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import secrets
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.domain.periods import period_containing
from billing.selectors import usage_bytes
from compliance.audit import Actor, audit_record
from compliance.pii.keyring import get_keyring
from customers import events
from customers.models import Subscription
from tenants.clock import tenant_today  # noqa: F401 - re-exported

from .models import USERNAME_VALIDATOR, CoaRequest, Nas, PppoeAccount, RadiusSession, RadiusSettings
from .radius import coa
from .radius.db import seal

logger = logging.getLogger(__name__)

NAS_SECRET_PURPOSE = b"network.nas.secret"
NAS_FIELDS = frozenset({"name", "ip_address", "vendor", "coa_port", "description", "is_active"})


# --- validation -----------------------------------------------------------------------------


def _check_secret(value: str, *, field: str, minimum: int) -> str:
    if not isinstance(value, str) or not (minimum <= len(value) <= 128):
        raise ValidationError({field: f"Must be {minimum}-128 characters."}, code="invalid_secret")
    if not value.isascii() or not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValidationError({field: "Printable ASCII without spaces only."}, code="invalid_secret")
    return value


def _check_ipv4(value, *, field: str) -> str:
    try:
        address = ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise ValidationError({field: f"{value!r} is not an IPv4 address."}, code="invalid_ip") from None
    if address.is_unspecified or address.is_multicast:
        raise ValidationError({field: f"{address} cannot be used here."}, code="invalid_ip")
    return str(address)


# --- NAS registry ---------------------------------------------------------------------------


def nas_secret(nas: Nas) -> bytes:
    """The NAS's shared secret in clear (to send CoA); never logged."""
    return get_keyring().decrypt(bytes(nas.secret), NAS_SECRET_PURPOSE)


def _directory_put(cursor, nas: Nas, secret: str) -> None:
    cursor.execute(
        "DELETE FROM radius.nas_directory WHERE tenant = %s AND nas_id = %s", [connection.schema_name, nas.pk]
    )
    if not nas.is_active:
        return
    try:
        with transaction.atomic():
            cursor.execute(
                "INSERT INTO radius.nas_directory (ip, tenant, nas_id, secret) VALUES (%s, %s, %s, %s)",
                [nas.ip_address, connection.schema_name, nas.pk, seal(cursor, secret)],
            )
    except IntegrityError:
        # Another tenant's NAS has this address: say so without naming that tenant.
        raise ValidationError(
            {"ip_address": "This address is already registered as a NAS on the platform."}, code="nas_ip_taken"
        ) from None


@transaction.atomic
def nas_register(
    *,
    name: str,
    ip_address: str,
    secret: str,
    actor: Actor,
    vendor: str = Nas.Vendor.MIKROTIK,
    coa_port: int = 3799,
    description: str = "",
    source_ip: str | None = None,
) -> Nas:
    secret = _check_secret(secret, field="secret", minimum=8)
    nas = Nas(
        name=(name or "").strip(),
        ip_address=_check_ipv4(ip_address, field="ip_address"),
        vendor=vendor,
        coa_port=coa_port,
        description=description or "",
        secret=get_keyring().encrypt(secret.encode(), NAS_SECRET_PURPOSE),
    )
    nas.full_clean()
    nas.save()
    with connection.cursor() as cursor:
        _directory_put(cursor, nas, secret)
    audit_record(
        actor=actor,
        action="nas.registered",
        target=nas,
        changed_fields=["name", "ip_address", "secret", "vendor", "coa_port"],
        source_ip=source_ip,
    )
    return nas


@transaction.atomic
def nas_update(
    *, nas: Nas, changes: dict, actor: Actor, secret: str | None = None, source_ip: str | None = None
) -> Nas:
    unknown = set(changes) - NAS_FIELDS
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Unknown or read-only field."), code="unknown_field")
    nas = Nas.objects.select_for_update().get(pk=nas.pk)
    changed = []
    for field, value in changes.items():
        if field == "ip_address":
            value = _check_ipv4(value, field="ip_address")
        if getattr(nas, field) != value:
            setattr(nas, field, value)
            changed.append(field)
    if secret is not None:
        secret = _check_secret(secret, field="secret", minimum=8)
        nas.secret = get_keyring().encrypt(secret.encode(), NAS_SECRET_PURPOSE)
        changed.append("secret")
    if not changed:
        return nas
    nas.full_clean()
    nas.save()
    with connection.cursor() as cursor:
        _directory_put(cursor, nas, secret if secret is not None else nas_secret(nas).decode())
    audit_record(actor=actor, action="nas.updated", target=nas, changed_fields=changed, source_ip=source_ip)
    return nas


@transaction.atomic
def nas_delete(*, nas: Nas, actor: Actor, source_ip: str | None = None) -> None:
    nas = Nas.objects.select_for_update().get(pk=nas.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM radius.nas_directory WHERE tenant = %s AND nas_id = %s", [connection.schema_name, nas.pk]
        )
    audit_record(actor=actor, action="nas.deleted", target=nas, changed_fields=["ip_address"], source_ip=source_ip)
    nas.delete()


def nas_directory_sync() -> int:
    """Rewrite this tenant's rows of the NAS directory from the registry (e.g. after a restore)."""
    count = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM radius.nas_directory WHERE tenant = %s", [connection.schema_name])
        for nas in Nas.objects.filter(is_active=True).order_by("pk"):
            _directory_put(cursor, nas, nas_secret(nas).decode())
            count += 1
    return count


# --- PPPoE accounts -------------------------------------------------------------------------


def _new_password() -> str:
    return secrets.token_urlsafe(12)


@transaction.atomic
def pppoe_account_create(
    *,
    subscription: Subscription,
    actor: Actor,
    username: str | None = None,
    password: str | None = None,
    static_ip: str | None = None,
    simultaneous_use: int = 1,
    source_ip: str | None = None,
) -> tuple[PppoeAccount, str]:
    """PPPoE credentials for a subscription. Returns the account and the password - the only
    time it is readable: it is sealed for FreeRADIUS and never decrypted by the back office."""
    subscription = Subscription.objects.select_for_update().select_related("customer").get(pk=subscription.pk)
    if PppoeAccount.objects.filter(subscription=subscription).exists():
        raise ValidationError({"subscription": "This subscription already has PPPoE credentials."}, code="exists")
    if username is None:
        username = f"{subscription.customer.account_code}-{subscription.pk}".lower()
    username = username.strip()
    USERNAME_VALIDATOR(username)
    if PppoeAccount.objects.filter(username=username).exists():
        raise ValidationError({"username": "This user name is taken."}, code="username_taken")
    password = _check_secret(password, field="password", minimum=8) if password is not None else _new_password()
    if static_ip:
        static_ip = _check_ipv4(static_ip, field="static_ip")
        if PppoeAccount.objects.filter(static_ip=static_ip).exists():
            raise ValidationError({"static_ip": f"{static_ip} is already assigned."}, code="ip_taken")
    with connection.cursor() as cursor:
        sealed = seal(cursor, password)
    account = PppoeAccount(
        subscription=subscription,
        username=username,
        secret_sealed=sealed,
        static_ip=static_ip or None,
        simultaneous_use=simultaneous_use,
    )
    account.full_clean(exclude=["secret_sealed", "subscription"])
    account.save()
    audit_record(
        actor=actor,
        action="pppoe.created",
        target=account,
        changed_fields=["username", "secret", "static_ip", "simultaneous_use"],
        source_ip=source_ip,
    )
    return account, password


@transaction.atomic
def pppoe_password_set(
    *, account: PppoeAccount, actor: Actor, password: str | None = None, source_ip: str | None = None
) -> str:
    """Replace the PPPoE password (generated when not given); returns it, once."""
    account = PppoeAccount.objects.select_for_update().get(pk=account.pk)
    password = _check_secret(password, field="password", minimum=8) if password is not None else _new_password()
    with connection.cursor() as cursor:
        account.secret_sealed = seal(cursor, password)
    account.save(update_fields=["secret_sealed", "updated_at"])
    audit_record(
        actor=actor, action="pppoe.password_set", target=account, changed_fields=["secret"], source_ip=source_ip
    )
    return password


@transaction.atomic
def pppoe_account_update(
    *, account: PppoeAccount, changes: dict, actor: Actor, source_ip: str | None = None
) -> PppoeAccount:
    allowed = {"static_ip", "simultaneous_use"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Unknown or read-only field."), code="unknown_field")
    account = PppoeAccount.objects.select_for_update().get(pk=account.pk)
    if "static_ip" in changes and changes["static_ip"]:
        changes = {**changes, "static_ip": _check_ipv4(changes["static_ip"], field="static_ip")}
        if PppoeAccount.objects.filter(static_ip=changes["static_ip"]).exclude(pk=account.pk).exists():
            raise ValidationError({"static_ip": f"{changes['static_ip']} is already assigned."}, code="ip_taken")
    changed = [f for f, v in changes.items() if getattr(account, f) != (v or None if f == "static_ip" else v)]
    for field in changed:
        setattr(account, field, changes[field] or None if field == "static_ip" else changes[field])
    if changed:
        account.full_clean(exclude=["secret_sealed", "subscription"])
        account.save()
        audit_record(actor=actor, action="pppoe.updated", target=account, changed_fields=changed, source_ip=source_ip)
    return account


@transaction.atomic
def radius_settings_update(*, changes: dict, actor: Actor, source_ip: str | None = None) -> RadiusSettings:
    current = RadiusSettings.objects.select_for_update().get_or_create(pk=1)[0]
    fields = {f.name for f in RadiusSettings._meta.concrete_fields} - {"id"}
    unknown = set(changes) - fields
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Unknown field."), code="unknown_field")
    changed = [f for f, v in changes.items() if getattr(current, f) != v]
    for field in changed:
        setattr(current, field, changes[field])
    if changed:
        current.full_clean()
        current.save()
        audit_record(
            actor=actor, action="radius_settings.updated", target=current, changed_fields=changed, source_ip=source_ip
        )
    return current


# --- sessions -------------------------------------------------------------------------------


def open_sessions(subscription_id: int) -> list[RadiusSession]:
    return list(
        RadiusSession.objects.filter(subscription_id=subscription_id, stop_time__isnull=True).order_by("start_time")
    )


def radius_close_stale_sessions(*, now: datetime.datetime | None = None) -> int:
    """Close open sessions with no accounting for `stale_after_s` (a NAS that died without
    Accounting-Off): stop time = the last update, cause Stale-Session. A later interim from the
    NAS reopens the session (radius.accounting)."""
    now = now or timezone.now()
    limit = now - datetime.timedelta(seconds=RadiusSettings.current().stale_after_s)
    with transaction.atomic():
        closed = RadiusSession.objects.filter(stop_time__isnull=True, update_time__lt=limit)
        ids = list(closed.values_list("pk", flat=True))
        if not ids:
            return 0
        from django.db.models import F

        RadiusSession.objects.filter(pk__in=ids).update(stop_time=F("update_time"), terminate_cause="Stale-Session")
        audit_record(
            actor=Actor.system("radius housekeeping"),
            action="radius_session.closed_stale",
            object_type="network.radiussession",
            object_id=",".join(str(i) for i in ids[:50]),
            changed_fields=["stop_time", "terminate_cause"],
            reason=f"{len(ids)} session(s) silent since before {limit.isoformat()}",
        )
    return len(ids)


def radius_enforce_fair_use(*, today: datetime.date | None = None, send: bool = True) -> dict:
    """Flip `over_cap` for subscriptions with a data cap and a fair-use speed by their usage in
    the current billing period, and push the new speed to their open sessions (CoA)."""
    today = today or tenant_today()
    tenant_billing_day = connection.tenant.billing_day
    accounts = PppoeAccount.objects.select_related("subscription__plan", "subscription__customer").filter(
        subscription__status=Subscription.Status.ACTIVE,
        subscription__plan__included_bytes__isnull=False,
        subscription__plan__fair_use_download_kbps__isnull=False,
    )
    flipped_on, flipped_off = [], []
    for account in accounts.iterator(chunk_size=500):
        sub = account.subscription
        period = period_containing(today, sub.customer.billing_day or tenant_billing_day)
        over = usage_bytes(sub.pk, period) > sub.plan.included_bytes
        if over != account.over_cap:
            with transaction.atomic():
                PppoeAccount.objects.filter(pk=account.pk).update(
                    over_cap=over, over_cap_since=timezone.now() if over else None
                )
                audit_record(
                    actor=Actor.system("fair use"),
                    action="pppoe.over_cap" if over else "pppoe.under_cap",
                    target=account,
                    changed_fields=["over_cap"],
                    reason=f"period {period}",
                )
            (flipped_on if over else flipped_off).append(sub.pk)
    if send:
        for sub_id in flipped_on + flipped_off:
            coa_dispatch(subscription_id=sub_id, kind=CoaRequest.Kind.COA, reason="fair_use")
    return {"over_cap": flipped_on, "back_under_cap": flipped_off}


# --- CoA / Disconnect -----------------------------------------------------------------------


def reply_attributes(username: str) -> dict[str, str]:
    """The reply FreeRADIUS would give this user now (the same function it calls)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attribute, value FROM radius.authorize_reply(%s, %s)", [connection.schema_name, username]
        )
        return dict(cursor.fetchall())


COA_REPLY_ATTRIBUTES = ("Mikrotik-Rate-Limit", "WISPr-Bandwidth-Max-Down", "WISPr-Bandwidth-Max-Up", "Session-Timeout")
INTEGER_ATTRIBUTES = frozenset({"WISPr-Bandwidth-Max-Down", "WISPr-Bandwidth-Max-Up", "Session-Timeout"})


def _typed(name: str, value: str):
    """The reply functions give text (as rlm_sql wants); pyrad encodes integers from ints."""
    return int(value) if name in INTEGER_ATTRIBUTES else value


def coa_send(
    *, subscription_id: int, kind: str, reason: str, actor: Actor | None = None, timeout: float | None = None
) -> list[CoaRequest]:
    """Send a Disconnect-Request (or a CoA-Request with the current speed) for every open session
    of the subscription to its NAS, with retries; record and audit each outcome."""
    actor = actor or Actor.system("radius coa")
    timeout = timeout if timeout is not None else getattr(settings, "RADIUS_COA_TIMEOUT", 2.0)
    retries = getattr(settings, "RADIUS_COA_RETRIES", 3)
    results = []
    account = PppoeAccount.objects.filter(subscription_id=subscription_id).first()
    nas_by_ip = {n.ip_address: n for n in Nas.objects.all()}
    for session in open_sessions(subscription_id):
        attributes = {"User-Name": session.username, "Acct-Session-Id": session.acct_session_id}
        if kind == CoaRequest.Kind.COA and account is not None:
            reply = reply_attributes(account.username)
            attributes.update({k: _typed(k, reply[k]) for k in COA_REPLY_ATTRIBUTES if k in reply})
        nas = nas_by_ip.get(session.nas_ip_address)
        if nas is None:
            outcome = coa.CoaResult(
                outcome="error",
                attempts=0,
                error_cause=None,
                latency_ms=None,
                detail="the session's NAS is not registered",
            )
        else:
            sender = coa.send_disconnect if kind == CoaRequest.Kind.DISCONNECT else coa.send_coa
            try:
                outcome = sender(
                    nas_ip=nas.ip_address,
                    port=nas.coa_port,
                    secret=nas_secret(nas),
                    attributes=attributes,
                    timeout=timeout,
                    retries=retries,
                )
            except Exception as exc:  # a transport failure is an outcome to record, not a crash
                logger.warning("coa: %s to NAS %s failed: %s", kind, nas.pk, type(exc).__name__)
                outcome = coa.CoaResult(
                    outcome="error", attempts=1, error_cause=None, latency_ms=None, detail=type(exc).__name__
                )
        with transaction.atomic():
            request = CoaRequest.objects.create(
                subscription_id=subscription_id,
                session=session,
                nas=nas,
                kind=kind,
                reason=reason[:100],
                attributes={k: str(v) for k, v in attributes.items()},
                outcome=outcome.outcome,
                attempts=outcome.attempts,
                error_cause=outcome.error_cause,
                detail=(outcome.detail or "")[:300],
                latency_ms=outcome.latency_ms,
                completed_at=timezone.now(),
            )
            audit_record(
                actor=actor,
                action=f"radius.{kind}.{outcome.outcome}",
                target=request,
                object_type="customers.subscription",
                object_id=str(subscription_id),
                changed_fields=["session"],
                reason=reason,
            )
        results.append(request)
    return results


def coa_dispatch(*, subscription_id: int, kind: str, reason: str) -> None:
    """Send now (RADIUS_COA_ASYNC off: tests, demo) or through a Celery task of this tenant."""
    if getattr(settings, "RADIUS_COA_ASYNC", True):
        from .tasks import radius_coa

        radius_coa.delay(subscription_id, kind, reason)
    else:
        coa_send(subscription_id=subscription_id, kind=kind, reason=reason)


# --- reactions to subscription changes (registered in NetworkConfig.ready) -----------------

DISCONNECT_ON = {"suspended": "suspended", "terminated": "terminated"}


def on_status_changed(event: events.SubscriptionStatusChanged) -> None:
    if connection.schema_name != event.schema:
        return
    if event.to_status in DISCONNECT_ON:
        reason = DISCONNECT_ON[event.to_status]
    elif event.from_status == "suspended" and event.to_status == "active":
        reason = "reactivated"  # reconnect with the full service
    else:
        return
    coa_dispatch(subscription_id=event.subscription_id, kind=CoaRequest.Kind.DISCONNECT, reason=reason)


def on_plan_changed(event: events.SubscriptionPlanChanged) -> None:
    if connection.schema_name != event.schema or event.effective_on > tenant_today():
        return
    coa_dispatch(subscription_id=event.subscription_id, kind=CoaRequest.Kind.COA, reason="plan_change")


def subscription_ids_with_sessions(ids: Iterable[int]) -> set[int]:
    return set(
        RadiusSession.objects.filter(subscription_id__in=list(ids), stop_time__isnull=True).values_list(
            "subscription_id", flat=True
        )
    )
