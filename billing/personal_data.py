"""What billing holds about a data subject, for export and erasure (compliance.dsr.registry).

Invoices, credit notes, payments and the credit ledger are accounting records kept for the legal
retention period: an erasure keeps them, amounts and numbers unchanged. They carry no identity of
their own (the customer's name and address are read from the customer, pseudonymised by the
erasure); the free-text payment reference (often the payer's name on a bank transfer) is cleared.

An erasure is refused while the customer owes money, when the tenant's policy says so
(`PrivacyPolicy.refuse_erasure_with_unpaid_balance`)."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

from compliance.audit import audit_record
from compliance.dsr.registry import Category, ErasureCheck, ErasureContext, model_row, register

from .domain.money import ZERO
from .models import BalanceMovement, CreditNote, CustomerBalance, Invoice, Payment, UsageRecord


def export_invoices(customer) -> list[dict]:
    rows = []
    invoices = Invoice.objects.filter(customer=customer).prefetch_related("lines").order_by("issue_date", "id")
    for invoice in invoices:
        rows.append(
            model_row(
                invoice,
                exclude=("customer",),
                extra={
                    "balance_due": invoice.balance_due,
                    "lines": [
                        model_row(line, exclude=("invoice",))
                        for line in sorted(invoice.lines.all(), key=lambda x: x.position)
                    ],
                },
            )
        )
    return rows


def export_credit_notes(customer) -> list[dict]:
    notes = CreditNote.objects.filter(customer=customer).prefetch_related("lines").order_by("issue_date", "id")
    return [
        model_row(
            note,
            exclude=("customer",),
            extra={"lines": [model_row(line, exclude=("credit_note",)) for line in note.lines.all()]},
        )
        for note in notes
    ]


def export_payments(customer) -> list[dict]:
    payments = Payment.objects.filter(customer=customer).prefetch_related("allocations").order_by("received_on", "id")
    return [
        model_row(
            payment,
            exclude=("customer",),
            extra={
                "allocations": [{"invoice_id": a.invoice_id, "amount": a.amount} for a in payment.allocations.all()]
            },
        )
        for payment in payments
    ]


def export_balance(customer) -> list[dict]:
    balance = CustomerBalance.objects.filter(customer=customer).first()
    movements = BalanceMovement.objects.filter(customer=customer).order_by("id")
    return [
        {
            "credit": balance.credit if balance else ZERO,
            "movements": [model_row(m, exclude=("customer",)) for m in movements],
        }
    ]


def export_usage(customer) -> list[dict]:
    usage = UsageRecord.objects.filter(subscription__customer=customer).order_by("subscription_id", "day")
    return [model_row(u) for u in usage]


def _objects(model, label):
    def objects(customer):
        for pk in model.objects.filter(customer=customer).values_list("pk", flat=True):
            yield label, str(pk)

    return objects


def erase_payment_references(ctx: ErasureContext) -> int:
    payments = list(
        Payment.objects.select_for_update().filter(customer_id=ctx.subject.pk, reference__isnull=False)
    )
    for payment in payments:
        payment.reference = None
        payment.save(update_fields=["reference"])
        audit_record(
            actor=ctx.actor,
            action="payment.pseudonymised",
            target=payment,
            changed_fields=["reference"],
            reason="data-subject erasure",
            source_ip=ctx.source_ip,
        )
    return len(payments)


def unpaid_balance(customer) -> str | None:
    open_invoices = list(Invoice.objects.filter(customer=customer, status=Invoice.Status.ISSUED))
    due = sum((invoice.balance_due for invoice in open_invoices), Decimal(0))
    if due <= 0:
        return None
    owing = [i for i in open_invoices if i.balance_due > 0]
    return (
        f"the customer has an unpaid balance of {due.normalize():f} {connection.tenant.currency} "
        f"on {len(owing)} invoice(s) ({', '.join(i.number for i in owing[:5])})"
    )


register(
    Category(
        name="billing.invoices",
        title="Invoices",
        description="Every invoice issued to the customer, with its lines and what is still due.",
        export=export_invoices,
        erasure_effect="Kept for legal retention, totals unchanged; the customer they name is pseudonymised.",
        audit_objects=_objects(Invoice, "billing.invoice"),
    ),
    Category(
        name="billing.credit_notes",
        title="Credit notes",
        description="Credit notes issued to the customer.",
        export=export_credit_notes,
        erasure_effect="Kept for legal retention, amounts unchanged.",
        audit_objects=_objects(CreditNote, "billing.creditnote"),
    ),
    Category(
        name="billing.payments",
        title="Payments",
        description="Payments received from the customer and the invoices they settled.",
        export=export_payments,
        erase=erase_payment_references,
        erasure_effect="Kept for legal retention, amounts unchanged; the free-text reference is cleared.",
        audit_objects=_objects(Payment, "billing.payment"),
        erase_order=30,
    ),
    Category(
        name="billing.balance",
        title="Credit balance",
        description="The customer's credit balance and its ledger.",
        export=export_balance,
        erasure_effect="Kept (accounting), without identity.",
    ),
    Category(
        name="billing.usage",
        title="Data usage",
        description="Bytes used per subscription and day (from RADIUS accounting).",
        export=export_usage,
        erasure_effect="Kept (it billed the overage on retained invoices), without identity.",
    ),
    ErasureCheck(name="billing.unpaid_balance", check=unpaid_balance, policy_flag="refuse_erasure_with_unpaid_balance"),
)
