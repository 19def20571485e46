"""Data-subject requests: the workflow and what fulfilling each kind does.

received -> verified -> fulfilled, or (received | verified) -> refused with a reason. Every
transition locks the request, checks the move, and records an audit event in its transaction:
`dsr.received`, `dsr.verified`, `dsr.fulfilled`, `dsr.refused` (object: the request; the subject's
customer id is in the request). Fulfilling:

- export: the archive (compliance.dsr.export) is built, sealed with the subject's data key and kept
  `PrivacyPolicy.export_archive_days` for download; the personal data it holds is audited as
  revealed (`pii.revealed` on the customer, field names only), as is every download;
- erasure: refused (status `refused`, reasons listed) while a legal hold is active or an erasure
  check of an app applies (unpaid balance, when the policy says so). Otherwise: the apps' "before"
  steps (RADIUS Disconnect, outside the transaction), then in one transaction every app's eraser,
  the request closed, and the subject's old data key shredded (crypto-shredding: every ciphertext
  sealed with it, in this database and its backups, becomes unreadable);
- do_not_sell: the subject's opt-out is recorded by the apps that declared one.

Requests are staff work: the API and the admin call these functions."""

from __future__ import annotations

import base64
import datetime
import secrets

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from compliance.audit import Actor, audit_pii_reveal, audit_record
from compliance.models import DataSubjectRequest, LegalHold, PrivacyPolicy
from compliance.pii.fields import ERASED
from compliance.pii.keystore import forget_cached_key, get_keystore

from . import export, registry

R = DataSubjectRequest
S = DataSubjectRequest.Status

ALLOWED = {
    "verify": (S.RECEIVED,),
    "fulfil": (S.VERIFIED,),
    "refuse": (S.RECEIVED, S.VERIFIED),
}


class TransitionRefused(ValidationError):
    pass


def _check(request: DataSubjectRequest, move: str) -> None:
    if request.status not in ALLOWED[move]:
        allowed = " or ".join(ALLOWED[move])
        raise TransitionRefused(
            {"status": [f"A request that is {request.status} cannot be {move}ed here; it must be {allowed}."]}
        )


def _locked(request: DataSubjectRequest) -> DataSubjectRequest:
    return R.objects.select_for_update().select_related("customer").get(pk=request.pk)


def _subject_model():
    return R._meta.get_field("customer").related_model


# --- workflow ----------------------------------------------------------------------------------
@transaction.atomic
def dsr_create(
    *,
    customer,
    kind: str,
    actor: Actor,
    received_at: datetime.datetime | None = None,
    source_ip: str | None = None,
) -> DataSubjectRequest:
    """Record a request as received; its deadline is received + the policy's response days."""
    if kind not in R.Kind.values:
        raise ValidationError({"kind": [f"Choose one of {', '.join(R.Kind.values)}."]})
    received_at = received_at or timezone.now()
    if received_at > timezone.now() + datetime.timedelta(minutes=5):
        raise ValidationError({"received_at": ["A request cannot be received in the future."]})
    policy = PrivacyPolicy.current()
    request = R.objects.create(
        customer=customer,
        kind=kind,
        received_at=received_at,
        due_at=received_at + datetime.timedelta(days=policy.response_days),
        received_by=actor.label[:150],
        data_key_id=customer.data_key_id,
    )
    audit_record(
        actor=actor,
        action="dsr.received",
        target=request,
        changed_fields=["customer", "kind", "received_at", "due_at"],
        reason=f"{kind} for customer {customer.pk}",
        source_ip=source_ip,
    )
    return request


@transaction.atomic
def dsr_verify(
    *, request: DataSubjectRequest, method: str, actor: Actor, source_ip: str | None = None
) -> DataSubjectRequest:
    """The requester's identity was checked (say how, never the evidence itself)."""
    method = (method or "").strip()
    if not method:
        raise ValidationError({"method": ["Say how the identity was verified."]})
    request = _locked(request)
    _check(request, "verify")
    request.status, request.verified_at, request.verification_method = S.VERIFIED, timezone.now(), method[:200]
    request.save(update_fields=["status", "verified_at", "verification_method"])
    audit_record(
        actor=actor,
        action="dsr.verified",
        target=request,
        changed_fields=["status", "verified_at", "verification_method"],
        source_ip=source_ip,
    )
    return request


@transaction.atomic
def dsr_refuse(
    *, request: DataSubjectRequest, reason: str, actor: Actor, source_ip: str | None = None
) -> DataSubjectRequest:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["Say why the request is refused."]})
    request = _locked(request)
    _check(request, "refuse")
    return _close_refused(request, reason=reason, actor=actor, source_ip=source_ip)


def _close_refused(request, *, reason: str, actor: Actor, source_ip: str | None) -> DataSubjectRequest:
    request.status, request.closed_at, request.refusal_reason = S.REFUSED, timezone.now(), reason[:500]
    request.save(update_fields=["status", "closed_at", "refusal_reason"])
    audit_record(
        actor=actor,
        action="dsr.refused",
        target=request,
        changed_fields=["status", "closed_at", "refusal_reason"],
        reason=reason,
        source_ip=source_ip,
    )
    return request


def dsr_fulfil(*, request: DataSubjectRequest, actor: Actor, source_ip: str | None = None) -> DataSubjectRequest:
    """Do what the request asks (see the module docstring). An erasure that must be refused ends
    `refused` with the reasons; call this outside a transaction for erasures (it sends RADIUS
    Disconnects before its own transaction)."""
    kind = R.objects.values_list("kind", flat=True).get(pk=request.pk)
    if kind == R.Kind.ERASURE:
        return _fulfil_erasure(request=request, actor=actor, source_ip=source_ip)
    with transaction.atomic():
        request = _locked(request)
        _check(request, "fulfil")
        if kind == R.Kind.EXPORT:
            _fulfil_export(request, actor=actor, source_ip=source_ip)
        else:
            for opt_out in registry.opt_outs():
                opt_out.run(subject=request.customer, actor=actor, source_ip=source_ip)
        return _close_fulfilled(
            request, actor=actor, source_ip=source_ip, fields=["archive"] if kind == "export" else []
        )


def _close_fulfilled(request, *, actor: Actor, source_ip: str | None, fields: list[str]) -> DataSubjectRequest:
    request.status, request.closed_at = S.FULFILLED, timezone.now()
    request.save()
    audit_record(
        actor=actor,
        action="dsr.fulfilled",
        target=request,
        changed_fields=["status", "closed_at", *fields],
        source_ip=source_ip,
    )
    return request


# --- export --------------------------------------------------------------------------------------
def _fulfil_export(request: DataSubjectRequest, *, actor: Actor, source_ip: str | None) -> None:
    subject = request.customer
    now = timezone.now()
    result = export.build_archive(subject, generated_at=now)
    audit_pii_reveal(actor=actor, objects=[subject], fields=result.revealed_fields, source_ip=source_ip)
    request.data_key_id = subject.data_key_id
    request.archive = base64.b64encode(result.data).decode()
    request.archive_sha256 = result.sha256
    request.archive_expires_at = now + datetime.timedelta(days=PrivacyPolicy.current().export_archive_days)


@transaction.atomic
def dsr_archive(*, request: DataSubjectRequest, actor: Actor, source_ip: str | None = None) -> bytes:
    """The export archive, for delivery to the subject. Audited: a download is a reveal."""
    request = R.objects.select_related("customer").get(pk=request.pk)
    if request.kind != R.Kind.EXPORT or request.status != S.FULFILLED:
        raise ValidationError({"archive": ["Only a fulfilled export request has an archive."]})
    if request.archive in (None, "", ERASED):
        raise ValidationError({"archive": ["The archive was purged (retention) or the subject was erased."]})
    data = base64.b64decode(request.archive)
    audit_record(actor=actor, action="dsr.archive_downloaded", target=request, source_ip=source_ip)
    audit_pii_reveal(
        actor=actor,
        objects=[request.customer],
        fields=[f"{c.name}.{f}" for c in registry.categories() for f in c.pii_fields],
        source_ip=source_ip,
    )
    return data


# --- erasure -------------------------------------------------------------------------------------
def erasure_blockers(subject) -> list[str]:
    """Why the subject cannot be erased now (empty: nothing stops it)."""
    reasons = []
    holds = LegalHold.objects.filter(customer_id=subject.pk, released_at__isnull=True).order_by("placed_at")
    for hold in holds:
        reasons.append(f"legal hold {hold.pk} since {hold.placed_at:%Y-%m-%d}: {hold.reason}")
    policy = PrivacyPolicy.current()
    for check in registry.checks():
        if check.policy_flag and not getattr(policy, check.policy_flag):
            continue
        reason = check.check(subject)
        if reason:
            reasons.append(reason)
    return reasons


def _refuse_if_blocked(request, *, actor: Actor, source_ip: str | None) -> DataSubjectRequest | None:
    blockers = erasure_blockers(request.customer)
    if not blockers:
        return None
    reason = "Erasure refused: " + "; ".join(blockers)
    return _close_refused(request, reason=reason, actor=actor, source_ip=source_ip)


def _fulfil_erasure(*, request: DataSubjectRequest, actor: Actor, source_ip: str | None) -> DataSubjectRequest:
    with transaction.atomic():
        request = _locked(request)
        _check(request, "fulfil")
        refused = _refuse_if_blocked(request, actor=actor, source_ip=source_ip)
        if refused is not None:
            return refused
    for step in registry.before_erasure():
        step.run(subject=request.customer, actor=actor)
    with transaction.atomic():
        request = _locked(request)
        _check(request, "fulfil")
        subject = _subject_model().objects.select_for_update().get(pk=request.customer_id)
        refused = _refuse_if_blocked(request, actor=actor, source_ip=source_ip)
        if refused is not None:
            return refused
        old_key = subject.data_key_id
        ctx = registry.ErasureContext(
            subject=subject,
            actor=actor,
            pseudonym=secrets.token_hex(4).upper(),
            now=timezone.now(),
            request_id=request.pk,
            source_ip=source_ip,
        )
        erased: dict[str, int] = {}
        for category in registry.erasure_order():
            if category.erase is not None:
                erased[category.name] = category.erase(ctx)
        erased["compliance.archives"] = _erase_archives(subject)
        request.pseudonym = ctx.pseudonym
        request.data_key_id = subject.data_key_id
        _close_fulfilled(request, actor=actor, source_ip=source_ip, fields=["pseudonym"])
        audit_record(
            actor=actor,
            action="customer.erased",
            target=subject,
            changed_fields=sorted(name for name, count in erased.items() if count),
            reason=f"data-subject request {request.pk}",
            source_ip=source_ip,
        )
        if old_key is not None and old_key != subject.data_key_id:
            # Last, just before commit: a failure above rolls everything back with the key intact.
            get_keystore().shred(tenant=connection.schema_name, key_id=old_key)
            forget_cached_key(connection.schema_name, old_key)
        return request


def _erase_archives(subject) -> int:
    return R.objects.filter(customer_id=subject.pk, archive__isnull=False).update(
        archive=None, archive_sha256="", archive_expires_at=None
    )


# --- legal holds and the policy ----------------------------------------------------------------------
@transaction.atomic
def legal_hold_place(*, customer, reason: str, actor: Actor, source_ip: str | None = None) -> LegalHold:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["Say why the data must be kept."]})
    hold = LegalHold.objects.create(customer=customer, reason=reason[:500], placed_by=actor.label[:150])
    audit_record(
        actor=actor, action="legal_hold.placed", target=hold, changed_fields=["customer", "reason"], source_ip=source_ip
    )
    return hold


@transaction.atomic
def legal_hold_release(*, hold: LegalHold, actor: Actor, source_ip: str | None = None) -> LegalHold:
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if hold.released_at is not None:
        raise ValidationError({"released_at": ["This hold was already released."]})
    hold.released_at, hold.released_by = timezone.now(), actor.label[:150]
    hold.save(update_fields=["released_at", "released_by"])
    audit_record(
        actor=actor, action="legal_hold.released", target=hold, changed_fields=["released_at"], source_ip=source_ip
    )
    return hold


POLICY_FIELDS = frozenset(
    {"response_days", "refuse_erasure_with_unpaid_balance", "export_archive_days", "radius_session_retention_days"}
)


@transaction.atomic
def privacy_policy_update(*, changes: dict, actor: Actor, source_ip: str | None = None) -> PrivacyPolicy:
    unknown = set(changes) - POLICY_FIELDS
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), ["Unknown field."]))
    policy = PrivacyPolicy.objects.select_for_update().get_or_create(pk=1)[0]
    changed = [f for f, v in changes.items() if getattr(policy, f) != v]
    for field in changed:
        setattr(policy, field, changes[field])
    if changed:
        policy.full_clean()
        policy.save()
        audit_record(
            actor=actor, action="privacy_policy.updated", target=policy, changed_fields=changed, source_ip=source_ip
        )
    return policy
