"""Tenant isolation in depth, over the tenant matrix (us-isp USD, eu-isp EUR tax-inclusive, jp-isp JPY).

What tests/tenants/test_isolation.py already proves (not repeated here): a login, a token, a
session cookie of one tenant are refused on another tenant's host (for /me, /tenant, /staff and
/audit-events), staff and audit-event ids of one tenant find nothing on another, and plain SQL
under a tenant's search_path sees that schema's auth_user only; tokens live in tenant schemas.

This file adds:
- (b) the database itself: SQL run as a tenant's restricted role (`tenants.isolation`) sees only
  its own rows of every shared table (radius.nas_directory, radius.subscriber, tenants_tenant,
  tenants_domain), cannot open another tenant's schema, the template or the platform's tables,
  cannot call the sealing functions, and cannot widen what it sees by forging a session
  setting or its search_path; every shared table with a tenant column is covered (introspected);
  FreeRADIUS's role still gets its answers through the SECURITY DEFINER functions.
- (a) every API endpoint, walked from the tenant URL conf (a new endpoint is covered without
  touching this file): another tenant's token on a host returns nothing of that host's tenant,
  and ids of another tenant - the same primary keys exist in both tenants with other content -
  return the asking tenant's own object or 404, never the other's; the same walk with a portal
  customer's token.
"""

from __future__ import annotations

import datetime
import re
import uuid

import psycopg.errors
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from psycopg import sql

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import services as cs
from network import services as ns
from network.radius.db import seal
from tenants import roles
from tenants.isolation import (
    POLICY_ALL,
    POLICY_TENANT,
    SHARED_TENANT_TABLES,
    TENANT_GROUP_ROLE,
    isolation_install,
    tenant_db_role,
    tenant_db_role_drop,
    tenant_db_role_ensure,
    tenant_role,
)
from tenants.models import Tenant
from tests.conftest import TENANT_PROFILES
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory

pytestmark = [pytest.mark.django_db, pytest.mark.data_safety, pytest.mark.customer_data_protection]

ACTOR = Actor.system("isolation tests")


@pytest.fixture(scope="module", autouse=True)
def _isolation_installed(django_db_setup, django_db_blocker):
    """The roles and policies exist (installed by the database set-up already; idempotent)."""
    with django_db_blocker.unblock():
        isolation_install()
        connection.set_schema_to_public()


def _all_matrix_tenants() -> list[Tenant]:
    return list(Tenant.objects.filter(slug__in=[p.slug for p in TENANT_PROFILES.values()]).order_by("slug"))


# --- seeding: rows in every shared table, for each tenant -------------------------------------------

_NAS_OCTET = {"us-isp": 1, "eu-isp": 2, "jp-isp": 3}


def _radius_rows(tenant: Tenant, marker: str) -> dict:
    """In `tenant`'s schema: a NAS (-> radius.nas_directory) and a PPPoE account (-> radius.subscriber)."""
    connection.set_tenant(tenant)
    plan = PlanFactory(name=f"{marker} plan")
    customer = CustomerFactory(name=f"{marker} customer")
    sub = cs.subscription_create(
        customer=customer, plan=plan, service_address=ServiceAddressFactory(customer=customer), actor=ACTOR
    )
    sub = cs.subscription_activate(subscription=sub, activated_on=datetime.date(2026, 11, 1), actor=ACTOR)
    username = f"{marker}-user".lower()
    ns.pppoe_account_create(subscription=sub, actor=ACTOR, username=username, password="pppoe-pass-1")
    ip = f"198.18.{_NAS_OCTET[tenant.slug]}.{uuid.uuid4().int % 250 + 1}"
    ns.nas_register(name=f"{marker} bras", ip_address=ip, secret="nas-secret-iso", actor=ACTOR)
    return {"username": username, "nas_ip": ip}


@pytest.fixture
def seeded(tenant, other_tenant):
    """Rows of `tenant` and `other_tenant` in the radius tables (rolled back after the test)."""
    mine = _radius_rows(tenant, f"mine-{uuid.uuid4().hex[:8]}")
    theirs = _radius_rows(other_tenant, f"theirs-{uuid.uuid4().hex[:8]}")
    connection.set_tenant(tenant)
    return mine, theirs


def _fingerprint(schema: str) -> dict[str, str]:
    """table -> md5 of all its rows (sorted), for every table of `schema`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
            [schema],
        )
        tables = [row[0] for row in cursor.fetchall()]
        out = {}
        for table in tables:
            cursor.execute(
                sql.SQL("SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {} x").format(
                    sql.Identifier(schema, table)
                )
            )
            out[table] = cursor.fetchone()[0]
    return out


def _rows(query: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _refused(query: str, params=(), *, also=()) -> bool:
    """True when the database refuses the statement for lack of privilege (in a savepoint)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(query, params)
    except Exception as exc:  # noqa: BLE001 - the cause is checked below
        cause = exc.__cause__ or exc
        if isinstance(cause, (psycopg.errors.InsufficientPrivilege, *also)):
            return True
        raise
    return False


# --- (b) the database ------------------------------------------------------------------------------


@pytest.mark.behavior
def test_a_tenant_role_sees_only_its_own_rows_of_every_shared_table(tenant, other_tenant, seeded):
    mine, theirs = seeded
    # given: as the connection's owner role, both tenants' rows are in the shared tables
    everyone = {row[0] for row in _rows("SELECT tenant FROM radius.subscriber")}
    assert {tenant.schema_name, other_tenant.schema_name} <= everyone
    assert len(_rows("SELECT 1 FROM tenants_tenant")) >= 4  # public + three matrix tenants
    # when: the same unfiltered queries run as tenant's restricted role, in tenant's context
    with tenant_role():
        subscribers = _rows("SELECT tenant, username FROM radius.subscriber")
        directory = _rows("SELECT tenant, host(ip) FROM radius.nas_directory")
        tenants = _rows("SELECT schema_name, name FROM tenants_tenant")
        domains = _rows("SELECT domain FROM tenants_domain")
        probe_theirs = _rows("SELECT count(*) FROM radius.subscriber WHERE tenant = %s", [other_tenant.schema_name])
    # then: only tenant's rows, including the ones just written, none of the other's
    assert (tenant.schema_name, mine["username"]) in subscribers
    assert {row[0] for row in subscribers} == {tenant.schema_name}
    assert theirs["username"] not in {row[1] for row in subscribers}
    assert (tenant.schema_name, mine["nas_ip"]) in directory
    assert {row[0] for row in directory} == {tenant.schema_name}
    assert tenants == [(tenant.schema_name, tenant.name)]
    assert domains == [(tenant.primary_host,)]
    assert probe_theirs == [(0,)]


@pytest.mark.behavior
def test_forging_a_session_setting_or_the_search_path_does_not_widen_a_tenant_role(tenant, other_tenant, seeded):
    _, theirs = seeded
    with tenant_role():
        with connection.cursor() as cursor:
            # the knobs a GUC-keyed policy would trust
            cursor.execute("SELECT set_config('app.tenant', %s, true)", [other_tenant.schema_name])
            cursor.execute(
                sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(other_tenant.schema_name))
            )
        visible = _rows("SELECT tenant, username FROM radius.subscriber")
        assert theirs["username"] not in {row[1] for row in visible}
        assert {row[0] for row in visible} <= {tenant.schema_name}
        assert _rows("SELECT schema_name FROM tenants_tenant") == [(tenant.schema_name,)]
        # and the other tenant's schema stays closed even with it first on the search path: a schema
        # without USAGE is skipped by name resolution, and named explicitly it is refused
        assert _refused("SELECT username FROM network_pppoeaccount", also=(psycopg.errors.UndefinedTable,))
        assert _refused(
            sql.SQL("SELECT username FROM {}.network_pppoeaccount").format(sql.Identifier(other_tenant.schema_name))
        )
        # The documented limit (docs/isolation.md): SET ROLE / RESET ROLE are checked against the
        # connection's *login* role, so SQL that can issue them leaves the restricted role. The roles
        # guard against mistakes in raw SQL; against injected SQL only a tenant-role login would.
        assert _rows("SELECT session_user <> current_user")[0][0]
    connection.set_tenant(tenant)  # django-tenants sets the search path again on the next query


@pytest.mark.behavior
def test_a_tenant_role_cannot_open_another_tenants_schema_or_the_template(tenant, other_tenant, seeded):
    mine, theirs = seeded
    own = sql.Identifier(tenant.schema_name)
    with tenant_role():
        # its own schema works (the restricted role is usable, not merely locked out)
        own_accounts = _rows(sql.SQL("SELECT username FROM {}.network_pppoeaccount").format(own))
        assert (mine["username"],) in own_accounts
        for schema in (other_tenant.schema_name, settings.TENANT_BASE_SCHEMA):
            for table in ("network_pppoeaccount", "customers_customer", "auth_user", "authtoken_token"):
                query = sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                assert _refused(query), f"{schema}.{table} is readable by {tenant.slug}'s role"
    # every other matrix tenant, not only the neighbour of the fixture
    role = tenant_db_role(tenant.schema_name)
    for other in _all_matrix_tenants():
        can_use = _rows("SELECT has_schema_privilege(%s, %s, 'USAGE')", [role, other.schema_name])[0][0]
        assert can_use is (other.pk == tenant.pk), other.slug


@pytest.mark.behavior
def test_a_tenant_role_reaches_no_platform_table_no_key_and_no_sealing_function(tenant, seeded):
    with connection.cursor() as cursor:
        sealed = seal(cursor, "a-secret-to-reveal")
    with tenant_role():
        for table in (
            "public.auth_user",  # platform operators
            "public.authtoken_token",  # their API tokens
            "public.django_session",
            "public.compliance_auditevent",  # the platform's audit trail
            "public.django_admin_log",
            "radius.sealing_key",
        ):
            assert _refused(f"SELECT * FROM {table}"), table  # noqa: S608 - fixed table names
        assert _refused("SELECT radius.reveal(%s)", [sealed])
        assert _refused("SELECT radius.seal('x')")
        assert _refused("SELECT * FROM radius.nas_client('198.18.1.1')")
        # the shared tables are read-only for a tenant role: FreeRADIUS's rows are written by triggers
        assert _refused("DELETE FROM radius.subscriber")
        assert _refused("UPDATE tenants_tenant SET name = 'taken over'")


@pytest.mark.behavior
def test_freeradius_still_gets_each_tenants_answers_and_nothing_across(tenant, other_tenant, seeded):
    mine, theirs = seeded
    radius_role = getattr(settings, "RADIUS_DB_USER", "isp_radius")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(radius_role)))
        own = _rows(
            "SELECT attribute, value FROM radius.authorize_check(%s, %s)", [tenant.schema_name, mine["username"]]
        )
        crossed = _rows(
            "SELECT attribute FROM radius.authorize_check(%s, %s)", [tenant.schema_name, theirs["username"]]
        )
        client = _rows("SELECT tenant FROM radius.nas_client(%s)", [mine["nas_ip"]])
        assert _refused("SELECT * FROM radius.subscriber")
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert ("Cleartext-Password", "pppoe-pass-1") in own
    assert crossed == []
    assert client == [(tenant.schema_name,)]


@pytest.mark.contract
def test_every_shared_table_with_a_tenant_column_has_row_level_security(db):
    # given: every table outside the tenant schemas with a column naming a tenant
    tenant_columns = _rows(
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema') "
        "AND c.table_schema NOT LIKE 'tenant\\_%%' AND c.table_schema NOT LIKE 'pg\\_%%' "
        "AND c.column_name IN ('tenant', 'tenant_id', 'tenant_schema', 'schema_name')"
    )
    covered = {spec.qualified for spec in SHARED_TENANT_TABLES}
    found = {f"{schema}.{table}" for schema, table in tenant_columns}
    # then: each is declared in tenants.isolation, and carries RLS with both policies
    assert found <= covered, f"shared tables with tenant rows but no RLS declared: {sorted(found - covered)}"
    for qualified in covered:
        schema, table = qualified.split(".")
        rls = _rows(
            "SELECT c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            [schema, table],
        )
        assert rls == [(True,)], qualified
        policies = _rows(
            "SELECT policyname, permissive FROM pg_policies WHERE schemaname = %s AND tablename = %s ORDER BY 1",
            [schema, table],
        )
        assert policies == [(POLICY_ALL, "PERMISSIVE"), (POLICY_TENANT, "RESTRICTIVE")], qualified


@pytest.mark.contract
def test_every_tenant_has_a_restricted_role_and_installing_twice_changes_nothing(db):
    # when: installed again (platform_migrate does on every run)
    before = _rows("SELECT schemaname, tablename, policyname, qual FROM pg_policies ORDER BY 1, 2, 3")
    result = isolation_install()
    after = _rows("SELECT schemaname, tablename, policyname, qual FROM pg_policies ORDER BY 1, 2, 3")
    # then: the same policies, and a role per tenant that can do nothing but its own work
    assert before == after
    schemas = [t.schema_name for t in Tenant.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)]
    assert sorted(result["roles"]) == sorted(tenant_db_role(s) for s in schemas)
    for schema in schemas:
        role = tenant_db_role(schema)
        attrs = _rows(
            "SELECT rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb, "
            "pg_has_role(rolname, %s, 'MEMBER') FROM pg_roles WHERE rolname = %s",
            [TENANT_GROUP_ROLE, role],
        )
        assert attrs == [(False, False, False, False, False, True)], role
        others = [s for s in schemas if s != schema] + [settings.TENANT_BASE_SCHEMA]
        for other in others:
            assert not _rows("SELECT has_schema_privilege(%s, %s, 'USAGE')", [role, other])[0][0], (role, other)


@pytest.mark.behavior
def test_a_dropped_tenants_role_is_dropped_with_its_privileges(db):
    # given: a tenant schema with its role (all inside the test's transaction)
    schema = f"tenant_isoprobe_{uuid.uuid4().hex[:6]}"
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        cursor.execute(sql.SQL("CREATE TABLE {}.probe (id int)").format(sql.Identifier(schema)))
    role = tenant_db_role_ensure(schema)
    assert _rows("SELECT has_table_privilege(%s, %s, 'SELECT')", [role, f"{schema}.probe"]) == [(True,)]
    # when: the schema goes, then the role
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    # then
    assert tenant_db_role_drop(schema) is True
    assert _rows("SELECT count(*) FROM pg_roles WHERE rolname = %s", [role]) == [(0,)]


# --- (a) the API: generated from the URL conf --------------------------------------------------------

_PK_GROUP = re.compile(r"\(\?P<pk>[^)]*\)|<int:pk>|<pk>")


def _api_v1_patterns():
    """(route template, view class, viewset actions or None) of every endpoint under /api/v1/
    (format variants skipped)."""

    def walk(resolver, prefix=""):
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern

    for route, pattern in walk(get_resolver("isp.urls_tenant")):
        if not route.startswith("api/v1/") or "format" in route:
            continue
        callback = pattern.callback
        plain = route.replace("^", "").replace("$", "")
        yield plain, getattr(callback, "cls", None), getattr(callback, "actions", None)


def _answers(method: str, view_class, actions) -> bool:
    return (method in actions) if actions else (view_class is not None and hasattr(view_class, method))


def _api_routes() -> list[tuple[str, object, bool]]:
    """(route template, view class, has_pk) of every GET endpoint under /api/v1/."""
    return [
        (plain, view_class, bool(_PK_GROUP.search(plain)))
        for plain, view_class, actions in _api_v1_patterns()
        if _answers("get", view_class, actions)
    ]


def _api_write_routes() -> list[tuple[str, str, bool]]:
    """(route template, method, has_pk) of every POST/PUT/PATCH/DELETE endpoint under /api/v1/."""
    return [
        (plain, method, bool(_PK_GROUP.search(plain)))
        for plain, view_class, actions in _api_v1_patterns()
        for method in ("post", "put", "patch", "delete")
        if _answers(method, view_class, actions)
    ]


def _path(route: str, pk=None) -> str:
    return "/" + _PK_GROUP.sub(str(pk), route)


@pytest.mark.contract
def test_the_route_walk_finds_the_endpoints_it_must_cover():
    """The generator itself: it sees list and detail routes of every app (a guard against a walk that
    silently finds nothing)."""
    paths = {route for route, _, _ in _api_routes()}
    for expected in ("api/v1/customers/", "api/v1/invoices/<pk>/", "api/v1/nas/", "api/v1/staff/<pk>/"):
        assert any(_path(p, "<pk>") == "/" + expected for p in paths), expected


def _align_sequences(models_, *schemas: str) -> None:
    """Move each table's id sequence to the same value in every schema, so the next row gets the
    same primary key in each tenant (setval is outside the transaction: it only leaves a gap)."""
    with connection.cursor() as cursor:
        for model in models_:
            table = model._meta.db_table
            values = []
            for schema in schemas:
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [f"{schema}.{table}"])
                seq = cursor.fetchone()[0]
                cursor.execute(f"SELECT last_value FROM {seq}")  # noqa: S608 - a catalog-given name
                values.append((seq, cursor.fetchone()[0]))
            top = max(v for _, v in values) + 1
            for seq, _ in values:
                cursor.execute("SELECT setval(%s, %s)", [seq, top])


def _twin_models():
    from billing.models import BillingRun, Discount, DiscountAssignment, Invoice, InvoiceLine, TaxRate
    from customers.models import Customer, Plan, ServiceAddress, Subscription
    from network.models import Device, Nas, PppoeAccount, RadiusSession

    return (
        Plan, Customer, ServiceAddress, Subscription, Nas, PppoeAccount, RadiusSession, Device,
        TaxRate, Discount, DiscountAssignment, BillingRun, Invoice, InvoiceLine,
    )  # fmt: skip


def _twin_rows(tenant: Tenant, marker: str) -> dict[str, int]:
    """In `tenant`: one object of each kind the API shows, `marker` in a visible field; returns their ids."""
    from billing.models import Discount, DiscountAssignment, Invoice, TaxRate
    from billing.services import billing_run_execute
    from network.models import Device, Nas, PppoeAccount, RadiusSession

    made = _radius_rows(tenant, marker)
    account = PppoeAccount.objects.select_related("subscription").get(username=made["username"])
    with connection.cursor() as cursor:  # an open session, as FreeRADIUS would record it
        cursor.execute(
            "SELECT radius.accounting(%s, 'Start', %s, %s, %s, %s, '', 'Virtual', '', '', '', "
            "'0', '0', '0', '0', '0', '', '')",
            [tenant.schema_name, f"{marker}-s", f"{marker}-s", made["username"], made["nas_ip"]],
        )
    tax = TaxRate.objects.create(name=f"{marker} tax", rate="0.100000", country=tenant.country, categories=["service"])
    discount = Discount.objects.create(name=f"{marker} discount", kind="percent", value="5.000000")
    DiscountAssignment.objects.create(discount=discount, customer=account.subscription.customer)
    device = Device.objects.create(
        name=f"{marker} router", kind=Device.Kind.ROUTER, management_ip=made["nas_ip"], status=Device.Status.UP
    )
    run = billing_run_execute(
        period="2026-11",
        issue_date=datetime.date(2026, 11, 1),
        actor=ACTOR,
        customer_ids=[account.subscription.customer_id],
    )
    invoice = Invoice.objects.filter(customer_id=account.subscription.customer_id).first()
    assert invoice is not None, run.report
    return {
        "Plan": account.subscription.plan_id,
        "Customer": account.subscription.customer_id,
        "Subscription": account.subscription_id,
        "Nas": Nas.objects.get(name=f"{marker} bras").pk,
        "PppoeAccount": account.pk,
        "RadiusSession": RadiusSession.objects.get(acct_session_id=f"{marker}-s").pk,
        "TaxRate": tax.pk,
        "Discount": discount.pk,
        "Device": device.pk,
        "BillingRun": run.pk,
        "Invoice": invoice.pk,
    }


@pytest.fixture
def twin_tenants(tenant, other_tenant):
    """`tenant` (A) and `other_tenant` (B) with the same primary keys on objects of different content."""
    _align_sequences(_twin_models(), tenant.schema_name, other_tenant.schema_name)
    marker_a, marker_b = f"AAA{uuid.uuid4().hex[:10]}", f"BBB{uuid.uuid4().hex[:10]}"
    b_ids = _twin_rows(other_tenant, marker_b)
    a_ids = _twin_rows(tenant, marker_a)
    connection.set_tenant(tenant)
    return marker_a, marker_b, a_ids, b_ids


def _b_markers(marker_b: str) -> tuple[str, ...]:
    return (marker_b, marker_b.lower())


@pytest.mark.behavior
def test_a_tenants_token_on_another_tenants_host_gets_nothing_from_any_endpoint(
    tenant, other_tenant, twin_tenants, staff_client, host_client
):
    _, marker_b, _, b_ids = twin_tenants
    token = staff_client(tenant, roles.OWNER)._credentials["HTTP_AUTHORIZATION"]
    foreign = host_client(other_tenant)
    foreign.credentials(HTTP_AUTHORIZATION=token)
    anonymous = host_client(other_tenant)
    checked = public = 0
    for route, _, has_pk in _api_routes():
        for pk in sorted(set(b_ids.values())) if has_pk else [None]:
            path = _path(route, pk)
            response = foreign.get(path, HTTP_ACCEPT="application/json")
            body = response.content.decode(errors="replace")
            unauthenticated = anonymous.get(path, HTTP_ACCEPT="application/json")
            if unauthenticated.status_code == 200:
                # a public page of B's host (the plan catalogue): the token adds nothing to it
                assert response.status_code == 200, path
                assert response.json() == unauthenticated.json(), f"{path}: A's token changed what B's host shows"
                public += 1
                continue
            assert not any(m in body for m in _b_markers(marker_b)), f"{path} leaked {other_tenant.slug} data"
            assert response.status_code in (401, 403), (path, response.status_code, body[:200])
            checked += 1
    assert checked > 40  # every GET route, each detail route with several of B's ids
    assert public <= 2, "more public endpoints than the plan catalogue: review them"


@pytest.mark.behavior
def test_ids_of_another_tenant_return_the_own_object_or_404_on_every_detail_endpoint(
    tenant, other_tenant, twin_tenants, staff_client
):
    marker_a, marker_b, a_ids, b_ids = twin_tenants
    # given: the same primary keys exist in both tenants, with A's and B's own content
    assert a_ids == b_ids
    owner = staff_client(tenant, roles.OWNER)
    # when: A's owner walks every list and detail endpoint on A's host with B's ids
    seen_a = 0
    for route, _, has_pk in _api_routes():
        for pk in sorted(set(b_ids.values()) | {10**9}) if has_pk else [None]:
            path = _path(route, pk)
            response = owner.get(path, HTTP_ACCEPT="application/json")
            body = response.content.decode(errors="replace")
            # then: never B's content; either A's own row with that id, or not found
            assert not any(m in body for m in _b_markers(marker_b)), f"{path} returned {other_tenant.slug}'s data"
            assert response.status_code < 500, (path, response.status_code, body[:300])
            seen_a += marker_a in body or marker_a.lower() in body
    for path in (
        f"/api/v1/plans/{b_ids['Plan']}/",
        f"/api/v1/nas/{b_ids['Nas']}/",
        f"/api/v1/tax-rates/{b_ids['TaxRate']}/",
        f"/api/v1/discounts/{b_ids['Discount']}/",
        f"/api/v1/devices/{b_ids['Device']}/",
        f"/api/v1/pppoe-accounts/{b_ids['PppoeAccount']}/",
        f"/api/v1/radius-sessions/{b_ids['RadiusSession']}/",
        f"/api/v1/invoices/{b_ids['Invoice']}/",
    ):
        response = owner.get(path)
        assert response.status_code == 200, path
        assert marker_a.lower() in response.content.decode().lower(), path  # the same id is A's own object
    assert seen_a >= 10  # A's rows showed up through lists and details: the walk reached real data


def _portal_client(tenant: Tenant, customer_id: int, host_client):
    """A portal login (token) for the twin customer of `tenant`."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from customers.models import Customer

    connection.set_tenant(tenant)
    user = get_user_model().objects.create_user(username=f"portal-{uuid.uuid4().hex[:8]}", password=None)
    Customer.objects.filter(pk=customer_id).update(portal_user=user)
    client = host_client(tenant)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.behavior
def test_a_portal_customer_gets_only_their_own_data_on_every_endpoint_and_nothing_on_another_host(
    tenant, other_tenant, twin_tenants, host_client
):
    marker_a, marker_b, a_ids, b_ids = twin_tenants
    portal = _portal_client(tenant, a_ids["Customer"], host_client)
    own = portal.get("/api/v1/portal/subscriptions/")
    assert own.status_code == 200
    assert marker_a.lower() in own.content.decode().lower()  # the login works and sees its own plan
    token = portal._credentials["HTTP_AUTHORIZATION"]
    foreign = host_client(other_tenant)
    foreign.credentials(HTTP_AUTHORIZATION=token)
    for route, _, has_pk in _api_routes():
        for pk in sorted(set(b_ids.values())) if has_pk else [None]:
            path = _path(route, pk)
            at_home = portal.get(path, HTTP_ACCEPT="application/json")
            assert not any(m in at_home.content.decode(errors="replace") for m in _b_markers(marker_b)), path
            assert at_home.status_code < 500, (path, at_home.status_code)
            abroad = foreign.get(path, HTTP_ACCEPT="application/json")
            if "/portal/plans/" in path:  # the public catalogue of B's host
                continue
            assert abroad.status_code in (401, 403), (path, abroad.status_code)
            assert not any(m in abroad.content.decode(errors="replace") for m in _b_markers(marker_b)), path


@pytest.mark.behavior
def test_a_tenants_token_on_another_tenants_host_changes_nothing_through_any_write_endpoint(
    tenant, other_tenant, twin_tenants, staff_client, host_client
):
    _, _, _, b_ids = twin_tenants
    token = staff_client(tenant, roles.OWNER)._credentials["HTTP_AUTHORIZATION"]
    foreign = host_client(other_tenant)
    foreign.credentials(HTTP_AUTHORIZATION=token)
    connection.set_tenant(other_tenant)
    before = _fingerprint(other_tenant.schema_name)
    last_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    sent = 0
    for route, method, has_pk in _api_write_routes():
        for pk in sorted(set(b_ids.values())) if has_pk else [None]:
            path = _path(route, pk)
            response = getattr(foreign, method)(path, {}, format="json", HTTP_ACCEPT="application/json")
            # refused by authentication (401) - or, on a public form (log-in, sign-up), rejected as empty
            assert response.status_code in (400, 401, 403), (method, path, response.status_code)
            sent += 1
    assert sent > 30
    connection.set_tenant(other_tenant)
    after = _fingerprint(other_tenant.schema_name)
    changed = sorted(t for t in after if after[t] != before[t])
    # B's audit trail may record the refused foreign token (a security event); nothing else changes
    new_actions = set(AuditEvent.objects.filter(pk__gt=last_event).values_list("action", flat=True))
    assert all(action.startswith("security.") for action in new_actions), new_actions
    others = [t for t in changed if not t.startswith("compliance_audit")]  # the trail and its chain
    assert others == [], f"A's token changed {other_tenant.slug}'s data: {others}"
