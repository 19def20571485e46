"""python manage.py poll_devices [--tenant acme] [--workers 32] [--timeout 2] [--retries 1] [--discover]

Poll every poll-enabled device of one tenant (or of every active tenant) over SNMP, store the
samples and print a summary (devices per second included)."""

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context
from tqdm import tqdm

from network.models import Device
from network.snmp.poller import default_retries, default_timeout, default_workers, poll_and_store
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Poll devices over SNMP (many at once), store interface rates, print a summary."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="tenant slug (default: every active tenant)")
        parser.add_argument("--workers", type=int, default=None, help="devices in flight (default SNMP_POLL_WORKERS)")
        parser.add_argument("--timeout", type=float, default=None, help="seconds per SNMP try (default 2)")
        parser.add_argument("--retries", type=int, default=None, help="SNMP retries after the first try (default 1)")
        parser.add_argument("--discover", action="store_true", help="rediscover interfaces (IF-MIB) first")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument("--show-errors", type=int, default=10, help="unreachable devices to list (default 10)")

    def handle(self, *args, **o):
        workers = o["workers"] or default_workers()
        timeout = default_timeout() if o["timeout"] is None else o["timeout"]
        retries = default_retries() if o["retries"] is None else o["retries"]
        if workers < 1 or timeout <= 0 or retries < 0:
            raise CommandError("--workers >= 1, --timeout > 0 and --retries >= 0")
        tenants = Tenant.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
        if o["tenant"]:
            tenants = tenants.filter(slug=o["tenant"])
            if not tenants.exists():
                raise CommandError(f"no tenant {o['tenant']!r}")
        else:
            tenants = tenants.filter(status=Tenant.Status.ACTIVE)
        for tenant in tenants.order_by("slug"):
            with tenant_context(tenant):
                devices = list(Device.objects.filter(poll_enabled=True).order_by("pk"))
                if not devices:
                    self.stdout.write(f"{tenant.slug}: no devices to poll")
                    continue
                bar = tqdm(
                    total=len(devices),
                    unit="device",
                    desc=f"polling {tenant.slug}",
                    file=sys.stderr,
                    disable=o["no_progress"],
                )
                try:
                    summary = poll_and_store(
                        devices,
                        workers=workers,
                        timeout=timeout,
                        retries=retries,
                        discover=o["discover"],
                        on_result=lambda _poll, bar=bar: bar.update(1),
                    )
                finally:
                    bar.close()
            self.stdout.write(
                f"{tenant.slug}: {summary.devices} devices in {summary.seconds:.2f} s "
                f"({summary.devices_per_second:,.1f} devices/s, {workers} in flight): {summary.reachable} up, "
                f"{summary.unreachable} down, {summary.rebooted} rebooted; {summary.interfaces} interfaces, "
                f"{summary.samples} samples stored"
                + (f"; {summary.discovered} interfaces discovered" if summary.discovered else "")
            )
            for name, error in list(summary.errors.items())[: o["show_errors"]]:
                self.stdout.write(self.style.WARNING(f"  {name}: {error}"))
