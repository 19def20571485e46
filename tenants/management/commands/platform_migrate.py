"""Migrate everything, idempotently: shared schema, template schema, every tenant, staff roles."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django_tenants.utils import schema_context

from compliance.pii.keystore import keystore_database_ensure
from network.radius.db import radius_interface_install, radius_subscribers_rebuild
from tenants import roles
from tenants.isolation import isolation_install
from tenants.models import Tenant
from tenants.services import public_tenant_ensure
from tenants.template import clone_align_names, clone_triggers, template_migrate


class Command(BaseCommand):
    help = "Migrate the shared schema, the tenant template and every tenant schema; sync staff roles."

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        keystore_database_ensure()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        public_tenant_ensure()
        radius_interface_install()
        template_migrate(verbosity=verbosity)
        tenants = Tenant.objects.exclude(schema_name="public").order_by("slug")
        # Tenants cloned before clone names were aligned: same names as the template first,
        # so migrations that address constraints by name work everywhere.
        for tenant in tenants:
            with transaction.atomic():
                clone_align_names(settings.TENANT_BASE_SCHEMA, tenant.schema_name)
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=verbosity)
        for tenant in tenants:
            # Clones carry no triggers: add those a migration made on the template before the clone.
            with transaction.atomic():
                clone_triggers(settings.TENANT_BASE_SCHEMA, tenant.schema_name)
                # FreeRADIUS's per-account rows follow the reply rules of this release.
                radius_subscribers_rebuild(tenant.schema_name)
            with schema_context(tenant.schema_name):
                roles.roles_sync()
        # Tenant roles may use the tables the tenant migrations just added (docs/isolation.md).
        isolation_install()
        self.stdout.write(self.style.SUCCESS(f"Migrated the platform, the template and {len(tenants)} tenant(s)."))
