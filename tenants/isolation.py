"""Database-level tenant isolation in depth: per-tenant roles and row-level security.

The application connects as the role that owns the tables (a superuser in development), which
bypasses row-level security. Tenant routing in the ORM rests on django-tenants' `search_path`.
This module adds a second line for SQL that runs in a tenant's context as that tenant's
*restricted role* (`tenant_role()`), which has:

- no superuser, no BYPASSRLS, no LOGIN (entered with `SET LOCAL ROLE` only);
- USAGE and DML on its own tenant schema, nothing on any other tenant schema or the template;
- SELECT on the shared tables that hold tenant-scoped rows (`SHARED_TENANT_TABLES`), through
  the group role `isp_tenant`, where a RESTRICTIVE row-level-security policy lets it see only its
  own tenant's rows (its WITH CHECK would hold writes too, were a write ever granted);
- nothing on the platform's own tables (operators, their tokens and sessions, the platform
  audit trail), on `radius.sealing_key` or on the `radius` functions (`radius.reveal`).

The policies key on `current_user` (through `public.isp_session_tenant()`), not on a GUC such
as `app.tenant`: a GUC can be set by the same session it is meant to restrict, a role cannot be
changed by the restricted role (it is a member of no other tenant role). `RESET ROLE` does
return to the connection's login role, so on the application's connection this is a guard
against mistakes (raw SQL without a tenant filter, a query aimed at the wrong schema), not
against an attacker who can run arbitrary SQL there; a process that logs in as a tenant role
would be held by it entirely. docs/isolation.md has the table of protections.

Roles are cluster-wide objects: the role of a tenant is `isp_` + its schema name in every
database of the cluster, and its privileges are per database.

Everything here is idempotent; `isolation_install()` runs from `radius_interface_install()`
(every migration that installs the RADIUS interface, `platform_migrate`, the test database
set-up) and at the end of `platform_migrate` (grants on tables added by tenant migrations);
`tenant_create` gives a new tenant its role.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from psycopg import sql

TENANT_GROUP_ROLE = "isp_tenant"
ROLE_PREFIX = "isp_"
POLICY_ALL = "platform_roles"  # permissive: what GRANTs allow, for every role that is not a tenant role
POLICY_TENANT = "tenant_rows_only"  # restrictive: a tenant role sees and writes its tenant's rows only


@dataclass(frozen=True)
class SharedTenantTable:
    """A table outside the tenant schemas that holds rows of many tenants."""

    schema: str
    table: str
    # SQL expression true for the rows of the tenant `t` (a text expression) in this table.
    row_of_tenant: str
    why: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


SHARED_TENANT_TABLES: tuple[SharedTenantTable, ...] = (
    SharedTenantTable(
        "radius", "nas_directory", "tenant = {t}", "NAS source IP -> tenant and sealed secret (FreeRADIUS clients)"
    ),
    SharedTenantTable(
        "radius", "subscriber", "tenant = {t}", "per-account AAA rows FreeRADIUS reads (sealed password, replies)"
    ),
    SharedTenantTable("public", "tenants_tenant", "schema_name = {t}", "one row per tenant: its settings"),
    SharedTenantTable(
        "public",
        "tenants_domain",
        "tenant_id IN (SELECT id FROM public.tenants_tenant WHERE schema_name = {t})",
        "host names routed to each tenant",
    ),
)

_SESSION_TENANT_FN = r"""
CREATE OR REPLACE FUNCTION public.isp_session_tenant() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog AS $fn$
    -- NULL: not a tenant role (platform roles, FreeRADIUS): RLS leaves them to their GRANTs.
    -- '': the group role itself, which is no tenant. Else the schema of the tenant role.
    SELECT CASE
        WHEN NOT pg_has_role(current_user, 'isp_tenant', 'MEMBER') THEN NULL
        WHEN current_user::text LIKE 'isp\_tenant\_%' THEN substr(current_user::text, 5)
        ELSE ''
    END
$fn$;
GRANT EXECUTE ON FUNCTION public.isp_session_tenant() TO PUBLIC;
"""


def tenant_db_role(schema_name: str) -> str:
    """The database role of a tenant schema (`tenant_us_isp` -> `isp_tenant_us_isp`)."""
    if not schema_name.startswith("tenant_") or schema_name == settings.TENANT_BASE_SCHEMA:
        raise ValueError(f"{schema_name!r} is not a tenant schema")
    return ROLE_PREFIX + schema_name


def _role_create(cursor, role: str) -> None:
    """CREATE ROLE unless it exists (and take back any power it was given since); tolerant of a
    concurrent creator in another database (roles are cluster-wide, advisory locks per database).
    An existing role is altered only when it must be: concurrent ALTERs of one role collide."""
    cursor.execute(
        sql.SQL(
            "DO $do$ BEGIN "
            "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN "
            "  CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS INHERIT; "
            "ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name} AND (rolcanlogin OR rolsuper "
            "              OR rolcreatedb OR rolcreaterole OR rolbypassrls OR NOT rolinherit)) THEN "
            "  ALTER ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS INHERIT; "
            "END IF; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; "
            "END $do$"
        ).format(name=sql.Literal(role), role=sql.Identifier(role))
    )


def _table_exists(cursor, qualified: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [qualified])
    return cursor.fetchone()[0]


def shared_tables_protect() -> list[str]:
    """The group role, RLS and its two policies on every shared table with tenant rows.
    Returns the tables protected (a table not created yet is skipped)."""
    protected = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tenants.isolation'))")
        _role_create(cursor, TENANT_GROUP_ROLE)
        cursor.execute(_SESSION_TENANT_FN)
        for spec in SHARED_TENANT_TABLES:
            if not _table_exists(cursor, spec.qualified):
                continue
            table = sql.Identifier(spec.schema, spec.table)
            mine = sql.SQL(spec.row_of_tenant.format(t="public.isp_session_tenant()"))
            cursor.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
            for policy in (POLICY_ALL, POLICY_TENANT):
                cursor.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(policy), table))
            cursor.execute(
                sql.SQL("CREATE POLICY {} ON {} AS PERMISSIVE FOR ALL TO PUBLIC USING (true) WITH CHECK (true)").format(
                    sql.Identifier(POLICY_ALL), table
                )
            )
            cursor.execute(
                sql.SQL(
                    "CREATE POLICY {} ON {} AS RESTRICTIVE FOR ALL TO PUBLIC "
                    "USING (public.isp_session_tenant() IS NULL OR ({mine})) "
                    "WITH CHECK (public.isp_session_tenant() IS NULL OR ({mine}))"
                ).format(sql.Identifier(POLICY_TENANT), table, mine=mine)
            )
            cursor.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                    sql.Identifier(spec.schema), sql.Identifier(TENANT_GROUP_ROLE)
                )
            )
            cursor.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(table, sql.Identifier(TENANT_GROUP_ROLE)))
            protected.append(spec.qualified)
    return protected


def tenant_db_role_ensure(schema_name: str) -> str:
    """The tenant's role exists, belongs to the group role, and may use its own schema only."""
    role = tenant_db_role(schema_name)
    ident, schema = sql.Identifier(role), sql.Identifier(schema_name)
    with transaction.atomic(), connection.cursor() as cursor:
        _role_create(cursor, TENANT_GROUP_ROLE)
        _role_create(cursor, role)
        cursor.execute(
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = %s AND r.rolname = %s",
            [TENANT_GROUP_ROLE, role],
        )
        if cursor.fetchone() is None:
            cursor.execute(
                sql.SQL(
                    "DO $do$ BEGIN GRANT {} TO {}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; "
                    "END $do$"
                ).format(sql.Identifier(TENANT_GROUP_ROLE), ident)
            )
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, ident))
        cursor.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(schema, ident)
        )
        cursor.execute(sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, ident))
        # Tables a later migration creates (as the role running it) follow the same rule.
        cursor.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
            ).format(schema, ident)
        )
        cursor.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}").format(
                schema, ident
            )
        )
    return role


def isolation_install() -> dict:
    """Install or refresh everything above for the platform and every existing tenant (idempotent)."""
    from .models import Tenant

    protected = shared_tables_protect()
    schemas = list(
        Tenant.objects.exclude(schema_name=settings.PUBLIC_SCHEMA_NAME).values_list("schema_name", flat=True)
    )
    roles = [tenant_db_role_ensure(schema) for schema in schemas if _schema_exists(schema)]
    return {"tables": protected, "roles": roles}


def _schema_exists(schema_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regnamespace(%s) IS NOT NULL", [schema_name])
        return cursor.fetchone()[0]


@contextmanager
def tenant_role(schema_name: str | None = None) -> Iterator[str]:
    """Run the block's SQL as the restricted role of the tenant (default: the connection's).

    Inside a transaction (a savepoint when nested): `SET LOCAL ROLE` ends with it, also when the
    block raises. The connection's search_path is the tenant's already (django-tenants)."""
    schema_name = schema_name or connection.schema_name
    role = tenant_db_role(schema_name)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        yield role
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def tenant_db_role_drop(schema_name: str) -> bool:
    """Drop a deleted tenant's role: its privileges in this database first, then the role itself
    unless another database of the cluster still grants it something (then it is kept, harmless:
    NOLOGIN). Call after the tenant's schema is dropped. Returns whether the role is gone."""
    role = tenant_db_role(schema_name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if cursor.fetchone() is None:
            return True
        with transaction.atomic():
            cursor.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        try:
            with transaction.atomic():
                cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        except DatabaseError:  # still granted something in another database: keep it
            return False
    return True
