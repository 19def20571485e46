"""Benchmark tenant provisioning (clone from the template) against a plain migrate_schemas:

    python manage.py bench_tenants [--tenants 10] [--keep]

Prints one line per measurement and, as the last line, one JSON object (see tenants/bench.py).
"""

import json
import sys
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from tenants.bench import bench_tenant_create


class Command(BaseCommand):
    help = (
        "Measure seconds per tenant_create (schema cloned from the template) against CREATE SCHEMA + "
        "migrate_schemas; remove everything created unless --keep. Last output line: JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenants", type=int, default=10, help="tenants to create (default 10)")
        parser.add_argument("--keep", action="store_true", help="keep the created tenants and schemas")

    def handle(self, *args, **options):
        if options["tenants"] < 1:
            raise CommandError("--tenants must be at least 1")
        self.stdout.write(f"bench_tenants: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        result = bench_tenant_create(tenants=options["tenants"], keep=options["keep"], log=self.stdout.write)
        clone = sorted(result.clone_s)
        self.stdout.write(
            f"tenant_create (clone): median {result.clone_s_per_tenant_median:.3f} s, "
            f"p90 {result.clone_s_p90:.3f} s, min {clone[0]:.3f} s, max {clone[-1]:.3f} s "
            f"over {result.tenants} tenant(s)"
        )
        self.stdout.write(
            f"migrate_schemas (baseline): median {result.migrate_schemas_s_median:.3f} s "
            f"over {len(result.migrate_s)} schema(s)"
        )
        self.stdout.write(f"speed-up (baseline median / clone median): {result.speedup:.1f}x")
        verdict = "met" if result.meets_target else "NOT met"
        self.stdout.write(f"target: p90 of tenant_create <= {result.target_s:g} s: {verdict}")
        for problem in result.cleanup_problems:
            self.stderr.write(f"cleanup problem: {problem}")
        self.stdout.write(json.dumps(result.as_json_dict()))
        if result.cleanup_problems:
            sys.exit(1)  # after the JSON line, so it stays the last line of stdout
