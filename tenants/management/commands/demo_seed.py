"""Seed the demo tenant `acme` (idempotent) and print where to log in.

The owner's password is generated on the first run and kept in .local/demo-credentials.json
(never committed), so later runs print the same credentials and change nothing.
"""

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context, tenant_context

from compliance.audit import Actor
from tenants import roles
from tenants.models import Tenant
from tenants.services import staff_user_create, tenant_create

DEMO_SLUG = "acme"
DEMO_OWNER = "owner@acme.example"


class Command(BaseCommand):
    help = "Create the demo tenant 'acme' with a staff owner if missing, and print URL and credentials."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, **options):
        cred_file = settings.BASE_DIR / ".local" / "demo-credentials.json"
        stored = json.loads(cred_file.read_text()) if cred_file.exists() else {}
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            password = stored.get("password") or secrets.token_urlsafe(12)
            created = tenant_create(
                slug=DEMO_SLUG,
                name="Acme Fiber",
                currency="USD",
                country="US",
                time_zone="America/New_York",
                admin_email=DEMO_OWNER,
                admin_password=password,
                actor=Actor.system("manage.py demo_seed"),
            )
            tenant = created.tenant
            self.stdout.write(self.style.SUCCESS("Created the demo tenant 'acme'."))
        else:
            password = stored.get("password") or secrets.token_urlsafe(12)
            with schema_context(tenant.schema_name):
                owner = get_user_model().objects.filter(username=DEMO_OWNER).first()
                if owner is None:
                    staff_user_create(
                        username=DEMO_OWNER, email=DEMO_OWNER, role=roles.OWNER, password=password,
                        actor=Actor.system("manage.py demo_seed"),
                    )
                    self.stdout.write("Added the demo owner to the existing tenant 'acme'.")
                elif not owner.check_password(password):
                    owner.set_password(password)
                    owner.save(update_fields=["password"])
                    self.stdout.write("The demo owner's password was reset to the demo credentials.")
        if stored.get("password") != password:
            cred_file.parent.mkdir(parents=True, exist_ok=True)
            cred_file.write_text(json.dumps({"username": DEMO_OWNER, "password": password}))
            cred_file.chmod(0o600)
        from customers.demo import seed_demo_customers

        with tenant_context(tenant):
            seeded = seed_demo_customers()
        if seeded["customers_created"]:
            self.stdout.write(f"Seeded {seeded['customers_created']} demo customers on {seeded['plans']} plans.")
        from billing.demo import seed_demo_billing

        with tenant_context(tenant):
            billed = seed_demo_billing()
        if any(billed.values()):
            self.stdout.write(
                f"Seeded billing: {billed['tax_rates']} tax rates, {billed['usage_rows']} usage rows, "
                f"{billed['invoices_issued']} invoices, {billed['payments']} payments."
            )
        from network.demo import seed_demo_network

        with tenant_context(tenant):
            network = seed_demo_network()
        if any(network.values()):
            self.stdout.write(
                f"Seeded network: {network['nas']} NAS, {network['pppoe_accounts']} PPPoE accounts, "
                f"{network['sessions']} sessions (DEV-ONLY PPPoE passwords in .local/demo-pppoe.json)."
            )
        from network.demo import seed_demo_devices

        with tenant_context(tenant):
            devices = seed_demo_devices()
        self.stdout.write(
            f"Network devices: {devices['devices']} registered, {devices['reachable']} reachable "
            f"(the simulated routers `make demo` starts), {devices['samples']} history samples."
        )
        from isp.security.otp import demo_device, provisioning

        with tenant_context(tenant):
            second_factor = provisioning(demo_device(get_user_model().objects.get(username=DEMO_OWNER)))
        port = options["port"]
        self.stdout.write("")
        self.stdout.write(f"  Staff admin : http://{tenant.primary_host}:{port}/admin/")
        self.stdout.write(f"  API docs    : http://{tenant.primary_host}:{port}/api/docs/")
        self.stdout.write(f"  Username    : {DEMO_OWNER}")
        self.stdout.write(f"  Password    : {password}   (DEV-ONLY demo credentials, kept in .local/)")
        self.stdout.write(f"  TOTP secret : {second_factor['secret']}   (owners need a second factor in the admin:")
        self.stdout.write("                add it to an authenticator app, or `oathtool --totp -b <secret>`)")
        self.stdout.write(f"  TOTP URI    : {second_factor['uri']}")
        self.stdout.write("")
