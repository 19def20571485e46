"""Staff API for billing: runs, invoices (with their PDF), credit notes, payments, customer
balances, tax rates and discounts (tenant hosts).

Views are thin: parse input, call a service (billing.services, billing.credit_notes,
billing.payments, billing.catalog), render output. Issued invoices, credit notes and payments
are never changed or deleted through the API: corrections are credit notes.

Roles (tenants.roles): owner and billing_admin write; support and auditor read; network_ops
has no access to billing."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import catalog, credit_notes, payments, run_tasks
from billing.accounts import account_standing
from billing.dunning import tenant_today
from billing.models import BillingRun, CreditNote, Discount, DiscountAssignment, Invoice, Payment, TaxRate
from billing.pdf import invoice_filename, invoice_pdf
from billing.services import billing_run_create
from compliance.audit import Actor, client_ip
from compliance.pii.fields import pii_prefetch
from customers.api.pii import ADDRESS_PII, pii_mode_for, record_reveal
from customers.models import Customer, ServiceAddress
from isp.api.schema import error_response

from . import filters
from . import serializers as s


def _audit_context(request) -> dict:
    return {"actor": Actor.from_request(request), "source_ip": client_ip(request)}


class PDFRenderer(BaseRenderer):
    """Lets clients ask for `Accept: application/pdf`; the PDF view returns the bytes itself."""

    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return JSONRenderer().render(data)


def pdf_response(data: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


# A rate or discount that an issued invoice uses cannot be deleted: 400, end its validity instead.
DESTROY_IN_USE = extend_schema(responses={204: None, 400: error_response(400)})
PDF_RESPONSE = {(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The invoice as PDF.")}


# --- billing runs ------------------------------------------------------------------------------
class BillingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Billing runs. `POST` starts one for a period on the Celery workers and answers 202 with
    the run (status `running`); poll it until `finished`. Runs are idempotent: starting the
    same period again invoices only the customers not invoiced yet."""

    required_permissions = {
        "list": ["billing.view_billingrun"],
        "retrieve": ["billing.view_billingrun"],
        "create": ["billing.add_billingrun"],
    }
    serializer_class = s.BillingRunOutput
    queryset = BillingRun.objects.all()
    filterset_class = filters.BillingRunFilter
    ordering_fields = ("started_at", "id")
    ordering = ("-started_at", "-id")

    @extend_schema(request=s.BillingRunStartInput, responses={202: s.BillingRunOutput})
    def create(self, request):
        data = s.BillingRunStartInput(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            run = billing_run_create(
                period=data.validated_data["period"],
                issue_date=data.validated_data.get("issue_date"),
                actor=Actor.from_request(request),
            )
            run_tasks.run_start_send(run=run)
        return Response(s.BillingRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


# --- invoices ----------------------------------------------------------------------------------
class InvoiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Issued invoices (immutable: corrections are credit notes). The list is one query per
    page; the detail has lines and taxes; `pdf/` is the customer's document, with personal data
    shown per the reader's role (in clear for `customers.reveal_pii`, audited; masked otherwise)."""

    required_permissions = {
        "list": ["billing.view_invoice"],
        "retrieve": ["billing.view_invoice"],
        "pdf": ["billing.view_invoice"],
    }
    serializer_class = s.InvoiceOutput
    filterset_class = filters.InvoiceFilter
    ordering_fields = ("issue_date", "due_date", "period_start", "number", "total", "id")
    ordering = ("-issue_date", "-id")

    def get_queryset(self):
        queryset = Invoice.objects.all()
        if self.action == "list":
            return queryset.annotate(account_number=F("customer__account_number"))
        if self.action == "retrieve":
            return queryset.select_related("customer").prefetch_related("lines", "taxes")
        return queryset

    def get_serializer_class(self):
        return s.InvoiceDetailOutput if self.action == "retrieve" else s.InvoiceOutput

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False) and self.request is not None:
            context["today"] = tenant_today()
        return context

    @extend_schema(responses=PDF_RESPONSE)
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, PDFRenderer])
    def pdf(self, request, pk=None):
        invoice = self.get_object()
        mode = pii_mode_for(request.user)
        with transaction.atomic():
            data = invoice_pdf(invoice, pii=mode)
            addresses = ServiceAddress.objects.filter(
                subscriptions__in=invoice.lines.exclude(subscription=None).values("subscription")
            ).distinct()
            context = _audit_context(request)
            record_reveal(mode=mode, objects=[invoice.customer], fields=["name"], **context)
            record_reveal(mode=mode, objects=list(addresses), fields=ADDRESS_PII, **context)
        return pdf_response(data, invoice_filename(invoice))


# --- credit notes ------------------------------------------------------------------------------
class CreditNoteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Credit notes: the only correction of an issued invoice. `POST` issues one for a net
    `amount` (the invoice's tax follows), a `gross` amount, or `lines`; at most what is left of
    the invoice can be credited. The money goes to the invoice's balance, the rest to the
    customer's credit balance."""

    required_permissions = {
        "list": ["billing.view_creditnote"],
        "retrieve": ["billing.view_creditnote"],
        "create": ["billing.add_creditnote"],
    }
    serializer_class = s.CreditNoteOutput
    queryset = CreditNote.objects.select_related("invoice").prefetch_related("lines")
    filterset_class = filters.CreditNoteFilter
    ordering_fields = ("issue_date", "number", "id")
    ordering = ("-issue_date", "-id")

    @extend_schema(request=s.CreditNoteCreateInput, responses={201: s.CreditNoteOutput})
    def create(self, request):
        data = s.CreditNoteCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        note = credit_notes.credit_note_issue(
            invoice=values["invoice"],
            reason=values["reason"],
            amount=values.get("amount"),
            gross=values.get("gross"),
            lines=values.get("lines") or None,
            issue_date=values.get("issue_date"),
            **_audit_context(request),
        )
        note = self.get_queryset().get(pk=note.pk)
        return Response(s.CreditNoteOutput(note).data, status=status.HTTP_201_CREATED)


# --- payments ----------------------------------------------------------------------------------
class PaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Payments received. `POST` records one (manual, or a gateway payment with its reference):
    it pays the customer's open invoices, oldest due date first, and the rest becomes credit
    balance. Recording a gateway reference again answers 200 with the payment first recorded."""

    required_permissions = {
        "list": ["billing.view_payment"],
        "retrieve": ["billing.view_payment"],
        "create": ["billing.add_payment"],
    }
    serializer_class = s.PaymentOutput
    queryset = Payment.objects.prefetch_related("allocations__invoice")
    filterset_class = filters.PaymentFilter
    ordering_fields = ("received_on", "amount", "id")
    ordering = ("-received_on", "-id")

    def paginate_queryset(self, queryset):
        """The page's data keys in one key-store query (each reference is sealed with its customer's key)."""
        page = super().paginate_queryset(queryset)
        if page is not None:
            pii_prefetch(page)
        return page

    @extend_schema(request=s.PaymentCreateInput, responses={201: s.PaymentOutput, 200: s.PaymentOutput})
    def create(self, request):
        data = s.PaymentCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        reference = (values.get("gateway_reference") or "").strip()
        known = bool(reference) and Payment.objects.filter(gateway_reference=reference).exists()
        payment = payments.payment_record(**values, **_audit_context(request))
        payment = self.get_queryset().get(pk=payment.pk)
        return Response(s.PaymentOutput(payment).data, status=status.HTTP_200_OK if known else status.HTTP_201_CREATED)


# --- balances ----------------------------------------------------------------------------------
class CustomerBalanceView(APIView):
    """A customer's account: credit balance with its ledger, open and overdue amounts."""

    required_permissions = {"get": ["billing.view_customerbalance", "billing.view_balancemovement"]}

    @extend_schema(responses=s.CustomerBalanceOutput)
    def get(self, request, pk: int):
        customer = get_object_or_404(Customer.objects.only("id", "account_number"), pk=pk)
        standing = account_standing(customer.pk)
        return Response(
            s.CustomerBalanceOutput(
                {**standing.__dict__, "customer": customer.pk, "account_code": customer.account_code}
            ).data
        )


# --- tax rates and discounts -------------------------------------------------------------------
class _CatalogViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Create, change and delete through the catalogue services (validated, audited)."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    create_input: type
    update_input: type
    output: type

    def create_object(self, values: dict, context: dict):
        raise NotImplementedError

    def update_object(self, obj, changes: dict, context: dict):
        raise NotImplementedError

    def delete_object(self, obj, context: dict) -> None:
        raise NotImplementedError

    def create(self, request):
        data = self.create_input(data=request.data)
        data.is_valid(raise_exception=True)
        obj = self.create_object(dict(data.validated_data), _audit_context(request))
        return Response(self.output(self.get_queryset().get(pk=obj.pk)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        data = self.update_input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        obj = self.update_object(self.get_object(), dict(data.validated_data), _audit_context(request))
        return Response(self.output(self.get_queryset().get(pk=obj.pk)).data)

    def destroy(self, request, pk=None):
        self.delete_object(self.get_object(), _audit_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    create=extend_schema(request=s.TaxRateCreateInput, responses={201: s.TaxRateOutput}),
    partial_update=extend_schema(request=s.TaxRateUpdateInput, responses=s.TaxRateOutput),
    destroy=DESTROY_IN_USE,
)
class TaxRateViewSet(_CatalogViewSet):
    """Tax rates by jurisdiction (country, region, locality). A compound rate is refused on a
    tax-inclusive tenant. Issued invoices keep the name and rate they were issued with; a rate
    on an issued invoice cannot be deleted (end its validity instead)."""

    required_permissions = {
        "list": ["billing.view_taxrate"],
        "retrieve": ["billing.view_taxrate"],
        "create": ["billing.add_taxrate"],
        "partial_update": ["billing.change_taxrate"],
        "destroy": ["billing.delete_taxrate"],
    }
    serializer_class = s.TaxRateOutput
    output = s.TaxRateOutput
    create_input = s.TaxRateCreateInput
    update_input = s.TaxRateUpdateInput
    queryset = TaxRate.objects.all()
    filterset_class = filters.TaxRateFilter
    ordering_fields = ("country", "region", "locality", "rate", "id")
    ordering = ("country", "region", "locality", "id")

    def create_object(self, values, context):
        return catalog.tax_rate_create(**values, **context)

    def update_object(self, obj, changes, context):
        return catalog.tax_rate_update(tax_rate=obj, changes=changes, **context)

    def delete_object(self, obj, context):
        catalog.tax_rate_delete(tax_rate=obj, **context)


@extend_schema_view(
    create=extend_schema(request=s.DiscountCreateInput, responses={201: s.DiscountOutput}),
    partial_update=extend_schema(request=s.DiscountUpdateInput, responses=s.DiscountOutput),
    destroy=DESTROY_IN_USE,
)
class DiscountViewSet(_CatalogViewSet):
    """Discounts on recurring service charges (percent 0 < value <= 100, or a fixed amount per
    period), granted through `discount-assignments/` to a customer or a plan."""

    required_permissions = {
        "list": ["billing.view_discount"],
        "retrieve": ["billing.view_discount"],
        "create": ["billing.add_discount"],
        "partial_update": ["billing.change_discount"],
        "destroy": ["billing.delete_discount"],
    }
    serializer_class = s.DiscountOutput
    output = s.DiscountOutput
    create_input = s.DiscountCreateInput
    update_input = s.DiscountUpdateInput
    queryset = Discount.objects.prefetch_related("assignments")
    filterset_class = filters.DiscountFilter
    ordering_fields = ("priority", "name", "id")
    ordering = ("priority", "id")

    def create_object(self, values, context):
        return catalog.discount_create(**values, **context)

    def update_object(self, obj, changes, context):
        return catalog.discount_update(discount=obj, changes=changes, **context)

    def delete_object(self, obj, context):
        catalog.discount_delete(discount=obj, **context)


class DiscountAssignmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Who gets a discount: one customer, or everyone on one plan. Deleting an assignment
    withdraws the discount from later invoices."""

    required_permissions = {
        "list": ["billing.view_discountassignment"],
        "retrieve": ["billing.view_discountassignment"],
        "create": ["billing.add_discountassignment"],
        "destroy": ["billing.delete_discountassignment"],
    }
    serializer_class = s.DiscountAssignmentOutput
    queryset = DiscountAssignment.objects.all()
    filterset_class = filters.DiscountAssignmentFilter
    ordering_fields = ("id", "created_at")
    ordering = ("id",)

    @extend_schema(request=s.DiscountAssignmentCreateInput, responses={201: s.DiscountAssignmentOutput})
    def create(self, request):
        data = s.DiscountAssignmentCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = catalog.discount_assign(**data.validated_data, **_audit_context(request))
        return Response(s.DiscountAssignmentOutput(assignment).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        catalog.discount_unassign(assignment=self.get_object(), **_audit_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
