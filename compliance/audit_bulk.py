"""Many audit events of one action in one INSERT, for batch paths (provisioning many
subscriptions, activating many at once). Same rules as `audit_record`: call it inside the
transaction that makes the changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import models, transaction

from isp.middleware import current_request_id

from .audit import Actor
from .models import AuditEvent


def audit_many(
    *,
    actor: Actor,
    action: str,
    entries: Iterable[tuple[models.Model, Sequence[str], str]],
    source_ip: str | None = None,
) -> int:
    """One `action` event per (target, changed field names, reason); returns how many."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_many must be called inside the transaction that makes the changes")
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
