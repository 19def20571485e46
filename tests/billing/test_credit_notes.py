"""Credit notes: gap-free CN-<year> numbers, the over-credit limit, the tax share to 6 places (by
amount and by line), and where the money goes (the invoice's balance due first, then the credit
balance). Expected figures are written out per matrix tenant (USD tax-exclusive, EUR
tax-inclusive, JPY tax-exclusive without a minor unit)."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from billing import credit_notes
from billing.credit_notes import credit_note_issue
from billing.models import BalanceMovement, CreditNote, CreditNoteLine, CustomerBalance, Invoice, InvoiceLine
from billing.payments import payment_record
from compliance.audit import Actor
from compliance.models import AuditEvent
from tests.billing.factories import Line, issued_invoice
from tests.customers.factories import CustomerFactory

pytestmark = [pytest.mark.payment_flow, pytest.mark.revenue_critical]

CLERK = Actor(type=AuditEvent.ActorType.USER, id="12", label="billing.clerk")
ISSUED = datetime.date(2026, 5, 4)
DUE = datetime.date(2026, 5, 18)

# Two taxable amounts at different rates, as stated on the invoice (EUR: gross), the net credited
# and the tax the credit must carry: invoice.tax_total * net / invoice.subtotal, half-up to 6 places.
BY_AMOUNT = {
    # USD: 100 at 7.25 % + 33.33 untaxed -> subtotal 133.33, tax 7.25; 7.25 * 12.34 / 133.33 = 0.671004|27
    "us_isp": {
        "lines": [Line(Decimal("100"), Decimal("7.25")), Line(Decimal("33.33"))],
        "subtotal": "133.33",
        "tax_total": "7.25",
        "amount_due": "140.58",
        "net": "12.34",
        "tax": "0.671004",
        "money": "13.01",
    },
    # EUR gross: 119 at 19 % (net 100) + 39.99 at 7 % (net 37.373832) -> subtotal 137.373832, tax 21.616168;
    # 21.616168 * 12.34 / 137.373832 = 1.941734|53
    "eu_isp": {
        "lines": [Line(Decimal("119"), Decimal("19")), Line(Decimal("39.99"), Decimal("2.616168"))],
        "subtotal": "137.373832",
        "tax_total": "21.616168",
        "amount_due": "158.99",
        "net": "12.34",
        "tax": "1.941735",
        "money": "14.28",
    },
    # JPY: 10000 at 10 % + 3333 at 8 % -> subtotal 13333, tax 1266.64, total 14599.64 -> due 14600;
    # 1266.64 * 1234 / 13333 = 117.230462|76
    "jp_isp": {
        "lines": [Line(Decimal("10000"), Decimal("1000")), Line(Decimal("3333"), Decimal("266.64"))],
        "subtotal": "13333",
        "tax_total": "1266.64",
        "amount_due": "14600",
        "net": "1234",
        "tax": "117.230463",
        "money": "1351",
    },
}

# A charge with its discount (one taxable amount) and a fee. Crediting part of the charge: the tax
# share is the group's tax * net credited / the group's net.
BY_LINE = {
    # USD: 100 - 20.01 = 79.99 net, tax 5.799275; 5.799275 * 33.33 / 79.99 = 2.416425 (exact)
    "us_isp": {
        "charge": Line(Decimal("100"), Decimal("5.799275"), Decimal("-20.01"), "charge", "service", "Fiber 500"),
        "fee": Line(Decimal("25"), Decimal("1.8125")),
        "net": "33.33",
        "tax": "2.416425",
        "rest": "46.66",
        "rest_tax": "3.382850",
    },
    # EUR gross: 119 - 23.81 = 95.19 gross, tax 15.198403, net 79.991597;
    # 15.198403 * 33.33 / 79.991597 = 6.332699|82
    "eu_isp": {
        "charge": Line(Decimal("119"), Decimal("15.198403"), Decimal("-23.81"), "charge", "service", "Glasfaser 500"),
        "fee": Line(Decimal("29.75"), Decimal("4.75")),
        "net": "33.33",
        "tax": "6.332700",
        "rest": "46.661597",
        "rest_tax": "8.865703",
    },
    # JPY: 10000 - 2001 = 7999 net, tax 799.9; 799.9 * 3333 / 7999 = 333.3 (exact)
    "jp_isp": {
        "charge": Line(Decimal("10000"), Decimal("799.9"), Decimal("-2001"), "charge", "service", "Hikari 1G"),
        "fee": Line(Decimal("2500"), Decimal("250")),
        "net": "3333",
        "tax": "333.300000",
        "rest": "4666",
        "rest_tax": "466.600000",
    },
}


def six(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.000001"))


def reload(invoice: Invoice) -> Invoice:
    return Invoice.objects.get(pk=invoice.pk)


def invoice_snapshot(invoice: Invoice) -> tuple:
    invoice = reload(invoice)
    lines = tuple(invoice.lines.order_by("position").values_list("amount", "net_amount", "tax_amount"))
    return (invoice.number, invoice.subtotal, invoice.tax_total, invoice.total, invoice.amount_due, lines)


def sequence_of(number: str) -> tuple[int, int]:
    match = re.fullmatch(r"CN-(\d{4})-(\d{6})", number)
    assert match, number
    return int(match[1]), int(match[2])


# --- numbering --------------------------------------------------------------------------------
@pytest.mark.behavior
def test_credit_note_numbers_are_gap_free_per_year_and_a_failed_issue_gives_its_number_back(tenant, monkeypatch):
    # given
    invoice = issued_invoice(CustomerFactory(), amount_due=Decimal(500), due_date=DUE, issue_date=ISSUED)
    first = credit_note_issue(invoice=invoice, amount=Decimal(10), reason="goodwill", actor=CLERK, issue_date=ISSUED)
    year, sequence = sequence_of(first.number)
    assert year == 2026

    # when: an issue rolled back by its caller's transaction, and one failing inside the service
    def issue_then_fail():
        with transaction.atomic():
            credit_note_issue(invoice=invoice, amount=Decimal(10), reason="rolled back", actor=CLERK, issue_date=ISSUED)
            raise RuntimeError("caller failed")

    with pytest.raises(RuntimeError, match="caller failed"):
        issue_then_fail()

    def audit_fails(**kwargs):
        raise RuntimeError("audit store down")

    with monkeypatch.context() as patch:
        patch.setattr(credit_notes, "audit_record", audit_fails)
        with pytest.raises(RuntimeError, match="audit store down"):
            credit_note_issue(invoice=invoice, amount=Decimal(10), reason="fails", actor=CLERK, issue_date=ISSUED)

    # then: the next one takes the very next number; nothing of the failed ones remains
    second = credit_note_issue(invoice=invoice, amount=Decimal(10), reason="goodwill", actor=CLERK, issue_date=ISSUED)
    assert sequence_of(second.number) == (2026, sequence + 1)
    assert list(CreditNote.objects.order_by("id").values_list("number", flat=True)) == [first.number, second.number]
    assert reload(invoice).credit_applied == six(20)  # only the two issued ones settled anything
    # a new year starts its own sequence, at 1
    next_year = credit_note_issue(
        invoice=invoice, amount=Decimal(10), reason="goodwill", actor=CLERK, issue_date=datetime.date(2027, 1, 2)
    )
    assert next_year.number == "CN-2027-000001"


# --- limits -----------------------------------------------------------------------------------
@pytest.mark.behavior
def test_crediting_more_than_the_invoice_total_minus_earlier_credit_notes_is_refused(tenant):
    # given: an invoice of 300, already credited 250
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(300), due_date=DUE, issue_date=ISSUED)
    credit_note_issue(invoice=invoice, amount=Decimal(250), reason="outage", actor=CLERK, issue_date=ISSUED)
    before = (CreditNote.objects.count(), BalanceMovement.objects.count(), reload(invoice).credit_applied)

    # when / then
    with pytest.raises(ValidationError) as exc:
        credit_note_issue(invoice=invoice, amount=Decimal(51), reason="too much", actor=CLERK, issue_date=ISSUED)
    assert "exceeds what is left to credit" in exc.value.message_dict["amount"][0]
    assert "(50.000000: its total 300.000000 minus earlier credit notes)" in exc.value.message_dict["amount"][0]
    assert (CreditNote.objects.count(), BalanceMovement.objects.count(), reload(invoice).credit_applied) == before
    # exactly what is left is fine
    last = credit_note_issue(invoice=invoice, amount=Decimal(50), reason="rest", actor=CLERK, issue_date=ISSUED)
    assert last.total == six(50)


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("amount", "error"),
    [(Decimal(0), ValidationError), (Decimal(-1), ValidationError), (Decimal("1.0000001"), ValidationError)],
)
def test_a_credit_note_amount_is_positive_with_at_most_6_places(tenant, amount, error):
    invoice = issued_invoice(CustomerFactory(), amount_due=Decimal(100), due_date=DUE, issue_date=ISSUED)
    with pytest.raises(error):
        credit_note_issue(invoice=invoice, amount=amount, reason="x", actor=CLERK, issue_date=ISSUED)
    with pytest.raises(TypeError):
        credit_note_issue(invoice=invoice, amount=1.5, reason="x", actor=CLERK, issue_date=ISSUED)
    with pytest.raises(ValidationError, match="Say why"):
        credit_note_issue(invoice=invoice, amount=Decimal(1), reason=" ", actor=CLERK, issue_date=ISSUED)
    assert not CreditNote.objects.exists()


# --- tax share --------------------------------------------------------------------------------
@pytest.mark.behavior
def test_the_tax_of_a_credited_amount_is_the_invoices_tax_share_to_6_places(tenant, tenant_profile):
    # given
    case = BY_AMOUNT[tenant_profile.key]
    invoice = issued_invoice(CustomerFactory(), lines=case["lines"], due_date=DUE, issue_date=ISSUED)
    assert (invoice.subtotal, invoice.tax_total, invoice.amount_due) == (
        six(case["subtotal"]),
        six(case["tax_total"]),
        six(case["amount_due"]),
    )
    untouched = invoice_snapshot(invoice)

    # when
    note = credit_note_issue(invoice=invoice, amount=Decimal(case["net"]), reason="price error", actor=CLERK)

    # then
    note = CreditNote.objects.get(pk=note.pk)
    assert (note.subtotal, note.tax_total, note.total) == (
        six(case["net"]),
        six(case["tax"]),
        six(case["net"]) + six(case["tax"]),
    )
    (line,) = note.lines.all()
    assert (line.invoice_line_id, line.amount, line.tax_amount) == (None, six(case["net"]), six(case["tax"]))
    # the money given back is the total in the currency's unit; the invoice was open: all of it reduces it
    invoice = reload(invoice)
    assert invoice.credit_applied == six(case["money"])
    assert invoice.balance_due == six(case["amount_due"]) - six(case["money"])
    assert invoice_snapshot(invoice) == untouched  # the issued invoice never changes


@pytest.mark.behavior
def test_crediting_the_rest_gives_back_exactly_the_invoices_tax_and_amount_due(tenant, tenant_profile):
    # given: a first partial credit note
    case = BY_AMOUNT[tenant_profile.key]
    customer = CustomerFactory()
    invoice = issued_invoice(customer, lines=case["lines"], due_date=DUE, issue_date=ISSUED)
    first = credit_note_issue(invoice=invoice, amount=Decimal(case["net"]), reason="part", actor=CLERK)

    # when: the rest
    rest = credit_note_issue(
        invoice=invoice, amount=six(case["subtotal"]) - six(case["net"]), reason="cancelled", actor=CLERK
    )

    # then: the remainders, to the last millionth and the last cent (yen)
    assert rest.tax_total == six(case["tax_total"]) - six(case["tax"])
    assert first.total + rest.total == invoice.total
    assert first.tax_total + rest.tax_total == invoice.tax_total
    invoice = reload(invoice)
    assert (invoice.credit_applied, invoice.balance_due, invoice.status) == (invoice.amount_due, six(0), "paid")
    assert not BalanceMovement.objects.filter(customer=customer).exists()
    with pytest.raises(ValidationError, match="exceeds what is left"):
        credit_note_issue(invoice=invoice, amount=Decimal("0.000001"), reason="more", actor=CLERK)


@pytest.mark.behavior
def test_the_tax_of_a_credited_line_is_its_taxable_amounts_share_to_6_places(tenant, tenant_profile):
    # given: a discounted charge and a fee
    case = BY_LINE[tenant_profile.key]
    invoice = issued_invoice(CustomerFactory(), lines=[case["charge"], case["fee"]], due_date=DUE, issue_date=ISSUED)
    charge = invoice.lines.get(kind=InvoiceLine.Kind.CHARGE)
    discount = invoice.lines.get(kind=InvoiceLine.Kind.DISCOUNT)

    # when: part of the charge
    note = credit_note_issue(invoice=invoice, lines=[(charge, Decimal(case["net"]))], reason="slow line", actor=CLERK)

    # then
    (line,) = CreditNoteLine.objects.filter(credit_note=note)
    assert (line.invoice_line_id, line.amount, line.tax_amount) == (charge.pk, six(case["net"]), six(case["tax"]))
    assert line.description == f"Credit: {charge.description}"
    assert (note.subtotal, note.tax_total) == (six(case["net"]), six(case["tax"]))

    # the rest of the line takes the rest of its tax, and the line is then fully credited
    rest = credit_note_issue(invoice=invoice, lines=[(charge, Decimal(case["rest"]))], reason="slow", actor=CLERK)
    assert rest.tax_total == six(case["rest_tax"])
    assert note.tax_total + rest.tax_total == charge.tax_amount
    with pytest.raises(ValidationError, match="can still be credited on line 1"):
        credit_note_issue(invoice=invoice, lines=[(charge, Decimal(1))], reason="again", actor=CLERK)
    with pytest.raises(ValidationError, match="not the discount line"):
        credit_note_issue(invoice=invoice, lines=[(discount, Decimal(1))], reason="x", actor=CLERK)
    other = issued_invoice(invoice.customer, amount_due=Decimal(50), due_date=DUE, issue_date=ISSUED)
    with pytest.raises(ValidationError, match="is not a line of invoice"):
        credit_note_issue(invoice=other, lines=[(charge, Decimal(1))], reason="x", actor=CLERK)


# --- where the money goes ---------------------------------------------------------------------
@pytest.mark.behavior
def test_a_credit_note_reduces_the_balance_due_first_then_adds_credit_balance(tenant):
    # given: 100 invoiced, 70 paid, 30 due
    u = Decimal(1).scaleb(-tenant.currency_minor_unit)
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(100), due_date=DUE, issue_date=ISSUED)
    payment_record(customer=customer, amount=Decimal(70), received_on=DUE, method="manual", actor=CLERK)

    # when: 50 + one unit credited
    note = credit_note_issue(invoice=invoice, amount=Decimal(50) + u, reason="outage week", actor=CLERK)

    # then: 30 settle the invoice, the rest is credit balance, with its ledger row
    assert (note.applied_to_invoice, note.to_credit_balance) == (six(30), six(20 + u))
    invoice = reload(invoice)
    assert (invoice.credit_applied, invoice.amount_paid, invoice.balance_due) == (six(30), six(70), six(0))
    assert invoice.status == "paid"
    assert CustomerBalance.objects.get(customer=customer).credit == six(20 + u)
    movement = BalanceMovement.objects.get(customer=customer, reason="credit_note")
    assert (movement.amount, movement.credit_note_id, movement.invoice_id) == (six(20 + u), note.pk, invoice.pk)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"credit_note.issued", "invoice.credit_applied"} <= actions
    issued = AuditEvent.objects.get(action="credit_note.issued", object_id=str(note.pk))
    assert (issued.actor_label, issued.reason) == ("billing.clerk", "outage week")
    assert set(issued.changed_fields) <= {f.name for f in CreditNote._meta.get_fields()}


@pytest.mark.behavior
def test_a_credit_note_on_a_paid_invoice_is_all_credit_balance(tenant):
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(100), due_date=DUE, issue_date=ISSUED)
    payment_record(customer=customer, amount=Decimal(100), received_on=DUE, method="manual", actor=CLERK)

    note = credit_note_issue(invoice=invoice, amount=Decimal(15), reason="goodwill", actor=CLERK)

    assert (note.applied_to_invoice, note.to_credit_balance) == (six(0), six(15))
    assert reload(invoice).credit_applied == six(0)
    assert CustomerBalance.objects.get(customer=customer).credit == six(15)
