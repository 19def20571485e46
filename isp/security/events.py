"""Security events: written to the `security` logger and recorded as audit events.

Lockouts are recorded in the schema of the host that was attacked; a token of one tenant used on
another tenant's host in both schemas (the attacked tenant's record does not name the other)."""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django_tenants.utils import schema_context

from compliance.audit import Actor, audit_record, client_ip

logger = logging.getLogger("security")

LOCKED_OUT = "security.login_locked_out"
FOREIGN_CREDENTIAL = "security.foreign_token_refused"
CREDENTIAL_USED_ELSEWHERE = "security.token_used_on_another_host"
OTP_FAILED = "security.otp_failed"
OTP_ENROLLED = "security.otp_enrolled"


def security_event(
    action: str,
    *,
    request=None,
    reason: str = "",
    object_type: str = "",
    object_id: str = "",
    actor: Actor | None = None,
    schema: str | None = None,
    level: int = logging.WARNING,
) -> None:
    """Log `action` and record it as an audit event in `schema` (default: the current one)."""
    schema = schema or connection.schema_name
    source_ip = client_ip(request)
    logger.log(level, "%s schema=%s ip=%s %s", action, schema, source_ip or "-", reason)
    actor = actor or Actor(type="anonymous", label="security")
    with schema_context(schema), transaction.atomic():
        audit_record(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            reason=reason,
            source_ip=source_ip,
        )


def _user_id(username: str | None) -> str:
    from django.contrib.auth import get_user_model

    if not username:
        return ""
    pk = get_user_model().objects.filter(username=username).values_list("pk", flat=True).first()
    return "" if pk is None else str(pk)


def on_user_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """Axes signals the lockout when it starts and again on each attempt refused during it: the
    start is an audit event, the refusals are only logged."""
    from django.conf import settings

    if getattr(request, "axes_failures_since_start", None) is None:
        logger.info("%s refused during lockout schema=%s ip=%s", LOCKED_OUT, connection.schema_name, ip_address)
        return
    user_id = _user_id(username)
    security_event(
        LOCKED_OUT,
        request=request,
        object_type="auth.user" if user_id else "",
        object_id=user_id,
        reason=(
            f"{settings.AXES_FAILURE_LIMIT} failed logins of one "
            f"{'account' if user_id else 'unknown username'} from one address"
        ),
    )


def connect_signals() -> None:
    from axes.signals import user_locked_out

    user_locked_out.connect(on_user_locked_out, dispatch_uid="isp.security.locked_out")
