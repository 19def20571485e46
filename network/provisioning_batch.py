"""Activating many subscriptions at once (a new street lit up, a migration from another system):
the same jobs, steps, checks and audit trail as `network.provisioning.provision`, with each step
run for a whole batch in one transaction instead of once per subscription.

- Every subscription still gets its own `ProvisioningJob`; a step's effects and its entry in
  `job.steps_done` commit together, so a crash leaves every job resumable by `provision_retry`.
- What a step checks for one subscription it checks for each one of the batch (pool exists and is
  static, the address free, the user name and static IP not taken, the ONU known and not bound
  elsewhere, the subscription pending). A subscription that fails a check gets a `failed` job with
  the step and the reason, exactly as alone; the rest of the batch goes on.
- Subscriptions that need the unusual path of a step (a static address asked for, credentials or an
  address already there) run that step through the single-subscription code, in a savepoint.
- If a batch step fails as a whole (an unexpected database error), its transaction rolls back and
  each job of the batch continues alone through `network.provisioning`, so nothing is lost and
  nothing is done twice.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from compliance.audit import Actor, audit_many
from customers import services as customer_services
from customers.models import Customer, Subscription

from .models import USERNAME_VALIDATOR, IpAssignment, IpPool, Onu, PppoeAccount, ProvisioningJob
from .provisioning import (
    PRECONDITIONS,
    STEPS,
    Action,
    State,
    StepContext,
    _clean_params,
    _continue,
    _error_text,
    _invalid,
    _ipv4_network,
    _set_state,
    job_steps,
)

logger = logging.getLogger(__name__)

S = Subscription.Status
BATCH_SIZE = 200
OPEN = (State.PENDING, State.RUNNING, State.FAILED)
ACTIVATE_STEPS = ("allocate_ip", "radius_credentials", "bind_onu", "mark_active")

Outcome = ProvisioningJob | ValidationError
Notes = dict[int, str]  # job pk -> what the step did
Failures = dict[int, Exception]  # job pk -> why the step failed for that job


def provision_activate_many(
    *, requests: Sequence[tuple[int, dict | None]], actor: Actor, batch_size: int = BATCH_SIZE
) -> dict[int, Outcome]:
    """Activate each (subscription id, params) as `provision(action="activate")` would.

    Returns, per subscription id, its job (`done`, or `failed` with `current_step` and `error`) or
    the ValidationError that kept a job from being created (bad params, wrong status, a job
    already open). `job.result` holds the address, the user name and the password, once."""
    ids = [sub_id for sub_id, _params in requests]
    if len(set(ids)) != len(ids):
        raise _invalid("subscriptions", "A subscription is listed twice.", "duplicate")
    outcomes: dict[int, Outcome] = {}
    cleaned: list[tuple[int, dict]] = []
    for sub_id, params in requests:
        try:
            cleaned.append((sub_id, _clean_params(Action.ACTIVATE, params)))
        except ValidationError as exc:
            outcomes[sub_id] = exc
    for start in range(0, len(cleaned), max(1, batch_size)):
        outcomes.update(_activate_batch(cleaned[start : start + batch_size], actor))
    return outcomes


def _activate_batch(cleaned: list[tuple[int, dict]], actor: Actor) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    jobs = _create_jobs(cleaned, actor, outcomes)
    results: dict[int, dict] = {job.pk: {} for job in jobs}
    live = {job.pk: job for job in jobs}
    for step in ACTIVATE_STEPS:
        batch = [job for job in live.values() if step in job_steps(job.action, job.params)]
        if not batch:
            continue
        failures = _batch_step(step, batch, actor, results, live)
        if failures is None:  # the step could not run for the batch: each job goes on alone
            for job in batch:
                fresh = ProvisioningJob.objects.get(pk=job.pk)
                done = _continue(fresh, actor, results[job.pk])
                outcomes[job.subscription_id] = done
                del live[job.pk]
            continue
        for pk, exc in failures.items():
            job = live.pop(pk)
            error = _error_text(exc)
            failed = _set_state(
                job, state=State.FAILED, actor=actor, reason=f"{step}: {error}", current_step=step, error=error
            )
            failed.result = results[pk]
            outcomes[job.subscription_id] = failed
    if live:
        _mark_done(list(live.values()), actor)
        for job in live.values():
            job.result = results[job.pk]
            outcomes[job.subscription_id] = job
    return outcomes


def _create_jobs(cleaned: list[tuple[int, dict]], actor: Actor, outcomes: dict[int, Outcome]) -> list[ProvisioningJob]:
    """Check each request as `provision` does and create the jobs of the good ones, `running`."""
    with transaction.atomic():
        subs = {
            s.pk: s
            for s in Subscription.objects.select_for_update().filter(pk__in=[i for i, _p in cleaned]).order_by("pk")
        }
        open_jobs = dict(
            ProvisioningJob.objects.filter(
                subscription_id__in=list(subs), action=Action.ACTIVATE, state__in=OPEN
            ).values_list("subscription_id", "pk")
        )
        jobs = []
        for sub_id, params in cleaned:
            sub = subs.get(sub_id)
            if sub is None:
                outcomes[sub_id] = _invalid("subscription", f"There is no subscription {sub_id}.", "unknown")
            elif sub.status not in PRECONDITIONS[Action.ACTIVATE]:
                outcomes[sub_id] = _invalid(
                    "status", f"The subscription is {sub.status}: it cannot be activated.", "wrong_status"
                )
            elif sub_id in open_jobs:
                outcomes[sub_id] = _invalid(
                    "action", f"activate job {open_jobs[sub_id]} of this subscription is open: retry it.", "job_open"
                )
            else:
                jobs.append(
                    ProvisioningJob(
                        subscription_id=sub_id, action=Action.ACTIVATE, params=params, state=State.RUNNING, attempts=1
                    )
                )
        ProvisioningJob.objects.bulk_create(jobs)
        audit_many(
            actor=actor,
            action="provisioning.pending",
            entries=[
                (
                    job,
                    ("state", "params"),
                    f"activate subscription {job.subscription_id}: steps "
                    + ", ".join(job_steps(job.action, job.params)),
                )
                for job in jobs
            ],
        )
        audit_many(
            actor=actor,
            action="provisioning.running",
            entries=[
                (
                    job,
                    ("state", "attempts", "error", "finished_at"),
                    f"activate subscription {job.subscription_id}: pending -> running.",
                )
                for job in jobs
            ],
        )
    return jobs


def _batch_step(
    step: str, batch: list[ProvisioningJob], actor: Actor, results: dict[int, dict], live: dict[int, ProvisioningJob]
) -> Failures | None:
    """Run `step` for the batch in one transaction; returns the jobs it failed for, or None when
    the transaction failed as a whole (then nothing of it was written)."""
    saved = {job.pk: copy.deepcopy(results[job.pk]) for job in batch}
    try:
        with transaction.atomic():
            jobs = {
                j.pk: j
                for j in ProvisioningJob.objects.select_for_update().filter(pk__in=[j.pk for j in batch]).order_by("pk")
            }
            subs = {
                s.pk: s
                for s in Subscription.objects.select_for_update()
                .filter(pk__in=[j.subscription_id for j in batch])
                .order_by("pk")
            }
            ctxs = [
                StepContext(job=jobs[j.pk], subscription=subs[j.subscription_id], actor=actor, result=results[j.pk])
                for j in batch
            ]
            notes, failures = BATCH_STEPS[step](ctxs, actor)
            done = [c.job for c in ctxs if c.job.pk not in failures]
            now = timezone.now()
            for job in done:
                job.current_step = step
                job.steps_done = [*job.steps_done, step]
                job.updated_at = now
            with connection.cursor() as cursor:  # one statement (bulk_update builds a CASE per row)
                cursor.execute(
                    "UPDATE network_provisioningjob SET steps_done = steps_done || to_jsonb(%s::text), "
                    "current_step = %s, updated_at = %s WHERE id = ANY(%s)",
                    [step, step, now, [job.pk for job in done]],
                )
            audit_many(
                actor=actor,
                action="provisioning.step_done",
                entries=[(job, ("steps_done",), f"{step}: {notes[job.pk]}") for job in done],
            )
    except Exception:  # rolled back as a whole; every job goes on alone, from where it stands
        logger.exception("provisioning batch: step %s failed for the batch; the jobs go on one by one", step)
        for pk, result in saved.items():
            results[pk].clear()
            results[pk].update(result)
        return None
    for job in jobs.values():
        live[job.pk] = job
    return failures


def _mark_done(jobs: list[ProvisioningJob], actor: Actor) -> None:
    now = timezone.now()
    with transaction.atomic():
        ProvisioningJob.objects.filter(pk__in=[j.pk for j in jobs]).update(
            state=State.DONE, current_step="", finished_at=now, updated_at=now
        )
        audit_many(
            actor=actor,
            action="provisioning.done",
            entries=[
                (
                    job,
                    ("state", "current_step", "finished_at"),
                    f"activate subscription {job.subscription_id}: running -> done.",
                )
                for job in jobs
            ],
        )
    for job in jobs:
        job.state, job.current_step, job.finished_at, job.updated_at = State.DONE, "", now, now


# --- the steps, for a batch -------------------------------------------------------------------


def _run_alone(step: str, ctx: StepContext, notes: Notes, failures: Failures) -> None:
    """The single-subscription step, in a savepoint: its ValidationError fails that job only."""
    try:
        with transaction.atomic():
            notes[ctx.job.pk] = STEPS[step](ctx)
    except ValidationError as exc:
        failures[ctx.job.pk] = exc


def batch_allocate_ip(ctxs: list[StepContext], actor: Actor) -> tuple[Notes, Failures]:
    from .inventory import free_hosts, reserved_addresses

    notes: Notes = {}
    failures: Failures = {}
    holding = set(
        IpAssignment.objects.filter(subscription_id__in=[c.subscription.pk for c in ctxs]).values_list(
            "subscription_id", flat=True
        )
    )
    by_pool: dict[str, list[StepContext]] = defaultdict(list)
    for ctx in ctxs:
        if ctx.subscription.pk in holding or ctx.params.get("static_ip") or not ctx.params.get("pool"):
            _run_alone("allocate_ip", ctx, notes, failures)
        else:
            by_pool[ctx.params["pool"]].append(ctx)
    for name, group in by_pool.items():
        pool = IpPool.objects.select_for_update().filter(name=name).first()
        network = _ipv4_network(pool) if pool is not None else None
        if pool is None:
            problem = _invalid("pool", f"There is no IP pool named {name!r}.", "unknown_pool")
        elif network is None:
            problem = _invalid("pool", f"Pool {pool.name} is not IPv4 (Framed-IP-Address is IPv4).", "not_ipv4")
        elif pool.kind != IpPool.Kind.STATIC:
            problem = _invalid("pool", f"Pool {pool.name} is dynamic: the NAS hands its addresses out.", "dynamic")
        else:
            problem = None
        if problem is not None:
            failures.update(dict.fromkeys((c.job.pk for c in group), problem))
            continue
        taken = set(IpAssignment.objects.filter(pool=pool).values_list("address", flat=True))
        free = free_hosts(network, taken, reserved_addresses(network, pool.gateway))
        assignments = []
        for ctx in group:
            address = next(free, None)
            if address is None:
                failures[ctx.job.pk] = _invalid(
                    "pool", f"Pool {pool.name} ({pool.network}) has no free address.", "exhausted"
                )
                continue
            assignments.append(IpAssignment(pool=pool, address=address, subscription=ctx.subscription))
            ctx.result["ip_address"] = address
            notes[ctx.job.pk] = f"allocated {address} from {pool.name}"
        IpAssignment.objects.bulk_create(assignments, batch_size=1000)
        audit_many(
            actor=actor,
            action="ip.allocated",
            entries=[(a, ("address", "subscription"), f"pool {pool.name}") for a in assignments],
        )
    return notes, failures


def seal_many(secrets_: list[str]) -> list[bytes]:
    """Seal secrets for FreeRADIUS in one round trip (see network.radius.db.seal)."""
    if not secrets_:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT radius.seal(s) FROM unnest(%s::text[]) WITH ORDINALITY AS t(s, n) ORDER BY n", [secrets_]
        )
        return [bytes(row[0]) for row in cursor.fetchall()]


def batch_radius_credentials(ctxs: list[StepContext], actor: Actor) -> tuple[Notes, Failures]:
    from .services import _new_password

    notes: Notes = {}
    failures: Failures = {}
    sub_ids = [c.subscription.pk for c in ctxs]
    has_account = set(
        PppoeAccount.objects.filter(subscription_id__in=sub_ids).values_list("subscription_id", flat=True)
    )
    addresses = dict(IpAssignment.objects.filter(subscription_id__in=sub_ids).values_list("subscription_id", "address"))
    codes = {
        sub_id: Customer(account_number=number).account_code
        for sub_id, number in Subscription.objects.filter(pk__in=sub_ids).values_list("pk", "customer__account_number")
    }
    username_field = PppoeAccount._meta.get_field("username")
    fresh: list[tuple[StepContext, str, str | None]] = []
    for ctx in ctxs:
        sub_id = ctx.subscription.pk
        if sub_id in has_account:
            _run_alone("radius_credentials", ctx, notes, failures)
            continue
        username = (ctx.params.get("username") or f"{codes[sub_id]}-{sub_id}".lower()).strip()
        try:
            username_field.clean(username, None)
            USERNAME_VALIDATOR(username)
        except ValidationError as exc:
            failures[ctx.job.pk] = ValidationError({"username": exc.messages})
            continue
        fresh.append((ctx, username, addresses.get(sub_id)))
    taken_names = set(
        PppoeAccount.objects.filter(username__in=[u for _c, u, _ip in fresh]).values_list("username", flat=True)
    )
    taken_ips = set(
        PppoeAccount.objects.filter(static_ip__in=[ip for _c, _u, ip in fresh if ip]).values_list(
            "static_ip", flat=True
        )
    )
    good: list[tuple[StepContext, str, str | None]] = []
    for ctx, username, ip in fresh:
        if username in taken_names:
            failures[ctx.job.pk] = _invalid("username", "This user name is taken.", "username_taken")
        elif ip and ip in taken_ips:
            failures[ctx.job.pk] = _invalid("static_ip", f"{ip} is already assigned.", "ip_taken")
        else:
            taken_names.add(username)
            if ip:
                taken_ips.add(ip)
            good.append((ctx, username, ip))
    passwords = [_new_password() for _ in good]
    accounts = [
        PppoeAccount(
            subscription=ctx.subscription,
            username=username,
            secret_sealed=sealed,
            static_ip=ip or None,
            simultaneous_use=ctx.params.get("simultaneous_use", 1),
        )
        for (ctx, username, ip), sealed in zip(good, seal_many(passwords), strict=True)
    ]
    PppoeAccount.objects.bulk_create(accounts, batch_size=1000)
    audit_many(
        actor=actor,
        action="pppoe.created",
        entries=[(a, ("username", "secret", "static_ip", "simultaneous_use"), "") for a in accounts],
    )
    for (ctx, username, _ip), password in zip(good, passwords, strict=True):
        ctx.result["pppoe_username"] = username
        ctx.result["pppoe_password"] = password
        notes[ctx.job.pk] = f"created {username}"
    return notes, failures


def batch_bind_onu(ctxs: list[StepContext], actor: Actor) -> tuple[Notes, Failures]:
    from .gpon.service import onu_bind, onu_binding_problem

    notes: Notes = {}
    failures: Failures = {}
    serials = [c.params["onu_serial"] for c in ctxs]
    onus = {o.serial: o for o in Onu.objects.select_for_update().filter(serial__in=serials).order_by("pk")}
    bound = dict(
        Onu.objects.filter(subscription_id__in=[c.subscription.pk for c in ctxs]).values_list(
            "subscription_id", "serial"
        )
    )
    now = timezone.now()
    changed: list[Onu] = []
    for ctx in ctxs:
        sub, serial = ctx.subscription, ctx.params["onu_serial"]
        onu = onus.get(serial)
        if onu is None:
            failures[ctx.job.pk] = _invalid(
                "onu_serial",
                f"No ONU {serial} is known: connect it and run autofind on its OLT, then retry.",
                "unknown_onu",
            )
        elif onu.subscription_id == sub.pk:
            ctx.result["onu_serial"] = serial
            notes[ctx.job.pk] = f"ONU {serial} bound"
        elif (problem := onu_binding_problem(onu, sub, bound.get(sub.pk))) is not None:
            failures[ctx.job.pk] = problem
        else:
            onu_bind(onu, sub, now=now)
            bound[sub.pk] = serial
            changed.append(onu)
            ctx.result["onu_serial"] = serial
            notes[ctx.job.pk] = f"ONU {serial} bound"
    if changed:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE network_onu SET subscription_id = v.sub, authorised_at = %s, state = v.state "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS v(id, sub, state) WHERE network_onu.id = v.id",
                [now, [o.pk for o in changed], [o.subscription_id for o in changed], [o.state for o in changed]],
            )
    audit_many(
        actor=actor,
        action="onu.authorised",
        entries=[
            (onu, ("subscription", "authorised_at", "state"), f"subscription {onu.subscription_id}") for onu in changed
        ],
    )
    return notes, failures


def batch_mark_active(ctxs: list[StepContext], actor: Actor) -> tuple[Notes, Failures]:
    notes: Notes = {}
    failures: Failures = {}
    pending = []
    for ctx in ctxs:
        if ctx.subscription.status == S.ACTIVE:
            notes[ctx.job.pk] = f"already active since {ctx.subscription.activated_on}"
        else:
            pending.append(ctx)
    activated, refused = customer_services.subscriptions_activate_many(
        requests=[(c.subscription.pk, c.date("activated_on"), f"provisioning job {c.job.pk}") for c in pending],
        actor=actor,
    )
    by_sub = {sub.pk: sub for sub in activated}
    for ctx in pending:
        if ctx.subscription.pk in refused:
            failures[ctx.job.pk] = refused[ctx.subscription.pk]
        else:
            notes[ctx.job.pk] = f"active from {by_sub[ctx.subscription.pk].activated_on}"
    return notes, failures


BATCH_STEPS: dict[str, Callable[[list[StepContext], Actor], tuple[Notes, Failures]]] = {
    "allocate_ip": batch_allocate_ip,
    "radius_credentials": batch_radius_credentials,
    "bind_onu": batch_bind_onu,
    "mark_active": batch_mark_active,
}
