"""Customer portal: the signed-in customer's own invoices, their PDFs and their balance.

Every view reads the customer from the authenticated portal user (`request.user.customer`);
an invoice id in a URL is looked up among that customer's invoices only, so another customer's
id is a 404 - indistinguishable from an id that does not exist. The PDF shows the customer's
own personal data in clear (the data subject reading their own document is not a staff reveal)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.accounts import account_standing
from billing.dunning import tenant_today
from billing.models import Invoice
from billing.pdf import invoice_filename, invoice_pdf
from customers.api.pii import PIIMode
from isp.api.permissions import PORTAL

from . import serializers as s
from .views import PDF_RESPONSE, PDFRenderer, pdf_response


class PortalInvoiceListView(generics.ListAPIView):
    """The signed-in customer's invoices, newest first (only theirs)."""

    required_permissions = {"get": PORTAL}
    serializer_class = s.PortalInvoiceOutput
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Invoice.objects.none()
        return Invoice.objects.filter(customer=self.request.user.customer).order_by("-issue_date", "-id")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["today"] = tenant_today()
        return context


class PortalInvoicePDFView(APIView):
    """One of the signed-in customer's invoices as PDF; any other id is a 404."""

    required_permissions = {"get": PORTAL}
    renderer_classes = [JSONRenderer, PDFRenderer]

    @extend_schema(responses=PDF_RESPONSE)
    def get(self, request, pk: int):
        invoice = Invoice.objects.filter(customer=request.user.customer, pk=pk).first()
        if invoice is None:
            raise Http404
        return pdf_response(invoice_pdf(invoice, pii=PIIMode.CLEAR), invoice_filename(invoice))


class PortalBalanceView(APIView):
    """The signed-in customer's credit balance and what their open invoices still ask for."""

    required_permissions = {"get": PORTAL}

    @extend_schema(responses=s.PortalBalanceOutput)
    def get(self, request):
        standing = account_standing(request.user.customer.pk, with_ledger=False)
        return Response(s.PortalBalanceOutput(standing.__dict__).data)
