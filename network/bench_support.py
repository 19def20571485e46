"""What the network benchmarks share: a throwaway tenant that is always removed, with its rows in
the platform's `radius` schema (NAS directory, subscriber rows)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator

from django.db import connection

from compliance.audit import Actor
from compliance.pii.bench import bench_tenant_cleanup

_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"  # noqa: S105 - not a secret


@contextlib.contextmanager
def throwaway_tenant(prefix: str, *, say: Callable[[str], None]) -> Iterator[tuple[object, Actor]]:
    """`with throwaway_tenant("bench-rad", say=...) as (tenant, actor):` - a new USD tenant
    `<prefix>-<random>`, removed (schema, rows, data keys, radius rows) whatever happens."""
    from tenants.models import schema_name_for_slug
    from tenants.services import tenant_create

    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(6))
    slug = f"{prefix}-{token}"
    schema = schema_name_for_slug(slug)
    actor = Actor.system(f"{prefix} run {token}")
    connection.set_schema_to_public()
    tenant = None
    try:
        tenant = tenant_create(
            slug=slug,
            name=f"{prefix} {token}",
            currency="USD",
            country="US",
            admin_email=f"owner@{slug}.example",
            actor=actor,
        ).tenant
        say(f"(a) tenant {slug}")
        yield tenant, actor
    finally:
        connection.set_schema_to_public()
        if tenant is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT radius.forget_tenant(%s)", [schema])
            for problem in bench_tenant_cleanup(schema=schema, slug=slug, actor=actor, say=say):
                say(f"  cleanup problem: {problem}")
