"""Recompute the audit trail's hash chain and report where it was tampered with:

    python manage.py audit_verify                  # public, the template and every tenant
    python manage.py audit_verify --tenant acme    # one tenant (slug or schema name; `public` too)
    python manage.py audit_verify --all

Prints `<schema>: ok: N records ...` per sound chain (with its head, to record outside the
database), or the first edited, deleted or reordered record with its seq and id, then the
others found. Exits 1 if any chain is broken. The logic lives in compliance/chain.py.
"""

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import get_tenant_model, schema_exists

from compliance.chain import chain_verify
from compliance.tasks import audit_schemas

MAX_LISTED = 10


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain (public, the template and every tenant, or one tenant); "
        "report the first edited, deleted or reordered record; exit 1 on tampering."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--tenant", metavar="SCHEMA", help="one tenant, by schema name or slug (or `public`)")
        which.add_argument("--all", action="store_true", help="every schema (the default)")

    def handle(self, *args, **options):
        schemas = [self._schema_of(options["tenant"])] if options["tenant"] else self._all_schemas()
        broken = []
        for schema in schemas:
            report = chain_verify(schema=schema)
            if report.ok:
                span = f"seq {report.first_seq}..{report.head_seq}" if report.records else "empty"
                purged = f", purged through seq {report.purged_through}" if report.purged_through else ""
                self.stdout.write(f"{schema}: ok: {report.records} records ({span}{purged}; head {report.head_hash})")
                continue
            broken.append(schema)
            first, *others = report.findings
            self.stderr.write(f"{schema}: TAMPERED: first {first}")
            for finding in others[:MAX_LISTED]:
                self.stderr.write(f"{schema}:   then {finding}")
            more = len(others) - MAX_LISTED
            if more > 0 or report.truncated:
                self.stderr.write(f"{schema}:   ... and more ({len(report.findings)} findings listed at most)")
        if broken:
            raise CommandError(f"audit trail tampered with in {len(broken)} schema(s): {', '.join(broken)}")

    @staticmethod
    def _schema_of(name: str) -> str:
        tenant = get_tenant_model().objects.filter(slug=name).first()
        schema = tenant.schema_name if tenant else name
        if not schema_exists(schema):
            raise CommandError(f"no tenant or schema {name!r}")
        return schema

    @staticmethod
    def _all_schemas() -> list[str]:
        return audit_schemas()
