"""Billing runs over Celery workers (billing rules, section 8).

`billing.run_start` is sent from a tenant's context (tenant-schemas-celery puts the schema in
the message headers and the worker switches to it). It creates the run - or takes the one the
API already created - lists the billable customers and fans the run out as a chord: one
`billing.run_batch(run_id, customer_ids)` per batch, spread over the workers, and
`billing.run_finish(run_id)` once every batch is done. Tasks take ids and call the services in
billing.services (`billing_run_batch` bills one batch in one transaction, idempotently).

- Sub-tasks go to the queue `run_start` came from, so a deployment can give billing its own
  workers (`ISP_BILLING_QUEUE`, default: Celery's default queue).
- Batches: `ISP_BILLING_BATCH_SIZE` customers (default 500).
- A batch that hits a database error is retried (3 times, backing off); one that still fails
  marks the run "failed" with the reason in its report. Starting the run again for the same
  period finishes it: customers already invoiced are skipped.
- Tasks are queued with `transaction.on_commit`: never before the rows they read are committed.
"""

from __future__ import annotations

import datetime
import logging

from celery import chord, group
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from compliance.audit import Actor, audit_record
from isp.celery import app

from . import selectors
from .models import BillingRun
from .services import DEFAULT_BATCH_SIZE, batches, billing_run_batch, billing_run_create, billing_run_finish

logger = logging.getLogger(__name__)
TASK_ACTOR = "celery billing run"


class NotInTenantSchema(RuntimeError):
    """A billing task was sent from outside any tenant (the public schema)."""


def _require_tenant(task_name: str) -> None:
    if connection.schema_name == settings.PUBLIC_SCHEMA_NAME:
        raise NotInTenantSchema(f"{task_name} must be sent from a tenant's context, not the public schema")


def billing_queue() -> str | None:
    """The queue billing runs are sent to (None: Celery's default queue)."""
    return getattr(settings, "ISP_BILLING_QUEUE", "") or None


def configured_batch_size() -> int:
    return max(1, int(getattr(settings, "ISP_BILLING_BATCH_SIZE", DEFAULT_BATCH_SIZE)))


def run_start_send(*, run: BillingRun) -> None:
    """Queue `billing.run_start` for a run created in the caller's transaction, once it commits
    (the worker could not see the run before). Sent from the current tenant's context."""
    kwargs = {"period": run.period_label, "issue_date": run.issue_date.isoformat(), "run_id": run.pk}
    queue = billing_queue()
    options = {"queue": queue} if queue else {}
    transaction.on_commit(lambda: run_start.apply_async(kwargs=kwargs, **options))


@transaction.atomic
def billing_run_fail(*, run_id: int, reason: str, actor: Actor) -> BillingRun:
    """Mark a run failed (a batch could not be billed even after retries), keeping the reason in
    its report. Its finished batches stay issued; starting the period again completes it."""
    run = BillingRun.objects.select_for_update().get(pk=run_id)
    report = run.report or {}
    report.setdefault("errors", []).append(reason[:500])
    run.report = report
    run.status = BillingRun.Status.FAILED
    run.finished_at = timezone.now()
    run.save(update_fields=["report", "status", "finished_at"])
    audit_record(actor=actor, action="billing_run.failed", target=run, changed_fields=["status"], reason=reason)
    return run


@app.task(name="billing.run_start", bind=True)
def run_start(
    self, period: str, issue_date: str | None = None, run_id: int | None = None, batch_size: int | None = None
) -> dict:
    """Create the run (unless `run_id` names one) and fan its batches out over the workers."""
    _require_tenant("billing.run_start")
    actor = Actor.system(TASK_ACTOR)
    if run_id is None:
        day = datetime.date.fromisoformat(issue_date) if issue_date else None
        run = billing_run_create(period=period, issue_date=day, actor=actor)
    else:
        run = BillingRun.objects.get(pk=run_id)
        if run.status != BillingRun.Status.RUNNING:
            return {"run": run.pk, "batches": 0, "customers": 0, "status": run.status}
    ids = selectors.billable_customer_ids()
    chunks = batches(ids, batch_size or configured_batch_size())
    queue = (self.request.delivery_info or {}).get("routing_key") or billing_queue()
    options = {"queue": queue} if queue else {}
    if not chunks:
        billing_run_finish(run=run, actor=actor)
    else:
        header = group(run_batch.si(run.pk, chunk).set(**options) for chunk in chunks)
        callback = run_finish.si(run.pk).set(**options)
        transaction.on_commit(lambda: chord(header)(callback))
    return {"run": run.pk, "batches": len(chunks), "customers": len(ids), "status": run.status}


class _BatchTask(app.Task):
    abstract = True

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """The batch failed for good (after its retries): the run is marked failed. Runs in the
        worker while the task's tenant schema is still active."""
        run_id = args[0] if args else kwargs.get("run_id")
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        try:
            billing_run_fail(
                run_id=run_id,
                reason=f"batch task {task_id} failed: {type(exc).__name__}: {first_line}",
                actor=Actor.system(TASK_ACTOR),
            )
        except Exception:  # the failure is logged by Celery; never mask it
            logger.exception("billing: could not mark run %s failed", run_id)


@app.task(
    name="billing.run_batch",
    base=_BatchTask,
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    retry_kwargs={"max_retries": 3},
)
def run_batch(run_id: int, customer_ids: list[int]) -> dict:
    """Bill one batch of customers of the run (one transaction; idempotent)."""
    _require_tenant("billing.run_batch")
    run = BillingRun.objects.get(pk=run_id)
    result = billing_run_batch(run=run, customer_ids=customer_ids, actor=Actor.system(TASK_ACTOR))
    return {
        "run": run_id,
        "considered": result.considered,
        "issued": len(result.issued),
        "skipped": len(result.skipped),
        "failed": len(result.failed),
    }


@app.task(name="billing.run_finish")
def run_finish(run_id: int) -> dict:
    """Every batch is done: the run is finished (unless a batch already marked it failed)."""
    _require_tenant("billing.run_finish")
    run = BillingRun.objects.get(pk=run_id)
    if run.status == BillingRun.Status.RUNNING:
        run = billing_run_finish(run=run, actor=Actor.system(TASK_ACTOR))
    return {
        "run": run.pk,
        "status": run.status,
        "invoices_issued": run.invoices_issued,
        "customers_failed": run.customers_failed,
        "total_amount": str(run.total_amount),
    }
