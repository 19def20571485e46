"""Benchmark a billing run against a plain COPY of the same rows:

    python manage.py bench_billing [--customers 10000] [--workers 1] [--batch-size 500] [--profile out.prof]

Prints one line per step and, as the last line, one JSON object (see billing/bench.py).
"""

import json
import sys
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from billing.bench import bench_billing, profile_summary


class Command(BaseCommand):
    help = (
        "Build a throwaway tenant with N customers, run a full billing cycle (optionally over N forked "
        "workers), compare with a plain COPY of the same invoice and line rows, check every invoice against "
        "an independent recomputation, remove the tenant. Last output line: JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=10_000, help="customers to build (default 10000)")
        parser.add_argument("--workers", type=int, default=1, help="processes billing one run (default 1)")
        parser.add_argument("--batch-size", type=int, default=500, help="customers per batch (default 500)")
        parser.add_argument("--seed", type=int, default=2026, help="random seed of the customer mix")
        parser.add_argument("--profile", help="cProfile the run (workers=1) into this file")

    def handle(self, *args, **options):
        if options["customers"] < 1:
            raise CommandError("--customers must be at least 1")
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["profile"] and options["workers"] > 1:
            raise CommandError("--profile profiles the in-process run: use it with --workers 1")
        self.stdout.write(f"bench_billing: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        result = bench_billing(
            customers=options["customers"],
            workers=options["workers"],
            batch_size=options["batch_size"],
            seed=options["seed"],
            profile=options["profile"],
            log=self.stdout.write,
        )
        if options["profile"]:
            self.stdout.write(profile_summary(options["profile"]))
        self.stdout.write(
            f"{result.invoices} invoices ({result.lines_per_invoice:.2f} lines, "
            f"{result.taxes / max(result.invoices, 1):.2f} taxes each) in {result.run_s:.2f} s: "
            f"{result.invoices_per_s:,.0f} invoices/s; baseline COPY {result.baseline_invoices_per_s:,.0f} invoices/s "
            f"({result.baseline_rows_per_s:,.0f} rows/s); ratio {result.ratio:.3f}; peak RSS "
            f"{result.peak_rss_mb_self:.0f} MB (this process), {result.peak_rss_mb_children:.0f} MB (largest child); "
            f"{result.mismatches} mismatch(es)"
        )
        for note in result.notes:
            self.stdout.write(f"note: {note}")
        for problem in result.cleanup_problems:
            self.stderr.write(f"cleanup problem: {problem}")
        self.stdout.write(json.dumps(result.as_json_dict()))
        if result.cleanup_problems or result.mismatches or result.notes:
            sys.exit(1)  # after the JSON line, so it stays the last line of stdout
