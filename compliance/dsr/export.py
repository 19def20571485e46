"""The export archive: everything the tenant holds about one data subject, machine-readable.

A zip with one JSON file per registered category (`<app>.<category>.json`: a list of rows, personal
data in clear), `audit_records.json` (the audit events about the subject's objects: who did what,
when, which fields - never values), `data_subject_requests.json`, `manifest.json` (categories,
row counts, the generator) and `README.txt`, the same summary for a person.

Building an archive reads personal data in clear: the caller records the reveal
(`compliance.dsr.services` does, in the request's transaction)."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Q

from . import registry

FORMAT_VERSION = 1
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: the same data gives the same bytes


@dataclass
class ExportResult:
    data: bytes
    sha256: str
    counts: dict[str, int] = field(default_factory=dict)
    revealed_fields: list[str] = field(default_factory=list)


def _json(value) -> bytes:
    return json.dumps(value, cls=DjangoJSONEncoder, indent=2, sort_keys=True, ensure_ascii=False).encode()


def audit_rows(subject, categories: Iterable[registry.Category]) -> list[dict]:
    from compliance.models import AuditEvent

    targets: dict[str, set[str]] = {}
    for category in categories:
        if category.audit_objects is not None:
            for object_type, object_id in category.audit_objects(subject):
                targets.setdefault(object_type, set()).add(object_id)
    if not targets:
        return []
    query = Q()
    for object_type, ids in targets.items():
        query |= Q(object_type=object_type, object_id__in=sorted(ids))
    fields = ("occurred_at", "action", "object_type", "object_id", "changed_fields", "actor_type", "reason")
    return list(AuditEvent.objects.filter(query).order_by("occurred_at", "id").values(*fields))


def request_rows(subject) -> list[dict]:
    from compliance.models import DataSubjectRequest

    fields = ("id", "kind", "status", "received_at", "due_at", "verified_at", "closed_at", "refusal_reason")
    return list(DataSubjectRequest.objects.filter(customer_id=subject.pk).order_by("received_at", "id").values(*fields))


def _readme(subject, *, generated_at: datetime.datetime, sections: list[tuple[str, str, str, int]]) -> str:
    tenant = connection.tenant
    lines = [
        f"Personal data held by {tenant.name} about customer {subject.account_code}",
        f"Generated {generated_at:%Y-%m-%d %H:%M} UTC.",
        "",
        "This archive contains every piece of personal data we hold about you, one file per kind of",
        "data. The files are JSON (readable by a program; any text editor opens them). Dates are",
        "ISO 8601, amounts are decimal strings in the invoice's currency.",
        "",
        "What is inside:",
    ]
    for filename, title, description, count in sections:
        lines.append(f"- {filename}: {title} ({count} record{'s' if count != 1 else ''}). {description}")
    lines += [
        "",
        "Your PPPoE password is not included: we store it sealed for the network equipment and cannot read it.",
        "To have these data corrected or erased, contact us; invoices and payments are kept for the period",
        "the law requires, without your identity, after an erasure.",
        "",
    ]
    return "\n".join(lines)


def build_archive(subject, *, generated_at: datetime.datetime) -> ExportResult:
    """The zip for `subject` (a customer), built from every registered category."""
    categories = registry.categories()
    buffer = io.BytesIO()
    counts: dict[str, int] = {}
    sections: list[tuple[str, str, str, int]] = []
    revealed: list[str] = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def put(name: str, content: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)

        for category in categories:
            rows = category.export(subject)
            filename = f"{category.name}.json"
            put(filename, _json(rows))
            counts[category.name] = len(rows)
            sections.append((filename, category.title, category.description, len(rows)))
            revealed += [f"{category.name}.{name}" for name in category.pii_fields]
        audit = audit_rows(subject, categories)
        put("audit_records.json", _json(audit))
        counts["audit_records"] = len(audit)
        sections.append(
            ("audit_records.json", "Audit records", "What was done with your data, when, by whom.", len(audit))
        )
        requests = request_rows(subject)
        put("data_subject_requests.json", _json(requests))
        counts["data_subject_requests"] = len(requests)
        sections.append(
            ("data_subject_requests.json", "Your requests", "Requests you made about your data.", len(requests))
        )
        manifest = {
            "format_version": FORMAT_VERSION,
            "tenant": connection.tenant.slug,
            "subject": {"account_code": subject.account_code},
            "generated_at": generated_at,
            "files": {name: {"title": title, "records": count} for name, title, _, count in sections},
        }
        put("manifest.json", _json(manifest))
        put("README.txt", _readme(subject, generated_at=generated_at, sections=sections).encode())
    data = buffer.getvalue()
    return ExportResult(data=data, sha256=hashlib.sha256(data).hexdigest(), counts=counts, revealed_fields=revealed)
