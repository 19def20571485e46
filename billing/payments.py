"""Payments (billing rules, section 9): recording, allocating, charging cards, refunding.

- A payment is in the tenant's currency, positive, with at most the currency's minor-unit places
  (JPY: whole yen; USD/EUR: cents; KWD: fils). Anything else is a ValidationError.
- It is allocated to the customer's open invoices (balance_due > 0), oldest due date first, then
  by id; an invoice with nothing left to pay becomes "paid". What is left over becomes credit
  balance (ledger reason "overpayment").
- A gateway payment is identified by its gateway reference: recording the same reference again
  returns the payment already recorded and changes nothing (webhooks are delivered more than
  once).
- Once the customer has no overdue invoice left, what dunning suspended is reactivated, in the
  same transaction (billing.dunning.dunning_reactivate_if_settled).
- Every payment, allocation and refund is audited in the transaction that makes it. Payments,
  credit notes and dunning lock the customer row first, so they never interleave on one customer.
- Amounts may be given as Decimal or int (exact); a float is a TypeError.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from compliance.audit import Actor, audit_record
from customers.models import Customer

from . import balances
from .credit_notes import credit_note_issue
from .domain.money import ZERO, ensure_money, minor_unit, quantize
from .dunning import dunning_reactivate_if_settled, open_invoices, tenant_today
from .gateways import GatewayError, get_gateway
from .models import BalanceMovement, CreditNote, Payment, PaymentAllocation

logger = logging.getLogger(__name__)
MAX_AMOUNT = Decimal(10) ** 14  # numeric(20, 6)


class PaymentDeclined(ValidationError):
    """The gateway declined the charge: nothing was charged, nothing recorded."""


class PaymentNotRecorded(Exception):
    """The gateway charged the card but the payment could not be recorded. Nothing is lost:
    record it again with `payment_record(..., gateway_reference=exc.gateway_reference)` or retry
    `payment_charge` with the same idempotency key - either records it exactly once."""

    def __init__(self, message: str, *, gateway_reference: str, idempotency_key: str):
        super().__init__(message)
        self.gateway_reference = gateway_reference
        self.idempotency_key = idempotency_key


def money_amount(value, currency: str, *, field: str = "amount") -> Decimal:
    """A positive Decimal with at most `currency`'s minor-unit places, quantized to 6 places."""
    ensure_money(value)
    if not isinstance(value, Decimal | int):
        raise TypeError(f"{field} is a Decimal")
    value = Decimal(value)
    if not value.is_finite() or value <= 0:
        raise ValidationError({field: ["The amount must be positive."]})
    if value >= MAX_AMOUNT:
        raise ValidationError({field: ["The amount is too large."]})
    places = minor_unit(currency)
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise ValidationError(
            {field: [f"{currency} amounts have {places} decimal place{'s' if places != 1 else ''} at most."]}
        )
    return quantize(value)


def _lock_customer(customer_id: int) -> None:
    Customer.objects.select_for_update().filter(pk=customer_id).values_list("pk", flat=True).get()


def _existing_by_reference(gateway_reference: str, customer: Customer) -> Payment | None:
    existing = Payment.objects.filter(gateway_reference=gateway_reference).first()
    if existing is not None and existing.customer_id != customer.pk:
        raise ValidationError({"gateway_reference": ["This gateway reference is recorded for another customer."]})
    return existing


@transaction.atomic
def payment_record(
    *,
    customer: Customer,
    amount: Decimal,
    received_on: datetime.date,
    method: str,
    actor: Actor,
    reference: str = "",
    gateway_reference: str | None = None,
    source_ip: str | None = None,
) -> Payment:
    """Record a payment received from `customer`, allocate it and settle what it can (see the
    module docstring). Recording a gateway reference twice returns the first payment."""
    currency = connection.tenant.currency
    amount = money_amount(amount, currency)
    if method not in Payment.Method.values:
        raise ValidationError({"method": [f"Choose one of {', '.join(Payment.Method.values)}."]})
    gateway_reference = (gateway_reference or "").strip() or None
    if method == Payment.Method.GATEWAY and not gateway_reference:
        raise ValidationError({"gateway_reference": ["A gateway payment has the gateway's reference."]})
    if method == Payment.Method.MANUAL and gateway_reference:
        raise ValidationError({"gateway_reference": ["Only gateway payments have a gateway reference."]})
    if not isinstance(received_on, datetime.date) or isinstance(received_on, datetime.datetime):
        raise ValidationError({"received_on": ["The day the payment was received (a date)."]})

    if gateway_reference and (existing := _existing_by_reference(gateway_reference, customer)):
        return existing
    _lock_customer(customer.pk)
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                customer=customer,
                amount=amount,
                currency=currency,
                received_on=received_on,
                method=method,
                data_key_id=customer.data_key_id,  # the reference is sealed with the customer's key
                reference=(reference or "").strip()[:100],
                gateway_reference=gateway_reference,
            )
    except IntegrityError:
        # The same webhook, delivered twice at once: the other delivery recorded it first.
        existing = _existing_by_reference(gateway_reference, customer) if gateway_reference else None
        if existing is None:
            raise
        return existing
    audit_record(
        actor=actor,
        action="payment.recorded",
        target=payment,
        changed_fields=["amount", "currency", "received_on", "method", "reference", "gateway_reference", "status"],
        source_ip=source_ip,
    )
    leftover = _allocate(payment, actor=actor, source_ip=source_ip)
    if leftover > 0:
        balances.balance_add(customer_id=customer.pk, amount=leftover, reason="overpayment", payment=payment)
    dunning_reactivate_if_settled(
        customer_id=customer.pk, effective_on=received_on, actor=actor, reason="payment received"
    )
    return payment


def _allocate(payment: Payment, *, actor: Actor, source_ip: str | None) -> Decimal:
    """Pay the customer's open invoices, oldest due date first. Returns what is left over."""
    left = payment.amount
    invoices = open_invoices().filter(customer_id=payment.customer_id).select_for_update().order_by("due_date", "id")
    for invoice in invoices:
        if left <= 0:
            break
        share = min(left, invoice.balance_due)
        PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=share)
        invoice.amount_paid = quantize(invoice.amount_paid + share)
        changed = ["amount_paid"]
        if invoice.balance_due == 0:
            invoice.status = invoice.Status.PAID
            changed.append("status")
        invoice.save(update_fields=changed)
        audit_record(
            actor=actor,
            action="invoice.payment_allocated",
            target=invoice,
            changed_fields=changed,
            reason=f"payment {payment.pk}",
            source_ip=source_ip,
        )
        left -= share
    return left


def _outside_any_transaction() -> None:
    """A durable atomic block refuses to nest: the cheapest public check that no transaction
    is open (test cases' own wrapping transactions are allowed, as Django allows them)."""
    try:
        with transaction.atomic(durable=True):
            pass
    except RuntimeError:
        raise RuntimeError("payment_charge must not run inside a transaction (the charge cannot roll back)") from None


def payment_charge(
    *,
    customer: Customer,
    amount: Decimal,
    token: str,
    actor: Actor,
    idempotency_key: str | None = None,
    source_ip: str | None = None,
) -> Payment:
    """Charge a card through the configured gateway, then record the payment.

    The charge happens outside any database transaction (it cannot be rolled back); the payment
    is recorded afterwards with the gateway's reference. If recording fails, the charge is not
    lost: `PaymentNotRecorded` carries the reference, and recording it again (or retrying with
    the same idempotency key) records it exactly once. A decline raises `PaymentDeclined`; a
    gateway failure raises `GatewayError`; in both cases no payment row exists."""
    _outside_any_transaction()
    currency = connection.tenant.currency
    amount = money_amount(amount, currency)
    idempotency_key = idempotency_key or f"{connection.schema_name}:{customer.pk}:{uuid.uuid4().hex}"
    try:
        result = get_gateway().charge(amount, currency, token, idempotency_key)
    except GatewayError as exc:
        logger.warning("payment gateway failed for customer %s: %s", customer.pk, exc)
        raise GatewayError(
            f"The payment gateway failed ({exc}). No payment was recorded; "
            "retry with the same idempotency key to be sure the card is charged at most once."
        ) from exc
    if not result.ok:
        logger.info("payment declined for customer %s: %s", customer.pk, result.message)
        raise PaymentDeclined({"token": [f"The card was declined: {result.message}"]})
    try:
        return payment_record(
            customer=customer,
            amount=amount,
            received_on=tenant_today(),
            method=Payment.Method.GATEWAY,
            reference=f"card charge {idempotency_key}"[:100],
            gateway_reference=result.reference,
            actor=actor,
            source_ip=source_ip,
        )
    except Exception as exc:
        logger.exception(
            "payment charged (gateway reference %s) but not recorded for customer %s", result.reference, customer.pk
        )
        raise PaymentNotRecorded(
            f"The card was charged (gateway reference {result.reference}) but the payment could not be recorded: "
            f"{type(exc).__name__}. Record it again with this reference.",
            gateway_reference=result.reference,
            idempotency_key=idempotency_key,
        ) from exc


# --- refunds ---------------------------------------------------------------------------------
@dataclass
class Refund:
    payment: Payment
    amount: Decimal
    from_overpayment: Decimal = ZERO
    credit_notes: list[CreditNote] = field(default_factory=list)
    gateway_reference: str = ""


def refunded_amount(payment: Payment) -> Decimal:
    """What was refunded of `payment` so far (ledger rows with reason "refund")."""
    total = BalanceMovement.objects.filter(payment=payment, reason="refund").aggregate(s=Sum("amount"))["s"]
    return -(total or ZERO)


def payment_refund(
    *, payment: Payment, amount: Decimal, reason: str, actor: Actor, source_ip: str | None = None
) -> Refund:
    """Give back `amount` of `payment` to the customer.

    What the payment left as credit balance (its overpayment) is refunded first, as far as that
    credit is still there; then what it paid on invoices, the most recently due first, each part
    through a refund credit note on that invoice (the invoice stays settled: the customer is
    given back the money instead of owing it again). Each refunded part is a ledger row with
    reason "refund" pointing at the payment (and at the credit note). The payment becomes
    "refunded" once all of it is given back. A gateway payment is refunded through the gateway
    last, before commit: if the gateway declines or fails, nothing of the refund is recorded. So
    that no outer transaction can roll back a refund the gateway already made, a gateway payment
    is refunded in a transaction of its own (inside another one: RuntimeError)."""
    with transaction.atomic(durable=payment.method == Payment.Method.GATEWAY):
        return _refund(payment=payment, amount=amount, reason=reason, actor=actor, source_ip=source_ip)


def _refund(*, payment: Payment, amount: Decimal, reason: str, actor: Actor, source_ip: str | None) -> Refund:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["Say why the payment is refunded."]})
    _lock_customer(payment.customer_id)
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    amount = money_amount(amount, payment.currency)
    already = refunded_amount(payment)
    refundable = payment.amount - already
    if amount > refundable:
        raise ValidationError({"amount": [f"At most {refundable} of this payment can still be refunded."]})
    refund = Refund(payment=payment, amount=amount)
    customer_id = payment.customer_id

    allocations = list(payment.allocations.select_related("invoice").order_by("-invoice__due_date", "-invoice_id"))
    allocated = sum((a.amount for a in allocations), ZERO)
    refunded_on_invoices = -(
        BalanceMovement.objects.filter(payment=payment, reason="refund", credit_note__isnull=False).aggregate(
            s=Sum("amount")
        )["s"]
        or ZERO
    )
    overpayment_left = payment.amount - allocated - (already - refunded_on_invoices)
    left = amount
    if overpayment_left > 0:
        refund.from_overpayment = balances.balance_use(
            customer_id=customer_id, up_to=min(left, overpayment_left), reason="refund", payment=payment
        )
        left -= refund.from_overpayment
    for allocation in allocations:
        if left <= 0:
            break
        done_here = -(
            BalanceMovement.objects.filter(payment=payment, reason="refund", invoice=allocation.invoice).aggregate(
                s=Sum("amount")
            )["s"]
            or ZERO
        )
        part = min(left, allocation.amount - done_here)
        if part <= 0:
            continue
        credit_note = credit_note_issue(
            invoice=allocation.invoice,
            gross=part,
            reason=f"refund of payment {payment.pk}: {reason}",
            actor=actor,
            purpose=CreditNote.Purpose.REFUND,
            source_ip=source_ip,
        )
        used = balances.balance_use(
            customer_id=customer_id,
            up_to=credit_note.to_credit_balance,
            reason="refund",
            payment=payment,
            credit_note=credit_note,
            invoice=allocation.invoice,
        )
        refund.credit_notes.append(credit_note)
        left -= used
    if left > 0:
        raise ValidationError(
            {"amount": [f"Only {amount - left} of this payment can be refunded: its overpayment was used since."]}
        )
    changed = []
    if already + amount == payment.amount:
        payment.status = Payment.Status.REFUNDED
        payment.save(update_fields=["status"])
        changed.append("status")
    audit_record(
        actor=actor,
        action="payment.refunded",
        target=payment,
        changed_fields=changed,
        reason=reason,
        source_ip=source_ip,
    )
    if payment.method == Payment.Method.GATEWAY and payment.gateway_reference:
        result = get_gateway().refund(payment.gateway_reference, amount)
        if not result.ok:
            raise ValidationError({"amount": [f"The payment gateway refused the refund: {result.message}"]})
        refund.gateway_reference = result.reference
    return refund
