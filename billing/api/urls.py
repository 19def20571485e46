from django.urls import path
from rest_framework.routers import SimpleRouter

from . import portal, views

router = SimpleRouter()
router.register("billing-runs", views.BillingRunViewSet, basename="billing-run")
router.register("invoices", views.InvoiceViewSet, basename="invoice")
router.register("credit-notes", views.CreditNoteViewSet, basename="credit-note")
router.register("payments", views.PaymentViewSet, basename="payment")
router.register("tax-rates", views.TaxRateViewSet, basename="tax-rate")
router.register("discounts", views.DiscountViewSet, basename="discount")
router.register("discount-assignments", views.DiscountAssignmentViewSet, basename="discount-assignment")

urlpatterns = [
    *router.urls,
    path("customers/<int:pk>/balance/", views.CustomerBalanceView.as_view(), name="customer-balance"),
    path("portal/invoices/", portal.PortalInvoiceListView.as_view(), name="portal-invoices"),
    path("portal/invoices/<int:pk>/pdf/", portal.PortalInvoicePDFView.as_view(), name="portal-invoice-pdf"),
    path("portal/balance/", portal.PortalBalanceView.as_view(), name="portal-balance"),
]
