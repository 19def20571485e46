"""Celery tasks of billing: thin, they call a service."""

from __future__ import annotations

from billing.dunning import dunning_run_all_tenants
from isp.celery import app


@app.task(name="billing.dunning_all_tenants")
def dunning_all_tenants() -> dict:
    """Daily (CELERY_BEAT_SCHEDULE): dunning for every active tenant, in its own schema and as of
    its own local today. Returns each tenant's report by slug."""
    return dunning_run_all_tenants()
