"""Celery tasks and management commands run in the tenant they were given, and nowhere else.

Tasks run in-process with `task.apply(headers={"_schema_name": ...})` - the header
tenant-schemas-celery puts in every message sent from a tenant's context, which the worker
switches to before the task runs. They are applied from *another* tenant's context on purpose:
the schema in the message wins over whatever the calling connection was on. The real worker
(another process, real Redis) is exercised by tests/test_celery_worker.py for the same routing.

"Nothing changed" is a fingerprint of every table of every other matrix tenant (a hash of all
rows), taken before and after: any insert, update or delete there fails the test.
"""

from __future__ import annotations

import datetime
import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection

from billing.models import BillingRun
from billing.run_tasks import run_batch, run_finish, run_start
from billing.services import billing_run_create
from compliance.audit import Actor
from network.models import CoaRequest, RadiusSession
from network.tasks import radius_coa, radius_housekeeping_all_tenants
from network.tasks_snmp import snmp_poll_chunk
from tenants import roles
from tenants.models import Tenant
from tenants.tasks import tenant_roles_sync
from tests.conftest import TENANT_PROFILES
from tests.security.test_tenant_isolation import _align_sequences, _fingerprint, _radius_rows

pytestmark = [pytest.mark.django_db, pytest.mark.data_safety]

ACTOR = Actor.system("task isolation tests")


def _others(tenant: Tenant) -> list[Tenant]:
    slugs = [p.slug for p in TENANT_PROFILES.values() if p.slug != tenant.slug]
    return list(Tenant.objects.filter(slug__in=slugs).order_by("slug"))


class Untouched:
    """Fingerprints of the other matrix tenants; `check()` fails naming the tables that changed."""

    def __init__(self, tenant: Tenant):
        self.others = _others(tenant)
        self.before = {t.schema_name: _fingerprint(t.schema_name) for t in self.others}

    def check(self) -> None:
        for other in self.others:
            after = _fingerprint(other.schema_name)
            changed = sorted(t for t in after if after[t] != self.before[other.schema_name].get(t))
            assert not changed, f"{other.slug} changed: {changed}"


def _applied(task, tenant: Tenant, *, caller: Tenant, **kwargs):
    """Run `task` in-process as a worker would for a message sent from `tenant`, starting from
    `caller`'s context; returns its result (errors propagate)."""
    connection.set_tenant(caller)
    result = task.apply(kwargs=kwargs, headers={"_schema_name": tenant.schema_name})
    value = result.get(propagate=True)
    assert connection.schema_name == caller.schema_name, "the task did not restore the caller's schema"
    return value


@pytest.mark.contract
def test_the_fingerprint_notices_a_write_in_another_tenant(tenant, other_tenant):
    """Guard against a vacuous check: one changed row anywhere in another tenant is reported."""
    untouched = Untouched(tenant)
    connection.set_tenant(other_tenant)
    Group.objects.filter(name=roles.AUDITOR).update(name="auditor-renamed")
    with pytest.raises(AssertionError, match="auth_group"):
        untouched.check()


# --- tasks sent from a tenant's context -------------------------------------------------------------


@pytest.mark.behavior
def test_roles_sync_rebuilds_the_roles_of_the_tenant_it_was_sent_for_only(tenant, other_tenant):
    # given: the auditor role is gone in every matrix tenant
    for each in [tenant, *_others(tenant)]:
        connection.set_tenant(each)
        Group.objects.filter(name=roles.AUDITOR).delete()
    untouched = Untouched(tenant)
    # when: a role sync for `tenant` runs, applied from another tenant's context
    result = _applied(tenant_roles_sync, tenant, caller=other_tenant)
    # then: it ran in tenant's schema and rebuilt the role there; the others are as they were
    assert result["schema"] == tenant.schema_name
    connection.set_tenant(tenant)
    assert Group.objects.filter(name=roles.AUDITOR).exists()
    untouched.check()


@pytest.mark.behavior
def test_billing_run_tasks_bill_and_finish_in_their_tenant_only(tenant, other_tenant):
    from billing.models import Invoice
    from customers.models import Customer

    # given: a running billing run and a billable customer with the same ids in both tenants
    _align_sequences((BillingRun, Customer), tenant.schema_name, other_tenant.schema_name)
    _radius_rows(other_tenant, "bill-theirs")
    _radius_rows(tenant, "bill-mine")
    connection.set_tenant(other_tenant)
    theirs = billing_run_create(period="2026-11", issue_date=datetime.date(2026, 11, 1), actor=ACTOR)
    their_customer = Customer.objects.order_by("-pk").values_list("pk", flat=True).first()
    connection.set_tenant(tenant)
    mine = billing_run_create(period="2026-11", issue_date=datetime.date(2026, 11, 1), actor=ACTOR)
    assert mine.pk == theirs.pk
    assert Customer.objects.filter(pk=their_customer).exists()  # the same id is a customer of tenant
    untouched = Untouched(tenant)
    # when: a batch with that customer id, then run_finish, are sent for `tenant`; a new run is started there
    batch = _applied(run_batch, tenant, caller=other_tenant, run_id=mine.pk, customer_ids=[their_customer])
    finished = _applied(run_finish, tenant, caller=other_tenant, run_id=mine.pk)
    started = _applied(run_start, tenant, caller=other_tenant, period="2026-10", issue_date="2026-10-01")
    # then: tenant's own customer was billed on tenant's run, which finished; a new run exists in tenant
    assert batch["issued"] == 1
    connection.set_tenant(tenant)
    assert Invoice.objects.filter(customer_id=their_customer, billing_run_id=mine.pk).count() == 1
    assert finished["run"] == mine.pk
    assert finished["status"] != BillingRun.Status.RUNNING
    assert BillingRun.objects.get(pk=mine.pk).status == finished["status"]
    assert BillingRun.objects.filter(pk=started["run"], period_label="2026-10").exists()
    # and: nothing of the other tenants changed - their run with that id is still running, uninvoiced
    untouched.check()
    connection.set_tenant(other_tenant)
    assert BillingRun.objects.get(pk=theirs.pk).status == BillingRun.Status.RUNNING
    assert not Invoice.objects.filter(customer_id=their_customer).exists()
    assert not BillingRun.objects.filter(period_label="2026-10").exists()


@pytest.mark.behavior
def test_a_coa_task_for_a_subscription_id_acts_on_its_own_tenants_sessions_only(tenant, other_tenant):
    # given: subscription ids that exist in both tenants; only the other tenant has an open session
    from customers.models import Subscription
    from network.models import Nas, PppoeAccount

    _align_sequences((Subscription, PppoeAccount, Nas), tenant.schema_name, other_tenant.schema_name)
    _radius_rows(tenant, "coa-mine")
    theirs = _radius_rows(other_tenant, "coa-theirs")
    connection.set_tenant(other_tenant)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT radius.accounting(%s, 'Start', 'iso-coa-1', 'iso-coa-1', %s, %s, '', 'Virtual', '', '', '', "
            "'0', '0', '0', '0', '0', '', '')",
            [other_tenant.schema_name, theirs["username"], theirs["nas_ip"]],
        )
    their_sub = PppoeAccount.objects.get(username=theirs["username"]).subscription_id
    assert RadiusSession.objects.filter(subscription_id=their_sub, stop_time__isnull=True).exists()
    connection.set_tenant(tenant)
    assert Subscription.objects.filter(pk=their_sub).exists()  # the same id is a subscription of tenant
    untouched = Untouched(tenant)
    # when: a disconnect for that id is sent from tenant
    outcomes = _applied(
        radius_coa, tenant, caller=other_tenant, subscription_id=their_sub, kind="disconnect", reason="isolation test"
    )
    # then: tenant's subscription has no session, so nothing was sent; the other tenant saw no request
    assert outcomes == []
    untouched.check()
    connection.set_tenant(other_tenant)
    assert not CoaRequest.objects.filter(subscription_id=their_sub).exists()


@pytest.mark.behavior
def test_an_snmp_chunk_polls_only_its_tenants_devices(tenant, other_tenant):
    from network.models import Device

    # given: a poll-enabled device of the other tenant whose id is free in tenant (ids align)
    _align_sequences((Device,), tenant.schema_name, other_tenant.schema_name)
    connection.set_tenant(other_tenant)
    theirs = Device.objects.create(
        name="iso-router",
        kind=Device.Kind.ROUTER,
        management_ip="127.0.0.254",
        status=Device.Status.UP,
        poll_enabled=True,
    )
    connection.set_tenant(tenant)
    assert not Device.objects.filter(pk=theirs.pk).exists()
    untouched = Untouched(tenant)
    # when: a chunk with that id is polled for tenant
    summary = _applied(snmp_poll_chunk, tenant, caller=other_tenant, device_ids=[theirs.pk])
    # then: tenant has no such device, so nothing was polled; the other tenant's device and samples are as they were
    assert summary["devices"] == 0
    untouched.check()


@pytest.mark.behavior
def test_an_all_tenants_task_visits_each_tenant_in_its_own_schema_and_restores_the_callers(tenant):
    # given: the caller is in one tenant
    connection.set_tenant(tenant)
    # when
    results = radius_housekeeping_all_tenants.apply().get(propagate=True)
    # then: every active matrix tenant was visited (its own result, no error) and the caller's schema is back
    for profile in TENANT_PROFILES.values():
        assert "error" not in results[profile.slug], results[profile.slug]
    assert connection.schema_name == tenant.schema_name


# --- management commands with --tenant --------------------------------------------------------------


def _command(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.behavior
def test_run_billing_with_tenant_bills_that_tenant_only(tenant):
    connection.set_schema_to_public()
    untouched = Untouched(tenant)
    output = _command(
        "run_billing", "--tenant", tenant.slug, "--period", "2026-09", "--issue-date", "2026-09-01", "--no-progress"
    )
    assert tenant.currency in output  # the summary is in the tenant's own currency
    connection.set_tenant(tenant)
    assert BillingRun.objects.filter(period_label="2026-09").count() == 1
    untouched.check()


TENANT_COMMANDS = {
    "run_billing": ("--tenant", "{slug}", "--period", "2026-09", "--issue-date", "2026-09-01", "--no-progress"),
    "run_dunning": ("--tenant", "{slug}", "--date", "2026-11-20"),
    "poll_devices": ("--tenant", "{slug}", "--no-progress"),
    "retention_purge": ("--tenant", "{slug}"),
    "audit_verify": ("--tenant", "{slug}"),
}
# Commands whose --tenant only selects what to read, never what to write, and that need a live service.
TENANT_COMMANDS_EXEMPT = {
    "radius_probe": "reads one NAS's address and secret in the tenant, then talks to a RADIUS server",
}


@pytest.mark.contract
def test_every_command_with_a_tenant_option_is_in_the_isolation_matrix():
    """A new management command that takes --tenant fails here until it is added to TENANT_COMMANDS."""
    from django.core.management import get_commands, load_command_class

    with_tenant = set()
    for name, app in get_commands().items():
        if not isinstance(app, str) or app.startswith("django"):
            continue
        try:
            parser = load_command_class(app, name).create_parser("manage.py", name)
        except Exception:  # noqa: BLE001, S112 - a command that cannot even build its parser is not ours to judge
            continue
        if any("--tenant" in action.option_strings for action in parser._actions):
            with_tenant.add(name)
    assert with_tenant == set(TENANT_COMMANDS) | set(TENANT_COMMANDS_EXEMPT)


@pytest.mark.behavior
@pytest.mark.parametrize("command", sorted(TENANT_COMMANDS))
def test_a_command_given_a_tenant_touches_no_other_tenant(tenant, command):
    connection.set_schema_to_public()
    untouched = Untouched(tenant)
    output = _command(command, *(arg.format(slug=tenant.slug) for arg in TENANT_COMMANDS[command]))
    for other in _others(tenant):
        assert other.slug not in output, f"{command} --tenant {tenant.slug} reported on {other.slug}"
        assert other.schema_name not in output, f"{command} --tenant {tenant.slug} reported on {other.slug}"
    untouched.check()
