"""Input and output serializers of the billing API (staff and portal).

Money goes out as a string with 6 decimal places (what is stored) and comes in as a JSON string
or number parsed from its text (never through float arithmetic). Inputs are strict (unknown
fields are refused) and only parse types and bounds; the services (billing.catalog,
billing.payments, billing.credit_notes, billing.services) validate the rest."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import (
    CATEGORY_CHOICES,
    BalanceMovement,
    BillingRun,
    CreditNote,
    CreditNoteLine,
    Discount,
    DiscountAssignment,
    Invoice,
    InvoiceLine,
    InvoiceTax,
    Payment,
    PaymentAllocation,
    TaxRate,
)
from customers.api.serializers import Money
from customers.models import Customer, Plan
from isp.api.serializers import StrictInput

PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def account_code(account_number: int | None) -> str:
    return Customer(account_number=account_number).account_code


def is_overdue(invoice: Invoice, today) -> bool:
    """Issued, something left to pay, and due before today (billing.accounts, same rule)."""
    return invoice.status == Invoice.Status.ISSUED and invoice.due_date < today and invoice.balance_due > 0


class Rate(serializers.DecimalField):
    """A tax rate as a fraction with up to 6 places: "0.072500" for 7.25 %."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", 'A fraction with up to 6 places: "0.072500" for 7.25 %.')
        super().__init__(max_digits=9, decimal_places=6, **kwargs)


# --- billing runs ------------------------------------------------------------------------------
class RunReportEntry(serializers.Serializer):
    customer = serializers.IntegerField(help_text="Customer id.")
    reason = serializers.CharField()


class RunReport(serializers.Serializer):
    skipped = RunReportEntry(many=True, required=False, help_text="Customers not invoiced, and why.")
    failed = RunReportEntry(many=True, required=False, help_text="Customers that failed, with the reason.")


class BillingRunOutput(serializers.ModelSerializer):
    period = serializers.CharField(source="period_label", help_text="YYYY-MM: the month the billed periods start in.")
    total_amount = Money(read_only=True)
    report = RunReport(read_only=True)

    class Meta:
        model = BillingRun
        fields = (
            "id",
            "period",
            "issue_date",
            "status",
            "started_at",
            "finished_at",
            "customers_considered",
            "invoices_issued",
            "invoices_skipped",
            "customers_failed",
            "total_amount",
            "report",
        )
        read_only_fields = fields


class BillingRunStartInput(StrictInput):
    period = serializers.CharField(max_length=7, help_text="YYYY-MM: the month the billed periods start in.")
    issue_date = serializers.DateField(required=False, help_text="Default: today in the tenant's time zone.")

    def validate_period(self, value: str) -> str:
        if not PERIOD_RE.match(value):
            raise serializers.ValidationError(f"{value!r} is not a period: use YYYY-MM, e.g. 2026-11.")
        return value


# --- invoices ----------------------------------------------------------------------------------
class InvoiceOutput(serializers.ModelSerializer):
    account_code = serializers.SerializerMethodField(help_text="The customer's account code (C000123).")
    subtotal = Money(read_only=True)
    tax_total = Money(read_only=True)
    total = Money(read_only=True)
    amount_due = Money(read_only=True, help_text="total rounded to the currency's minor unit")
    rounding_adjustment = Money(read_only=True)
    credit_applied = Money(read_only=True)
    amount_paid = Money(read_only=True)
    balance_due = Money(read_only=True, help_text="amount_due - credit_applied - amount_paid, never below 0")
    overdue = serializers.SerializerMethodField(help_text="Issued, unpaid and past its due date (tenant's today).")

    class Meta:
        model = Invoice
        fields = (
            "id",
            "number",
            "customer",
            "account_code",
            "status",
            "overdue",
            "period_start",
            "period_end",
            "issue_date",
            "due_date",
            "currency",
            "tax_inclusive",
            "subtotal",
            "tax_total",
            "total",
            "amount_due",
            "rounding_adjustment",
            "credit_applied",
            "amount_paid",
            "balance_due",
            "billing_run",
            "created_at",
        )
        read_only_fields = fields

    def get_account_code(self, invoice) -> str:
        number = getattr(invoice, "account_number", None)
        return account_code(number if number is not None else invoice.customer.account_number)

    def get_overdue(self, invoice) -> bool:
        return is_overdue(invoice, self.context["today"])


class InvoiceTaxOutput(serializers.ModelSerializer):
    rate = Rate(read_only=True)
    amount = Money(read_only=True)

    class Meta:
        model = InvoiceTax
        fields = ("line", "tax_rate", "name", "rate", "amount")
        read_only_fields = fields


class InvoiceLineOutput(serializers.ModelSerializer):
    quantity = serializers.DecimalField(max_digits=24, decimal_places=9, read_only=True)
    unit_price = Money(read_only=True)
    amount = Money(read_only=True)
    net_amount = Money(read_only=True, help_text="Charges: the amount after their discounts.")
    tax_amount = Money(read_only=True, help_text="The tax of the taxable amount this line heads.")
    fraction = serializers.SerializerMethodField(help_text='The prorated share of the period, exact: "19/28".')

    class Meta:
        model = InvoiceLine
        fields = (
            "id",
            "position",
            "kind",
            "category",
            "description",
            "subscription",
            "plan",
            "discount",
            "period_start",
            "period_end",
            "service_start",
            "service_end",
            "quantity",
            "unit_price",
            "fraction",
            "billable_days",
            "amount",
            "net_amount",
            "tax_amount",
            "applies_to",
            "credits_line",
        )
        read_only_fields = fields

    def get_fraction(self, line) -> str:
        return f"{line.fraction_numerator}/{line.fraction_denominator}"


class TaxByRateOutput(serializers.Serializer):
    tax_rate = serializers.IntegerField()
    name = serializers.CharField()
    rate = Rate(read_only=True)
    amount = Money(read_only=True)


class InvoiceDetailOutput(InvoiceOutput):
    lines = InvoiceLineOutput(many=True, read_only=True)
    taxes = InvoiceTaxOutput(many=True, read_only=True)
    taxes_by_rate = serializers.SerializerMethodField()

    class Meta(InvoiceOutput.Meta):
        fields = (*InvoiceOutput.Meta.fields, "lines", "taxes", "taxes_by_rate")
        read_only_fields = fields

    @extend_schema_field(TaxByRateOutput(many=True))
    def get_taxes_by_rate(self, invoice) -> list:
        by_rate: dict[int, dict] = {}
        for tax in invoice.taxes.all():
            entry = by_rate.setdefault(
                tax.tax_rate_id, {"tax_rate": tax.tax_rate_id, "name": tax.name, "rate": tax.rate, "amount": 0}
            )
            entry["amount"] += tax.amount
        return TaxByRateOutput(list(by_rate.values()), many=True).data


# --- credit notes ------------------------------------------------------------------------------
class CreditNoteLineOutput(serializers.ModelSerializer):
    amount = Money(read_only=True)
    tax_amount = Money(read_only=True)

    class Meta:
        model = CreditNoteLine
        fields = ("invoice_line", "description", "amount", "tax_amount")
        read_only_fields = fields


class CreditNoteOutput(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    subtotal = Money(read_only=True)
    tax_total = Money(read_only=True)
    total = Money(read_only=True)
    lines = CreditNoteLineOutput(many=True, read_only=True)

    class Meta:
        model = CreditNote
        fields = (
            "id",
            "number",
            "invoice",
            "invoice_number",
            "customer",
            "purpose",
            "issue_date",
            "reason",
            "subtotal",
            "tax_total",
            "total",
            "lines",
            "created_at",
        )
        read_only_fields = fields


class CreditNoteLineInput(StrictInput):
    invoice_line = serializers.IntegerField(help_text="Id of a line of the credited invoice.")
    amount = Money(help_text="Net amount of that line's taxable amount to credit.")


class CreditNoteCreateInput(StrictInput):
    """Exactly one of `amount` (net; the tax follows), `gross` (tax included) or `lines`."""

    invoice = serializers.PrimaryKeyRelatedField(queryset=Invoice.objects.all())
    reason = serializers.CharField(max_length=500)
    amount = Money(required=False, help_text="A net amount; the invoice's tax follows in proportion.")
    gross = Money(required=False, help_text="An amount tax included.")
    lines = CreditNoteLineInput(many=True, required=False)
    issue_date = serializers.DateField(required=False, help_text="Default: today in the tenant's time zone.")

    def validate(self, data):
        given = [key for key in ("amount", "gross", "lines") if data.get(key) not in (None, [])]
        if len(given) != 1:
            raise serializers.ValidationError({"non_field_errors": ["Give exactly one of amount, gross or lines."]})
        if "lines" in given:
            invoice = data["invoice"]
            ids = [entry["invoice_line"] for entry in data["lines"]]
            found = {line.pk: line for line in InvoiceLine.objects.filter(invoice=invoice, pk__in=ids)}
            missing = sorted(set(ids) - set(found))
            if missing:
                raise serializers.ValidationError({"lines": [f"Not lines of invoice {invoice.number}: {missing}."]})
            data["lines"] = [(found[entry["invoice_line"]], entry["amount"]) for entry in data["lines"]]
        return data


# --- payments ----------------------------------------------------------------------------------
class PaymentAllocationOutput(serializers.ModelSerializer):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    amount = Money(read_only=True)

    class Meta:
        model = PaymentAllocation
        fields = ("invoice", "invoice_number", "amount")
        read_only_fields = fields


class PaymentOutput(serializers.ModelSerializer):
    amount = Money(read_only=True)
    allocations = PaymentAllocationOutput(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = (
            "id",
            "customer",
            "amount",
            "currency",
            "received_on",
            "method",
            "reference",
            "gateway_reference",
            "status",
            "allocations",
            "created_at",
        )
        read_only_fields = fields


class PaymentCreateInput(StrictInput):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    amount = Money(help_text="In the tenant's currency, at most its minor-unit places (JPY: whole yen).")
    received_on = serializers.DateField()
    method = serializers.ChoiceField(choices=Payment.Method.choices)
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    gateway_reference = serializers.CharField(
        max_length=100,
        required=False,
        allow_null=True,
        default=None,
        help_text="Gateway payments: the gateway's reference. Recording it again returns the first payment.",
    )


# --- balances ----------------------------------------------------------------------------------
class BalanceMovementOutput(serializers.ModelSerializer):
    amount = Money(read_only=True, help_text="+ adds credit, - uses it.")

    class Meta:
        model = BalanceMovement
        fields = ("id", "amount", "reason", "invoice", "payment", "credit_note", "created_at")
        read_only_fields = fields


class CustomerBalanceOutput(serializers.Serializer):
    customer = serializers.IntegerField()
    account_code = serializers.CharField()
    currency = serializers.CharField()
    credit = Money(read_only=True, help_text="Credit balance: applied to the next invoices.")
    open_amount = Money(read_only=True, help_text="What the customer's open invoices still ask for.")
    overdue_amount = Money(read_only=True, help_text="The part of open_amount past its due date.")
    open_invoices = serializers.IntegerField()
    movements = BalanceMovementOutput(many=True, read_only=True, help_text="The credit ledger, oldest first.")


# --- tax rates ---------------------------------------------------------------------------------
class TaxRateOutput(serializers.ModelSerializer):
    rate = Rate(read_only=True)

    class Meta:
        model = TaxRate
        fields = (
            "id",
            "name",
            "rate",
            "country",
            "region",
            "locality",
            "compound",
            "categories",
            "valid_from",
            "valid_until",
        )
        read_only_fields = fields


class TaxRateUpdateInput(StrictInput):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    rate = Rate(required=False)
    country = serializers.CharField(max_length=2, required=False, help_text="ISO 3166-1 alpha-2")
    region = serializers.CharField(max_length=6, required=False, allow_blank=True, help_text="ISO 3166-2")
    locality = serializers.CharField(max_length=64, required=False, allow_blank=True)
    compound = serializers.BooleanField(
        required=False, help_text="On the amount plus the non-compound taxes; refused on tax-inclusive tenants."
    )
    categories = serializers.ListField(
        child=serializers.ChoiceField(choices=CATEGORY_CHOICES), required=False, allow_empty=True
    )
    valid_from = serializers.DateField(required=False, allow_null=True)
    valid_until = serializers.DateField(required=False, allow_null=True, help_text="Exclusive.")


class TaxRateCreateInput(TaxRateUpdateInput):
    name = serializers.CharField(max_length=100, allow_blank=True)
    rate = Rate()
    country = serializers.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    categories = serializers.ListField(child=serializers.ChoiceField(choices=CATEGORY_CHOICES), allow_empty=True)


# --- discounts ---------------------------------------------------------------------------------
class DiscountAssignmentOutput(serializers.ModelSerializer):
    class Meta:
        model = DiscountAssignment
        fields = ("id", "discount", "customer", "plan", "created_at")
        read_only_fields = fields


class DiscountOutput(serializers.ModelSerializer):
    value = Money(read_only=True)
    assignments = DiscountAssignmentOutput(many=True, read_only=True)

    class Meta:
        model = Discount
        fields = (
            "id",
            "name",
            "kind",
            "value",
            "priority",
            "stackable",
            "valid_from",
            "valid_until",
            "periods",
            "assignments",
        )
        read_only_fields = fields


class DiscountUpdateInput(StrictInput):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Discount.Kind.choices, required=False)
    value = Money(required=False, help_text="percent: more than 0, at most 100; fixed: an amount per full period.")
    priority = serializers.IntegerField(required=False, help_text="Lower applies first.")
    stackable = serializers.BooleanField(required=False)
    valid_from = serializers.DateField(required=False, allow_null=True)
    valid_until = serializers.DateField(required=False, allow_null=True, help_text="Exclusive.")
    periods = serializers.IntegerField(
        required=False, allow_null=True, help_text="Lasts this many billed periods from activation; empty: no limit."
    )


class DiscountCreateInput(DiscountUpdateInput):
    name = serializers.CharField(max_length=100, allow_blank=True)
    kind = serializers.ChoiceField(choices=Discount.Kind.choices)
    value = Money(help_text="percent: more than 0, at most 100; fixed: an amount per full period.")


class DiscountAssignmentCreateInput(StrictInput):
    discount = serializers.PrimaryKeyRelatedField(queryset=Discount.objects.all())
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False, allow_null=True)
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all(), required=False, allow_null=True)


# --- portal ------------------------------------------------------------------------------------
class PortalInvoiceOutput(serializers.ModelSerializer):
    total = Money(read_only=True)
    tax_total = Money(read_only=True)
    amount_due = Money(read_only=True)
    credit_applied = Money(read_only=True)
    amount_paid = Money(read_only=True)
    balance_due = Money(read_only=True)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = (
            "id",
            "number",
            "status",
            "overdue",
            "period_start",
            "period_end",
            "issue_date",
            "due_date",
            "currency",
            "tax_total",
            "total",
            "amount_due",
            "credit_applied",
            "amount_paid",
            "balance_due",
        )
        read_only_fields = fields

    def get_overdue(self, invoice) -> bool:
        return is_overdue(invoice, self.context["today"])


class PortalBalanceOutput(serializers.Serializer):
    currency = serializers.CharField()
    credit = Money(read_only=True, help_text="Credit balance: applied to your next invoices.")
    open_amount = Money(read_only=True, help_text="What your open invoices still ask for.")
    overdue_amount = Money(read_only=True, help_text="The part of open_amount past its due date.")
    open_invoices = serializers.IntegerField()
