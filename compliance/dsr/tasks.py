"""Celery task of the retention purge (thin: it calls compliance.dsr.retention)."""

from __future__ import annotations

from isp.celery import app

from .retention import retention_purge_all_tenants


@app.task(name="compliance.retention_purge_all_tenants")
def retention_purge_all_tenants_task() -> dict:
    """Daily (CELERY_BEAT_SCHEDULE): purge past-retention data in every active tenant."""
    return retention_purge_all_tenants()
