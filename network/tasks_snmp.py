"""Celery tasks of SNMP polling: thin, they call `network.snmp.poller` / `retention`.

Every SNMP_POLL_INTERVAL seconds (beat), `snmp_poll_all_tenants` splits each active tenant's
poll-enabled devices into chunks of SNMP_POLL_CHUNK and sends one `snmp_poll_chunk` per chunk
from the tenant's context (tenant-schemas-celery carries the schema), staggered over the first
half of the interval so the workers see an even load; a chunk that waited longer than the
interval is dropped (`expires`) rather than polled late on top of the next round."""

from __future__ import annotations

import logging

from django.conf import settings
from django_tenants.utils import tenant_context

from isp.celery import app
from tenants.models import Tenant

from .models import Device
from .snmp import poller, retention

logger = logging.getLogger(__name__)


def _active_tenants():
    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE).exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
    return tenants.order_by("slug")


@app.task(name="network.snmp_poll_all_tenants")
def snmp_poll_all_tenants() -> dict:
    """Fan out: one `snmp_poll_chunk` task per chunk of devices per tenant."""
    interval = float(getattr(settings, "SNMP_POLL_INTERVAL", 300))
    chunk_size = max(1, int(getattr(settings, "SNMP_POLL_CHUNK", 200)))
    sent: dict[str, int] = {}
    for tenant in _active_tenants():
        try:
            with tenant_context(tenant):
                ids = list(Device.objects.filter(poll_enabled=True).order_by("pk").values_list("pk", flat=True))
                chunks = [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]
                for position, chunk in enumerate(chunks):
                    snmp_poll_chunk.apply_async(
                        kwargs={"device_ids": chunk},
                        countdown=position * (interval / 2) / max(1, len(chunks)),
                        expires=interval,
                    )
                sent[tenant.slug] = len(chunks)
        except Exception:  # reported; the other tenants go on
            logger.exception("snmp polling fan-out: tenant %s failed", tenant.slug)
            sent[tenant.slug] = -1
    return sent


@app.task(name="network.snmp_poll_chunk")
def snmp_poll_chunk(device_ids: list[int]) -> dict:
    """Poll and store one chunk of devices (runs in the sender's tenant schema)."""
    devices = list(Device.objects.filter(pk__in=device_ids, poll_enabled=True).order_by("pk"))
    return poller.poll_and_store(devices).as_dict()


@app.task(name="network.snmp_retention_all_tenants")
def snmp_retention_all_tenants() -> dict:
    """Hourly: roll up the last hours of samples and purge what is past retention, every tenant."""
    results: dict[str, dict] = {}
    for tenant in _active_tenants():
        try:
            with tenant_context(tenant):
                results[tenant.slug] = retention.retention_run()
        except Exception as exc:  # reported; the other tenants go on
            logger.exception("snmp retention: tenant %s failed", tenant.slug)
            results[tenant.slug] = {"error": f"{type(exc).__name__}: {exc}"}
    return results
