"""The tenant admin for billing: runs and invoices read-only (with a readable report, inline lines
and taxes, the PDF), credit notes and payments added through their services, tax rates and
discounts edited through billing.catalog - and nothing issued is ever deleted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from billing import run_tasks
from billing.models import BillingRun, CreditNote, Discount, Invoice, InvoiceLine, Payment, TaxRate
from billing.services import billing_run_execute
from compliance.models import AuditEvent
from tenants import roles
from tests.billing.issued import ACTOR, bill_customers
from tests.clients import TenantAdminClient
from tests.factories import StaffUserFactory

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def admin_as(tenant):
    def make(role: str) -> TenantAdminClient:
        connection.set_tenant(tenant)
        user = StaffUserFactory(role=role)
        client = TenantAdminClient(HTTP_HOST=tenant.primary_host)
        client.force_login(user)
        client.user = user
        return client

    return make


@pytest.mark.behavior
@pytest.mark.revenue_critical
def test_an_invoice_page_shows_its_lines_taxes_totals_and_links_its_pdf_read_only(tenant, admin_as):
    billed = bill_customers(count=2)
    invoice = billed.invoice_of(billed.customers[0])
    support = admin_as(roles.SUPPORT)

    listed = support.get("/admin/billing/invoice/")
    page = support.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    pdf = support.get(f"/admin/billing/invoice/{invoice.pk}/pdf/")

    assert listed.status_code == page.status_code == pdf.status_code == 200
    assert {inv.number for inv in listed.context["cl"].result_list} == {i.number for i in billed.invoices.values()}
    html = page.content.decode()
    assert invoice.number in html
    assert f"/admin/billing/invoice/{invoice.pk}/pdf/" in html
    connection.set_tenant(tenant)
    for line in InvoiceLine.objects.filter(invoice=invoice):
        assert line.description in html
    assert "Illinois state tax" in html or "Umsatzsteuer" in html or "Consumption tax" in html
    assert page.context["adminform"].form.fields == {}  # nothing editable
    assert 'name="_save"' not in html
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")


@pytest.mark.behavior
@pytest.mark.data_safety
@pytest.mark.parametrize("role", [roles.OWNER, roles.BILLING_ADMIN])
def test_invoices_credit_notes_and_payments_cannot_be_changed_or_deleted_in_the_admin(tenant, admin_as, role):
    billed = bill_customers(count=1, with_usage=False)
    invoice = billed.invoice_of(billed.customers[0])
    client = admin_as(role)

    answers = [
        client.get(f"/admin/billing/invoice/{invoice.pk}/delete/").status_code,
        client.post(f"/admin/billing/invoice/{invoice.pk}/change/", {"total": "0"}).status_code,
        client.get("/admin/billing/invoice/add/").status_code,
    ]
    action_form = client.get("/admin/billing/invoice/").context["action_form"]

    assert answers == [403, 403, 403]
    assert action_form is None  # no bulk action at all, so no bulk delete
    connection.set_tenant(tenant)
    assert Invoice.objects.get(pk=invoice.pk).total == invoice.total


@pytest.mark.behavior
def test_the_invoice_list_filters_by_status_period_and_overdue(tenant, admin_as):
    billed = bill_customers(count=2, with_usage=False)
    auditor = admin_as(roles.AUDITOR)

    def numbers(**params):
        return sorted(inv.number for inv in auditor.get("/admin/billing/invoice/", params).context["cl"].result_list)

    everything = sorted(inv.number for inv in billed.invoices.values())
    assert numbers(status__exact="issued") == everything
    assert numbers(status__exact="paid") == []
    assert numbers(overdue="yes") == everything  # issued 2026-03-01, due 2026-03-15: long past
    assert numbers(overdue="no") == []
    assert numbers(period_start="2026-03-01") == everything


@pytest.mark.behavior
def test_a_billing_run_page_shows_its_counts_and_a_readable_report(tenant, admin_as):
    billed = bill_customers(count=2, with_usage=False)
    again = billing_run_execute(period="2026-03", actor=ACTOR, customer_ids=[c.pk for c in billed.customers])
    auditor = admin_as(roles.AUDITOR)

    page = auditor.get(f"/admin/billing/billingrun/{again.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "2 × already invoiced for this period" in html
    assert f"?billing_run__id__exact={again.pk}" in html
    assert 'name="_save"' not in html


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_the_add_billing_run_form_starts_a_run_on_the_workers(
    tenant, admin_as, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(run_tasks.run_start, "apply_async", lambda **kw: sent.append(kw))
    admin = admin_as(roles.BILLING_ADMIN)

    with django_capture_on_commit_callbacks(execute=True):
        refused = admin.post("/admin/billing/billingrun/add/", {"period_label": "2026-13"})
        started = admin.post("/admin/billing/billingrun/add/", {"period_label": "2026-06", "issue_date": "2026-06-01"})

    assert refused.status_code == 200
    assert "YYYY-MM" in str(refused.context["adminform"].form.errors["period_label"])
    assert started.status_code == 302
    connection.set_tenant(tenant)
    run = BillingRun.objects.get()
    assert (run.period_label, str(run.issue_date), run.status) == ("2026-06", "2026-06-01", "running")
    assert sent == [{"kwargs": {"period": "2026-06", "issue_date": "2026-06-01", "run_id": run.pk}}]


@pytest.mark.behavior
@pytest.mark.revenue_critical
def test_a_credit_note_and_a_payment_are_added_through_their_services(tenant, admin_as):
    billed = bill_customers(count=1, with_usage=False)
    invoice = billed.invoice_of(billed.customers[0])
    admin = admin_as(roles.BILLING_ADMIN)
    gross = Decimal("1000") if tenant.currency == "JPY" else Decimal("10")

    both = admin.post(
        "/admin/billing/creditnote/add/",
        {"invoice": invoice.pk, "reason": "Outage", "amount": "1", "gross": "1"},
    )
    credited = admin.post(
        "/admin/billing/creditnote/add/",
        {"invoice": invoice.pk, "reason": "Outage on 3 March", "gross": str(gross), "issue_date": "2026-03-05"},
    )
    connection.set_tenant(tenant)
    invoice.refresh_from_db()
    paid = admin.post(
        "/admin/billing/payment/add/",
        {
            "customer": invoice.customer_id,
            "amount": str(invoice.balance_due),
            "received_on": "2026-03-06",
            "method": "manual",
            "reference": "cash",
        },
    )

    assert both.status_code == 200
    assert "one of them" in str(both.context["adminform"].form.non_field_errors())
    assert credited.status_code == paid.status_code == 302
    connection.set_tenant(tenant)
    note = CreditNote.objects.get()
    assert (note.number, note.total, note.invoice_id) == ("CN-2026-000001", gross, invoice.pk)
    assert Payment.objects.get().amount == invoice.balance_due
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert invoice.balance_due == 0
    assert AuditEvent.objects.filter(action="payment.recorded", actor_label=admin.user.username).count() == 1
    assert admin.get(f"/admin/billing/creditnote/{note.pk}/delete/").status_code == 403
    assert admin.get(f"/admin/billing/payment/{Payment.objects.get().pk}/delete/").status_code == 403


@pytest.mark.behavior
@pytest.mark.data_safety
def test_the_tax_rate_form_validates_through_the_catalogue_including_the_compound_rule(tenant, admin_as):
    admin = admin_as(roles.BILLING_ADMIN)
    form = {"name": "Surcharge", "rate": "0.020000", "country": tenant.country, "region": "", "locality": "",
            "categories": ["service"], "compound": "on"}  # fmt: skip

    added = admin.post("/admin/billing/taxrate/add/", form)
    bad = admin.post("/admin/billing/taxrate/add/", {**form, "rate": "1.5", "compound": "", "country": "XX"})

    connection.set_tenant(tenant)
    assert bad.status_code == 200
    assert set(bad.context["adminform"].form.errors) == {"rate", "country"}
    if tenant.tax_inclusive:
        assert added.status_code == 200
        assert "not allowed on a tax-inclusive tenant" in str(added.context["adminform"].form.errors["compound"])
        assert not TaxRate.objects.exists()
    else:
        assert added.status_code == 302
        rate = TaxRate.objects.get()
        assert (rate.compound, rate.rate, rate.categories) == (True, Decimal("0.02"), ["service"])
        changed = admin.post(f"/admin/billing/taxrate/{rate.pk}/change/", {**form, "rate": "0.030000"})
        assert changed.status_code == 302
        connection.set_tenant(tenant)
        assert TaxRate.objects.get().rate == Decimal("0.03")
        assert AuditEvent.objects.get(action="tax_rate.updated").changed_fields == ["rate"]


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_discount_used_on_an_invoice_cannot_be_deleted_and_an_unused_one_is_deleted_through_the_service(
    tenant, admin_as
):
    bill_customers(count=1, with_usage=False)
    admin = admin_as(roles.OWNER)
    connection.set_tenant(tenant)
    used = Discount.objects.get(name="Welcome 50% x 3 months")
    added = admin.post(
        "/admin/billing/discount/add/",
        {"name": "Spring promo", "kind": "percent", "value": "10", "priority": "100", "stackable": "on"},
    )
    connection.set_tenant(tenant)
    unused = Discount.objects.get(name="Spring promo")

    refused = admin.post(f"/admin/billing/discount/{used.pk}/delete/", {"post": "yes"})
    deleted = admin.post(f"/admin/billing/discount/{unused.pk}/delete/", {"post": "yes"})

    assert added.status_code == 302, added.context["adminform"].form.errors
    assert refused.status_code == 403
    assert deleted.status_code == 302
    connection.set_tenant(tenant)
    assert list(Discount.objects.values_list("name", flat=True)) == ["Welcome 50% x 3 months"]
    assert AuditEvent.objects.filter(action="discount.deleted", object_id=str(unused.pk)).exists()


# --- demo --------------------------------------------------------------------------------------
def _table_counts() -> dict[str, int]:
    from django.apps import apps

    return {
        model._meta.label: model.objects.count()
        for app in ("billing", "customers", "compliance")
        for model in apps.get_app_config(app).get_models()
    }


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_the_demo_bills_two_periods_with_proration_discounts_taxes_overage_and_payments_and_is_idempotent(db):
    from billing.demo import seed_demo_billing
    from customers.demo import seed_demo_customers
    from tenants.models import Tenant

    # given: the demo customers in a US tenant (the demo's jurisdiction: US-IL, locality 17167)
    tenant = Tenant.objects.get(slug="us-isp")
    connection.set_tenant(tenant)
    try:
        seed_demo_customers()

        # when
        first = seed_demo_billing()
        counts = _table_counts()
        second = seed_demo_billing()

        # then: two periods billed, with everything the admin should show
        assert first["tax_rates"] == 2
        assert first["invoices_issued"] > 0
        assert first["payments"] == 2
        assert first["usage_rows"] > 0
        assert second == {"tax_rates": 0, "usage_rows": 0, "invoices_issued": 0, "payments": 0}
        assert _table_counts() == counts  # a second seed changes nothing
        assert BillingRun.objects.count() == 2
        lines = InvoiceLine.objects.all()
        assert lines.filter(kind="discount", discount__name="Welcome 50% x 3 months").exists()
        assert lines.filter(kind="discount", discount__name="Loyalty credit").exists()
        assert lines.filter(kind="usage", amount__gt=0).exists()  # over the 300 GB cap
        assert lines.filter(kind="charge").exclude(fraction_numerator=1, fraction_denominator=1).exists()
        assert lines.filter(kind="fee").exists()
        assert {t.name for t in TaxRate.objects.all()} == {"Illinois state tax", "Springfield local tax"}
        taxed = Invoice.objects.filter(tax_total__gt=0).count()
        assert taxed == Invoice.objects.count()
        assert Invoice.objects.filter(status=Invoice.Status.PAID).count() == 2
        # one payer paid exactly; the other paid 10.00 more, which went to their next invoice
        allocations = {
            payment.reference: [(a.invoice.period_start, a.amount) for a in payment.allocations.order_by("id")]
            for payment in Payment.objects.all()
        }
        assert sorted(len(parts) for parts in allocations.values()) == [1, 2]
        (first_period, _), (next_period, extra) = next(parts for parts in allocations.values() if len(parts) == 2)
        assert (extra, first_period < next_period) == (Decimal("10.000000"), True)
    finally:
        connection.set_schema_to_public()
