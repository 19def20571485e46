"""The template schema every new tenant is cloned from.

`platform_migrate` keeps it migrated. Provisioning checks (once per process) that it has every
tenant migration applied, so a clone can never silently miss a migration.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_context, schema_exists
from psycopg import sql

from . import roles

_template_verified = False


def _tenant_app_labels() -> set[str]:
    from django.apps import apps

    return {config.label for config in apps.get_app_configs() if config.name in settings.TENANT_APPS}


def template_missing_migrations() -> list[tuple[str, str]]:
    """Tenant-app migrations on disk that the template schema has not applied."""
    schema = settings.TENANT_BASE_SCHEMA
    if not schema_exists(schema):
        return [("*", "template schema does not exist")]
    on_disk = MigrationLoader(None, ignore_no_migrations=True).disk_migrations
    labels = _tenant_app_labels()
    wanted = {key for key in on_disk if key[0] in labels}
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT app, name FROM {}.django_migrations").format(sql.Identifier(schema)))
        applied = set(cursor.fetchall())
    return sorted(wanted - applied)


def template_migrate(verbosity: int = 1) -> None:
    """Create the template schema if needed, migrate it and sync the staff roles in it."""
    global _template_verified
    schema = settings.TENANT_BASE_SCHEMA
    if not schema_exists(schema):
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=verbosity)
    with schema_context(schema):
        roles.roles_sync()
    connection.set_schema_to_public()
    _template_verified = True


def template_schema_ensure_current() -> None:
    """Migrate the template first if it lags behind the code (checked once per process)."""
    global _template_verified
    if _template_verified:
        return
    if template_missing_migrations():
        template_migrate(verbosity=0)
    _template_verified = True


_CONSTRAINTS = """
    SELECT rel.relname, c.conname, pg_get_constraintdef(c.oid)
    FROM pg_constraint c
    JOIN pg_class rel ON rel.oid = c.conrelid
    JOIN pg_namespace n ON n.oid = c.connamespace
    WHERE n.nspname = %s
"""
_INDEXES = "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s"


def _definitions(cursor, query: str, schema: str, strip_name: bool) -> dict[tuple[str, str], str]:
    cursor.execute(query, [schema])
    out = {}
    for table, name, definition in cursor.fetchall():
        definition = definition.replace(f"{schema}.", "")
        if strip_name:
            definition = definition.replace(f" {name} ON ", " ON ", 1)
        out[(table, definition)] = name
    return out


def clone_align_names(template: str, target: str) -> int:
    """Give the clone's constraints and indexes the template's names.

    django-tenants clones tables with `CREATE TABLE ... (LIKE ... INCLUDING ALL)`, which names
    unique constraints and indexes by PostgreSQL's defaults. Migrations find constraints by
    name (e.g. removing a UniqueConstraint), so every tenant must carry the same names as a
    schema built by migrations. Returns how many objects were renamed."""
    renamed = 0
    with connection.cursor() as cursor:
        wanted = _definitions(cursor, _CONSTRAINTS, template, strip_name=False)
        for key, name in _definitions(cursor, _CONSTRAINTS, target, strip_name=False).items():
            want = wanted.get(key)
            if want and want != name:
                cursor.execute(
                    sql.SQL("ALTER TABLE {}.{} RENAME CONSTRAINT {} TO {}").format(
                        sql.Identifier(target), sql.Identifier(key[0]), sql.Identifier(name), sql.Identifier(want)
                    )
                )
                renamed += 1
        wanted = _definitions(cursor, _INDEXES, template, strip_name=True)
        for key, name in _definitions(cursor, _INDEXES, target, strip_name=True).items():
            want = wanted.get(key)
            if want and want != name:
                cursor.execute(
                    sql.SQL("ALTER INDEX {}.{} RENAME TO {}").format(
                        sql.Identifier(target), sql.Identifier(name), sql.Identifier(want)
                    )
                )
                renamed += 1
    return renamed


def clone_triggers(template: str, target: str) -> int:
    """Create on the clone the triggers of the template's tables that it lacks.

    django-tenants' clone copies tables, data, sequences and functions but no triggers, so a
    trigger created by a migration (e.g. network's usage trigger on RADIUS sessions) would exist
    in migrated schemas only. Idempotent; returns how many triggers were created."""
    created = 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND NOT t.tgisinternal ORDER BY c.relname, t.tgname",
            [template],
        )
        wanted = cursor.fetchall()
        cursor.execute(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal",
            [target],
        )
        present = set(cursor.fetchall())
        for table, name, definition in wanted:
            if (table, name) in present:
                continue
            source = sql.SQL(" ON {}.{} ").format(sql.Identifier(template), sql.Identifier(table)).as_string(cursor)
            plain = f" ON {template}.{table} "
            clone = sql.SQL(" ON {}.{} ").format(sql.Identifier(target), sql.Identifier(table)).as_string(cursor)
            for form in (source, plain):
                if form in definition:
                    cursor.execute(definition.replace(form, clone, 1))
                    created += 1
                    break
            else:
                raise RuntimeError(f"cannot re-target trigger {name} of {template}.{table}")
    return created
