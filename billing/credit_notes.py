"""Credit notes (billing rules, section 7): the only way to correct an issued invoice.

The invoice itself never changes, except the amounts derived from what settles it
(`credit_applied`, `amount_paid`, and `status` "paid" once nothing is left to pay).

- A credit note is given either as a net amount (the invoice's tax follows in proportion:
  tax = invoice.tax_total * amount / invoice.subtotal), as lines (each a net amount of one invoice
  line's taxable amount, taxed at that taxable amount's share: line tax * amount / line net), or
  as a gross amount (tax included: net = gross * subtotal / total, tax = gross - net). Each tax is
  rounded to 6 places once, half-up. The credit note that completes an invoice (or a line) takes
  the exact remainder of its tax, so crediting everything gives back exactly the invoice's tax.
- At most the invoice's total minus earlier credit notes can be credited (ValidationError).
- Numbers: CN-<year of issue>-<6 digits>, gap-free per tenant and year, taken inside the
  transaction (a rollback gives the number back).
- Money: a credit note gives back its total rounded to the currency's minor unit (half-up), like
  an invoice's amount_due; the one that completes the invoice gives back exactly the invoice's
  amount_due minus what earlier credit notes gave back.
- Where the money goes (purpose "correction"): first to the invoice's remaining balance_due
  (`invoice.credit_applied` grows: credit_applied is everything that settled the invoice other
  than payments - credit balance applied by billing runs and credit notes), the rest to the
  customer's credit balance (ledger reason "credit_note"). Purpose "refund" (issued by
  `billing.payments.payment_refund`): all of it to the credit balance, from which the refund
  pays it out at once.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from compliance.audit import Actor, audit_record
from customers.models import Customer
from customers.services import next_number

from . import balances
from .domain.money import ZERO, ensure_money, quantize, round_to_currency, to_fraction
from .dunning import dunning_reactivate_if_settled, tenant_today
from .models import CreditNote, CreditNoteLine, Invoice, InvoiceLine

Purpose = CreditNote.Purpose


def credit_note_number(year: int, sequence: int) -> str:
    return f"CN-{year}-{sequence:06d}"


@dataclass(frozen=True)
class Credited:
    """What earlier credit notes of one invoice add up to."""

    subtotal: Decimal = ZERO
    tax_total: Decimal = ZERO
    total: Decimal = ZERO
    money: Decimal = ZERO  # given back, in the currency's minor unit


def credit_money(invoice: Invoice, *, earlier: Credited, total: Decimal) -> Decimal:
    """The money a credit note of `total` gives back (see the module docstring)."""
    if earlier.total + total >= invoice.total:
        return max(invoice.amount_due - earlier.money, ZERO)
    return round_to_currency(total, invoice.currency)


def credited_so_far(invoice: Invoice) -> Credited:
    credited = Credited()
    for subtotal, tax_total, total in (
        CreditNote.objects.filter(invoice=invoice).order_by("id").values_list("subtotal", "tax_total", "total")
    ):
        money = credit_money(invoice, earlier=credited, total=total)
        credited = Credited(
            subtotal=credited.subtotal + subtotal,
            tax_total=credited.tax_total + tax_total,
            total=credited.total + total,
            money=credited.money + money,
        )
    return credited


def _positive_amount(value, field: str) -> Decimal:
    value = ensure_money(value)
    if not isinstance(value, Decimal | int):
        raise TypeError(f"{field} is a Decimal")
    value = Decimal(value)
    if not value.is_finite() or value <= 0:
        raise ValidationError({field: ["A credited amount is positive."]})
    if value != quantize(value):
        raise ValidationError({field: ["At most 6 decimal places."]})
    return quantize(value)


def _proportional_tax(tax: Decimal, amount: Decimal, base: Decimal) -> Decimal:
    return quantize(to_fraction(tax) * to_fraction(amount) / to_fraction(base))


def _group_net(line: InvoiceLine, *, tax_inclusive: bool) -> Decimal:
    """The net (of tax) of the taxable amount a line heads: the line with its discounts."""
    return line.net_amount - line.tax_amount if tax_inclusive else line.net_amount


def _draft_from_amount(invoice: Invoice, amount: Decimal, earlier: Credited) -> list[tuple]:
    if invoice.subtotal <= 0:
        raise ValidationError({"amount": [f"Invoice {invoice.number} has nothing to credit."]})
    if earlier.subtotal + amount == invoice.subtotal:
        tax = invoice.tax_total - earlier.tax_total
    else:
        tax = _proportional_tax(invoice.tax_total, amount, invoice.subtotal)
    return [(None, f"Credit on invoice {invoice.number}", amount, tax)]


def _draft_from_gross(invoice: Invoice, gross: Decimal, earlier: Credited) -> list[tuple]:
    if invoice.total <= 0 or invoice.subtotal <= 0:
        raise ValidationError({"gross": [f"Invoice {invoice.number} has nothing to credit."]})
    remaining_money = invoice.amount_due - earlier.money
    if gross in (invoice.total - earlier.total, remaining_money):
        # Completes the invoice: the exact remainders (the money is then the remaining amount due).
        net, tax = invoice.subtotal - earlier.subtotal, invoice.tax_total - earlier.tax_total
    else:
        net = quantize(to_fraction(gross) * to_fraction(invoice.subtotal) / to_fraction(invoice.total))
        tax = gross - net
    return [(None, f"Credit on invoice {invoice.number}", net, tax)]


def _draft_from_lines(invoice: Invoice, lines) -> list[tuple]:
    drafts = []
    seen = set()
    for line, value in lines:
        net = _positive_amount(value, "lines")
        if line.invoice_id != invoice.pk:
            raise ValidationError({"lines": [f"Line {line.pk} is not a line of invoice {invoice.number}."]})
        if line.pk in seen:
            raise ValidationError({"lines": [f"Line {line.pk} is given twice."]})
        seen.add(line.pk)
        line = InvoiceLine.objects.get(pk=line.pk)  # the stored amounts, not the caller's copy
        if line.kind == InvoiceLine.Kind.DISCOUNT:
            raise ValidationError({"lines": ["Credit the charge a discount belongs to, not the discount line."]})
        group_net = _group_net(line, tax_inclusive=invoice.tax_inclusive)
        if group_net <= 0:
            raise ValidationError({"lines": [f"Line {line.position} of {invoice.number} has nothing to credit."]})
        earlier = CreditNoteLine.objects.filter(invoice_line=line).aggregate(net=Sum("amount"), tax=Sum("tax_amount"))
        earlier_net, earlier_tax = earlier["net"] or ZERO, earlier["tax"] or ZERO
        remaining = group_net - earlier_net
        if net > remaining:
            raise ValidationError(
                {"lines": [f"At most {max(remaining, ZERO)} (net) can still be credited on line {line.position}."]}
            )
        # The credit that completes the line takes the exact remainder of its tax.
        tax = line.tax_amount - earlier_tax if net == remaining else _proportional_tax(line.tax_amount, net, group_net)
        drafts.append((line, f"Credit: {line.description}"[:200], net, tax))
    if not drafts:
        raise ValidationError({"lines": ["Give at least one line to credit."]})
    return drafts


@transaction.atomic
def credit_note_issue(
    *,
    invoice: Invoice,
    reason: str,
    actor: Actor,
    amount: Decimal | None = None,
    lines: list[tuple[InvoiceLine, Decimal]] | None = None,
    gross: Decimal | None = None,
    purpose: str = Purpose.CORRECTION,
    issue_date: datetime.date | None = None,
    source_ip: str | None = None,
) -> CreditNote:
    """Issue a credit note on `invoice` for a net `amount`, for `lines` [(invoice line, net
    amount)], or for a `gross` amount (tax included); see the module docstring.

    The returned credit note carries two unsaved attributes: `applied_to_invoice` (what reduced
    the invoice's balance_due) and `to_credit_balance` (what went to the credit balance)."""
    if sum(x is not None for x in (amount, lines, gross)) != 1:
        raise ValueError("give exactly one of amount, lines or gross")
    if purpose not in Purpose.values:
        raise ValidationError({"purpose": [f"Choose one of {', '.join(Purpose.values)}."]})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": ["Say why the invoice is credited."]})
    issue_date = issue_date or tenant_today()

    Customer.objects.select_for_update().filter(pk=invoice.customer_id).values_list("pk", flat=True).get()
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    earlier = credited_so_far(invoice)
    if amount is not None:
        drafts = _draft_from_amount(invoice, _positive_amount(amount, "amount"), earlier)
    elif gross is not None:
        drafts = _draft_from_gross(invoice, _positive_amount(gross, "gross"), earlier)
    else:
        drafts = _draft_from_lines(invoice, lines)
    subtotal = sum((net for _, _, net, _ in drafts), ZERO)
    tax_total = sum((tax for _, _, _, tax in drafts), ZERO)
    total = subtotal + tax_total
    remaining = invoice.total - earlier.total
    if total <= 0:
        raise ValidationError({"amount": ["A credit note gives something back: its total is positive."]})
    if total > remaining:
        raise ValidationError(
            {
                "amount": [
                    f"This credit note ({total}) exceeds what is left to credit on invoice {invoice.number} "
                    f"({max(remaining, ZERO)}: its total {invoice.total} minus earlier credit notes)."
                ]
            }
        )

    year = issue_date.year
    credit_note = CreditNote.objects.create(
        number=credit_note_number(year, next_number("credit_note", str(year))),
        invoice=invoice,
        customer_id=invoice.customer_id,
        purpose=purpose,
        issue_date=issue_date,
        reason=reason[:500],
        subtotal=quantize(subtotal),
        tax_total=quantize(tax_total),
        total=quantize(total),
    )
    CreditNoteLine.objects.bulk_create(
        CreditNoteLine(credit_note=credit_note, invoice_line=line, description=description, amount=net, tax_amount=tax)
        for line, description, net, tax in drafts
    )
    audit_record(
        actor=actor,
        action="credit_note.issued",
        target=credit_note,
        changed_fields=["number", "invoice", "purpose", "subtotal", "tax_total", "total"],
        reason=reason,
        source_ip=source_ip,
    )

    money = credit_money(invoice, earlier=earlier, total=credit_note.total)
    applied = min(money, invoice.balance_due) if purpose == Purpose.CORRECTION else ZERO
    if applied > 0:
        invoice.credit_applied = quantize(invoice.credit_applied + applied)
        changed = ["credit_applied"]
        if invoice.balance_due == 0:
            invoice.status = Invoice.Status.PAID
            changed.append("status")
        invoice.save(update_fields=changed)
        audit_record(
            actor=actor,
            action="invoice.credit_applied",
            target=invoice,
            changed_fields=changed,
            reason=f"credit note {credit_note.number}",
            source_ip=source_ip,
        )
    rest = money - applied
    if rest > 0:
        balances.balance_add(
            customer_id=invoice.customer_id, amount=rest, reason="credit_note", credit_note=credit_note, invoice=invoice
        )
    if applied > 0:
        dunning_reactivate_if_settled(
            customer_id=invoice.customer_id,
            effective_on=issue_date,
            actor=actor,
            reason=f"credit note {credit_note.number} issued",
        )
    credit_note.applied_to_invoice = applied
    credit_note.to_credit_balance = rest
    return credit_note
