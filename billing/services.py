"""Billing runs (billing rules, section 8).

A run bills one tenant for one period label (YYYY-MM: the month each customer's period starts
in). Customers are processed in batches, each batch in one transaction:

1. lock the batch's customers (in id order, so concurrent runs queue instead of deadlocking);
2. skip those already invoiced for their period (idempotent: the same customer and period is
   never invoiced twice - also enforced by a unique constraint);
3. load the facts of the whole batch in a fixed number of queries, draft every invoice in plain
   Python (a customer whose drafting fails is reported and skipped, the others go on);
4. write invoices, lines, taxes, audit events with COPY, take the invoice numbers (gap-free per
   year: they are taken inside the batch's transaction), apply credit balances;
5. update the run's report.

A run killed half way leaves whole batches only; running it again finishes the rest.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from compliance.audit import Actor, audit_many, audit_record
from tenants.clock import tenant_today  # noqa: F401 - re-exported

from . import balances, selectors
from .domain.money import ZERO
from .domain.taxes import validate_for_tenant
from .engine import InvoiceDraft, TenantTerms, draft_invoice, run_period_for
from .models import BillingRun, Invoice
from .writer import write_invoices

logger = logging.getLogger(__name__)
DEFAULT_BATCH_SIZE = 500


@dataclass
class BatchResult:
    considered: int = 0
    issued: list[tuple[int, int, str, Decimal]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def total_amount(self) -> Decimal:
        return sum((amount for *_rest, amount in self.issued), ZERO)


def parse_period_label(label: str) -> tuple[int, int]:
    try:
        year, month = (int(part) for part in label.split("-"))
        datetime.date(year, month, 1)
    except (ValueError, TypeError):
        raise ValidationError({"period": [f"{label!r} is not a period: use YYYY-MM, e.g. 2026-11."]}) from None
    return year, month


def tenant_terms() -> TenantTerms:
    tenant = connection.tenant
    return TenantTerms(
        currency=tenant.currency,
        tax_inclusive=tenant.tax_inclusive,
        billing_day=tenant.billing_day,
        bill_during_suspension=tenant.bill_during_suspension,
        payment_terms_days=tenant.payment_terms_days,
    )


@transaction.atomic
def billing_run_create(*, period: str, actor: Actor, issue_date: datetime.date | None = None) -> BillingRun:
    parse_period_label(period)
    run = BillingRun.objects.create(period_label=period, issue_date=issue_date or tenant_today())
    audit_record(actor=actor, action="billing_run.started", target=run, changed_fields=["period_label"])
    return run


def billing_run_batch(*, run: BillingRun, customer_ids: list[int], actor: Actor) -> BatchResult:
    """Bill one batch of customers in one transaction (see the module docstring)."""
    year, month = parse_period_label(run.period_label)
    terms = tenant_terms()
    result = BatchResult(considered=len(customer_ids))
    started = timezone.now()  # before any fact is read: what this batch settles is as of then
    with transaction.atomic():
        _relax_commit_durability()
        billing_days = selectors.lock_customers(customer_ids)
        ids = sorted(billing_days)
        periods = {cid: run_period_for(billing_days[cid], terms, year, month) for cid in ids}
        already = selectors.invoiced_customer_ids(ids, {cid: p.start for cid, p in periods.items()})
        result.skipped.extend((cid, "already invoiced for this period") for cid in sorted(already))
        todo = [cid for cid in ids if cid not in already]
        rates = selectors.tax_rates()
        validate_for_tenant(rates, tax_inclusive=terms.tax_inclusive)
        facts = selectors.load_batch(todo, tenant_billing_day=terms.billing_day, run_periods=periods)
        drafts: list[InvoiceDraft] = []
        for cid in todo:
            try:
                draft = draft_invoice(cid, facts, run_period=periods[cid], terms=terms, rates=rates)
            except Exception as exc:  # one bad customer never stops the run: reported, skipped
                logger.exception("billing: drafting failed for customer %s", cid)
                result.failed.append((cid, f"{type(exc).__name__}: {exc}"))
                continue
            if draft is None:
                result.skipped.append((cid, "nothing to bill"))
            else:
                drafts.append(draft)
        result.issued = _write_with_isolation(
            drafts, run=run, terms=terms, actor=actor, failed=result.failed, settled_at=started
        )
        _apply_credit(result.issued, actor=actor)
        _record_batch(run, result)
    return result


def _relax_commit_durability() -> None:
    """A batch commits without waiting for its WAL flush (`synchronous_commit = off`, this
    transaction only). A crash can lose the last fraction of a second of committed batches, never
    part of one: the invoices, their numbers and the sequence move together, so the sequence stays
    gap-free and a restarted run bills those customers again. A commit then no longer waits for the
    disk (measured with the other write-path changes together, docs/billing.md)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _write_with_isolation(drafts, *, run, terms: TenantTerms, actor: Actor, failed: list, settled_at=None) -> list:
    """Write the batch at once; if the database refuses it, write customer by customer so only
    the customer at fault is reported (never a half-written invoice: each in a savepoint)."""
    kwargs = {
        "run_id": run.pk,
        "issue_date": run.issue_date,
        "currency": terms.currency,
        "tax_inclusive": terms.tax_inclusive,
        "payment_terms_days": terms.payment_terms_days,
        "actor": actor,
        "settled_at": settled_at,
    }
    try:
        with transaction.atomic():
            return write_invoices(drafts, **kwargs)
    except DatabaseError:
        logger.warning("billing: batch write refused; retrying customer by customer")
    issued = []
    for draft in drafts:
        try:
            with transaction.atomic():
                issued.extend(write_invoices([draft], **kwargs))
        except DatabaseError as exc:
            failed.append((draft.customer_id, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
    return issued


def _apply_credit(issued: list[tuple[int, int, str, Decimal]], *, actor: Actor) -> None:
    """Credit balances pay new invoices first (never below zero); a negative invoice adds credit.
    Each movement is audited on its invoice, in the batch's transaction (one INSERT)."""
    if not issued:
        return
    with_credit = selectors.customers_with_credit([cid for cid, *_ in issued])
    entries = []
    for cid, invoice_id, number, amount_due in issued:
        if amount_due < 0:
            balances.balance_add(customer_id=cid, amount=-amount_due, reason="negative_invoice", invoice_id=invoice_id)
            entries.append(
                ("invoice.credit_added", invoice_id, ["credit_balance"], f"{number}: {-amount_due} to credit")
            )
        elif cid in with_credit and amount_due > 0:
            used = balances.balance_use(
                customer_id=cid, up_to=amount_due, reason="applied_to_invoice", invoice_id=invoice_id
            )
            if used:
                changed = ["credit_applied", "credit_balance"]
                Invoice.objects.filter(pk=invoice_id).update(credit_applied=used)
                if used == amount_due:
                    Invoice.objects.filter(pk=invoice_id).update(status=Invoice.Status.PAID)
                    changed.append("status")
                entries.append(("invoice.credit_applied", invoice_id, changed, f"{number}: {used} of credit applied"))
    for action in {entry[0] for entry in entries}:
        audit_many(
            actor=actor,
            action=action,
            entries=[(Invoice(pk=pk), fields, reason) for name, pk, fields, reason in entries if name == action],
        )


def _record_batch(run: BillingRun, result: BatchResult) -> None:
    locked = BillingRun.objects.select_for_update().get(pk=run.pk)
    report = locked.report or {}
    report.setdefault("skipped", []).extend({"customer": c, "reason": r} for c, r in result.skipped)
    report.setdefault("failed", []).extend({"customer": c, "reason": r} for c, r in result.failed)
    BillingRun.objects.filter(pk=run.pk).update(
        customers_considered=F("customers_considered") + result.considered,
        invoices_issued=F("invoices_issued") + len(result.issued),
        invoices_skipped=F("invoices_skipped") + len(result.skipped),
        customers_failed=F("customers_failed") + len(result.failed),
        total_amount=F("total_amount") + result.total_amount,
        report=report,
    )


@transaction.atomic
def billing_run_finish(*, run: BillingRun, actor: Actor) -> BillingRun:
    run = BillingRun.objects.select_for_update().get(pk=run.pk)
    run.status = BillingRun.Status.FINISHED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    audit_record(
        actor=actor,
        action="billing_run.finished",
        target=run,
        changed_fields=["invoices_issued", "invoices_skipped", "customers_failed", "total_amount"],
    )
    return run


def batches(customer_ids: list[int], size: int) -> list[list[int]]:
    return [customer_ids[i : i + size] for i in range(0, len(customer_ids), size)]


def billing_run_execute(
    *,
    period: str,
    actor: Actor,
    issue_date: datetime.date | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    customer_ids: list[int] | None = None,
    progress: Callable[[BatchResult], None] | None = None,
) -> BillingRun:
    """Run billing in this process, batch after batch (the Celery path splits the same batches
    over workers). Safe to repeat, to run concurrently with itself, and to kill and restart."""
    run = billing_run_create(period=period, actor=actor, issue_date=issue_date)
    ids = customer_ids if customer_ids is not None else selectors.billable_customer_ids()
    for batch in batches(ids, batch_size):
        result = billing_run_batch(run=run, customer_ids=batch, actor=actor)
        if progress:
            progress(result)
    return billing_run_finish(run=run, actor=actor)
