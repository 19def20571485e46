"""Recording audit events. Call inside the transaction that makes the change, so the change
and its record commit or roll back together.

The database chains every event it stores when the writing transaction commits
(compliance/chain.py): the returned event is unsealed (no `seq` or `hash` yet); read it again
after the commit to see them. Events are never updated or deleted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import models, transaction

from isp.middleware import current_request_id

from .models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who did it: a user (possibly through an API token), a system task, or nobody known."""

    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, task: str) -> Actor:
        return cls(type=AuditEvent.ActorType.SYSTEM, label=task)

    @classmethod
    def from_user(cls, user, *, via_token: bool = False) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(type=AuditEvent.ActorType.ANONYMOUS)
        kind = AuditEvent.ActorType.TOKEN if via_token else AuditEvent.ActorType.USER
        return cls(type=kind, id=str(user.pk), label=user.get_username())

    @classmethod
    def from_request(cls, request) -> Actor:
        from rest_framework.authtoken.models import Token

        via_token = isinstance(getattr(request, "auth", None), Token)
        return cls.from_user(getattr(request, "user", None), via_token=via_token)


def client_ip(request) -> str | None:
    """The peer address. X-Forwarded-For is not trusted here: the proxy sets REMOTE_ADDR."""
    return request.META.get("REMOTE_ADDR") if request is not None else None


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    changed_fields: Iterable[str] = (),
    reason: str = "",
    source_ip: str | None = None,
) -> AuditEvent:
    """Append one audit event in the current schema. Must run inside the change's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction that makes the change")
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or str(target.pk)
    return AuditEvent.objects.create(
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label[:150],
        action=action,
        object_type=object_type,
        object_id=object_id,
        changed_fields=sorted(set(changed_fields)),
        reason=reason[:500],
        request_id=current_request_id() if current_request_id() != "-" else "",
        source_ip=source_ip,
    )


def audit_many(
    *,
    actor: Actor,
    action: str,
    entries: Iterable[tuple[models.Model, Iterable[str], str]],
    source_ip: str | None = None,
) -> int:
    """One `action` event per (target, changed field names, reason), in one INSERT; returns how
    many. For batch paths (provisioning many subscriptions, activating many, a billing batch).
    Same rule as `audit_record`: inside the transaction that makes the changes."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{action} events must be recorded inside the transaction that makes the changes")
    request_id = current_request_id() if current_request_id() != "-" else ""
    events = [
        AuditEvent(
            actor_type=actor.type,
            actor_id=actor.id,
            actor_label=actor.label[:150],
            action=action,
            object_type=target._meta.label_lower,
            object_id=str(target.pk),
            changed_fields=sorted(set(fields)),
            reason=reason[:500],
            request_id=request_id,
            source_ip=source_ip,
        )
        for target, fields, reason in entries
    ]
    AuditEvent.objects.bulk_create(events, batch_size=1000)
    return len(events)


def audit_pii_reveal(
    *, actor: Actor, objects: Iterable[models.Model], fields: Iterable[str], source_ip: str | None = None
) -> int:
    """One `pii.revealed` event per object whose personal data was shown in clear (bulk insert)."""
    names = sorted(set(fields))
    return audit_many(
        actor=actor, action="pii.revealed", entries=[(obj, names, "") for obj in objects], source_ip=source_ip
    )
