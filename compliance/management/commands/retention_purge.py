"""Purge data past the tenants' retention periods (closed RADIUS sessions, export archives)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from compliance.dsr.retention import retention_purge_all_tenants


class Command(BaseCommand):
    help = "Purge data past each tenant's retention policy (compliance.PrivacyPolicy). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", action="append", dest="tenants", help="Slug; repeat for several. Default: all.")

    def handle(self, *args, tenants=None, **options):
        results = retention_purge_all_tenants(slugs=tenants)
        for slug, outcome in results.items():
            if "error" in outcome:
                self.stderr.write(f"{slug}: {outcome['error']}")
            else:
                purged = ", ".join(f"{name} {count}" for name, count in outcome.items())
                self.stdout.write(f"{slug}: {purged}")
        self.stdout.write(json.dumps(results, sort_keys=True))
        if any("error" in outcome for outcome in results.values()):
            raise SystemExit(1)
