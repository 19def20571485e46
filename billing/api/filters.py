"""List filters of the billing API."""

from __future__ import annotations

from django_filters import rest_framework as filters

from billing.accounts import invoices_not_overdue, invoices_overdue
from billing.models import BillingRun, CreditNote, Discount, DiscountAssignment, Invoice, Payment, TaxRate


class BillingRunFilter(filters.FilterSet):
    period = filters.CharFilter(field_name="period_label", help_text="YYYY-MM")

    class Meta:
        model = BillingRun
        fields = ("status", "period")


class InvoiceFilter(filters.FilterSet):
    period_start = filters.DateFilter(help_text="The first day of the billed period (exact).")
    period_start_from = filters.DateFilter(field_name="period_start", lookup_expr="gte")
    period_start_to = filters.DateFilter(field_name="period_start", lookup_expr="lte")
    overdue = filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_overdue",
        help_text="true: issued, unpaid and past due (tenant's today); false: the others.",
    )

    class Meta:
        model = Invoice
        fields = ("customer", "status", "number", "billing_run", "period_start", "overdue")

    def filter_overdue(self, queryset, name, value):
        return invoices_overdue(queryset) if value == "true" else invoices_not_overdue(queryset)


class CreditNoteFilter(filters.FilterSet):
    class Meta:
        model = CreditNote
        fields = ("invoice", "customer", "purpose")


class PaymentFilter(filters.FilterSet):
    received_from = filters.DateFilter(field_name="received_on", lookup_expr="gte")
    received_to = filters.DateFilter(field_name="received_on", lookup_expr="lte")

    class Meta:
        model = Payment
        fields = ("customer", "method", "status", "gateway_reference")


class TaxRateFilter(filters.FilterSet):
    class Meta:
        model = TaxRate
        fields = ("country", "region", "locality", "compound")


class DiscountFilter(filters.FilterSet):
    class Meta:
        model = Discount
        fields = ("kind", "stackable")


class DiscountAssignmentFilter(filters.FilterSet):
    class Meta:
        model = DiscountAssignment
        fields = ("discount", "customer", "plan")
