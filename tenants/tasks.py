"""Celery tasks: thin, ids in, call a service. Tenant-aware tasks run in the schema they were sent from."""

from django.conf import settings
from django.db import connection

from isp.celery import app
from tenants import roles


class NotInTenantSchema(RuntimeError):
    """A tenant task was sent from outside any tenant (the public schema)."""


@app.task(name="tenants.roles_sync")
def tenant_roles_sync() -> dict:
    """Re-sync the staff role groups of the tenant this task was sent for."""
    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        raise NotInTenantSchema("tenants.roles_sync must be sent from a tenant's context, not the public schema")
    counts = roles.roles_sync()
    return {"schema": connection.schema_name, "roles": counts}
