"""python manage.py run_billing --tenant acme --period 2026-11 [--issue-date 2026-11-01] [--batch-size 500]"""

import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context
from tqdm import tqdm

from billing import selectors
from billing.services import billing_run_execute
from compliance.audit import Actor
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Bill one tenant for one period (idempotent; safe to repeat, run concurrently or restart)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--period", required=True, help="YYYY-MM: the month the billed periods start in")
        parser.add_argument("--issue-date", type=datetime.date.fromisoformat, help="default: today in the tenant")
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **o):
        tenant = Tenant.objects.filter(slug=o["tenant"]).exclude(schema_name="public").first()
        if tenant is None:
            raise CommandError(f"no tenant {o['tenant']!r}")
        if o["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        with tenant_context(tenant):
            ids = selectors.billable_customer_ids()
            bar = tqdm(total=len(ids), unit="customer", disable=o["no_progress"], desc=f"billing {o['period']}")
            try:
                run = billing_run_execute(
                    period=o["period"],
                    issue_date=o["issue_date"],
                    batch_size=o["batch_size"],
                    customer_ids=ids,
                    actor=Actor.system("manage.py run_billing"),
                    progress=lambda result: bar.update(result.considered),
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
            finally:
                bar.close()
        self.stdout.write(
            f"run {run.pk} {run.period_label}: {run.customers_considered} customers, {run.invoices_issued} invoices "
            f"issued, {run.invoices_skipped} skipped, {run.customers_failed} failed, total {run.total_amount} "
            f"{tenant.currency}"
        )
        reasons: dict[str, int] = {}
        for item in run.report.get("skipped", []):
            reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
        for reason, count in sorted(reasons.items()):
            self.stdout.write(f"  skipped: {count} x {reason}")
        for item in run.report.get("failed", []):
            self.stdout.write(self.style.ERROR(f"  failed: customer {item['customer']}: {item['reason']}"))
