"""Tenant admin for billing: runs, invoices (with their PDF), credit notes, payments, tax rates,
discounts and their assignments.

- Issued invoices, credit notes and payments are read-only and never deleted: an invoice is
  corrected by a credit note, whose add form calls `credit_note_issue`; the payment add form
  calls `payment_record`.
- Starting a billing run is the billing-run add form: it creates the run and queues it on the
  Celery workers (`billing.run_start`) once the admin's transaction commits.
- Tax rates, discounts and assignments are edited through `billing.catalog` (validated and
  audited exactly as through the API; a compound tax on a tax-inclusive tenant is refused on
  the form). A rate or discount that an issued invoice uses cannot be deleted.
- Money is shown in the tenant's currency and conventions (billing.display); the invoice PDF
  shows personal data per the reader's role (clear and audited for `customers.reveal_pii`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from compliance.audit import Actor, client_ip
from customers.admin import ServiceAdmin, ServiceForm
from customers.api.pii import ADDRESS_PII, pii_mode_for, record_reveal
from customers.models import Customer, ServiceAddress

from . import catalog, display, run_tasks
from .accounts import invoices_not_overdue, invoices_overdue
from .credit_notes import credit_note_issue
from .dunning import tenant_today
from .models import (
    CATEGORY_CHOICES,
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
from .payments import payment_record
from .pdf import invoice_filename, invoice_pdf
from .services import billing_run_create


def _audit_context(request) -> dict:
    return {"actor": Actor.from_user(request.user), "source_ip": client_ip(request)}


def shown_money(value, currency: str | None = None) -> str:
    tenant = connection.tenant
    return display.format_money(value, currency or tenant.currency, display.conventions_for(tenant.country))


def money_column(field: str, label: str):
    @admin.display(description=label, ordering=field)
    def column(self, obj):
        return shown_money(getattr(obj, field), getattr(obj, "currency", None))

    return column


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _customer_url(customer_id: int) -> str:
    return reverse("admin:customers_customer_change", args=[customer_id])


# --- billing runs ------------------------------------------------------------------------------
class BillingRunForm(ServiceForm):
    issue_date = forms.DateField(required=False, help_text="Empty: today in the tenant's time zone.")

    class Meta:
        model = BillingRun
        fields = ("period_label", "issue_date")
        labels = {"period_label": "Period"}
        help_texts = {"period_label": "YYYY-MM: the month the billed periods start in, e.g. 2026-11."}


@admin.register(BillingRun)
class BillingRunAdmin(ServiceAdmin):
    """Runs are read-only. "Add billing run" starts one on the Celery workers; starting the same
    period again only invoices the customers not invoiced yet."""

    form = BillingRunForm
    list_display = (
        "id",
        "period_label",
        "status",
        "issue_date",
        "started_at",
        "finished_at",
        "customers_considered",
        "invoices_issued",
        "invoices_skipped",
        "customers_failed",
        "total",
    )
    list_filter = ("status", "period_label")
    ordering = ("-started_at", "-id")
    readonly_fields = (
        "period_label",
        "status",
        "issue_date",
        "started_at",
        "finished_at",
        "customers_considered",
        "invoices_issued",
        "invoices_skipped",
        "customers_failed",
        "total",
        "report_summary",
        "invoices_link",
    )
    total = money_column("total_amount", "total amount")

    def get_fields(self, request, obj=None):
        return ["period_label", "issue_date"] if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="report")
    def report_summary(self, run: BillingRun):
        report = run.report or {}
        reasons: dict[str, int] = {}
        for item in report.get("skipped", []):
            reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
        parts = []
        if reasons:
            parts.append(
                format_html(
                    "<p><strong>Skipped</strong></p><ul>{}</ul>",
                    format_html_join("", "<li>{} × {}</li>", sorted((n, r) for r, n in reasons.items())),
                )
            )
        if report.get("failed"):
            parts.append(
                format_html(
                    "<p><strong>Failed</strong></p><ul>{}</ul>",
                    format_html_join(
                        "",
                        '<li><a href="{}">customer {}</a>: {}</li>',
                        ((_customer_url(f["customer"]), f["customer"], f["reason"]) for f in report["failed"]),
                    ),
                )
            )
        if report.get("errors"):
            parts.append(
                format_html(
                    "<p><strong>Errors</strong></p><ul>{}</ul>",
                    format_html_join("", "<li>{}</li>", ((e,) for e in report["errors"])),
                )
            )
        if not parts:
            return "Nothing skipped, nothing failed."
        return format_html("{}", format_html_join("", "{}", ((p,) for p in parts)))

    @admin.display(description="invoices")
    def invoices_link(self, run: BillingRun):
        url = reverse("admin:billing_invoice_changelist") + f"?billing_run__id__exact={run.pk}"
        return format_html('<a href="{}">{} invoice(s) of this run</a>', url, run.invoices_issued)

    def persist(self, request, form, cleaned_data, *, obj):
        try:
            run = billing_run_create(
                period=cleaned_data["period_label"].strip(),
                issue_date=cleaned_data.get("issue_date"),
                actor=Actor.from_user(request.user),
            )
        except ValidationError as exc:
            raise ValidationError({"period_label": exc.messages}) from None
        run_tasks.run_start_send(run=run)
        return run


# --- invoices ----------------------------------------------------------------------------------
class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return invoices_overdue(queryset)
        if self.value() == "no":
            return invoices_not_overdue(queryset)
        return queryset


class PeriodFilter(admin.SimpleListFilter):
    title = "billing period"
    parameter_name = "period_start"

    def lookups(self, request, model_admin):
        starts = Invoice.objects.order_by("-period_start").values_list("period_start", flat=True).distinct()[:24]
        return [(start.isoformat(), f"{start:%Y-%m} (from {start.isoformat()})") for start in starts]

    def queryset(self, request, queryset):
        return queryset.filter(period_start=self.value()) if self.value() else queryset


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fk_name = "invoice"
    fields = (
        "position",
        "kind",
        "category",
        "description",
        "service_start",
        "service_end",
        "quantity",
        "unit_price",
        "amount",
        "net_amount",
        "tax_amount",
        "applies_to",
    )
    ordering = ("position",)


class InvoiceTaxInline(ReadOnlyInline):
    model = InvoiceTax
    fields = ("line", "name", "rate", "amount")


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Issued invoices: read-only, never deleted. Corrections are credit notes."""

    list_display = (
        "number",
        "account",
        "status",
        "period_start",
        "issue_date",
        "due_date",
        "total_shown",
        "amount_due_shown",
        "balance_due_shown",
        "overdue",
        "pdf_link",
    )
    list_filter = ("status", OverdueFilter, PeriodFilter, "issue_date")
    search_fields = ("number",)
    ordering = ("-issue_date", "-id")
    inlines = (InvoiceLineInline, InvoiceTaxInline)
    readonly_fields = (
        "number",
        "customer",
        "status",
        "billing_run",
        "period_start",
        "period_end",
        "issue_date",
        "due_date",
        "currency",
        "tax_inclusive",
        "subtotal",
        "tax_total",
        "total",
        "rounding_adjustment",
        "amount_due",
        "credit_applied",
        "amount_paid",
        "balance_due_shown",
        "pdf_link",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("number", "customer", "status", "billing_run", "pdf_link")}),
        ("Dates", {"fields": ("period_start", "period_end", "issue_date", "due_date", "created_at")}),
        (
            "Amounts (stored, 6 places)",
            {"fields": ("currency", "tax_inclusive", "subtotal", "tax_total", "total", "rounding_adjustment")},
        ),
        ("Settlement", {"fields": ("amount_due", "credit_applied", "amount_paid", "balance_due_shown")}),
    )
    total_shown = money_column("total", "total")
    amount_due_shown = money_column("amount_due", "amount due")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(account_number=F("customer__account_number"))

    @admin.display(description="account", ordering="customer__account_number")
    def account(self, invoice):
        return Customer(account_number=invoice.account_number).account_code

    @admin.display(description="balance due")
    def balance_due_shown(self, invoice):
        return shown_money(invoice.balance_due, invoice.currency)

    @admin.display(description="overdue", boolean=True)
    def overdue(self, invoice):
        return invoice.status == Invoice.Status.ISSUED and invoice.balance_due > 0 and invoice.due_date < self._today

    def changelist_view(self, request, extra_context=None):
        self._today = tenant_today()
        return super().changelist_view(request, extra_context)

    @admin.display(description="PDF")
    def pdf_link(self, invoice):
        url = reverse("admin:billing_invoice_pdf", args=[invoice.pk])
        return format_html('<a href="{}" target="_blank">{}</a>', url, invoice_filename(invoice))

    def get_urls(self):
        view = self.admin_site.admin_view(self.pdf_view)
        return [path("<int:invoice_id>/pdf/", view, name="billing_invoice_pdf"), *super().get_urls()]

    def pdf_view(self, request, invoice_id: int):
        invoice = get_object_or_404(Invoice, pk=invoice_id)
        if not self.has_view_permission(request, invoice):
            raise PermissionDenied
        mode = pii_mode_for(request.user)
        with transaction.atomic():
            data = invoice_pdf(invoice, pii=mode)
            addresses = ServiceAddress.objects.filter(
                subscriptions__in=invoice.lines.exclude(subscription=None).values("subscription")
            ).distinct()
            context = _audit_context(request)
            record_reveal(mode=mode, objects=[invoice.customer], fields=["name"], **context)
            record_reveal(mode=mode, objects=list(addresses), fields=ADDRESS_PII, **context)
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice_filename(invoice)}"'
        return response

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- credit notes ------------------------------------------------------------------------------
class CreditNoteForm(ServiceForm):
    amount = forms.DecimalField(
        required=False, max_digits=20, decimal_places=6, help_text="A net amount: the invoice's tax follows."
    )
    gross = forms.DecimalField(required=False, max_digits=20, decimal_places=6, help_text="Or an amount tax included.")
    issue_date = forms.DateField(required=False, help_text="Empty: today in the tenant's time zone.")

    class Meta:
        model = CreditNote
        fields = ("invoice", "reason", "issue_date")

    def clean(self):
        data = self.cleaned_data
        if not self.errors and (data.get("amount") is None) == (data.get("gross") is None):
            self.add_error(None, "Give either a net amount or a gross amount (one of them).")
        return super().clean()


class CreditNoteLineInline(ReadOnlyInline):
    model = CreditNoteLine
    fields = ("invoice_line", "description", "amount", "tax_amount")


@admin.register(CreditNote)
class CreditNoteAdmin(ServiceAdmin):
    """Credit notes are issued here (`credit_note_issue`) and then read-only."""

    form = CreditNoteForm
    list_display = ("number", "invoice", "customer", "purpose", "issue_date", "total_shown", "reason")
    list_select_related = ("invoice", "customer")
    list_filter = ("purpose", "issue_date")
    search_fields = ("number", "invoice__number")
    raw_id_fields = ("invoice",)
    ordering = ("-issue_date", "-id")
    total_shown = money_column("total", "total")
    READ_FIELDS = (
        "number", "invoice", "customer", "purpose", "issue_date", "reason", "subtotal", "tax_total", "total",
        "created_at",
    )  # fmt: skip

    def get_fields(self, request, obj=None):
        return ["invoice", "reason", "amount", "gross", "issue_date"] if obj is None else list(self.READ_FIELDS)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.READ_FIELDS

    def get_inlines(self, request, obj):
        return (CreditNoteLineInline,) if obj is not None else ()

    def has_change_permission(self, request, obj=None):
        return False

    def persist(self, request, form, cleaned_data, *, obj):
        return credit_note_issue(
            invoice=cleaned_data["invoice"],
            reason=cleaned_data["reason"],
            amount=cleaned_data.get("amount"),
            gross=cleaned_data.get("gross"),
            issue_date=cleaned_data.get("issue_date"),
            **_audit_context(request),
        )


# --- payments ----------------------------------------------------------------------------------
class PaymentForm(ServiceForm):
    class Meta:
        model = Payment
        fields = ("customer", "amount", "received_on", "method", "reference", "gateway_reference")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "received_on" in self.fields and not self.is_bound:
            self.fields["received_on"].initial = tenant_today


class PaymentAllocationInline(ReadOnlyInline):
    model = PaymentAllocation
    fields = ("invoice", "amount")


@admin.register(Payment)
class PaymentAdmin(ServiceAdmin):
    """Payments are recorded here (`payment_record`: allocated to the oldest open invoices, the
    rest to credit balance) and then read-only."""

    form = PaymentForm
    list_display = ("id", "customer", "amount_shown", "received_on", "method", "status")
    list_select_related = ("customer",)
    list_filter = ("method", "status", "received_on")
    search_fields = ("gateway_reference",)  # the payer's reference is encrypted (personal data)
    raw_id_fields = ("customer",)
    ordering = ("-received_on", "-id")
    amount_shown = money_column("amount", "amount")
    READ_FIELDS = (
        "customer", "amount", "currency", "received_on", "method", "reference", "gateway_reference", "status",
        "created_at",
    )  # fmt: skip

    def get_fields(self, request, obj=None):
        return list(PaymentForm.Meta.fields) if obj is None else list(self.READ_FIELDS)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.READ_FIELDS

    def get_inlines(self, request, obj):
        return (PaymentAllocationInline,) if obj is not None else ()

    def has_change_permission(self, request, obj=None):
        return False

    def persist(self, request, form, cleaned_data, *, obj):
        return payment_record(
            customer=cleaned_data["customer"],
            amount=cleaned_data["amount"],
            received_on=cleaned_data["received_on"],
            method=cleaned_data["method"],
            reference=cleaned_data.get("reference") or "",
            gateway_reference=cleaned_data.get("gateway_reference") or None,
            **_audit_context(request),
        )


# --- tax rates, discounts, assignments ---------------------------------------------------------
class CatalogAdmin(ServiceAdmin):
    """Edited through billing.catalog; deleted through it too, unless an issued invoice uses it."""

    fields_order: tuple = ()

    def create_object(self, values: dict, context: dict):
        raise NotImplementedError

    def update_object(self, obj, changes: dict, context: dict):
        raise NotImplementedError

    def delete_object(self, obj, context: dict) -> None:
        raise NotImplementedError

    def in_use(self, obj) -> bool:
        raise NotImplementedError

    def get_fields(self, request, obj=None):
        return list(self.fields_order)

    def persist(self, request, form, cleaned_data, *, obj):
        if obj is None:
            return self.create_object({name: cleaned_data[name] for name in self.fields_order}, _audit_context(request))
        changes = {name: cleaned_data[name] for name in form.changed_data if name in self.fields_order}
        return self.update_object(obj, changes, _audit_context(request))

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through the service
        return actions

    def has_delete_permission(self, request, obj=None):
        return admin.ModelAdmin.has_delete_permission(self, request, obj) and not (obj and self.in_use(obj))

    def delete_model(self, request, obj):
        self.delete_object(obj, _audit_context(request))


class TaxRateForm(ServiceForm):
    categories = forms.MultipleChoiceField(choices=CATEGORY_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = TaxRate
        fields = catalog.TAX_RATE_FIELDS


@admin.register(TaxRate)
class TaxRateAdmin(CatalogAdmin):
    form = TaxRateForm
    fields_order = catalog.TAX_RATE_FIELDS
    list_display = ("name", "rate_percent", "country", "region", "locality", "compound", "valid_from", "valid_until")
    list_filter = ("country", "region", "compound")
    search_fields = ("name", "locality")

    def create_object(self, values, context):
        return catalog.tax_rate_create(**values, **context)

    def update_object(self, obj, changes, context):
        return catalog.tax_rate_update(tax_rate=obj, changes=changes, **context)

    def delete_object(self, obj, context):
        catalog.tax_rate_delete(tax_rate=obj, **context)

    @admin.display(description="rate", ordering="rate")
    def rate_percent(self, rate):
        return display.format_percent(rate.rate, display.conventions_for(connection.tenant.country))

    def in_use(self, obj) -> bool:
        return InvoiceTax.objects.filter(tax_rate=obj).exists()


class DiscountAssignmentInline(ReadOnlyInline):
    model = DiscountAssignment
    fields = ("customer", "plan", "created_at")


class DiscountForm(ServiceForm):
    class Meta:
        model = Discount
        fields = catalog.DISCOUNT_FIELDS


@admin.register(Discount)
class DiscountAdmin(CatalogAdmin):
    """Discounts; who gets them is in "Discount assignments" (shown below, read-only)."""

    form = DiscountForm
    fields_order = catalog.DISCOUNT_FIELDS
    list_display = ("name", "kind", "value", "priority", "stackable", "periods", "valid_from", "valid_until")
    list_filter = ("kind", "stackable")
    search_fields = ("name",)

    def get_inlines(self, request, obj):
        return (DiscountAssignmentInline,) if obj is not None else ()

    def create_object(self, values, context):
        return catalog.discount_create(**values, **context)

    def update_object(self, obj, changes, context):
        return catalog.discount_update(discount=obj, changes=changes, **context)

    def delete_object(self, obj, context):
        catalog.discount_delete(discount=obj, **context)

    def in_use(self, obj) -> bool:
        return InvoiceLine.objects.filter(discount=obj).exists()


class DiscountAssignmentForm(ServiceForm):
    class Meta:
        model = DiscountAssignment
        fields = ("discount", "customer", "plan")


@admin.register(DiscountAssignment)
class DiscountAssignmentAdmin(ServiceAdmin):
    """A discount for one customer, or for everyone on one plan. Removing an assignment
    withdraws the discount from later invoices; issued invoices keep their discount lines."""

    form = DiscountAssignmentForm
    list_display = ("id", "discount", "customer", "plan", "created_at")
    list_select_related = ("discount", "customer", "plan")
    list_filter = ("discount", "plan")
    raw_id_fields = ("customer",)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("discount", "customer", "plan", "created_at")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def persist(self, request, form, cleaned_data, *, obj):
        return catalog.discount_assign(
            discount=cleaned_data["discount"],
            customer=cleaned_data.get("customer"),
            plan=cleaned_data.get("plan"),
            **_audit_context(request),
        )

    def delete_model(self, request, obj):
        catalog.discount_unassign(assignment=obj, **_audit_context(request))
