"""Celery tasks: thin, ids in, call a service. Tenant-aware tasks run in the schema they were sent from."""

from django.db import connection

from isp.celery import app
from tenants import roles


@app.task(name="tenants.roles_sync")
def tenant_roles_sync() -> dict:
    """Re-sync the staff role groups of the tenant this task was sent for."""
    counts = roles.roles_sync()
    return {"schema": connection.schema_name, "roles": counts}
