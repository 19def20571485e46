"""Provision a tenant:

    python manage.py tenant_create --slug acme --name "Acme Fiber" --currency USD --country US \
        --admin-email ops@acme.example
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from compliance.audit import Actor
from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Provision a new ISP tenant (schema cloned from the template) and print its owner's one-time password."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--currency", required=True, help="ISO 4217 code, e.g. USD, EUR, JPY")
        parser.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. US")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--time-zone", default="UTC")
        parser.add_argument("--billing-day", type=int)
        parser.add_argument("--payment-terms-days", type=int)
        parser.add_argument("--suspend-after-days", type=int)
        parser.add_argument("--tax-inclusive", action="store_true")

    def handle(self, *args, **o):
        try:
            created = tenant_create(
                slug=o["slug"],
                name=o["name"],
                currency=o["currency"],
                country=o["country"],
                admin_email=o["admin_email"],
                time_zone=o["time_zone"],
                billing_day=o["billing_day"],
                payment_terms_days=o["payment_terms_days"],
                suspend_after_days=o["suspend_after_days"],
                tax_inclusive=o["tax_inclusive"],
                actor=Actor.system("manage.py tenant_create"),
            )
        except ValidationError as exc:
            raise CommandError(format_validation_error(exc)) from None
        tenant = created.tenant
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} (schema {tenant.schema_name})."))
        self.stdout.write(f"  admin:    http://{tenant.primary_host}/admin/")
        self.stdout.write(f"  username: {created.admin_username}")
        self.stdout.write(f"  password: {created.admin_password}   (one-time: shown only now)")


def format_validation_error(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)
