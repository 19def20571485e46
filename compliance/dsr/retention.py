"""Retention: purge what the tenant's privacy policy says is kept no longer.

`retention_purge()` runs in the current tenant: every registered purger (e.g. network's closed
RADIUS sessions past `radius_session_retention_days`) and compliance's own (export archives past
their expiry). Each purger runs in its own transaction and is audited when it removed something.
`retention_purge_all_tenants()` does it for every active tenant (the management command
`retention_purge` and the Celery task `compliance.retention_purge_all_tenants` call it)."""

from __future__ import annotations

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from compliance.audit import Actor, audit_record

from . import registry

logger = logging.getLogger(__name__)
ACTOR = Actor.system("retention purge")


def purge_export_archives(*, policy, now: datetime.datetime | None = None) -> int:
    from compliance.models import DataSubjectRequest

    now = now or timezone.now()
    return DataSubjectRequest.objects.filter(archive__isnull=False, archive_expires_at__lt=now).update(
        archive=None, archive_sha256="", archive_expires_at=None
    )


OWN_PURGERS = (
    registry.Purger(
        name="compliance.export_archives",
        description="Export archives past PrivacyPolicy.export_archive_days.",
        run=purge_export_archives,
    ),
)


def retention_purge(*, now: datetime.datetime | None = None, actor: Actor = ACTOR) -> dict[str, int]:
    """Run every purger in the current tenant; {purger name: rows purged}."""
    from compliance.models import PrivacyPolicy

    now = now or timezone.now()
    policy = PrivacyPolicy.current()
    results = {}
    for purger in sorted([*registry.purgers(), *OWN_PURGERS], key=lambda p: p.name):
        with transaction.atomic():
            count = purger.run(policy=policy, now=now)
            if count:
                audit_record(
                    actor=actor,
                    action="retention.purged",
                    object_type="retention",
                    object_id=purger.name,
                    reason=f"{count} row(s): {purger.description}"[:500],
                )
        results[purger.name] = count
    return results


def retention_purge_all_tenants(*, slugs: list[str] | None = None, now: datetime.datetime | None = None) -> dict:
    """`retention_purge` in every active tenant (or those named); a failing tenant is reported
    and never stops the others."""
    from django.conf import settings
    from django_tenants.utils import tenant_context

    from tenants.models import Tenant

    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE).exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
    if slugs:
        tenants = tenants.filter(slug__in=slugs)
    results: dict[str, dict] = {}
    for tenant in tenants.order_by("slug"):
        try:
            with tenant_context(tenant):
                results[tenant.slug] = retention_purge(now=now)
        except Exception as exc:  # reported; the other tenants go on
            logger.exception("retention purge: tenant %s failed", tenant.slug)
            results[tenant.slug] = {"error": f"{type(exc).__name__}: {exc}"}
    return results
