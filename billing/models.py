"""Billing: taxes, discounts, invoices and their lines, credit notes, payments, balances, runs.

Money columns are numeric(20, 6); rounding happens in billing.domain, never here."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from compliance.pii.fields import EncryptedTextField, SubjectKeyField
from customers.models import Customer, Plan, Subscription

MONEY = {"max_digits": 20, "decimal_places": 6}
ZERO = Decimal("0")
CATEGORY_CHOICES = [("service", "Service"), ("usage", "Usage"), ("equipment", "Equipment"), ("fee", "Fee")]


class TaxRate(models.Model):
    name = models.CharField(max_length=100)
    rate = models.DecimalField(max_digits=9, decimal_places=6, help_text="0.072500 for 7.25 %")
    country = models.CharField(max_length=2)
    region = models.CharField(max_length=6, blank=True, help_text="Empty: the whole country.")
    locality = models.CharField(max_length=64, blank=True, help_text="Empty: the whole region/country.")
    compound = models.BooleanField(default=False, help_text="Applied on the amount plus the non-compound taxes.")
    categories = ArrayField(models.CharField(max_length=16, choices=CATEGORY_CHOICES), default=list)
    valid_from = models.DateField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True, help_text="Exclusive.")

    class Meta:
        ordering = ["country", "region", "locality", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0), name="tax_rate_not_negative"),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True)
                | Q(valid_from__isnull=True)
                | Q(valid_until__gt=models.F("valid_from")),
                name="tax_rate_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.rate * 100:.4f}% ({self.country}{'-' + self.region if self.region else ''})"


class Discount(models.Model):
    class Kind(models.TextChoices):
        PERCENT = "percent", "Percent"
        FIXED = "fixed", "Fixed amount per period"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.DecimalField(**MONEY)
    priority = models.IntegerField(default=100, help_text="Lower applies first.")
    stackable = models.BooleanField(default=True)
    valid_from = models.DateField(null=True, blank=True)
    valid_until = models.DateField(null=True, blank=True, help_text="Exclusive.")
    periods = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Lasts N billed periods from activation."
    )

    class Meta:
        ordering = ["priority", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="fixed", value__gte=0) | Q(kind="percent", value__gt=0, value__lte=100),
                name="discount_value_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class DiscountAssignment(models.Model):
    """A discount granted to one customer, or to everyone on one plan."""

    discount = models.ForeignKey(Discount, on_delete=models.CASCADE, related_name="assignments")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(customer__isnull=False, plan__isnull=True) | Q(customer__isnull=True, plan__isnull=False),
                name="discount_assignment_one_target",
            ),
        ]

    def __str__(self) -> str:
        target = f"customer {self.customer_id}" if self.customer_id else f"plan {self.plan_id}"
        return f"{self.discount} -> {target}"


class BillingRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    period_label = models.CharField(max_length=7, help_text="YYYY-MM: the month the billed periods start in.")
    issue_date = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    customers_considered = models.PositiveIntegerField(default=0)
    invoices_issued = models.PositiveIntegerField(default=0)
    invoices_skipped = models.PositiveIntegerField(default=0)
    customers_failed = models.PositiveIntegerField(default=0)
    total_amount = models.DecimalField(**MONEY, default=ZERO)
    report = models.JSONField(default=dict, blank=True, help_text="Skipped and failed customers with reasons.")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Run {self.period_label} #{self.pk} ({self.status})"


class Invoice(models.Model):
    class Status(models.TextChoices):
        ISSUED = "issued", "Issued"
        PAID = "paid", "Paid"

    # customer: covered by invoice_one_per_customer_period (its first column).
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices", db_index=False)
    billing_run = models.ForeignKey(
        BillingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    number = models.CharField(max_length=20, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ISSUED)
    period_start = models.DateField()
    period_end = models.DateField()
    issue_date = models.DateField()
    due_date = models.DateField()
    currency = models.CharField(max_length=3)
    tax_inclusive = models.BooleanField()
    subtotal = models.DecimalField(**MONEY)
    tax_total = models.DecimalField(**MONEY)
    total = models.DecimalField(**MONEY)
    amount_due = models.DecimalField(**MONEY, help_text="total rounded to the currency's minor unit")
    rounding_adjustment = models.DecimalField(**MONEY)
    credit_applied = models.DecimalField(**MONEY, default=ZERO)
    amount_paid = models.DecimalField(**MONEY, default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-issue_date", "-id"]
        constraints = [
            # Idempotency: one invoice per customer and period, whatever runs do.
            models.UniqueConstraint(fields=["customer", "period_start"], name="invoice_one_per_customer_period"),
            models.CheckConstraint(condition=Q(credit_applied__gte=0), name="invoice_credit_not_negative"),
        ]
        # One index serves the status filter and dunning's "open and due before" scan.
        indexes = [models.Index(fields=["status", "due_date"], name="invoice_status_due_idx")]

    def __str__(self) -> str:
        return self.number

    @property
    def balance_due(self) -> Decimal:
        return max(self.amount_due - self.credit_applied - self.amount_paid, ZERO)


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        CHARGE = "charge", "Recurring charge"
        DISCOUNT = "discount", "Discount"
        CREDIT = "credit", "Credit"
        USAGE = "usage", "Usage"
        FEE = "fee", "Fee"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    category = models.CharField(max_length=16, choices=CATEGORY_CHOICES)
    description = models.CharField(max_length=200)
    # Lines are the widest table a run writes: every index costs each of ~6 rows per invoice.
    # subscription is covered by line_sub_kind_period_idx; plan and discount are only looked up
    # from their side when one is deleted, which PROTECT refuses anyway (a scan, rarely).
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # plan and discount: a snapshot of them is on the line (description, price); the database
    # does not check them per row (db_constraint=False): every line of a run would lock the same
    # few plan/discount rows FOR KEY SHARE from both workers (multixacts, the costliest part of a
    # run). Deleting a plan or discount still goes through PROTECT in the ORM, and neither is ever
    # deleted in practice (archived instead).
    plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    discount = models.ForeignKey(
        Discount,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    service_start = models.DateField(null=True, blank=True)
    service_end = models.DateField(null=True, blank=True, help_text="Exclusive.")
    quantity = models.DecimalField(max_digits=24, decimal_places=9, default=Decimal(1))
    unit_price = models.DecimalField(**MONEY, default=ZERO)
    fraction_numerator = models.PositiveIntegerField(default=1)
    fraction_denominator = models.PositiveIntegerField(default=1)
    billable_days = models.PositiveSmallIntegerField(default=0)
    amount = models.DecimalField(**MONEY)
    net_amount = models.DecimalField(**MONEY, help_text="Charges: amount after their discounts.")
    tax_amount = models.DecimalField(**MONEY, default=ZERO, help_text="Tax of the taxable amount this line heads.")
    # Within one invoice, written together by the writer and immutable after: not re-checked per row.
    applies_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="discount_lines",
        db_index=False,
        db_constraint=False,
    )
    credits_line = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_lines", db_index=False
    )

    class Meta:
        ordering = ["invoice_id", "position"]
        indexes = [
            models.Index(fields=["subscription", "kind", "period_start"], name="line_sub_kind_period_idx"),
            # Only the lines that point somewhere are indexed (partial): credit lines are rare.
            models.Index(fields=["applies_to"], name="line_applies_to_idx", condition=Q(applies_to__isnull=False)),
            models.Index(
                fields=["credits_line"], name="line_credits_line_idx", condition=Q(credits_line__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id}#{self.position} {self.kind} {self.amount}"


class InvoiceTax(models.Model):
    """One tax of one taxable amount (headed by `line`)."""

    # The database checks line (and through it the invoice); invoice is the line's invoice, kept
    # for reads, and tax_rate is a hot shared row (see InvoiceLine.plan): neither is re-checked per row.
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="taxes", db_constraint=False)
    line = models.ForeignKey(InvoiceLine, on_delete=models.CASCADE, related_name="taxes")
    tax_rate = models.ForeignKey(
        TaxRate, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=100)
    rate = models.DecimalField(max_digits=9, decimal_places=6)
    amount = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["invoice_id", "line_id", "tax_rate_id"]

    def __str__(self) -> str:
        return f"{self.name} {self.amount}"


class CreditNote(models.Model):
    """A correction of an issued invoice (which itself never changes). Its total is positive:
    the amount given back to the customer, as credit balance or refund."""

    class Purpose(models.TextChoices):
        CORRECTION = "correction", "Correction"
        REFUND = "refund", "Refund of a payment"

    number = models.CharField(max_length=20, unique=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="credit_notes")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.CORRECTION)
    issue_date = models.DateField()
    reason = models.CharField(max_length=500)
    subtotal = models.DecimalField(**MONEY)
    tax_total = models.DecimalField(**MONEY)
    total = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-issue_date", "-id"]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    credit_note = models.ForeignKey(CreditNote, on_delete=models.CASCADE, related_name="lines")
    invoice_line = models.ForeignKey(InvoiceLine, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=200)
    amount = models.DecimalField(**MONEY, help_text="Net amount credited (positive).")
    tax_amount = models.DecimalField(**MONEY, default=ZERO)

    def __str__(self) -> str:
        return f"{self.credit_note_id}: {self.amount}"


class Payment(models.Model):
    class Method(models.TextChoices):
        MANUAL = "manual", "Manual (cash, bank transfer)"
        GATEWAY = "gateway", "Payment gateway"

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        REFUNDED = "refunded", "Refunded"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    received_on = models.DateField()
    method = models.CharField(max_length=16, choices=Method.choices)
    # The payer's own words (a bank transfer's reference often carries their name): encrypted with
    # the customer's data key, copied here by `payment_record`, so an erasure shreds it too.
    data_key_id = SubjectKeyField(null=True)
    reference = EncryptedTextField()
    gateway_reference = models.CharField(max_length=100, null=True, blank=True, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_positive")]

    def __str__(self) -> str:
        return f"Payment {self.pk} {self.amount} {self.currency}"


class PaymentAllocation(models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = models.DecimalField(**MONEY)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_positive")]

    def __str__(self) -> str:
        return f"{self.payment_id} -> {self.invoice_id}: {self.amount}"


class CustomerBalance(models.Model):
    """The customer's credit balance (overpayments, credit notes), with its ledger below."""

    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="billing_balance")
    credit = models.DecimalField(**MONEY, default=ZERO)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(credit__gte=0), name="balance_credit_not_negative")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.credit}"


class BalanceMovement(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="balance_movements")
    amount = models.DecimalField(**MONEY, help_text="+ adds credit, - uses it.")
    reason = models.CharField(max_length=32)
    invoice = models.ForeignKey(Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    credit_note = models.ForeignKey(CreditNote, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer_id", "id"]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.amount} {self.reason}"


class SubscriptionBillingState(models.Model):
    """What billing has settled for a subscription, updated with each invoice."""

    subscription = models.OneToOneField(Subscription, on_delete=models.CASCADE, related_name="billing_state")
    setup_fee_billed = models.BooleanField(default=False)
    usage_billed_until = models.DateField(null=True, blank=True, help_text="Usage before this date is billed.")
    settled_until = models.DateField(
        null=True, blank=True, help_text="Periods starting before this date were reconciled by the last run."
    )
    updated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last run settled it: changes recorded later are re-examined."
    )

    def __str__(self) -> str:
        return f"{self.subscription_id}: usage until {self.usage_billed_until}"


class UsageRecord(models.Model):
    """Bytes used per subscription and day (from RADIUS accounting, or imported)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    bytes_in = models.PositiveBigIntegerField(default=0)
    bytes_out = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscription", "day"], name="usage_one_row_per_day")]

    def __str__(self) -> str:
        return f"{self.subscription_id} {self.day}"


class DunningEvent(models.Model):
    class Kind(models.TextChoices):
        REMINDER_1 = "reminder_1", "Reminder (1 day overdue)"
        REMINDER_7 = "reminder_7", "Reminder (7 days overdue)"
        SUSPENDED = "suspended", "Service suspended"
        REACTIVATED = "reactivated", "Service reactivated"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="dunning_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    occurred_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["invoice", "kind"], name="dunning_once_per_kind")]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.kind}"
