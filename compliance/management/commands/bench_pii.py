"""Benchmark the PII encryption (raw crypto; listing customers with and without personal data):

    python manage.py bench_pii [--customers 10000] [--page-size 100]

Prints one line per measurement and, as the last line, one JSON object (see compliance/pii/bench.py).
"""

import json
import sys
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from compliance.pii.bench import bench_pii


class Command(BaseCommand):
    help = (
        "Measure seal/unseal and key-ring wrap/unwrap per second, then list N customers of a throwaway "
        "tenant through the staff API with and without personal data; remove the tenant. Last output line: JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=10_000, help="customers to build (default 10000)")
        parser.add_argument("--page-size", type=int, default=100, help="customers per API page (default 100)")

    def handle(self, *args, **options):
        if options["customers"] < 1:
            raise CommandError("--customers must be at least 1")
        if not 1 <= options["page_size"] <= 200:
            raise CommandError("--page-size is between 1 and 200")
        self.stdout.write(f"bench_pii: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        result = bench_pii(customers=options["customers"], page_size=options["page_size"], log=self.stdout.write)
        self.stdout.write(
            f"listing {result.customers} customers ({result.list_path}): with PII {result.list_with_pii_per_s:,.0f}/s, "
            f"without {result.list_without_pii_per_s:,.0f}/s; with/without = {result.ratio:.2f} "
            f"(PII makes listing {1 / result.ratio:.2f}x slower)"
        )
        for note in result.notes:
            self.stdout.write(f"note: {note}")
        for problem in result.cleanup_problems:
            self.stderr.write(f"cleanup problem: {problem}")
        self.stdout.write(json.dumps(result.as_json_dict()))
        if result.cleanup_problems:
            sys.exit(1)  # after the JSON line, so it stays the last line of stdout
