"""Benchmark RADIUS authentication and accounting through the real FreeRADIUS:

    python manage.py bench_radius [--subscribers 1000] [--in-flight 200] [--rounds 20]

Prints one line per step and, as the last line, one JSON object (see network/bench.py).
"""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from network.bench import bench_radius


class Command(BaseCommand):
    help = (
        "Build a throwaway tenant with N PPPoE subscribers, drive the real FreeRADIUS (sql) and a files-module "
        "baseline with the same async client, burst-reauthenticate everyone, send accounting, remove the tenant. "
        "Last output line: JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--subscribers", type=int, default=1000)
        parser.add_argument("--in-flight", type=int, default=200)
        parser.add_argument("--rounds", type=int, default=20, help="authentications per subscriber (default 20)")

    def handle(self, *args, **options):
        for name in ("subscribers", "in_flight", "rounds"):
            if options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        self.stdout.write(f"bench_radius: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        result = bench_radius(
            subscribers=options["subscribers"],
            in_flight=options["in_flight"],
            rounds=options["rounds"],
            log=self.stdout.write,
        )
        figures = result.as_json_dict()
        self.stdout.write(
            f"{figures['auth_per_s']:,.0f} auth/s (baseline {figures['baseline_auth_per_s']:,.0f}, ratio "
            f"{figures['ratio']}), p50 {figures['auth_p50_ms']} ms, p99 {figures['auth_p99_ms']} ms, success "
            f"{figures['auth_success_rate']:.3%}; burst lost {figures['burst_lost']}; accounting "
            f"{figures['acct_new_sessions_per_s']:,.0f} new sessions/s, {figures['acct_per_s']:,.0f} records/s"
        )
        self.stdout.write(json.dumps(figures))
