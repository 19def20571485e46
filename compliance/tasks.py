"""Scheduled checks of the audit trail.

`audit_verify_all` recomputes every schema's hash chain (public, the template, every tenant) and
writes each schema's head (seq and hash) to the `security` log, i.e. outside the database: a
later head must extend the one logged before, which is what shows that nobody cut records off
the end or recomputed the whole chain (docs/compliance.md, "Verifying"). A broken chain is
logged as an error with its first finding."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django_tenants.utils import get_tenant_model, schema_exists

from isp.celery import app

from .chain import chain_verify

logger = logging.getLogger("security")


def audit_schemas() -> list[str]:
    """Public, the template (when there is one) and every tenant's schema, in that order."""
    schemas = [settings.PUBLIC_SCHEMA_NAME]
    if schema_exists(settings.TENANT_BASE_SCHEMA):
        schemas.append(settings.TENANT_BASE_SCHEMA)
    tenants = get_tenant_model().objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
    return schemas + list(tenants.order_by("schema_name").values_list("schema_name", flat=True))


@app.task(name="compliance.audit_verify_all")
def audit_verify_all() -> dict[str, dict]:
    """Daily (CELERY_BEAT_SCHEDULE): verify every chain, log every head; returns them by schema."""
    connection.set_schema_to_public()
    heads: dict[str, dict] = {}
    for schema in audit_schemas():
        report = chain_verify(schema=schema)
        heads[schema] = {"ok": report.ok, "records": report.records, "seq": report.head_seq, "hash": report.head_hash}
        if report.ok:
            logger.info(
                "audit chain %s ok: %d records, head seq %s hash %s",
                schema,
                report.records,
                report.head_seq,
                report.head_hash,
            )
        else:
            heads[schema]["finding"] = str(report.first_finding)
            logger.error("audit chain %s TAMPERED: %s", schema, report.first_finding)
    return heads
