"""Billing test data: issued invoices inserted directly, with consistent totals.

The billing engine issues real invoices; tests of payments, credit notes and dunning must not
depend on it, so `issued_invoice` writes one the way the engine stores it:

- each line is stated as on the invoice (tax-exclusive tenant: net of tax; tax-inclusive tenant:
  gross), optionally with one discount line (negative) pointing at it, and carries the tax of its
  taxable amount (`tax_amount`, on the head line; `net_amount` = amount + its discount);
- subtotal = sum of the nets (tax-inclusive: stated - tax), tax_total = sum of taxes,
  total = subtotal + tax_total, amount_due = total rounded to the currency's minor unit,
  rounding_adjustment = amount_due - total;
- the number comes from the real gap-free sequence: INV-<year>-<6 digits>.
No InvoiceTax rows are written (nothing here reads them). Nothing reads the clock at import time.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction

from billing.domain.money import ZERO, quantize, round_to_currency
from billing.gateways import GatewayResult, SandboxGateway
from billing.models import Invoice, InvoiceLine
from customers.models import Customer
from customers.services import next_number


@dataclass(frozen=True)
class Line:
    """One taxable amount: a line as stated on the invoice, its discount (<= 0) and its tax."""

    amount: Decimal
    tax: Decimal = ZERO
    discount: Decimal = ZERO
    kind: str = InvoiceLine.Kind.FEE
    category: str = "fee"
    description: str = "Service fee"


def issued_invoice(
    customer: Customer,
    *,
    due_date: datetime.date,
    amount_due: Decimal | None = None,
    issue_date: datetime.date | None = None,
    number: str | None = None,
    lines: list[Line] | None = None,
    period_start: datetime.date | None = None,
) -> Invoice:
    """An issued invoice of `customer` in the current tenant. Give `amount_due` for one untaxed
    fee line of that amount, or `lines` (then `amount_due`, if given, must match the totals)."""
    tenant = connection.tenant
    issue_date = issue_date or due_date - datetime.timedelta(days=tenant.payment_terms_days)
    if lines is None:
        if amount_due is None:
            raise ValueError("give amount_due or lines")
        lines = [Line(amount=Decimal(amount_due))]
    nets = [(line.amount + line.discount) - (line.tax if tenant.tax_inclusive else ZERO) for line in lines]
    subtotal = quantize(sum(nets, ZERO))
    tax_total = quantize(sum((line.tax for line in lines), ZERO))
    total = quantize(subtotal + tax_total)
    due = round_to_currency(total, tenant.currency)
    if amount_due is not None and quantize(Decimal(amount_due)) != due:
        raise ValueError(f"amount_due {amount_due} does not match the lines (total {total} -> {due})")
    with transaction.atomic():
        if number is None:
            number = f"INV-{issue_date.year}-{next_number('invoice', str(issue_date.year)):06d}"
        start = period_start or issue_date
        while Invoice.objects.filter(customer=customer, period_start=start).exists():
            start += datetime.timedelta(days=1)  # one invoice per customer and period
        invoice = Invoice.objects.create(
            customer=customer,
            number=number,
            status=Invoice.Status.ISSUED,
            period_start=start,
            period_end=start + datetime.timedelta(days=30),
            issue_date=issue_date,
            due_date=due_date,
            currency=tenant.currency,
            tax_inclusive=tenant.tax_inclusive,
            subtotal=subtotal,
            tax_total=tax_total,
            total=total,
            amount_due=due,
            rounding_adjustment=quantize(due - total),
        )
        position = 0
        for line in lines:
            position += 1
            head = InvoiceLine.objects.create(
                invoice=invoice,
                position=position,
                kind=line.kind,
                category=line.category,
                description=line.description,
                unit_price=quantize(line.amount),
                amount=quantize(line.amount),
                net_amount=quantize(line.amount + line.discount),
                tax_amount=quantize(line.tax),
            )
            if line.discount:
                position += 1
                InvoiceLine.objects.create(
                    invoice=invoice,
                    position=position,
                    kind=InvoiceLine.Kind.DISCOUNT,
                    category=line.category,
                    description=f"Discount on {line.description}",
                    amount=quantize(line.discount),
                    net_amount=quantize(line.discount),
                    applies_to=head,
                )
    return invoice


# --- gateways for tests (select one with settings.ISP_PAYMENT_GATEWAY = "tests.billing.factories.<name>")
class RecordingGateway(SandboxGateway):
    """The sandbox, remembering every call (on the class: the instance the setting builds is seen)."""

    calls: list = []

    def charge(self, amount, currency, token, idempotency_key):
        RecordingGateway.calls.append(("charge", amount, currency, token, idempotency_key))
        return super().charge(amount, currency, token, idempotency_key)

    def refund(self, reference, amount):
        RecordingGateway.calls.append(("refund", reference, amount))
        return super().refund(reference, amount)


class RefusingRefundGateway(SandboxGateway):
    """Charges like the sandbox; declines every refund."""

    def refund(self, reference, amount):
        return GatewayResult(ok=False, message="refund window closed")
