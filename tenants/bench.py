"""Benchmark of tenant provisioning: cloning the template schema against replaying migrations.

Not a test: it measures. `python manage.py bench_tenants` is the thin command around
`bench_tenant_create`; a small-scale CI check can call the function directly.

In one run it measures
  (a) the wall time of `tenants.services.tenant_create(...)` (the real service: tenant row,
      domain, schema cloned from the template, staff roles, owner account, audit events) for
      N new tenants, and
  (b) the baseline: `CREATE SCHEMA` + `migrate_schemas` of a fresh schema, the way a tenant
      would be provisioned without the template, for min(3, N) schemas.
The baseline does less work than (a) (no roles, no owner, no password hash, no audit), so the
speed-up it yields is a lower bound.

Everything the run creates carries a random run token in its names and is removed at the end
(schemas dropped, Tenant/Domain rows and the public-schema audit events deleted), also when
the run fails half-way, unless `keep=True`.
"""

from __future__ import annotations

import math
import secrets
import statistics
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from psycopg import sql

from compliance.audit import Actor
from tenants.isolation import tenant_db_role_drop

from .models import Domain, Tenant, schema_name_for_slug
from .services import tenant_create
from .template import template_schema_ensure_current

TARGET_S = 1.0  # ARCHITECTURE.md: "provisioning stays under a second"
MAX_BASELINE_RUNS = 3
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class TenantBenchResult:
    tenants: int
    clone_s: list[float]  # one wall time per tenant_create call, in creation order
    migrate_s: list[float]  # one wall time per CREATE SCHEMA + migrate_schemas
    target_s: float
    run_token: str
    kept: bool
    cleanup_problems: list[str] = field(default_factory=list)

    @property
    def clone_s_per_tenant_median(self) -> float:
        return statistics.median(self.clone_s)

    @property
    def clone_s_p90(self) -> float:
        return percentile(self.clone_s, 90)

    @property
    def migrate_schemas_s_median(self) -> float:
        return statistics.median(self.migrate_s)

    @property
    def speedup(self) -> float:
        """Baseline (migrate_schemas) median over clone (tenant_create) median."""
        return self.migrate_schemas_s_median / self.clone_s_per_tenant_median

    @property
    def meets_target(self) -> bool:
        """The target holds for 90 % of provisionings, not just the typical one."""
        return self.clone_s_p90 <= self.target_s

    def as_json_dict(self) -> dict:
        return {
            "bench": "tenant_create",
            "tenants": self.tenants,
            "clone_s_per_tenant_median": round(self.clone_s_per_tenant_median, 4),
            "clone_s_p90": round(self.clone_s_p90, 4),
            "migrate_schemas_s_median": round(self.migrate_schemas_s_median, 4),
            "speedup": round(self.speedup, 2),
            "target_s": self.target_s,
            "meets_target": self.meets_target,
        }


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolation percentile (numpy's default); one value is its own percentile."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class _Created:
    """What one run created, recorded *before* each creation so cleanup never misses it."""

    token: str
    slug_prefix: str
    tenant_schema_prefix: str
    baseline_schema_prefix: str
    actor: Actor
    schemas: list[str] = field(default_factory=list)

    @classmethod
    def new(cls) -> _Created:
        token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(6))
        slug_prefix = f"bench-{token}-"
        return cls(
            token=token,
            slug_prefix=slug_prefix,
            tenant_schema_prefix=schema_name_for_slug(slug_prefix),
            baseline_schema_prefix=f"bench_{token}_migrate_",
            actor=Actor.system(f"bench_tenants run {token}"),
        )

    def owns_schema(self, name: str) -> bool:
        return name.startswith((self.tenant_schema_prefix, self.baseline_schema_prefix))


def bench_tenant_create(
    *,
    tenants: int = 10,
    baseline_runs: int | None = None,
    keep: bool = False,
    target_s: float = TARGET_S,
    log: Callable[[str], None] | None = None,
) -> TenantBenchResult:
    """Measure tenant_create (clone) and CREATE SCHEMA + migrate_schemas (baseline); clean up.

    Run it against a migrated database (`make migrate`), outside any transaction.
    """
    if tenants < 1:
        raise ValueError("tenants must be at least 1")
    baseline_runs = min(MAX_BASELINE_RUNS, tenants) if baseline_runs is None else baseline_runs
    if baseline_runs < 1:
        raise ValueError("baseline_runs must be at least 1")
    say = log or (lambda _line: None)
    run = _Created.new()
    clone_s: list[float] = []
    migrate_s: list[float] = []
    result: TenantBenchResult | None = None

    connection.set_schema_to_public()
    try:
        # Warm-up, not measured: the once-per-process check that the template has every migration.
        template_schema_ensure_current()
        say(
            f"tenant_create: {tenants} tenant(s) {run.slug_prefix}0..{tenants - 1}, "
            f"cloned from schema {settings.TENANT_BASE_SCHEMA!r}"
        )
        for i in range(tenants):
            slug = f"{run.slug_prefix}{i}"
            run.schemas.append(schema_name_for_slug(slug))
            started = time.perf_counter()
            tenant_create(
                slug=slug,
                name=f"Bench ISP {run.token} {i}",
                currency="USD",
                country="US",
                admin_email=f"owner@{slug}.example",
                actor=run.actor,
            )
            clone_s.append(time.perf_counter() - started)
            connection.set_schema_to_public()
            say(f"  clone    {slug:<24} {clone_s[-1]:8.3f} s")

        say(f"baseline: CREATE SCHEMA + migrate_schemas for {baseline_runs} fresh schema(s)")
        for i in range(baseline_runs):
            schema = f"{run.baseline_schema_prefix}{i}"
            run.schemas.append(schema)
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
            migrate_s.append(time.perf_counter() - started)
            connection.set_schema_to_public()
            say(f"  migrate  {schema:<24} {migrate_s[-1]:8.3f} s")

        result = TenantBenchResult(
            tenants=tenants,
            clone_s=clone_s,
            migrate_s=migrate_s,
            target_s=target_s,
            run_token=run.token,
            kept=keep,
        )
    finally:
        if keep:
            say(f"kept (--keep): tenants {run.slug_prefix}*, schemas {', '.join(run.schemas) or '-'}")
            problems: list[str] = []
        else:
            problems = _cleanup(run, say)
    assert result is not None  # an exception above would have propagated
    result.cleanup_problems = problems
    return result


def _cleanup(run: _Created, say: Callable[[str], None]) -> list[str]:
    """Remove everything the run created; try every step, report what could not be removed."""
    problems: list[str] = []
    try:
        connection.set_schema_to_public()
        with transaction.atomic():
            domains, _ = Domain.objects.filter(tenant__slug__startswith=run.slug_prefix).delete()
            tenant_rows, _ = Tenant.objects.filter(slug__startswith=run.slug_prefix).delete()
    except Exception as exc:  # noqa: BLE001 - cleanup reports and goes on
        problems.append(f"rows: {type(exc).__name__}: {exc}")
        domains = tenant_rows = 0

    dropped = 0
    for schema in _schemas_to_drop(run, problems):
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            if schema.startswith(run.tenant_schema_prefix):  # a baseline schema has no tenant role
                tenant_db_role_drop(schema)
            dropped += 1
        except Exception as exc:  # noqa: BLE001
            problems.append(f"schema {schema}: {type(exc).__name__}: {exc}")
    say(
        f"cleanup: dropped {dropped} schema(s), deleted {tenant_rows} tenant(s), {domains} domain(s) "
        "(their public audit events stay)" + (f"; {len(problems)} problem(s)" if problems else "")
    )
    return problems


def _schemas_to_drop(run: _Created, problems: list[str]) -> list[str]:
    """The run's schemas that exist: recorded ones and any left over under the run's prefixes."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT nspname FROM pg_namespace")
            return sorted(name for (name,) in cursor.fetchall() if run.owns_schema(name))
    except Exception as exc:  # noqa: BLE001 - fall back to what the run recorded
        problems.append(f"listing schemas: {type(exc).__name__}: {exc}")
        return sorted(run.schemas)
