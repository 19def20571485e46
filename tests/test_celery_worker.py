"""A real Celery worker (subprocess) against the real Redis and the pytest test database.

Proves that tasks take ids (here: none) and run in the schema they were sent from:
tenant-schemas-celery puts the sender's schema in the message headers and the worker
switches to it before running the task.

The worker is another process, so it cannot see the test's transaction: these tests make
*committed* changes (through ``django_db_blocker.unblock()``, no ``db`` fixture) and put
everything back in ``finally``. Each run uses its own queue name, so parallel runs sharing
one Redis do not steal each other's messages (result keys are per task id anyway).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.data_safety, pytest.mark.behavior]

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"
RESULT_TIMEOUT_S = 60
WORKER_STOP_TIMEOUT_S = 15
TEST_SETTINGS = "isp.settings.test"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _test_database_url() -> str:
    """The URL of the database this pytest session uses (pytest-django already renamed it)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(db.get("HOST") or "", safe="")  # a socket directory becomes %2F...
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


def _require_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
        return
    except Exception as exc:  # noqa: BLE001 - any failure means the same: no Redis
        problem = f"{type(exc).__name__}: {exc}"
    pytest.fail(
        f"Redis (broker/result backend) at {_redact(url)} is not reachable ({problem}). "
        "Redis is a required service for the test suite, not optional - start it with `make setup` "
        "(make test does) and check REDIS_URL in .local/env.",
        pytrace=False,
    )


def _log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


class Worker:
    def __init__(self, process: subprocess.Popen, queue: str, log_path: Path):
        self.process = process
        self.queue = queue
        self.log_path = log_path

    def wait_result(self, async_result, timeout: float = RESULT_TIMEOUT_S):
        """The task's return value; fails fast (with the worker's log) if the worker dies."""
        deadline = time.monotonic() + timeout
        while not async_result.ready():
            if self.process.poll() is not None:
                pytest.fail(
                    f"celery worker exited with {self.process.returncode} before task {async_result.id} finished; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"task {async_result.id} not done after {timeout}s on queue {self.queue}; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.2)
        return async_result.get(timeout=5, propagate=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # warm shutdown
    try:
        process.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=WORKER_STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup):
    """A `celery -A isp worker` on a queue of its own, using this session's test database."""
    from django.conf import settings

    _require_redis(settings.CELERY_BROKER_URL)
    queue = f"test-worker-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / f"celery-worker-{queue}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": TEST_SETTINGS,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.CELERY_BROKER_URL,
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable,  # the project's .venv interpreter when run via .venv/bin/pytest
        "-m",
        "celery",
        "-A",
        "isp",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "--loglevel=INFO",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield Worker(process, queue, log_path)
        finally:
            _stop(process)


# --- committed-state helpers (run under django_db_blocker.unblock()) --------------------------


def _group_snapshot() -> dict[str, tuple[set[int], set[int]]]:
    """name -> (permission ids, user ids) of every group in the current schema."""
    from django.contrib.auth.models import Group

    return {
        group.name: (
            set(group.permissions.values_list("pk", flat=True)),
            set(group.user_set.values_list("pk", flat=True)),
        )
        for group in Group.objects.all()
    }


def _group_restore(snapshot: dict[str, tuple[set[int], set[int]]]) -> None:
    """Put the current schema's groups back as in `snapshot` (names, permissions, members)."""
    from django.contrib.auth.models import Group

    Group.objects.exclude(name__in=snapshot).delete()
    for name, (permission_ids, user_ids) in snapshot.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permission_ids)
        group.user_set.set(user_ids)


def _auditor_permission_count() -> int | None:
    from django.contrib.auth.models import Group

    from tenants import roles

    group = Group.objects.filter(name=roles.AUDITOR).first()
    return None if group is None else group.permissions.count()


def test_a_task_sent_from_a_tenant_runs_in_that_tenants_schema_only(celery_worker_process, django_db_blocker):
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.db import connection
    from django_tenants.utils import schema_context, tenant_context

    from tenants import roles
    from tenants.models import Tenant
    from tenants.tasks import tenant_roles_sync

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        us = Tenant.objects.get(slug="us-isp")
        eu = Tenant.objects.get(slug="eu-isp")
        with schema_context(settings.TENANT_BASE_SCHEMA):
            template_auditor_perms = _auditor_permission_count()
        assert template_auditor_perms, "the template schema has no (or an empty) auditor group"
        with tenant_context(us):
            us_before = _group_snapshot()
        with tenant_context(eu):
            eu_before = _group_snapshot()
        assert roles.AUDITOR in us_before, "us-isp lacks the auditor role before the test"
        assert roles.AUDITOR in eu_before, "eu-isp lacks the auditor role before the test"

        try:
            # given: the auditor role is gone in both us-isp and eu-isp (committed)
            with tenant_context(us):
                Group.objects.filter(name=roles.AUDITOR).delete()
            with tenant_context(eu):
                Group.objects.filter(name=roles.AUDITOR).delete()

            # when: a role sync is sent from us-isp's context
            with tenant_context(us):
                sent = tenant_roles_sync.apply_async(queue=celery_worker_process.queue)
            result = celery_worker_process.wait_result(sent)

            # then: it ran in us-isp's schema and rebuilt the role there, like the template's
            assert result["schema"] == us.schema_name == "tenant_us_isp", result
            assert result["roles"][roles.AUDITOR] == template_auditor_perms, result
            with tenant_context(us):
                assert _auditor_permission_count() == template_auditor_perms
            # and: eu-isp's schema was not touched - its auditor role is still missing
            with tenant_context(eu):
                assert not Group.objects.filter(name=roles.AUDITOR).exists(), "the us-isp task wrote into eu-isp"
        finally:
            for tenant, before in ((us, us_before), (eu, eu_before)):
                with tenant_context(tenant):
                    roles.roles_sync()
                    _group_restore(before)
            connection.set_schema_to_public()

        with tenant_context(eu):
            assert _auditor_permission_count() == template_auditor_perms


def test_a_task_sent_from_the_public_schema_runs_in_public_and_a_tenant_task_refuses_it(
    celery_worker_process, django_db_blocker
):
    from django.contrib.auth.models import Group
    from django.db import connection

    from tenants import roles
    from tenants.tasks import tenant_roles_sync

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        staff_groups_before = set(Group.objects.filter(name__in=roles.STAFF_ROLES).values_list("name", flat=True))
        sent = tenant_roles_sync.apply_async(queue=celery_worker_process.queue)
        # the worker ran it in public (the routing works) and the task refused to act there
        with pytest.raises(Exception, match="must be sent from a tenant's context") as excinfo:
            celery_worker_process.wait_result(sent)
        assert type(excinfo.value).__name__ == "NotInTenantSchema"
        assert set(Group.objects.filter(name__in=roles.STAFF_ROLES).values_list("name", flat=True)) == (
            staff_groups_before
        )
