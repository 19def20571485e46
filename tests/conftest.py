"""Shared test infrastructure.

The tenant matrix: three real tenant schemas (us_isp, eu_isp, jp_isp) are provisioned once per
test session through the real provisioning service (cloned from the template schema). Tests
that take the `tenant` fixture run once per profile, inside a transaction that is rolled back
after the test, with the connection switched to that tenant's schema.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from django.db import connection
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from tests.kind_report import write_kind_report

hypothesis_settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
hypothesis_settings.register_profile("dev", max_examples=50, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@dataclass(frozen=True)
class TenantProfile:
    key: str
    slug: str
    name: str
    currency: str
    country: str
    time_zone: str
    tax_inclusive: bool
    minor_unit: int


TENANT_PROFILES: dict[str, TenantProfile] = {
    p.key: p
    for p in (
        TenantProfile("us_isp", "us-isp", "Prairie Fiber LLC", "USD", "US", "America/Chicago", False, 2),
        TenantProfile("eu_isp", "eu-isp", "Rheinland Glasfaser GmbH", "EUR", "DE", "Europe/Berlin", True, 2),
        TenantProfile("jp_isp", "jp-isp", "Sakura Hikari KK", "JPY", "JP", "Asia/Tokyo", False, 0),
    )
}
MATRIX_OWNER_PASSWORD = "matrix-owner-password-0"


def pytest_sessionfinish(session, exitstatus):
    write_kind_report(session)


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_keepdb):
    """Create and migrate the test database - always, not only when a selected test marks it:
    tests that commit data for other processes (a Celery worker, pg_dump) use no `db` fixture, and
    without this they would run against the real database. Then the key store, the template and
    the matrix tenants. The test key store is dropped at the end of the session."""
    from django.conf import settings
    from django.test.utils import setup_databases, teardown_databases

    from compliance.audit import Actor
    from compliance.pii.keystore import keystore_database_drop, keystore_database_ensure
    from network.radius.db import radius_interface_install
    from tenants.models import Tenant
    from tenants.services import public_tenant_ensure, tenant_create
    from tenants.template import template_migrate

    with django_db_blocker.unblock():
        db_cfg = setup_databases(
            verbosity=request.config.option.verbose, interactive=False, keepdb=django_db_keepdb, aliases={"default"}
        )
        name = settings.DATABASES["default"]["NAME"]
        if not name.startswith("test_"):  # never touch anything but a test database
            raise RuntimeError(f"refusing to prepare {name!r}: not a test database")
        keystore_database_drop()  # a key store left by an interrupted run
        keystore_database_ensure()
        public_tenant_ensure()
        radius_interface_install()
        template_migrate(verbosity=0)
        for profile in TENANT_PROFILES.values():
            if not Tenant.objects.filter(slug=profile.slug).exists():
                tenant_create(
                    slug=profile.slug,
                    name=profile.name,
                    currency=profile.currency,
                    country=profile.country,
                    time_zone=profile.time_zone,
                    tax_inclusive=profile.tax_inclusive,
                    admin_email=f"owner@{profile.slug}.example",
                    admin_password=MATRIX_OWNER_PASSWORD,
                    actor=Actor.system("test matrix"),
                )
        connection.set_schema_to_public()
    yield
    with django_db_blocker.unblock():
        keystore_database_drop()
        if not django_db_keepdb:
            teardown_databases(db_cfg, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True, scope="session")
def _force_login_includes_the_second_factor():
    """`client.force_login(user)` means "signed in": for staff whose role needs a second factor in
    the admin (isp/security/otp.py), it also gives them a confirmed TOTP device and marks the
    session verified, as a completed two-step login would. The two-step login itself is tested
    through the real login form (tests/security/test_login_protection.py)."""
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from isp.security.otp import DEVICE_NAME, second_factor_required

    original = Client.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        if second_factor_required(user):
            device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
            device = device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=True)
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "force_login", force_login)
        yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters and other cached state never leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()


def _activate(slug: str):
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug=slug)
    connection.set_tenant(tenant)
    return tenant


@pytest.fixture(params=list(TENANT_PROFILES))
def tenant_profile(request) -> TenantProfile:
    return TENANT_PROFILES[request.param]


@pytest.fixture
def tenant(tenant_profile, db):
    """The tenant of the current matrix profile, its schema active for the test; rolled back after."""
    tenant = _activate(tenant_profile.slug)
    yield tenant
    connection.set_schema_to_public()


@pytest.fixture
def other_tenant(tenant_profile, db):
    """Another matrix tenant (not the current one), for isolation tests."""
    from tenants.models import Tenant

    keys = list(TENANT_PROFILES)
    other = TENANT_PROFILES[keys[(keys.index(tenant_profile.key) + 1) % len(keys)]]
    return Tenant.objects.get(slug=other.slug)


@pytest.fixture
def public_schema(db):
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


class HostClient(APIClient):
    """An API client bound to one host; it switches nothing itself (the middleware routes by host)."""

    def __init__(self, host: str, **kwargs):
        super().__init__(HTTP_HOST=host, **kwargs)
        self.host = host

    def request(self, *args, **kwargs):
        # The tenant middleware switches the shared connection's schema; give the test its own back.
        previous = connection.tenant
        try:
            return super().request(*args, **kwargs)
        finally:
            connection.set_tenant(previous)


@pytest.fixture
def host_client():
    def make(tenant_or_host) -> HostClient:
        host = tenant_or_host if isinstance(tenant_or_host, str) else tenant_or_host.primary_host
        return HostClient(host)

    return make


@pytest.fixture
def staff_client(host_client):
    """An API client logged in (by token) as a new staff member with the given role, on the tenant's host."""
    from rest_framework.authtoken.models import Token

    from tests.factories import StaffUserFactory

    def make(tenant, role: str):
        connection.set_tenant(tenant)
        user = StaffUserFactory(role=role)
        token = Token.objects.create(user=user)
        client = host_client(tenant)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        client.user = user
        return client

    return make
