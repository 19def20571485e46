"""Tenant provisioning: cloned from the template, all or nothing, validated, audited."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from compliance.audit import Actor
from compliance.models import AuditEvent
from tenants import roles
from tenants.models import Domain, Tenant
from tenants.services import tenant_create
from tests.conftest import TENANT_PROFILES

pytestmark = [pytest.mark.django_db]

SYSTEM = Actor.system("test")


def tables_of(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def constraints_of(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint c JOIN pg_namespace n "
            "ON n.oid = c.connamespace WHERE n.nspname = %s",
            [schema],
        )
        return {(table.split(".")[-1], name) for table, name in cursor.fetchall()}


def indexes_of(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = %s", [schema])
        return set(cursor.fetchall())


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_new_tenant_gets_a_schema_like_the_template_a_domain_roles_and_an_owner(public_schema):
    # given / when
    created = tenant_create(
        slug="nordic-net",
        name="Nordic Net AB",
        currency="SEK",
        country="SE",
        time_zone="Europe/Stockholm",
        admin_email="Boss@Nordic.example",
        actor=SYSTEM,
    )
    # then
    tenant = created.tenant
    assert tenant.schema_name == "tenant_nordic_net"
    assert tables_of("tenant_nordic_net") == tables_of("tenant_template")
    # constraint and index names as migrations made them, so later migrations can find them by name
    assert constraints_of("tenant_nordic_net") == constraints_of("tenant_template")
    assert indexes_of("tenant_nordic_net") == indexes_of("tenant_template")
    assert Domain.objects.get(tenant=tenant).domain == "nordic-net.localhost"
    with schema_context(tenant.schema_name):
        owner = get_user_model().objects.get(username="boss@nordic.example")
        assert owner.check_password(created.admin_password)
        assert owner.is_staff
        assert not owner.is_superuser
        assert [g.name for g in owner.groups.all()] == [roles.OWNER]
        assert set(Group.objects.values_list("name", flat=True)) == set(roles.STAFF_ROLES)
        assert AuditEvent.objects.filter(action="tenant.created").count() == 1
        assert AuditEvent.objects.filter(action="staff.created", object_id=str(owner.pk)).count() == 1
    # the operator trail in the public schema records the creation too
    assert AuditEvent.objects.filter(action="tenant.created", object_id=str(tenant.pk)).count() == 1


@pytest.mark.behavior
@pytest.mark.data_safety
def test_invalid_input_is_refused_with_every_reason_and_nothing_is_written(public_schema):
    tenants_before = Tenant.objects.count()
    with pytest.raises(ValidationError) as excinfo:
        tenant_create(
            slug="Bad Slug!",
            name="",
            currency="XXX",
            country="ZZ",
            time_zone="Mars/Olympus",
            admin_email="not-an-email",
            actor=SYSTEM,
            billing_day=31,
        )
    errors = excinfo.value.message_dict
    assert set(errors) >= {"slug", "name", "currency", "country", "time_zone", "admin_email", "billing_day"}
    assert "no minor unit" in errors["currency"][0]
    assert Tenant.objects.count() == tenants_before
    assert not schema_exists("tenant_bad_slug_")


@pytest.mark.behavior
@pytest.mark.data_safety
@pytest.mark.parametrize("slug", ["public", "www", "ab", "-abc", "abc-", "a--b", "1abc", "under_score", "ümlaut"])
def test_reserved_or_malformed_slugs_are_refused(public_schema, slug):
    with pytest.raises(ValidationError) as excinfo:
        tenant_create(slug=slug, name="X", currency="USD", country="US", admin_email="a@b.example", actor=SYSTEM)
    assert "slug" in excinfo.value.message_dict


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_taken_slug_is_refused_and_the_existing_tenant_is_untouched(public_schema):
    existing = Tenant.objects.get(slug="us-isp")
    with pytest.raises(ValidationError) as excinfo:
        tenant_create(
            slug="us-isp", name="Impostor", currency="EUR", country="DE", admin_email="x@y.example", actor=SYSTEM
        )
    assert "slug" in excinfo.value.message_dict
    existing.refresh_from_db()
    assert (existing.name, existing.currency) == (TENANT_PROFILES["us_isp"].name, "USD")


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_failure_half_way_leaves_no_tenant_no_domain_and_no_schema(public_schema, monkeypatch):
    # given: the owner cannot be created (simulated failure after the schema was cloned)
    from tenants import services

    def explode(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "_staff_user_create", explode)
    # when
    with pytest.raises(RuntimeError):
        tenant_create(
            slug="half-way", name="Half Way", currency="USD", country="US", admin_email="a@b.example", actor=SYSTEM
        )
    # then
    assert not Tenant.objects.filter(slug="half-way").exists()
    assert not Domain.objects.filter(domain="half-way.localhost").exists()
    assert not schema_exists("tenant_half_way")


@pytest.mark.behavior
@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.parametrize(("currency", "minor_unit"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3)])
def test_the_currency_minor_unit_comes_from_iso_4217(currency, minor_unit):
    assert Tenant(currency=currency).currency_minor_unit == minor_unit


@pytest.mark.behavior
@pytest.mark.revenue_critical
def test_matrix_tenants_carry_their_profile_money_settings(tenant, tenant_profile):
    assert tenant.currency == tenant_profile.currency
    assert tenant.currency_minor_unit == tenant_profile.minor_unit
    assert tenant.tax_inclusive is tenant_profile.tax_inclusive
    assert connection.schema_name == tenant.schema_name


@pytest.mark.behavior
@pytest.mark.payment_flow
@pytest.mark.parametrize(
    ("field", "value"),
    [("payment_terms_days", 366), ("suspend_after_days", 0), ("suspend_after_days", 400), ("billing_day", 0)],
)
def test_payment_terms_and_dunning_settings_out_of_range_are_refused(public_schema, field, value):
    with pytest.raises(ValidationError) as excinfo:
        tenant_create(
            slug="terms-isp",
            name="Terms",
            currency="USD",
            country="US",
            admin_email="a@b.example",
            actor=SYSTEM,
            **{field: value},
        )
    assert field in excinfo.value.message_dict
    assert not Tenant.objects.filter(slug="terms-isp").exists()


@pytest.mark.behavior
@pytest.mark.payment_flow
def test_payment_defaults_are_the_billing_rules_defaults(public_schema):
    tenant = tenant_create(
        slug="defaults-isp", name="Defaults", currency="USD", country="US", admin_email="a@b.example", actor=SYSTEM
    ).tenant
    assert (tenant.billing_day, tenant.payment_terms_days, tenant.suspend_after_days) == (1, 14, 15)
