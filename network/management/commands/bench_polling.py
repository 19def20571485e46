"""Benchmark SNMP polling through the real poller:

    python manage.py bench_polling [--devices 1000] [--agents 2] [--workers 32]

Prints one line per step and, as the last line, one JSON object (see network/bench_polling.py).
"""

import json
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from network.bench_polling import bench_polling


class Command(BaseCommand):
    help = (
        "Build a throwaway tenant with N devices served by snmpd agents on loopback, poll and store them through "
        "the real poller, compare with one easysnmp session's raw request rate, remove the tenant. Last line: JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=1000)
        parser.add_argument("--agents", type=int, default=2, help="snmpd processes (default 2, one per core)")
        parser.add_argument("--workers", type=int, default=32, help="devices in flight (default 32)")
        parser.add_argument(
            "--latency-ms", type=float, default=0.0, help="latency added per device by a UDP relay (e.g. 20)"
        )

    def handle(self, *args, **options):
        if options["devices"] < 1 or options["agents"] < 1 or options["workers"] < 1 or options["latency_ms"] < 0:
            raise CommandError("--devices, --agents and --workers must be at least 1; --latency-ms not negative")
        self.stdout.write(f"bench_polling: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        try:
            result = bench_polling(
                devices=options["devices"],
                agents=options["agents"],
                workers=options["workers"],
                latency_ms=options["latency_ms"],
                log=self.stdout.write,
            )
        except (RuntimeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        figures = result.as_json_dict()
        self.stdout.write(
            f"{figures['polls_per_s']:,.0f} device polls/s including storage (storage {figures['storage_share']:.0%}), "
            f"success {figures['success_rate']:.2%}; one session's raw rate {figures['baseline_requests_per_s']:,.0f} "
            f"requests/s; ratio {figures['ratio']}"
            + (
                f"; {figures['devices']} devices in {figures['poll_seconds'] + figures['store_seconds']:.2f} s "
                f"with {figures['latency_ms']:g} ms added"
                if figures["latency_ms"]
                else ""
            )
        )
        self.stdout.write(json.dumps(figures))
