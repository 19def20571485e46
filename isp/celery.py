"""The Celery app. Tenant-aware: a task sent from a tenant's context runs in that schema."""

import os

from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "isp.settings.base")

app = TenantAwareCeleryApp("isp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
