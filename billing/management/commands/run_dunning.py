"""python manage.py run_dunning --tenant <slug> [--date YYYY-MM-DD]"""

from __future__ import annotations

import argparse
import datetime

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from billing.dunning import dunning_run, tenant_today
from tenants.models import Tenant


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: use YYYY-MM-DD.") from None


class Command(BaseCommand):
    help = "Send the reminders and make the suspensions due for one tenant's overdue invoices."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="The tenant's slug.")
        parser.add_argument("--date", type=_date, help="Run as of this day (default: the tenant's today).")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None or tenant.is_public:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        with tenant_context(tenant):
            report = dunning_run(today=options["date"] or tenant_today())
        for line in report.summary():
            self.stdout.write(line)
        if report.failed:
            raise CommandError(f"{len(report.failed)} invoice(s) failed; see above.")
