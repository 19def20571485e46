"""Harness for customer journeys: real tenants, real FreeRADIUS, a NAS on the wire, public interfaces.

A journey crosses process boundaries (FreeRADIUS reads the database with its own connection), so
what it does must be committed: it cannot run inside the rolled-back transaction of the `tenant`
fixture. Instead, per test module:

- `freeradius`: one real FreeRADIUS (Debian's 3.2, the project's configuration, `sql` mode as
  the `isp_radius` role) on free loopback ports, for the whole module;
- `journey_tenant`: for each profile of the tenant matrix (tests/conftest.py TENANT_PROFILES:
  USD tax-exclusive, EUR tax-inclusive, JPY without minor unit), a committed throwaway tenant
  with the profile's currency, country, time zone and tax mode, provisioned by the real
  `tenant_create`, and a registered NAS whose CoA/Disconnect port is a `NasSimulator` on its own
  loopback address. It is made once per module and profile (tests using it are grouped by
  profile) and removed afterwards: RADIUS directory rows, schema, tenant database role, tenant
  and domain rows, data keys (`bench_tenant_cleanup`); its public audit events stay (append-only);
- `journey`: what a test body uses - database access switched on with the tenant's schema
  active, API clients on the tenant's host (staff by role, the customer's portal login,
  anonymous), the NAS's side of RADIUS (Access-Request, Accounting-Request from the NAS's own
  address, the CoA/Disconnect packets it received) and the operator's management commands.

Everything a journey does goes through these public interfaces; set-up data an operator would
configure (plans, taxes, discounts, pools, inventory) may be made with `journey_tenant.committed()`
and the services. Nothing here reads the clock at import time.
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from django.core.management import call_command
from django.db import connection

from compliance.audit import Actor
from network.radius.client import AuthResult, account, authenticate
from network.radius.nas_simulator import NasSimulator, ReceivedRequest
from network.radius.server import DatabaseParams, FreeRadiusServer
from tests.conftest import TENANT_PROFILES, HostClient, TenantProfile

HARNESS_ACTOR = Actor.system("journey harness")
# One NAS address per profile: a NAS address belongs to one tenant on the whole platform, and
# FreeRADIUS caches the NAS -> tenant answer for a minute, so profiles never share one.
NAS_ADDRESSES = {"us_isp": "127.0.0.61", "eu_isp": "127.0.0.62", "jp_isp": "127.0.0.63"}
RADIUS_TIMEOUT = 3.0  # FreeRADIUS delays an Access-Reject by 1 s; the machine is shared and slow


@pytest.fixture(scope="module")
def freeradius(django_db_setup, tmp_path_factory) -> Iterator[FreeRadiusServer]:
    server = FreeRadiusServer(
        mode="sql",
        database=DatabaseParams.from_settings(),
        name="journeys",
        run_dir=tmp_path_factory.mktemp("freeradius"),
    ).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class JourneyTenant:
    """A committed tenant of one matrix profile, its NAS (simulated) and the module's FreeRADIUS."""

    profile: TenantProfile
    tenant: object  # tenants.models.Tenant
    nas_ip: str
    nas_secret: str
    nas: NasSimulator
    radius: FreeRadiusServer
    db_blocker: object = field(repr=False)

    @property
    def slug(self) -> str:
        return self.tenant.slug

    @contextlib.contextmanager
    def committed(self) -> Iterator[None]:
        """Database access in the tenant's schema, outside any test transaction: what is written
        here is committed (and seen by FreeRADIUS). For operator set-up data only."""
        with self.db_blocker.unblock():
            connection.set_tenant(self.tenant)
            try:
                yield
            finally:
                connection.set_schema_to_public()


@pytest.fixture(scope="module", params=list(TENANT_PROFILES))
def journey_tenant(request, freeradius, django_db_blocker) -> Iterator[JourneyTenant]:
    from compliance.pii.bench import bench_tenant_cleanup
    from network import services as network_services
    from tenants.services import tenant_create

    profile = TENANT_PROFILES[request.param]
    nas_ip = NAS_ADDRESSES[profile.key]
    nas_secret = f"journey-{uuid.uuid4().hex[:12]}"
    simulator = NasSimulator(secret=nas_secret.encode(), host=nas_ip).start()
    tenant = None
    try:
        with django_db_blocker.unblock():
            tenant = tenant_create(
                slug=f"journey-{profile.key.replace('_', '-')}-{uuid.uuid4().hex[:6]}",
                name=profile.name,
                currency=profile.currency,
                country=profile.country,
                time_zone=profile.time_zone,
                tax_inclusive=profile.tax_inclusive,
                admin_email=f"owner@journey-{profile.slug}.example",
                actor=HARNESS_ACTOR,
            ).tenant
            connection.set_tenant(tenant)
            try:
                network_services.nas_register(
                    name="bras-1", ip_address=nas_ip, secret=nas_secret, coa_port=simulator.port, actor=HARNESS_ACTOR
                )
            finally:
                connection.set_schema_to_public()
        yield JourneyTenant(
            profile=profile,
            tenant=tenant,
            nas_ip=nas_ip,
            nas_secret=nas_secret,
            nas=simulator,
            radius=freeradius,
            db_blocker=django_db_blocker,
        )
    finally:
        simulator.stop()
        if tenant is not None:
            with django_db_blocker.unblock():
                connection.set_schema_to_public()
                with connection.cursor() as cursor:
                    cursor.execute("SELECT radius.forget_tenant(%s)", [tenant.schema_name])
                problems = bench_tenant_cleanup(
                    schema=tenant.schema_name, slug=tenant.slug, actor=HARNESS_ACTOR, say=lambda _message: None
                )
            assert not problems, problems


@dataclass
class Journey:
    """What a journey test works with: the tenant's public interfaces. See the module docstring."""

    site: JourneyTenant
    make_staff_client: Callable
    make_host_client: Callable
    _staff: dict = field(default_factory=dict, repr=False)

    @property
    def profile(self) -> TenantProfile:
        return self.site.profile

    @property
    def tenant(self):
        return self.site.tenant

    @property
    def nas(self) -> NasSimulator:
        return self.site.nas

    # --- the API, as staff, as the customer, as anyone ------------------------------------------
    def staff(self, role: str) -> HostClient:
        """A staff member with `role` (tenants.roles), logged in by API token; one per role and test."""
        if role not in self._staff:
            self._staff[role] = self.make_staff_client(self.tenant, role)
        return self._staff[role]

    def anonymous(self) -> HostClient:
        return self.make_host_client(self.tenant)

    def portal(self, email: str, password: str) -> HostClient:
        """The customer, logged in on the portal with their e-mail address."""
        client = self.anonymous()
        response = client.post("/api/v1/auth/token/", {"username": email, "password": password}, format="json")
        assert response.status_code == 200, response.content
        client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
        return client

    # --- the NAS ------------------------------------------------------------------------------
    def pppoe_login(self, username: str, password: str) -> AuthResult:
        """An Access-Request (PAP) from the NAS to FreeRADIUS, as a PPPoE session starts."""
        return authenticate(
            server="127.0.0.1",
            port=self.site.radius.auth_port,
            secret=self.site.nas_secret.encode(),
            username=username,
            password=password,
            nas_ip=self.site.nas_ip,
            source_ip=self.site.nas_ip,
            timeout=RADIUS_TIMEOUT,
            retries=1,
        )

    def nas_accounting(self, status: str, attributes: dict) -> bool:
        """An Accounting-Request from the NAS; True when FreeRADIUS stored it (it answered)."""
        return account(
            server="127.0.0.1",
            port=self.site.radius.acct_port,
            secret=self.site.nas_secret.encode(),
            status=status,
            attributes={"NAS-IP-Address": self.site.nas_ip, **attributes},
            source_ip=self.site.nas_ip,
            timeout=RADIUS_TIMEOUT,
            retries=1,
        )

    def nas_mark(self) -> int:
        """How many datagrams the NAS has received so far (for `nas_requests(since=...)`)."""
        return len(self.nas.received)

    def nas_requests(self, *, since: int, expect: int = 0) -> list[ReceivedRequest]:
        """The CoA/Disconnect requests the NAS received after the mark `since`, waiting (5 s at
        most) until at least `expect` arrived. A retransmission of a request it already answered
        (the sender's short timeout on a busy machine) is the same request and is left out."""
        self.nas.wait_for(since + expect)
        return [packet for packet in self.nas.received[since:] if packet.verdict != "duplicate"]

    def radius_log(self) -> str:
        return self.site.radius.log_tail()

    # --- the operator's command line ----------------------------------------------------------
    def manage(self, command: str, *args: str) -> str:
        """`python manage.py <command> <args>` in this process; returns what it printed."""
        out = io.StringIO()
        call_command(command, *args, stdout=out, stderr=out)
        connection.set_tenant(self.tenant)
        return out.getvalue()


@pytest.fixture
def journey(journey_tenant, django_db_blocker, staff_client, host_client) -> Iterator[Journey]:
    """A journey in the tenant of the current profile: database access on (committed, no
    rollback), the tenant's schema active; the schema is public again afterwards."""
    with django_db_blocker.unblock():
        connection.set_tenant(journey_tenant.tenant)
        try:
            yield Journey(site=journey_tenant, make_staff_client=staff_client, make_host_client=host_client)
        finally:
            connection.set_schema_to_public()
