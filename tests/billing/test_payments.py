"""Payments: allocation oldest-first, overpayment to credit balance, currency precision, gateway
idempotency, card charges (approved, declined, gateway down, recorded after a database failure),
and refunds. Every amount is checked to 6 places, across the tenant matrix (JPY has no minor unit)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

from billing import balances, gateways, payments
from billing.dunning import tenant_today
from billing.gateways import GatewayError, PaymentGateway, SandboxGateway, get_gateway
from billing.models import (
    BalanceMovement,
    CreditNote,
    CustomerBalance,
    Invoice,
    Payment,
    PaymentAllocation,
)
from billing.payments import (
    PaymentDeclined,
    PaymentNotRecorded,
    payment_charge,
    payment_record,
    payment_refund,
    refunded_amount,
)
from compliance.audit import Actor
from compliance.models import AuditEvent
from tests.billing.factories import Line, RecordingGateway, issued_invoice
from tests.customers.factories import CustomerFactory

pytestmark = [pytest.mark.payment_flow, pytest.mark.revenue_critical]

CASHIER = Actor(type=AuditEvent.ActorType.USER, id="11", label="cashier")
RECEIVED = datetime.date(2026, 4, 20)
DAY = datetime.timedelta(days=1)


def unit(tenant) -> Decimal:
    """The currency's smallest amount: 0.01 USD/EUR, 1 JPY."""
    return Decimal(1).scaleb(-tenant.currency_minor_unit)


def six(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.000001"))


def reload(invoice: Invoice) -> Invoice:
    return Invoice.objects.get(pk=invoice.pk)


@pytest.fixture(autouse=True)
def _fresh_gateways():
    """Each test gets new gateway instances (the sandbox remembers idempotency keys)."""
    gateways._gateway_for.cache_clear()
    yield
    gateways._gateway_for.cache_clear()


@pytest.fixture
def gateway(settings):
    RecordingGateway.calls = []
    settings.ISP_PAYMENT_GATEWAY = "tests.billing.factories.RecordingGateway"
    return get_gateway()


# --- allocation -------------------------------------------------------------------------------
@pytest.mark.behavior
def test_a_partial_payment_pays_the_oldest_due_invoices_first(tenant):
    # given: three open invoices, created in another order than they fall due
    u = unit(tenant)
    customer = CustomerFactory()
    newest = issued_invoice(customer, amount_due=Decimal(50), due_date=RECEIVED - 5 * DAY)
    oldest = issued_invoice(customer, amount_due=Decimal(100), due_date=RECEIVED - 40 * DAY)
    middle = issued_invoice(customer, amount_due=Decimal(80), due_date=RECEIVED - 20 * DAY)
    paid_amount = Decimal(130) + 25 * u

    # when
    payment = payment_record(
        customer=customer, amount=paid_amount, received_on=RECEIVED, method="manual", reference="bank", actor=CASHIER
    )

    # then: the oldest is paid, the middle one partly, the newest not at all
    allocations = list(PaymentAllocation.objects.filter(payment=payment).order_by("id"))
    assert [(a.invoice_id, a.amount) for a in allocations] == [
        (oldest.pk, six(100)),
        (middle.pk, six(30 + 25 * u)),
    ]
    oldest, middle, newest = reload(oldest), reload(middle), reload(newest)
    assert (oldest.status, oldest.amount_paid, oldest.balance_due) == ("paid", six(100), six(0))
    assert (middle.status, middle.amount_paid, middle.balance_due) == ("issued", six(30 + 25 * u), six(50 - 25 * u))
    assert (newest.status, newest.amount_paid, newest.balance_due) == ("issued", six(0), six(50))
    assert (payment.amount, payment.currency, payment.status) == (six(paid_amount), tenant.currency, "succeeded")
    assert not BalanceMovement.objects.filter(customer=customer).exists()  # nothing left over


@pytest.mark.behavior
def test_invoices_due_the_same_day_are_paid_in_the_order_they_were_issued(tenant):
    customer = CustomerFactory()
    first = issued_invoice(customer, amount_due=Decimal(40), due_date=RECEIVED)
    second = issued_invoice(customer, amount_due=Decimal(40), due_date=RECEIVED)

    payment_record(customer=customer, amount=Decimal(60), received_on=RECEIVED, method="manual", actor=CASHIER)

    assert (reload(first).amount_paid, reload(first).status) == (six(40), "paid")
    assert (reload(second).amount_paid, reload(second).status) == (six(20), "issued")


@pytest.mark.behavior
def test_an_overpayment_becomes_credit_balance_with_a_ledger_row(tenant):
    # given
    u = unit(tenant)
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(100), due_date=RECEIVED)

    # when
    payment = payment_record(
        customer=customer, amount=Decimal(130) + 7 * u, received_on=RECEIVED, method="manual", actor=CASHIER
    )

    # then
    invoice = reload(invoice)
    assert (invoice.status, invoice.amount_paid, invoice.balance_due) == ("paid", six(100), six(0))
    assert CustomerBalance.objects.get(customer=customer).credit == six(30 + 7 * u)
    movement = BalanceMovement.objects.get(customer=customer)
    assert (movement.amount, movement.reason, movement.payment_id) == (six(30 + 7 * u), "overpayment", payment.pk)
    assert (movement.invoice_id, movement.credit_note_id) == (None, None)


@pytest.mark.behavior
def test_a_payment_with_no_open_invoice_is_all_credit_balance(tenant):
    customer = CustomerFactory()

    payment = payment_record(
        customer=customer, amount=Decimal(25), received_on=RECEIVED, method="manual", actor=CASHIER
    )

    assert not payment.allocations.exists()
    assert CustomerBalance.objects.get(customer=customer).credit == six(25)


@pytest.mark.behavior
def test_an_exact_payment_marks_the_invoice_paid_and_is_audited_by_field_names(tenant):
    # given: a taxed invoice whose total needs rounding to the currency
    customer = CustomerFactory()
    invoice = issued_invoice(customer, lines=[Line(amount=Decimal(200), tax=Decimal("14.504"))], due_date=RECEIVED)
    due = invoice.amount_due

    # when
    payment = payment_record(
        customer=customer, amount=due, received_on=RECEIVED, method="manual", reference="teller 4", actor=CASHIER
    )

    # then
    invoice = reload(invoice)
    assert (invoice.status, invoice.amount_paid, invoice.balance_due) == ("paid", due, six(0))
    assert PaymentAllocation.objects.get(payment=payment).amount == due
    assert not CustomerBalance.objects.filter(customer=customer, credit__gt=0).exists()
    recorded = AuditEvent.objects.get(action="payment.recorded", object_id=str(payment.pk))
    assert (recorded.actor_label, recorded.object_type) == ("cashier", "billing.payment")
    assert set(recorded.changed_fields) <= {f.name for f in Payment._meta.get_fields()}
    allocated = AuditEvent.objects.get(action="invoice.payment_allocated", object_id=str(invoice.pk))
    assert allocated.changed_fields == ["amount_paid", "status"]
    assert str(due) not in repr(AuditEvent.objects.filter(pk=recorded.pk).values().get())  # names, never values


# --- amounts ----------------------------------------------------------------------------------
@pytest.mark.behavior
def test_amounts_finer_than_the_currency_minor_unit_are_refused_jpy_has_none(tenant):
    # given: 1000.5 JPY, 10.005 USD/EUR
    customer = CustomerFactory()
    issued_invoice(customer, amount_due=Decimal(1000), due_date=RECEIVED)
    too_fine = Decimal(1000) + unit(tenant) / 2

    # when / then
    with pytest.raises(ValidationError) as exc:
        payment_record(customer=customer, amount=too_fine, received_on=RECEIVED, method="manual", actor=CASHIER)
    places = tenant.currency_minor_unit
    assert exc.value.message_dict["amount"] == [
        f"{tenant.currency} amounts have {places} decimal place{'s' if places != 1 else ''} at most."
    ]
    assert not Payment.objects.exists()
    # the same value written with trailing zeros is whole: accepted
    payment = payment_record(
        customer=customer, amount=Decimal("1000.000000"), received_on=RECEIVED, method="manual", actor=CASHIER
    )
    assert payment.amount == six(1000)


@pytest.mark.behavior
@pytest.mark.parametrize("tenant_profile", ["jp_isp"], indirect=True)
def test_jpy_refuses_a_decimal_yen_amount(tenant):
    customer = CustomerFactory()
    with pytest.raises(ValidationError, match="JPY amounts have 0 decimal places at most"):
        payment_record(
            customer=customer, amount=Decimal("1000.50"), received_on=RECEIVED, method="manual", actor=CASHIER
        )
    assert not Payment.objects.exists()


@pytest.mark.behavior
@pytest.mark.parametrize("amount", [Decimal(0), Decimal(-5), Decimal("NaN")])
def test_zero_negative_and_not_a_number_are_refused(tenant, amount):
    customer = CustomerFactory()
    with pytest.raises(ValidationError, match="must be positive"):
        payment_record(customer=customer, amount=amount, received_on=RECEIVED, method="manual", actor=CASHIER)
    assert not Payment.objects.exists()


@pytest.mark.behavior
def test_a_float_amount_is_a_type_error(tenant):
    with pytest.raises(TypeError):
        payment_record(customer=CustomerFactory(), amount=10.5, received_on=RECEIVED, method="manual", actor=CASHIER)


@pytest.mark.behavior
def test_gateway_and_manual_payments_are_told_apart_by_the_reference(tenant):
    customer = CustomerFactory()
    with pytest.raises(ValidationError, match="has the gateway's reference"):
        payment_record(customer=customer, amount=Decimal(5), received_on=RECEIVED, method="gateway", actor=CASHIER)
    with pytest.raises(ValidationError, match="Only gateway payments"):
        payment_record(
            customer=customer,
            amount=Decimal(5),
            received_on=RECEIVED,
            method="manual",
            gateway_reference="sb_x",
            actor=CASHIER,
        )
    assert not Payment.objects.exists()


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"method": "cheque"}, "method"),
        ({"received_on": datetime.datetime(2026, 4, 20, 10, 0)}, "received_on"),
        ({"received_on": "2026-04-20"}, "received_on"),
    ],
)
def test_a_payment_needs_a_known_method_and_a_received_date(tenant, changes, field):
    kwargs = {"amount": Decimal(5), "received_on": RECEIVED, "method": "manual", "actor": CASHIER}
    with pytest.raises(ValidationError) as exc:
        payment_record(customer=CustomerFactory(), **{**kwargs, **changes})
    assert list(exc.value.message_dict) == [field]
    assert not Payment.objects.exists()


# --- gateway reference idempotency ------------------------------------------------------------
@pytest.mark.behavior
def test_the_same_gateway_reference_records_one_payment(tenant):
    # given
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(60), due_date=RECEIVED)
    kwargs = {
        "customer": customer,
        "amount": Decimal(100),
        "received_on": RECEIVED,
        "method": "gateway",
        "gateway_reference": "sb_webhook_1",
        "actor": Actor.system("webhook"),
    }

    # when: the webhook is delivered twice
    first = payment_record(**kwargs)
    second = payment_record(**kwargs)

    # then: one payment, allocated once, credit added once
    assert second.pk == first.pk
    assert Payment.objects.filter(gateway_reference="sb_webhook_1").count() == 1
    assert PaymentAllocation.objects.filter(invoice=invoice).count() == 1
    assert reload(invoice).amount_paid == six(60)
    assert CustomerBalance.objects.get(customer=customer).credit == six(40)
    assert AuditEvent.objects.filter(action="payment.recorded").count() == 1


@pytest.mark.behavior
def test_a_gateway_reference_of_another_customer_is_refused(tenant):
    first, other = CustomerFactory(), CustomerFactory()
    payment_record(
        customer=first,
        amount=Decimal(10),
        received_on=RECEIVED,
        method="gateway",
        gateway_reference="sb_1",
        actor=CASHIER,
    )
    with pytest.raises(ValidationError, match="recorded for another customer"):
        payment_record(
            customer=other,
            amount=Decimal(10),
            received_on=RECEIVED,
            method="gateway",
            gateway_reference="sb_1",
            actor=CASHIER,
        )
    assert not Payment.objects.filter(customer=other).exists()


# --- the gateway ------------------------------------------------------------------------------
@pytest.mark.contract
def test_the_sandbox_gateway_behaves_like_a_real_one_deterministically():
    gateway = SandboxGateway()
    assert isinstance(gateway, PaymentGateway)

    approved = gateway.charge(Decimal("10.00"), "USD", "tok_visa", "key-1")
    assert approved.ok
    assert approved.reference.startswith("sb_")
    assert len(approved.reference) == 35
    # the same idempotency key: the same answer, here and in another process (another instance)
    assert gateway.charge(Decimal("10.00"), "USD", "tok_visa", "key-1") == approved
    assert SandboxGateway().charge(Decimal("10.00"), "USD", "tok_visa", "key-1").reference == approved.reference
    assert gateway.charge(Decimal("10.00"), "USD", "tok_visa", "key-2").reference != approved.reference
    # a key reused for another charge is refused
    reused = gateway.charge(Decimal("99.00"), "USD", "tok_visa", "key-1")
    assert (reused.ok, reused.message) == (False, "idempotency key reused with different parameters")

    declined = gateway.charge(Decimal("10.00"), "USD", "tok_declined", "key-3")
    assert (declined.ok, declined.reference, declined.message) == (False, "", "card declined: insufficient funds")
    assert not gateway.charge(Decimal("10.00"), "USD", "tok_unknown", "key-4").ok
    with pytest.raises(GatewayError, match="unavailable"):
        gateway.charge(Decimal("10.00"), "USD", "tok_error", "key-5")

    refund = gateway.refund(approved.reference, Decimal("4.00"))
    assert refund.ok
    assert refund.reference.startswith("sbr_")
    assert not gateway.refund(approved.reference, Decimal("6.01")).ok  # more than is left
    assert not gateway.refund("ch_foreign", Decimal("1.00")).ok


@pytest.mark.contract
def test_the_gateway_in_use_is_the_setting_default_the_sandbox(settings):
    from django.conf import settings as django_settings

    assert django_settings.ISP_PAYMENT_GATEWAY == "billing.gateways.SandboxGateway"
    assert type(get_gateway()) is SandboxGateway
    settings.ISP_PAYMENT_GATEWAY = "tests.billing.factories.RecordingGateway"
    assert type(get_gateway()) is RecordingGateway


@pytest.mark.behavior
def test_a_card_charge_records_the_payment_with_the_gateway_reference_once(tenant, gateway):
    # given
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(75), due_date=RECEIVED)

    # when: charged, then the client retries with the same idempotency key
    charge = {"customer": customer, "amount": Decimal(75), "token": "tok_visa", "actor": CASHIER}
    payment = payment_charge(**charge, idempotency_key="k1")
    again = payment_charge(**charge, idempotency_key="k1")

    # then
    assert again.pk == payment.pk
    assert Payment.objects.count() == 1
    assert (payment.method, payment.amount, payment.currency) == ("gateway", six(75), tenant.currency)
    assert payment.gateway_reference.startswith("sb_")
    assert payment.received_on == tenant_today()
    assert (reload(invoice).status, reload(invoice).amount_paid) == ("paid", six(75))
    assert [call[:4] for call in RecordingGateway.calls] == [("charge", six(75), tenant.currency, "tok_visa")] * 2


@pytest.mark.behavior
def test_a_declined_card_records_no_payment(tenant, gateway):
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(75), due_date=RECEIVED)

    with pytest.raises(PaymentDeclined) as exc:
        payment_charge(customer=customer, amount=Decimal(75), token="tok_declined", actor=CASHIER)

    assert exc.value.message_dict["token"] == ["The card was declined: card declined: insufficient funds"]
    assert not Payment.objects.exists()
    assert (reload(invoice).status, reload(invoice).amount_paid) == ("issued", six(0))
    assert not AuditEvent.objects.filter(action="payment.recorded").exists()


@pytest.mark.behavior
def test_a_gateway_error_records_no_payment_and_says_what_to_do(tenant, gateway):
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(75), due_date=RECEIVED)

    with pytest.raises(GatewayError) as exc:
        payment_charge(customer=customer, amount=Decimal(75), token="tok_error", actor=CASHIER, idempotency_key="k9")

    assert "The payment gateway failed" in str(exc.value)
    assert "No payment was recorded" in str(exc.value)
    assert "same idempotency key" in str(exc.value)
    assert not Payment.objects.exists()
    assert reload(invoice).amount_paid == six(0)


@pytest.mark.behavior
def test_a_charge_refused_by_the_currency_never_reaches_the_gateway(tenant, gateway):
    with pytest.raises(ValidationError):
        payment_charge(
            customer=CustomerFactory(), amount=Decimal(5) + unit(tenant) / 10, token="tok_visa", actor=CASHIER
        )
    assert RecordingGateway.calls == []


@pytest.mark.behavior
def test_a_charge_is_never_made_inside_a_transaction(tenant, gateway):
    customer = CustomerFactory()
    with pytest.raises(RuntimeError, match="must not run inside a transaction"), transaction.atomic():
        payment_charge(customer=customer, amount=Decimal(5), token="tok_visa", actor=CASHIER)
    assert RecordingGateway.calls == []
    assert not Payment.objects.exists()


@pytest.mark.behavior
def test_a_charged_payment_that_could_not_be_recorded_is_recorded_again_by_its_reference(tenant, gateway, monkeypatch):
    # given: the database fails once, after the gateway charged the card
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(75), due_date=RECEIVED)
    real_record = payments.payment_record

    def failing_record(**kwargs):
        raise DatabaseError("connection lost")

    monkeypatch.setattr(payments, "payment_record", failing_record)

    # when
    with pytest.raises(PaymentNotRecorded) as exc:
        payment_charge(customer=customer, amount=Decimal(75), token="tok_visa", actor=CASHIER, idempotency_key="k7")

    # then: nothing recorded, but the reference is known and re-recording is exactly once
    assert not Payment.objects.exists()
    reference = exc.value.gateway_reference
    assert reference.startswith("sb_")
    assert reference in str(exc.value)
    monkeypatch.setattr(payments, "payment_record", real_record)
    recorded = payment_record(
        customer=customer,
        amount=Decimal(75),
        received_on=RECEIVED,
        method="gateway",
        gateway_reference=reference,
        actor=Actor.system("webhook"),
    )
    retried = payment_charge(
        customer=customer, amount=Decimal(75), token="tok_visa", actor=CASHIER, idempotency_key="k7"
    )
    assert retried.pk == recorded.pk
    assert Payment.objects.count() == 1
    assert (reload(invoice).status, reload(invoice).amount_paid) == ("paid", six(75))


# --- refunds ----------------------------------------------------------------------------------
@pytest.mark.behavior
def test_refund_of_a_gateway_payment_issues_a_refund_credit_note_and_refunds_through_the_gateway(tenant, gateway):
    # given: a taxed invoice paid by card
    customer = CustomerFactory()
    invoice = issued_invoice(
        customer, lines=[Line(amount=Decimal(100), tax=Decimal(10)), Line(amount=Decimal(20))], due_date=RECEIVED
    )
    due = invoice.amount_due
    payment = payment_charge(customer=customer, amount=due, token="tok_visa", actor=CASHIER)

    # when
    refund = payment_refund(payment=payment, amount=due, reason="service never delivered", actor=CASHIER)

    # then: a refund credit note for the whole invoice, money out through the gateway
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert refunded_amount(payment) == due
    (credit_note,) = refund.credit_notes
    credit_note = CreditNote.objects.get(pk=credit_note.pk)
    assert (credit_note.purpose, credit_note.invoice_id, credit_note.total) == ("refund", invoice.pk, invoice.total)
    assert (credit_note.subtotal, credit_note.tax_total) == (invoice.subtotal, invoice.tax_total)
    assert credit_note.reason == f"refund of payment {payment.pk}: service never delivered"
    # the ledger: the credit note's money in, the refund out; the balance is back to zero
    movements = list(BalanceMovement.objects.filter(customer=customer).values_list("amount", "reason", "payment_id"))
    assert movements == [(due, "credit_note", None), (-due, "refund", payment.pk)]
    assert CustomerBalance.objects.get(customer=customer).credit == six(0)
    # the invoice stays settled: the customer is given the money back, not asked for it again
    invoice = reload(invoice)
    assert (invoice.status, invoice.amount_paid, invoice.credit_applied) == ("paid", due, six(0))
    assert RecordingGateway.calls[-1] == ("refund", payment.gateway_reference, due)
    assert refund.gateway_reference.startswith("sbr_")
    assert AuditEvent.objects.get(action="payment.refunded", object_id=str(payment.pk)).changed_fields == ["status"]


@pytest.mark.behavior
def test_a_partial_refund_gives_back_the_overpayment_first_then_credits_the_invoice(tenant):
    # given: 100 invoiced, 130 paid (30 credit balance)
    u = unit(tenant)
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(100), due_date=RECEIVED)
    payment = payment_record(
        customer=customer, amount=Decimal(130), received_on=RECEIVED, method="manual", actor=CASHIER
    )

    # when
    refund = payment_refund(payment=payment, amount=Decimal(40) + u, reason="customer request", actor=CASHIER)

    # then: 30 from the credit balance, the rest through a refund credit note on the invoice
    assert refund.from_overpayment == six(30)
    (credit_note,) = refund.credit_notes
    assert credit_note.total == six(10 + u)
    assert CustomerBalance.objects.get(customer=customer).credit == six(0)
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert refunded_amount(payment) == six(40 + u)
    assert reload(invoice).status == "paid"
    # and no more than what is left can be refunded
    with pytest.raises(ValidationError, match=f"At most {six(90 - u)} of this payment"):
        payment_refund(payment=payment, amount=Decimal(91), reason="again", actor=CASHIER)
    assert refunded_amount(payment) == six(40 + u)


@pytest.mark.behavior
def test_an_overpayment_used_since_cannot_be_refunded_and_nothing_is_half_refunded(tenant):
    # given: 130 paid on 100, and the 30 of credit since used by a later invoice
    customer = CustomerFactory()
    issued_invoice(customer, amount_due=Decimal(100), due_date=RECEIVED)
    payment = payment_record(
        customer=customer, amount=Decimal(130), received_on=RECEIVED, method="manual", actor=CASHIER
    )
    balances.balance_use(customer_id=customer.pk, up_to=Decimal(30), reason="applied_to_invoice")

    # when / then
    with pytest.raises(ValidationError, match=f"Only {six(100)} of this payment can be refunded"):
        payment_refund(payment=payment, amount=Decimal(130), reason="closing account", actor=CASHIER)
    assert not CreditNote.objects.exists()
    assert refunded_amount(payment) == six(0)
    assert CustomerBalance.objects.get(customer=customer).credit == six(0)


@pytest.mark.behavior
def test_a_gateway_refund_is_never_made_inside_another_transaction(tenant, gateway):
    customer = CustomerFactory()
    payment = payment_charge(customer=customer, amount=Decimal(20), token="tok_visa", actor=CASHIER)

    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        payment_refund(payment=payment, amount=Decimal(20), reason="dispute", actor=CASHIER)

    assert [call[0] for call in RecordingGateway.calls] == ["charge"]
    assert refunded_amount(payment) == six(0)


@pytest.mark.behavior
def test_a_refund_the_gateway_refuses_records_nothing(tenant, settings):
    settings.ISP_PAYMENT_GATEWAY = "tests.billing.factories.RefusingRefundGateway"
    customer = CustomerFactory()
    issued_invoice(customer, amount_due=Decimal(50), due_date=RECEIVED)
    payment = payment_charge(customer=customer, amount=Decimal(50), token="tok_visa", actor=CASHIER)
    movements_before = BalanceMovement.objects.count()

    with pytest.raises(ValidationError, match="refused the refund: refund window closed"):
        payment_refund(payment=payment, amount=Decimal(50), reason="dispute", actor=CASHIER)

    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert not CreditNote.objects.exists()
    assert BalanceMovement.objects.count() == movements_before
    assert refunded_amount(payment) == six(0)
