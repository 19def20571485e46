"""Exports of personal data to third parties (partners, marketing, data brokers), honouring the
CCPA "do not sell or share" choice.

There is no third-party integration yet: whatever ships data out of the tenant must go through
`third_party_export`, which leaves out every customer who opted out (or was erased) and records
the disclosure in the audit trail."""

from __future__ import annotations

from django.db import transaction

from compliance.audit import Actor, audit_pii_reveal, audit_record

from . import registry


def opted_out(subject) -> bool:
    """True when any app's opt-out says the subject does not want their data sold or shared."""
    return any(o.is_opted_out is not None and o.is_opted_out(subject) for o in registry.opt_outs())


@transaction.atomic
def third_party_export(
    *, recipient: str, subjects, categories: list[str], actor: Actor, purpose: str = ""
) -> dict[str, dict[str, list[dict]]]:
    """{account_code: {category: rows}} for the subjects that may be shared with `recipient`.

    `subjects`: customers (a queryset or a list); `categories`: registered category names
    (e.g. ["customers.profile", "customers.subscriptions"]). Customers who opted out of sale or
    sharing are left out; each one included is audited as a reveal, and the disclosure itself as
    `pii.third_party_export` (recipient, purpose and how many were included and left out)."""
    recipient = (recipient or "").strip()
    if not recipient:
        raise ValueError("name the recipient of the export")
    known = {c.name: c for c in registry.categories()}
    unknown = sorted(set(categories) - set(known))
    if unknown:
        raise ValueError(f"unknown personal-data categories: {', '.join(unknown)}")
    included, excluded = [], 0
    for subject in subjects:
        if opted_out(subject):
            excluded += 1
        else:
            included.append(subject)
    out = {s.account_code: {name: known[name].export(s) for name in categories} for s in included}
    fields = [f"{name}.{f}" for name in categories for f in known[name].pii_fields]
    if included:
        audit_pii_reveal(actor=actor, objects=included, fields=fields or categories)
    audit_record(
        actor=actor,
        action="pii.third_party_export",
        object_type="third_party",
        object_id=recipient[:64],
        changed_fields=categories,
        reason=f"{purpose[:300]} (included {len(included)}, left out {excluded} who opted out)".strip(),
    )
    return out
