"""Dunning (billing rules, section 9): what happens to invoices that are not paid on time.

For every issued invoice of the current tenant with something left to pay and a due date
before `today` (days_overdue = (today - due_date).days):

- at >= 1 day overdue: reminder_1; at >= 7 days: reminder_7 - each once per invoice. A run that
  comes late (the job did not run for a few days) sends the steps it missed, once each;
- at >= the tenant's `suspend_after_days` (default 15): every ACTIVE subscription of the
  customer is suspended (customers.services.subscription_suspend, effective today, reason
  "dunning: invoice <number> overdue"), which reaches the network through the subscription
  events; recorded once per invoice as `suspended`, and the customer is told.

Each step is a `DunningEvent` (unique per invoice and kind): running twice on the same day
sends nothing new. Each invoice is handled in its own transaction, with the customer row locked
(payments lock it too, so a payment and dunning never interleave on one customer), and each step
in a savepoint of it: a step that fails (a subscription that cannot be suspended, the mail server
refusing) is rolled back whole - no event, no suspension - reported, and retried by the next run,
with the invoice's later steps; the steps before it stay done. One bad invoice never stops the
others. A notice is sent as the last part of its step, before commit: at least once, never lost.

Paying everything overdue reactivates what dunning suspended: `dunning_reactivate_if_settled`,
called by payments and credit notes in their own transaction.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django_tenants.utils import tenant_context

from compliance.audit import Actor, audit_record
from compliance.pii.keystore import key_scope
from customers.models import Customer, Subscription
from customers.services import subscription_reactivate, subscription_suspend
from tenants.clock import tenant_today  # noqa: F401 - re-exported
from tenants.models import Tenant

from .models import DunningEvent, Invoice
from .notifications import EmailNotifier, Notifier

logger = logging.getLogger(__name__)

DUNNING_ACTOR = Actor.system("dunning")
# Suspensions made by dunning carry this reason prefix: only those are lifted by a payment (a
# subscription that staff suspended for another reason stays suspended).
REASON_PREFIX = "dunning:"
REMINDER_STEPS = ((1, DunningEvent.Kind.REMINDER_1), (7, DunningEvent.Kind.REMINDER_7))


def open_invoices() -> QuerySet[Invoice]:
    """Issued invoices with something left to pay (balance_due > 0), in the current tenant."""
    return (
        Invoice.objects.filter(status=Invoice.Status.ISSUED)
        .alias(open_amount=F("amount_due") - F("credit_applied") - F("amount_paid"))
        .filter(open_amount__gt=0)
    )


def steps_due(days_overdue: int, suspend_after_days: int) -> list[str]:
    """The dunning steps an invoice `days_overdue` days past due must have had, in order."""
    steps = [kind for threshold, kind in REMINDER_STEPS if days_overdue >= threshold]
    if days_overdue >= suspend_after_days:
        steps.append(DunningEvent.Kind.SUSPENDED)
    return steps


@dataclass
class DunningReport:
    today: datetime.date
    invoices_overdue: int = 0
    reminder_1: int = 0
    reminder_7: int = 0
    invoices_suspended: int = 0
    subscriptions_suspended: int = 0
    notices_sent: int = 0
    notices_undeliverable: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (invoice number, reason)

    def add(self, other: DunningReport) -> None:
        for name in (
            "invoices_overdue",
            "reminder_1",
            "reminder_7",
            "invoices_suspended",
            "subscriptions_suspended",
            "notices_sent",
            "notices_undeliverable",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.extend(other.failed)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["today"] = self.today.isoformat()
        data["failed"] = [{"invoice": number, "reason": reason} for number, reason in self.failed]
        return data

    def summary(self) -> list[str]:
        lines = [
            f"dunning on {self.today.isoformat()}: {self.invoices_overdue} overdue invoice(s)",
            f"  reminders: {self.reminder_1} at 1 day, {self.reminder_7} at 7 days",
            f"  suspended: {self.invoices_suspended} invoice(s), {self.subscriptions_suspended} subscription(s)",
            f"  notices: {self.notices_sent} sent, {self.notices_undeliverable} without an address",
        ]
        lines += [f"  FAILED {number}: {reason}" for number, reason in self.failed]
        return lines


def dunning_run(
    *, today: datetime.date, notifier: Notifier | None = None, actor: Actor = DUNNING_ACTOR
) -> DunningReport:
    """Run dunning for the current tenant as of `today` (see the module docstring)."""
    notifier = notifier or EmailNotifier()
    suspend_after_days = connection.tenant.suspend_after_days
    report = DunningReport(today=today)
    candidates = list(
        open_invoices().filter(due_date__lt=today).order_by("due_date", "id").values_list("id", "customer_id", "number")
    )
    with key_scope():  # one key-store look-up per customer for the whole run
        for invoice_id, customer_id, number in candidates:
            step = DunningReport(today=today)
            try:
                with transaction.atomic():
                    _dun_invoice(
                        invoice_id,
                        customer_id,
                        today=today,
                        suspend_after_days=suspend_after_days,
                        notifier=notifier,
                        actor=actor,
                        report=step,
                    )
            except Exception as exc:  # reported, retried by the next run; the others go on
                logger.exception("dunning: invoice %s failed", number)
                report.failed.append((number, f"{type(exc).__name__}: {exc}"))
                continue
            report.add(step)
    return report


def _dun_invoice(
    invoice_id: int,
    customer_id: int,
    *,
    today: datetime.date,
    suspend_after_days: int,
    notifier: Notifier,
    actor: Actor,
    report: DunningReport,
) -> None:
    Customer.objects.select_for_update().filter(pk=customer_id).values_list("pk", flat=True).get()
    invoice = Invoice.objects.select_for_update(of=("self",)).select_related("customer").get(pk=invoice_id)
    if invoice.status != Invoice.Status.ISSUED or invoice.balance_due <= 0 or invoice.due_date >= today:
        return  # paid or credited since the run started
    report.invoices_overdue += 1
    done = set(invoice.dunning_events.values_list("kind", flat=True))
    for kind in steps_due((today - invoice.due_date).days, suspend_after_days):
        if kind in done:
            continue
        try:
            with transaction.atomic():  # each step whole or not at all; earlier steps stay done
                result = _dun_step(invoice, kind, today=today, notifier=notifier, actor=actor)
        except Exception as exc:  # reported; this invoice's later steps wait for the next run
            logger.exception("dunning: %s for invoice %s failed", kind, invoice.number)
            report.failed.append((invoice.number, f"{kind}: {type(exc).__name__}: {exc}"))
            return
        if kind == DunningEvent.Kind.SUSPENDED:
            report.invoices_suspended += 1
            report.subscriptions_suspended += result.count
        else:
            setattr(report, kind, getattr(report, kind) + 1)
        if result.delivered:
            report.notices_sent += 1
        else:
            report.notices_undeliverable += 1


@dataclass(frozen=True)
class _StepResult:
    count: int  # subscriptions suspended
    delivered: bool


def _dun_step(invoice: Invoice, kind: str, *, today: datetime.date, notifier: Notifier, actor: Actor) -> _StepResult:
    count = 0
    if kind == DunningEvent.Kind.SUSPENDED:
        reason = f"{REASON_PREFIX} invoice {invoice.number} overdue"
        count = _suspend_customer(invoice, today=today, actor=actor, reason=reason)
    DunningEvent.objects.create(invoice=invoice, kind=kind, occurred_on=today)
    audit_record(actor=actor, action=f"invoice.dunning_{kind}", target=invoice, changed_fields=["dunning_events"])
    # Last, so that a notice is only sent for a step that is recorded (a failure rolls it back).
    return _StepResult(count=count, delivered=notifier.send_reminder(invoice, kind))


def _suspend_customer(invoice: Invoice, *, today: datetime.date, actor: Actor, reason: str) -> int:
    subscriptions = list(
        Subscription.objects.select_for_update()
        .filter(customer_id=invoice.customer_id, status=Subscription.Status.ACTIVE)
        .order_by("id")
    )
    for subscription in subscriptions:
        subscription_suspend(subscription=subscription, effective_on=today, actor=actor, reason=reason)
    return len(subscriptions)


def dunning_reactivate_if_settled(
    *, customer_id: int, effective_on: datetime.date, actor: Actor, reason: str
) -> list[Subscription]:
    """Once the customer has no overdue invoice left to pay, reactivate the subscriptions that
    dunning suspended and record `reactivated` on the invoices that caused it.

    Runs inside the caller's transaction (a payment or a credit note), which holds the
    customer's row lock. "Overdue" is judged as of the later of `effective_on` and the tenant's
    today, so a back-dated payment never lifts a suspension while another invoice is overdue
    today. Only subscriptions whose latest status change is a dunning suspension are
    reactivated, effective `effective_on` (or the suspension's own date if that is later)."""
    reference_day = max(effective_on, tenant_today())
    if open_invoices().filter(customer_id=customer_id, due_date__lt=reference_day).exists():
        return []
    events = DunningEvent.objects.filter(invoice__customer_id=customer_id)
    suspended_invoices = set(events.filter(kind=DunningEvent.Kind.SUSPENDED).values_list("invoice_id", flat=True))
    suspended_invoices -= set(events.filter(kind=DunningEvent.Kind.REACTIVATED).values_list("invoice_id", flat=True))
    if not suspended_invoices:
        return []
    reactivated = []
    candidates = Subscription.objects.select_for_update().filter(
        customer_id=customer_id, status=Subscription.Status.SUSPENDED
    )
    for subscription in candidates.order_by("id"):
        last = subscription.status_changes.order_by("-changed_at", "-id").first()
        if last is None or last.to_status != Subscription.Status.SUSPENDED or not last.reason.startswith(REASON_PREFIX):
            continue
        reactivated.append(
            subscription_reactivate(
                subscription=subscription,
                effective_on=max(effective_on, last.effective_on),
                actor=actor,
                reason=reason,
            )
        )
    for invoice in Invoice.objects.filter(pk__in=suspended_invoices).order_by("id"):
        DunningEvent.objects.create(invoice=invoice, kind=DunningEvent.Kind.REACTIVATED, occurred_on=effective_on)
        audit_record(
            actor=actor,
            action="invoice.dunning_reactivated",
            target=invoice,
            changed_fields=["dunning_events"],
            reason=reason,
        )
    return reactivated


def dunning_run_all_tenants(*, notifier: Notifier | None = None) -> dict[str, dict]:
    """Dunning for every active tenant, each in its own schema and as of its own local today.
    One failing tenant is reported and never stops the others."""
    results: dict[str, dict] = {}
    tenants = Tenant.objects.filter(status=Tenant.Status.ACTIVE).exclude(schema_name=settings.PUBLIC_SCHEMA_NAME)
    for tenant in tenants.order_by("slug"):
        try:
            with tenant_context(tenant):
                results[tenant.slug] = dunning_run(today=tenant_today(), notifier=notifier).as_dict()
        except Exception as exc:  # reported; the other tenants go on
            logger.exception("dunning: tenant %s failed", tenant.slug)
            results[tenant.slug] = {"error": f"{type(exc).__name__}: {exc}"}
    return results
