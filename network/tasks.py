"""Celery tasks of network: thin, they call a service."""

from __future__ import annotations

import logging

from django.conf import settings
from django_tenants.utils import tenant_context

from isp.celery import app
from tenants.models import Tenant

from . import services

logger = logging.getLogger(__name__)


@app.task(name="network.radius_coa", autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def radius_coa(subscription_id: int, kind: str, reason: str) -> list[str]:
    """CoA / Disconnect for one subscription's open sessions (runs in the sender's tenant schema)."""
    return [r.outcome for r in services.coa_send(subscription_id=subscription_id, kind=kind, reason=reason)]


@app.task(name="network.radius_housekeeping_all_tenants")
def radius_housekeeping_all_tenants() -> dict:
    """Every few minutes (CELERY_BEAT_SCHEDULE): close stale sessions and enforce fair use in
    every active tenant; one failing tenant is reported and never stops the others."""
    results: dict[str, dict] = {}
    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE).exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
    for tenant in tenants.order_by("slug"):
        try:
            with tenant_context(tenant):
                results[tenant.slug] = {
                    "stale_closed": services.radius_close_stale_sessions(),
                    **services.radius_enforce_fair_use(),
                }
        except Exception as exc:  # reported; the other tenants go on
            logger.exception("radius housekeeping: tenant %s failed", tenant.slug)
            results[tenant.slug] = {"error": f"{type(exc).__name__}: {exc}"}
    return results
