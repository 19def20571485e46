"""Dunning thresholds (billing rules, section 9), across the tenant matrix: nothing on the due date,
reminder_1 at 1 day and reminder_7 at 7 days (once each, also when a run comes late), suspension of
the customer's active subscriptions at the tenant's suspend_after_days (default 15) - reaching the
network through the subscription events - and reactivation once everything overdue is paid.

Dates are relative to the tenant's local today: a payment judges "overdue" as of today."""

from __future__ import annotations

import datetime
import io
import logging
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from billing.credit_notes import credit_note_issue
from billing.dunning import dunning_run, tenant_today
from billing.models import DunningEvent, Invoice
from billing.payments import payment_record
from billing.tasks import dunning_all_tenants
from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import events
from customers.models import Customer, Subscription, SubscriptionStatusChange
from customers.services import subscription_activate, subscription_suspend
from tests.billing.factories import issued_invoice
from tests.customers.factories import CustomerFactory, SubscriptionFactory

pytestmark = [pytest.mark.payment_flow, pytest.mark.business_logic_protection]

STAFF = Actor(type=AuditEvent.ActorType.USER, id="3", label="noc.operator")
CASHIER = Actor(type=AuditEvent.ActorType.USER, id="11", label="cashier")
DAY = datetime.timedelta(days=1)


@dataclass
class World:
    today: datetime.date
    due: datetime.date
    customer: Customer
    active: list[Subscription]
    pending: Subscription
    bystander: Subscription  # another customer's active subscription
    invoice: Invoice
    unit: Decimal

    def day(self, n: int) -> datetime.date:
        return self.due + n * DAY


def active_subscription(customer: Customer, activated_on: datetime.date) -> Subscription:
    subscription = SubscriptionFactory(customer=customer)
    return subscription_activate(subscription=subscription, activated_on=activated_on, actor=STAFF)


@pytest.fixture
def world(tenant) -> World:
    """A customer with two active subscriptions and a pending one, and an invoice due 20 days ago."""
    today = tenant_today()
    due = today - 20 * DAY
    customer = CustomerFactory()
    unit = Decimal(1).scaleb(-tenant.currency_minor_unit)
    return World(
        today=today,
        due=due,
        customer=customer,
        active=[active_subscription(customer, due - 60 * DAY) for _ in range(2)],
        pending=SubscriptionFactory(customer=customer),
        bystander=active_subscription(CustomerFactory(), due - 60 * DAY),
        invoice=issued_invoice(customer, amount_due=Decimal(123) + 45 * unit, due_date=due),
        unit=unit,
    )


@pytest.fixture
def received():
    got: list = []
    events.subscribe(events.SubscriptionStatusChanged, got.append)
    yield got
    events.unsubscribe(events.SubscriptionStatusChanged, got.append)


def kinds(invoice: Invoice) -> list[str]:
    return list(DunningEvent.objects.filter(invoice=invoice).order_by("id").values_list("kind", flat=True))


def statuses(subscriptions) -> list[str]:
    return [Subscription.objects.get(pk=s.pk).status for s in subscriptions]


# --- reminders --------------------------------------------------------------------------------
@pytest.mark.behavior
def test_nothing_happens_up_to_the_due_date(world, mailoutbox):
    for day in (world.day(-3), world.day(0)):
        report = dunning_run(today=day)
        assert (report.invoices_overdue, report.reminder_1, report.notices_sent) == (0, 0, 0)
    assert kinds(world.invoice) == []
    assert mailoutbox == []


@pytest.mark.behavior
def test_one_day_overdue_sends_reminder_1_once_to_the_customers_address(world, tenant, mailoutbox):
    # when
    report = dunning_run(today=world.day(1))

    # then
    assert (report.invoices_overdue, report.reminder_1, report.reminder_7, report.notices_sent) == (1, 1, 0, 1)
    event = DunningEvent.objects.get(invoice=world.invoice)
    assert (event.kind, event.occurred_on) == ("reminder_1", world.day(1))
    (mail,) = mailoutbox
    assert mail.to == [Customer.objects.get(pk=world.customer.pk).email]
    assert mail.from_email == settings.DEFAULT_FROM_EMAIL
    amount = f"{(Decimal(123) + 45 * world.unit).quantize(world.unit)} {tenant.currency}"  # 123.45 USD, 168 JPY
    assert mail.subject == f"Payment reminder: invoice {world.invoice.number} is overdue"
    assert world.invoice.number in mail.body
    assert f"Amount outstanding: {amount}." in mail.body
    assert AuditEvent.objects.filter(action="invoice.dunning_reminder_1", object_id=str(world.invoice.pk)).exists()

    # and again the same day, the next day, and up to day 6: nothing new
    for day in (world.day(1), world.day(2), world.day(6)):
        again = dunning_run(today=day)
        assert (again.invoices_overdue, again.reminder_1, again.notices_sent) == (1, 0, 0)
    assert kinds(world.invoice) == ["reminder_1"]
    assert len(mailoutbox) == 1
    assert statuses(world.active) == ["active", "active"]


@pytest.mark.behavior
def test_seven_days_overdue_sends_reminder_7_once(world, mailoutbox):
    dunning_run(today=world.day(1))

    report = dunning_run(today=world.day(7))
    dunning_run(today=world.day(7))
    dunning_run(today=world.day(8))

    assert (report.reminder_1, report.reminder_7) == (0, 1)
    assert kinds(world.invoice) == ["reminder_1", "reminder_7"]
    assert [m.subject for m in mailoutbox] == [
        f"Payment reminder: invoice {world.invoice.number} is overdue",
        f"Second reminder: invoice {world.invoice.number} is 7 days overdue",
    ]
    assert DunningEvent.objects.get(invoice=world.invoice, kind="reminder_7").occurred_on == world.day(7)


@pytest.mark.behavior
def test_a_late_run_sends_each_missed_reminder_once(world, mailoutbox):
    report = dunning_run(today=world.day(9))
    dunning_run(today=world.day(9))

    assert (report.reminder_1, report.reminder_7, report.invoices_suspended) == (1, 1, 0)
    assert kinds(world.invoice) == ["reminder_1", "reminder_7"]
    assert len(mailoutbox) == 2


@pytest.mark.behavior
def test_a_paid_invoice_gets_no_reminder(world, mailoutbox):
    payment_record(
        customer=world.customer,
        amount=world.invoice.amount_due,
        received_on=world.day(0),
        method="manual",
        actor=CASHIER,
    )
    report = dunning_run(today=world.day(20))
    assert report.invoices_overdue == 0
    assert kinds(world.invoice) == []
    assert mailoutbox == []


# --- suspension -------------------------------------------------------------------------------
@pytest.mark.behavior
def test_at_suspend_after_days_the_customers_active_subscriptions_are_suspended(
    world, tenant, mailoutbox, received, django_capture_on_commit_callbacks
):
    # given: the default threshold, and a run on day 14 that suspends nothing
    assert tenant.suspend_after_days == 15
    day14 = dunning_run(today=world.day(14))
    assert (day14.invoices_suspended, day14.subscriptions_suspended) == (0, 0)
    assert statuses(world.active) == ["active", "active"]

    # when
    with django_capture_on_commit_callbacks(execute=True):
        report = dunning_run(today=world.day(15))

    # then: both active subscriptions suspended, nobody else's, the pending one untouched
    assert (report.invoices_suspended, report.subscriptions_suspended) == (1, 2)
    assert statuses(world.active) == ["suspended", "suspended"]
    assert statuses([world.pending, world.bystander]) == ["pending", "active"]
    reason = f"dunning: invoice {world.invoice.number} overdue"
    for subscription in world.active:
        change = SubscriptionStatusChange.objects.filter(subscription=subscription).latest("id")
        assert (change.from_status, change.to_status, change.effective_on) == ("active", "suspended", world.day(15))
        assert (change.reason, change.actor_label) == (reason, "dunning")
        audit = AuditEvent.objects.get(action="subscription.suspended", object_id=str(subscription.pk))
        assert (audit.reason, audit.actor_type) == (reason, "system")
    assert kinds(world.invoice) == ["reminder_1", "reminder_7", "suspended"]
    assert DunningEvent.objects.get(invoice=world.invoice, kind="suspended").occurred_on == world.day(15)
    # the network hook: a status event per suspended subscription, after commit
    assert sorted((e.subscription_id, e.from_status, e.to_status, e.effective_on) for e in received) == [
        (s.pk, "active", "suspended", world.day(15)) for s in world.active
    ]
    assert {e.schema for e in received} == {tenant.schema_name}
    assert mailoutbox[-1].subject == f"Service suspended: invoice {world.invoice.number} is unpaid"

    # and once only
    again = dunning_run(today=world.day(16))
    assert (again.invoices_suspended, again.subscriptions_suspended, again.notices_sent) == (0, 0, 0)
    assert SubscriptionStatusChange.objects.filter(to_status="suspended").count() == 2


@pytest.mark.behavior
@pytest.mark.parametrize("threshold", [1, 5, 30])
def test_the_tenants_suspend_after_days_decides_when_to_suspend(world, tenant, threshold):
    # given
    type(tenant).objects.filter(pk=tenant.pk).update(suspend_after_days=threshold)
    tenant.suspend_after_days = threshold

    # when / then: not the day before, on the day
    assert dunning_run(today=world.day(threshold - 1)).subscriptions_suspended == 0
    assert statuses(world.active) == ["active", "active"]
    assert dunning_run(today=world.day(threshold)).subscriptions_suspended == 2
    assert statuses(world.active) == ["suspended", "suspended"]


# --- reactivation -----------------------------------------------------------------------------
def pay(world: World, amount: Decimal) -> None:
    payment_record(customer=world.customer, amount=amount, received_on=world.today, method="manual", actor=CASHIER)


def suspend_by_dunning(world: World) -> None:
    dunning_run(today=world.day(15))
    assert statuses(world.active) == ["suspended", "suspended"]


@pytest.mark.behavior
def test_paying_everything_overdue_reactivates_what_dunning_suspended(
    world, received, django_capture_on_commit_callbacks
):
    # given: suspended, and a second invoice overdue (5 days at the suspension, 10 days today)
    second = issued_invoice(world.customer, amount_due=Decimal(50), due_date=world.today - 10 * DAY)
    suspend_by_dunning(world)
    assert kinds(second) == ["reminder_1"]

    # when: the first invoice is paid - the second is still overdue
    payment_record(
        customer=world.customer,
        amount=world.invoice.amount_due,
        received_on=world.today,
        method="manual",
        actor=CASHIER,
    )

    # then: still suspended
    assert statuses(world.active) == ["suspended", "suspended"]
    assert "reactivated" not in kinds(world.invoice)

    # when: everything overdue is paid
    with django_capture_on_commit_callbacks(execute=True):
        payment_record(
            customer=world.customer, amount=Decimal(50), received_on=world.today, method="manual", actor=CASHIER
        )

    # then
    assert statuses(world.active) == ["active", "active"]
    assert statuses([world.pending, world.bystander]) == ["pending", "active"]
    for subscription in world.active:
        change = SubscriptionStatusChange.objects.filter(subscription=subscription).latest("id")
        assert (change.from_status, change.to_status) == ("suspended", "active")
        assert (change.effective_on, change.reason, change.actor_label) == (world.today, "payment received", "cashier")
        assert AuditEvent.objects.filter(action="subscription.reactivated", object_id=str(subscription.pk)).exists()
    event = DunningEvent.objects.get(invoice=world.invoice, kind="reactivated")
    assert event.occurred_on == world.today
    assert "reactivated" not in kinds(second)  # it caused no suspension
    assert sorted((e.subscription_id, e.to_status) for e in received) == [(s.pk, "active") for s in world.active]


@pytest.mark.behavior
def test_a_partial_payment_does_not_reactivate(world):
    suspend_by_dunning(world)

    payment_record(
        customer=world.customer,
        amount=world.invoice.amount_due - world.unit,
        received_on=world.today,
        method="manual",
        actor=CASHIER,
    )

    assert Invoice.objects.get(pk=world.invoice.pk).balance_due == world.unit
    assert statuses(world.active) == ["suspended", "suspended"]
    assert "reactivated" not in kinds(world.invoice)


@pytest.mark.behavior
def test_an_invoice_not_yet_due_does_not_hold_back_reactivation(world):
    upcoming = issued_invoice(world.customer, amount_due=Decimal(80), due_date=world.today + 5 * DAY)
    suspend_by_dunning(world)

    payment_record(
        customer=world.customer,
        amount=world.invoice.amount_due,
        received_on=world.today,
        method="manual",
        actor=CASHIER,
    )

    assert statuses(world.active) == ["active", "active"]
    assert Invoice.objects.get(pk=upcoming.pk).balance_due == Decimal(80)


@pytest.mark.behavior
def test_a_subscription_suspended_by_staff_stays_suspended_after_payment(world):
    # given: staff suspended one subscription for abuse before dunning suspended the other
    abused, other = world.active
    subscription_suspend(subscription=abused, effective_on=world.day(3), actor=STAFF, reason="abuse report")
    report = dunning_run(today=world.day(15))
    assert report.subscriptions_suspended == 1

    # when
    payment_record(
        customer=world.customer,
        amount=world.invoice.amount_due,
        received_on=world.today,
        method="manual",
        actor=CASHIER,
    )

    # then
    assert statuses([abused, other]) == ["suspended", "active"]
    assert SubscriptionStatusChange.objects.filter(subscription=abused).latest("id").reason == "abuse report"


@pytest.mark.behavior
def test_a_credit_note_settling_the_overdue_invoice_reactivates(world):
    suspend_by_dunning(world)

    note = credit_note_issue(
        invoice=world.invoice, amount=world.invoice.subtotal, reason="billing error", actor=CASHIER
    )

    assert statuses(world.active) == ["active", "active"]
    change = SubscriptionStatusChange.objects.filter(subscription=world.active[0]).latest("id")
    assert change.reason == f"credit note {note.number} issued"
    assert "reactivated" in kinds(world.invoice)


# --- robustness -------------------------------------------------------------------------------
class FlakyNotifier:
    def __init__(self, failing_number: str):
        self.failing_number = failing_number
        self.sent: list[tuple[str, str]] = []

    def send_reminder(self, invoice, kind) -> bool:
        if invoice.number == self.failing_number:
            raise ConnectionError("mail server refused")
        self.sent.append((invoice.number, kind))
        return True


@pytest.mark.behavior
def test_a_failing_notice_rolls_back_that_invoice_only_and_is_retried_next_run(world):
    # given
    other = issued_invoice(world.customer, amount_due=Decimal(10), due_date=world.day(0))
    notifier = FlakyNotifier(failing_number=world.invoice.number)

    # when
    report = dunning_run(today=world.day(1), notifier=notifier)

    # then: the failing invoice has no event (retried next time), the other one went out
    assert report.failed == [(world.invoice.number, "reminder_1: ConnectionError: mail server refused")]
    assert kinds(world.invoice) == []
    assert kinds(other) == ["reminder_1"]
    assert notifier.sent == [(other.number, "reminder_1")]
    retry = dunning_run(today=world.day(2), notifier=FlakyNotifier(failing_number="none"))
    assert (retry.reminder_1, retry.failed) == (1, [])
    assert kinds(world.invoice) == ["reminder_1"]


@pytest.mark.behavior
def test_a_suspension_that_fails_is_rolled_back_whole_reported_and_retried(world, mailoutbox):
    # given: a second subscription whose activation lies after the suspension day (it cannot be
    # suspended before it starts), and the reminders already sent
    late = active_subscription(world.customer, world.day(16))
    dunning_run(today=world.day(7))

    # when
    report = dunning_run(today=world.day(15))

    # then: no subscription suspended (not even the ones that could be), no event, no notice
    ((number, reason),) = report.failed
    assert number == world.invoice.number
    assert reason.startswith("suspended: ValidationError")
    assert (report.invoices_suspended, report.subscriptions_suspended) == (0, 0)
    assert statuses([*world.active, late]) == ["active", "active", "active"]
    assert kinds(world.invoice) == ["reminder_1", "reminder_7"]
    assert not SubscriptionStatusChange.objects.filter(to_status="suspended").exists()
    assert len(mailoutbox) == 2

    # and once the subscription has started, the next run suspends everything
    retry = dunning_run(today=world.day(16))
    assert (retry.invoices_suspended, retry.subscriptions_suspended, retry.failed) == (1, 3, [])
    assert statuses([*world.active, late]) == ["suspended", "suspended", "suspended"]


@pytest.mark.behavior
def test_a_customer_whose_data_was_erased_gets_no_mail_but_the_step_is_recorded(world, mailoutbox):
    from compliance.pii.keystore import get_keystore

    get_keystore().shred(tenant=connection.schema_name, key_id=world.customer.data_key_id)

    report = dunning_run(today=world.day(1))

    assert (report.reminder_1, report.notices_sent, report.notices_undeliverable) == (1, 0, 1)
    assert kinds(world.invoice) == ["reminder_1"]
    assert mailoutbox == []


@pytest.mark.behavior
def test_dunning_never_logs_personal_data(world, caplog, mailoutbox):
    caplog.set_level(logging.DEBUG)
    customer = Customer.objects.get(pk=world.customer.pk)

    dunning_run(today=world.day(15))
    dunning_run(today=world.day(16), notifier=FlakyNotifier(failing_number=world.invoice.number))

    assert len(mailoutbox) == 3
    assert caplog.records  # it does log: by ids and numbers
    for text in (customer.email, customer.name, customer.phone):
        assert text not in caplog.text


# --- entry points -----------------------------------------------------------------------------
@pytest.mark.behavior
def test_the_run_dunning_command_runs_one_tenant_and_prints_the_report(world, tenant, mailoutbox):
    out = io.StringIO()

    call_command("run_dunning", "--tenant", tenant.slug, "--date", world.day(7).isoformat(), stdout=out)

    assert kinds(world.invoice) == ["reminder_1", "reminder_7"]
    assert out.getvalue().splitlines()[:2] == [
        f"dunning on {world.day(7).isoformat()}: 1 overdue invoice(s)",
        "  reminders: 1 at 1 day, 1 at 7 days",
    ]
    assert connection.schema_name == tenant.schema_name
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        call_command("run_dunning", "--tenant", "nope")
    with pytest.raises(CommandError, match="is not a date"):
        call_command("run_dunning", "--tenant", tenant.slug, "--date", "31/12/2026")


@pytest.mark.behavior
def test_the_daily_task_runs_dunning_in_every_active_tenant_as_of_its_own_today(tenant, mailoutbox):
    # given: an invoice one day overdue in the current tenant only
    customer = CustomerFactory()
    invoice = issued_invoice(customer, amount_due=Decimal(30), due_date=tenant_today() - DAY)

    # when
    results = dunning_all_tenants()

    # then
    assert {"us-isp", "eu-isp", "jp-isp"} <= set(results)
    assert "public" not in results
    assert (results[tenant.slug]["reminder_1"], results[tenant.slug]["failed"]) == (1, [])
    assert all(r["reminder_1"] == 0 for slug, r in results.items() if slug != tenant.slug)
    assert kinds(invoice) == ["reminder_1"]
    assert connection.schema_name == tenant.schema_name  # the task put the schema back


@pytest.mark.contract
def test_the_daily_dunning_task_is_on_the_beat_schedule():
    from celery.schedules import crontab

    entry = settings.CELERY_BEAT_SCHEDULE["billing-dunning-daily"]
    assert entry["task"] == dunning_all_tenants.name == "billing.dunning_all_tenants"
    assert entry["schedule"] == crontab(hour=6, minute=0)
