"""Benchmark the provisioning workflow:

    python manage.py bench_provisioning [--subscriptions 1000] [--workers 2] [--mode batch|single]

Prints one line per step and, as the last line, one JSON object (see network/bench_provisioning.py).
"""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from network.bench_provisioning import MODES, bench_provisioning


class Command(BaseCommand):
    help = (
        "Build a throwaway tenant with N pending fiber subscriptions, activate them all through the provisioning "
        "workflow (IP, RADIUS, ONU, active), check nothing is missing or doubled, compare with inserting the same "
        "rows directly, remove the tenant. Last output line: JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--subscriptions", type=int, default=1000)
        parser.add_argument("--workers", type=int, default=2, help="forked processes (default 2, one per core)")
        parser.add_argument(
            "--mode",
            choices=MODES,
            default="batch",
            help="batch: provision_activate_many (default); single: provision() one subscription at a time",
        )

    def handle(self, *args, **options):
        if options["subscriptions"] < 1 or options["workers"] < 1:
            raise CommandError("--subscriptions and --workers must be at least 1")
        self.stdout.write(f"bench_provisioning: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        result = bench_provisioning(
            subscriptions=options["subscriptions"],
            workers=options["workers"],
            mode=options["mode"],
            log=self.stdout.write,
        )
        figures = result.as_json_dict()
        self.stdout.write(
            f"{figures['activations_per_s']:,.0f} activations/s (baseline {figures['baseline_per_s']:,.0f}/s, ratio "
            f"{figures['ratio']}); complete: {figures['complete']}"
        )
        self.stdout.write(json.dumps(figures))
