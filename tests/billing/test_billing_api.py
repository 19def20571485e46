"""The billing API, staff and portal: who may do what, what invoices, credit notes, payments and
balances show, and that invalid input writes nothing.

Roles: owner and billing_admin write; support and auditor read; network_ops sees no billing.
Portal customers see their own invoices, PDFs and balance only."""

from __future__ import annotations

import datetime
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from billing import run_tasks
from billing.dunning import tenant_today
from billing.models import (
    BalanceMovement,
    BillingRun,
    CreditNote,
    Discount,
    DiscountAssignment,
    Invoice,
    InvoiceLine,
    InvoiceTax,
    Payment,
    TaxRate,
)
from billing.payments import payment_record
from billing.services import billing_run_create, billing_run_execute
from compliance.models import AuditEvent
from tenants import roles
from tests.billing.issued import ACTOR, bill_customers, jurisdiction, subscriber
from tests.billing.test_pdf import pdf_text
from tests.customers.factories import CustomerFactory, PlanFactory

pytestmark = [pytest.mark.django_db]

WRITERS = (roles.OWNER, roles.BILLING_ADMIN)
READERS = (roles.SUPPORT, roles.AUDITOR)
STAFF_ROLES = (*WRITERS, *READERS, roles.NETWORK_OPS)


def portal_client(host_client, tenant, customer):
    """A portal login of `customer` (token), as the portal's own login would give."""
    connection.set_tenant(tenant)
    user = get_user_model().objects.create_user(username=f"portal-{customer.pk}-test")
    customer.portal_user = user
    customer.save(update_fields=["portal_user"])
    client = host_client(tenant)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def money(value: Decimal) -> str:
    return f"{Decimal(value):.6f}"


# --- access ------------------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.parametrize("role", STAFF_ROLES)
def test_each_role_reads_and_writes_billing_exactly_as_its_role_allows(tenant, staff_client, role):
    billed = bill_customers(count=1, with_usage=False)
    invoice = billed.invoice_of(billed.customers[0])
    client = staff_client(tenant, role)
    reads = {
        "invoices": client.get("/api/v1/invoices/"),
        "invoice": client.get(f"/api/v1/invoices/{invoice.pk}/"),
        "runs": client.get("/api/v1/billing-runs/"),
        "credit-notes": client.get("/api/v1/credit-notes/"),
        "payments": client.get("/api/v1/payments/"),
        "balance": client.get(f"/api/v1/customers/{invoice.customer_id}/balance/"),
        "tax-rates": client.get("/api/v1/tax-rates/"),
        "discounts": client.get("/api/v1/discounts/"),
        "assignments": client.get("/api/v1/discount-assignments/"),
    }
    connection.set_tenant(tenant)
    rates_before = TaxRate.objects.count()

    writes = {
        "tax-rate": client.post(
            "/api/v1/tax-rates/",
            {"name": "Extra", "rate": "0.01", "country": tenant.country, "categories": ["service"]},
            format="json",
        ),
        "payment": client.post(
            "/api/v1/payments/",
            {
                "customer": invoice.customer_id,
                "amount": str(invoice.amount_due),
                "received_on": "2026-03-05",
                "method": "manual",
            },
            format="json",
        ),
        "run": client.post("/api/v1/billing-runs/", {"period": "2026-04"}, format="json"),
    }

    connection.set_tenant(tenant)
    if role == roles.NETWORK_OPS:
        assert {name: r.status_code for name, r in reads.items()} == dict.fromkeys(reads, 403)
    else:
        assert {name: r.status_code for name, r in reads.items()} == dict.fromkeys(reads, 200)
        assert [row["number"] for row in reads["invoices"].json()["results"]] == [invoice.number]
        assert reads["invoice"].json()["total"] == money(invoice.total)
    if role in WRITERS:
        assert [writes["tax-rate"].status_code, writes["payment"].status_code, writes["run"].status_code] == [
            201,
            201,
            202,
        ]
        assert TaxRate.objects.count() == rates_before + 1
        assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID
        assert BillingRun.objects.filter(period_label="2026-04").count() == 1
    else:
        assert {name: r.status_code for name, r in writes.items()} == dict.fromkeys(writes, 403)
        assert writes["payment"].json()["error"]["code"] == "permission_denied"
        assert TaxRate.objects.count() == rates_before
        assert not Payment.objects.exists()
        assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.ISSUED
        assert not BillingRun.objects.filter(period_label="2026-04").exists()


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_invoices_credit_notes_and_payments_are_never_changed_or_deleted_through_the_api(tenant, staff_client):
    billed = bill_customers(count=1, with_usage=False)
    invoice = billed.invoice_of(billed.customers[0])
    client = staff_client(tenant, roles.OWNER)
    url = f"/api/v1/invoices/{invoice.pk}/"

    answers = [
        client.patch(url, {"total": "0"}, format="json").status_code,
        client.put(url, {"total": "0"}, format="json").status_code,
        client.delete(url).status_code,
        client.post("/api/v1/invoices/", {}, format="json").status_code,
    ]

    assert set(answers) <= {403, 405}
    connection.set_tenant(tenant)
    assert Invoice.objects.get(pk=invoice.pk).total == invoice.total


# --- invoices ----------------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.revenue_critical
def test_an_invoice_shows_its_lines_taxes_and_totals_exactly_as_stored(tenant, staff_client):
    billed = bill_customers(count=2)
    invoice = billed.invoice_of(billed.customers[0])
    client = staff_client(tenant, roles.SUPPORT)

    body = client.get(f"/api/v1/invoices/{invoice.pk}/").json()

    connection.set_tenant(tenant)
    lines = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position"))
    assert body["number"] == invoice.number
    assert body["account_code"] == billed.customers[0].account_code
    assert (body["subtotal"], body["tax_total"], body["total"], body["amount_due"]) == (
        money(invoice.subtotal),
        money(invoice.tax_total),
        money(invoice.total),
        money(invoice.amount_due),
    )
    assert body["currency"] == tenant.currency
    assert [(row["kind"], row["amount"]) for row in body["lines"]] == [(ln.kind, money(ln.amount)) for ln in lines]
    assert {"charge", "discount", "usage"} <= {row["kind"] for row in body["lines"]}
    prorated = next(row for row in body["lines"] if row["kind"] == "charge")
    assert prorated["fraction"] == "19/28"
    discount = next(row for row in body["lines"] if row["kind"] == "discount")
    assert discount["applies_to"] == prorated["id"]
    # taxes: every stored tax, and the per-rate summary adds up to the tax total
    assert len(body["taxes"]) == InvoiceTax.objects.filter(invoice=invoice).count()
    by_rate = {row["name"]: Decimal(row["amount"]) for row in body["taxes_by_rate"]}
    assert set(by_rate) == {name for name, *_ in _tax_names(tenant)}
    assert sum(by_rate.values()) == invoice.tax_total
    assert sum(Decimal(row["amount"]) for row in body["lines"]) == (
        invoice.total if tenant.tax_inclusive else invoice.subtotal
    )


def _tax_names(tenant):
    return jurisdiction(tenant).taxes


@pytest.mark.behavior
def test_invoices_filter_by_customer_status_period_and_overdue(tenant, staff_client):
    today = tenant_today()
    # given: two invoices issued 40 days ago (overdue), one of them paid; one issued today
    old = bill_customers(count=2, issue_date=today - datetime.timedelta(days=40), with_usage=False)
    paid_customer, overdue_customer = old.customers
    plan = PlanFactory(monthly_price=Decimal("10"))
    fresh_customer, _ = subscriber(plan, name="Fresh Customer", activated=datetime.date(2026, 3, 1))
    billing_run_execute(period="2026-03", issue_date=today, actor=ACTOR, customer_ids=[fresh_customer.pk])
    paid = old.invoice_of(paid_customer)
    payment_record(customer=paid_customer, amount=paid.amount_due, received_on=today, method="manual", actor=ACTOR)
    client = staff_client(tenant, roles.AUDITOR)

    def numbers(**params):
        rows = client.get("/api/v1/invoices/", params).json()["results"]
        return sorted(row["number"] for row in rows)

    connection.set_tenant(tenant)
    invoices = {inv.customer_id: inv for inv in Invoice.objects.all()}
    overdue = invoices[overdue_customer.pk].number
    fresh = invoices[fresh_customer.pk].number
    assert numbers(overdue="true") == [overdue]
    assert numbers(overdue="false") == sorted([paid.number, fresh])
    assert numbers(status="paid") == [paid.number]
    assert numbers(customer=fresh_customer.pk) == [fresh]
    assert numbers(period_start="2026-03-01") == sorted(inv.number for inv in invoices.values())
    assert numbers(period_start="2026-04-01") == []
    rows = {row["number"]: row for row in client.get("/api/v1/invoices/").json()["results"]}
    assert (rows[overdue]["overdue"], rows[paid.number]["overdue"], rows[fresh]["overdue"]) == (True, False, False)
    assert rows[paid.number]["balance_due"] == money(0)
    assert client.get("/api/v1/invoices/", {"overdue": "maybe"}).status_code == 400


@pytest.mark.behavior
@pytest.mark.regression_detection
def test_an_invoice_page_costs_the_same_few_queries_for_2_or_12_invoices(
    tenant, staff_client, django_assert_max_num_queries
):
    bill_customers(count=2, with_usage=False)
    client = staff_client(tenant, roles.BILLING_ADMIN)
    client.get("/api/v1/invoices/")  # warm-up: per-process caches
    with CaptureQueriesContext(connection) as few:
        assert len(client.get("/api/v1/invoices/").json()["results"]) == 2
    more = bill_customers(
        count=12, names=tuple(f"Bulk {i}" for i in range(12)), with_usage=False, with_discounts=False,
        with_taxes=False, period="2026-04", issue_date=datetime.date(2026, 4, 1),
    )  # fmt: skip

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/api/v1/invoices/", {"page_size": 14})

    assert len(response.json()["results"]) == 14
    assert {row["account_code"] for row in response.json()["results"]} >= {c.account_code for c in more.customers}
    page_queries = [q["sql"] for q in few.captured_queries if "billing_invoice" in q["sql"]]
    assert len(page_queries) == 2  # the count and the page itself: no query per invoice


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_the_invoice_pdf_is_clear_and_audited_for_revealers_and_masked_for_support(tenant, staff_client):
    billed = bill_customers(count=1, with_usage=False)
    invoice = billed.invoice_of(billed.customers[0])
    owner, support = staff_client(tenant, roles.OWNER), staff_client(tenant, roles.SUPPORT)
    # audit records are never deleted: a test that committed reveals in this tenant left its own
    seen_before = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0

    clear = owner.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    masked = support.get(f"/api/v1/invoices/{invoice.pk}/pdf/", HTTP_ACCEPT="application/pdf")
    missing = owner.get("/api/v1/invoices/999999/pdf/")

    assert clear.status_code == masked.status_code == 200
    assert clear["Content-Type"] == masked["Content-Type"] == "application/pdf"
    assert clear.content.startswith(b"%PDF-")
    assert f'filename="{invoice.number}.pdf"' in clear["Content-Disposition"]
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    connection.set_tenant(tenant)
    events = AuditEvent.objects.filter(action="pii.revealed", id__gt=seen_before)
    assert {(e.object_type, e.actor_label) for e in events} == {
        ("customers.customer", owner.user.username),
        ("customers.serviceaddress", owner.user.username),
    }  # the owner's read only: support's masked PDF reveals nothing
    assert "Grace Hopper" in " ".join(pdf_text(clear.content, _tmp()).split())
    support_text = " ".join(pdf_text(masked.content, _tmp()).split())
    assert "Grace" not in support_text
    assert "G*** H***" in support_text


def _tmp() -> Path:
    return Path(tempfile.mkdtemp(prefix="billing-api-pdf-"))


# --- billing runs ------------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_starting_a_run_creates_it_and_queues_run_start_after_commit(
    tenant, staff_client, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(run_tasks.run_start, "apply_async", lambda **kw: sent.append(kw))
    client = staff_client(tenant, roles.BILLING_ADMIN)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = client.post("/api/v1/billing-runs/", {"period": "2026-05", "issue_date": "2026-05-01"}, format="json")

    assert started.status_code == 202
    body = started.json()
    assert (body["period"], body["issue_date"], body["status"]) == ("2026-05", "2026-05-01", "running")
    assert sent == []  # nothing is queued before the run is committed
    for callback in callbacks:
        callback()
    assert sent == [{"kwargs": {"period": "2026-05", "issue_date": "2026-05-01", "run_id": body["id"]}}]
    connection.set_tenant(tenant)
    run = BillingRun.objects.get(pk=body["id"])
    assert run.status == BillingRun.Status.RUNNING
    event = AuditEvent.objects.get(action="billing_run.started", object_id=str(run.pk))
    assert event.actor_label == client.user.username
    assert client.get(f"/api/v1/billing-runs/{run.pk}/").json()["period"] == "2026-05"


@pytest.mark.behavior
@pytest.mark.data_safety
def test_an_invalid_run_request_is_a_400_and_starts_nothing(
    tenant, staff_client, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(run_tasks.run_start, "apply_async", lambda **kw: sent.append(kw))
    client = staff_client(tenant, roles.OWNER)

    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            client.post("/api/v1/billing-runs/", {"period": "2026-13"}, format="json"),
            client.post("/api/v1/billing-runs/", {"period": "March"}, format="json"),
            client.post("/api/v1/billing-runs/", {"period": "2026-03", "issue_date": "soon"}, format="json"),
            client.post("/api/v1/billing-runs/", {"period": "2026-03", "customers": [1]}, format="json"),
            client.post("/api/v1/billing-runs/", {}, format="json"),
        ]

    assert [a.status_code for a in answers] == [400] * 5
    assert [set(a.json()["error"]["fields"]) for a in answers] == [
        {"period"},
        {"period"},
        {"issue_date"},
        {"customers"},
        {"period"},
    ]
    assert "YYYY-MM" in answers[0].json()["error"]["fields"]["period"][0]
    connection.set_tenant(tenant)
    assert not BillingRun.objects.exists()
    assert sent == []


@pytest.mark.behavior
@pytest.mark.revenue_critical
def test_the_run_tasks_bill_each_batch_and_finish_the_run_with_its_report(tenant):
    # given: three subscribers, one run created as the API creates it
    plan = PlanFactory(monthly_price=Decimal("30"))
    customers = [subscriber(plan, activated=datetime.date(2026, 3, 1))[0] for _ in range(3)]
    CustomerFactory()  # never subscribed: not billable
    run = billing_run_create(period="2026-03", issue_date=datetime.date(2026, 3, 1), actor=ACTOR)

    # when: the tasks run in this process (the worker test runs them on a real worker)
    first = run_tasks.run_batch(run.pk, [customers[0].pk, customers[1].pk])
    second = run_tasks.run_batch(run.pk, [customers[2].pk, customers[0].pk])  # customer 0 again: skipped
    finished = run_tasks.run_finish(run.pk)

    # then
    assert (first["issued"], second["issued"], second["skipped"]) == (2, 1, 1)
    assert finished["status"] == "finished"
    run.refresh_from_db()
    assert (run.customers_considered, run.invoices_issued, run.invoices_skipped) == (4, 3, 1)
    assert run.report["skipped"] == [{"customer": customers[0].pk, "reason": "already invoiced for this period"}]
    assert sorted(Invoice.objects.values_list("customer_id", flat=True)) == sorted(c.pk for c in customers)
    assert run.total_amount == sum(Invoice.objects.values_list("amount_due", flat=True))


# --- credit notes and payments -----------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.revenue_critical
def test_a_credit_note_through_the_api_reduces_what_the_invoice_asks_for(tenant, staff_client):
    billed = bill_customers(count=1, with_usage=False)
    invoice = billed.invoice_of(billed.customers[0])
    client = staff_client(tenant, roles.BILLING_ADMIN)
    gross = Decimal("10") if tenant.currency != "JPY" else Decimal("1000")

    created = client.post(
        "/api/v1/credit-notes/",
        {"invoice": invoice.pk, "reason": "Outage on 3 March", "gross": str(gross), "issue_date": "2026-03-05"},
        format="json",
    )

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["number"] == "CN-2026-000001"
    assert (body["invoice"], body["invoice_number"], body["purpose"]) == (invoice.pk, invoice.number, "correction")
    assert Decimal(body["total"]) == gross
    assert Decimal(body["subtotal"]) + Decimal(body["tax_total"]) == gross
    connection.set_tenant(tenant)
    invoice.refresh_from_db()
    assert invoice.credit_applied == gross
    assert invoice.balance_due == invoice.amount_due - gross
    listed = client.get("/api/v1/credit-notes/", {"invoice": invoice.pk}).json()
    assert [row["number"] for row in listed["results"]] == ["CN-2026-000001"]


@pytest.mark.behavior
@pytest.mark.data_safety
def test_an_invalid_credit_note_is_refused_and_writes_nothing(tenant, staff_client):
    billed = bill_customers(count=2, with_usage=False)
    invoice, other = (billed.invoice_of(c) for c in billed.customers)
    foreign_line = InvoiceLine.objects.filter(invoice=other).first()
    client = staff_client(tenant, roles.OWNER)
    connection.set_tenant(tenant)
    audit_before = AuditEvent.objects.count()

    answers = [
        client.post("/api/v1/credit-notes/", {"invoice": invoice.pk, "reason": "x"}, format="json"),
        client.post(
            "/api/v1/credit-notes/",
            {"invoice": invoice.pk, "reason": "x", "amount": "1", "gross": "1"},
            format="json",
        ),
        client.post(
            "/api/v1/credit-notes/",
            {"invoice": invoice.pk, "reason": "too much", "gross": str(invoice.total + 1)},
            format="json",
        ),
        client.post(
            "/api/v1/credit-notes/",
            {"invoice": invoice.pk, "reason": "x", "lines": [{"invoice_line": foreign_line.pk, "amount": "1"}]},
            format="json",
        ),
        client.post("/api/v1/credit-notes/", {"invoice": invoice.pk, "reason": "", "amount": "1"}, format="json"),
    ]

    assert [a.status_code for a in answers] == [400] * 5
    assert "lines" in answers[3].json()["error"]["fields"]
    connection.set_tenant(tenant)
    assert not CreditNote.objects.exists()
    assert Invoice.objects.get(pk=invoice.pk).credit_applied == 0
    assert AuditEvent.objects.count() == audit_before


@pytest.mark.behavior
@pytest.mark.payment_flow
def test_a_payment_through_the_api_settles_invoices_and_the_rest_shows_as_credit(tenant, staff_client):
    billed = bill_customers(count=1, with_usage=False)
    customer = billed.customers[0]
    invoice = billed.invoice_of(customer)
    extra = Decimal("5") if tenant.currency != "JPY" else Decimal("500")
    client = staff_client(tenant, roles.BILLING_ADMIN)
    amount = invoice.amount_due + extra

    paid = client.post(
        "/api/v1/payments/",
        {"customer": customer.pk, "amount": str(amount), "received_on": "2026-03-04", "method": "manual",
         "reference": "bank transfer 778"},
        format="json",
    )  # fmt: skip
    balance = client.get(f"/api/v1/customers/{customer.pk}/balance/").json()

    assert paid.status_code == 201, paid.content
    body = paid.json()
    assert (body["amount"], body["currency"], body["status"]) == (money(amount), tenant.currency, "succeeded")
    assert body["allocations"] == [
        {"invoice": invoice.pk, "invoice_number": invoice.number, "amount": money(invoice.amount_due)}
    ]
    assert (balance["credit"], balance["open_amount"], balance["open_invoices"]) == (money(extra), money(0), 0)
    assert balance["account_code"] == customer.account_code
    assert [(m["amount"], m["reason"], m["payment"]) for m in balance["movements"]] == [
        (money(extra), "overpayment", body["id"])
    ]
    connection.set_tenant(tenant)
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.PAID


@pytest.mark.behavior
@pytest.mark.payment_flow
def test_a_gateway_payment_recorded_twice_is_one_payment(tenant, staff_client):
    billed = bill_customers(count=1, with_usage=False)
    customer = billed.customers[0]
    client = staff_client(tenant, roles.OWNER)
    body = {"customer": customer.pk, "amount": "20", "received_on": "2026-03-04", "method": "gateway",
            "gateway_reference": "gw_abc123"}  # fmt: skip

    first = client.post("/api/v1/payments/", body, format="json")
    again = client.post("/api/v1/payments/", body, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    connection.set_tenant(tenant)
    assert Payment.objects.count() == 1


@pytest.mark.behavior
@pytest.mark.data_safety
def test_an_invalid_payment_is_refused_and_writes_nothing(tenant, staff_client):
    billed = bill_customers(count=1, with_usage=False)
    customer = billed.customers[0]
    client = staff_client(tenant, roles.OWNER)
    base = {"customer": customer.pk, "received_on": "2026-03-04", "method": "manual"}
    too_precise = "10.5" if tenant.currency == "JPY" else "10.555"

    answers = [
        client.post("/api/v1/payments/", {**base, "amount": too_precise}, format="json"),
        client.post("/api/v1/payments/", {**base, "amount": "-5"}, format="json"),
        client.post("/api/v1/payments/", {**base, "amount": "5", "method": "cheque"}, format="json"),
        client.post("/api/v1/payments/", {**base, "amount": "5", "method": "gateway"}, format="json"),
        client.post("/api/v1/payments/", {**base, "amount": "5", "customer": 999999}, format="json"),
    ]

    assert [a.status_code for a in answers] == [400] * 5
    assert [set(a.json()["error"]["fields"]) for a in answers] == [
        {"amount"},
        {"amount"},
        {"method"},
        {"gateway_reference"},
        {"customer"},
    ]
    connection.set_tenant(tenant)
    assert not Payment.objects.exists()
    assert not BalanceMovement.objects.exists()


# --- tax rates and discounts -------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_compound_tax_is_refused_on_a_tax_inclusive_tenant_with_a_clear_error(tenant, staff_client):
    client = staff_client(tenant, roles.BILLING_ADMIN)
    rate = {"name": "Surcharge", "rate": "0.02", "country": tenant.country, "categories": ["service"]}
    connection.set_tenant(tenant)
    audit_before = AuditEvent.objects.count()

    compound = client.post("/api/v1/tax-rates/", {**rate, "compound": True}, format="json")

    connection.set_tenant(tenant)
    if tenant.tax_inclusive:
        assert compound.status_code == 400
        message = compound.json()["error"]["fields"]["compound"][0]
        assert "not allowed on a tax-inclusive tenant" in message
        assert not TaxRate.objects.exists()
        assert AuditEvent.objects.count() == audit_before
        # and turning an existing rate compound is refused the same way
        simple = client.post("/api/v1/tax-rates/", rate, format="json").json()
        turned = client.patch(f"/api/v1/tax-rates/{simple['id']}/", {"compound": True}, format="json")
        assert turned.status_code == 400
        connection.set_tenant(tenant)
        assert TaxRate.objects.get(pk=simple["id"]).compound is False
    else:
        assert compound.status_code == 201
        assert compound.json()["compound"] is True
        assert TaxRate.objects.get().compound is True


@pytest.mark.behavior
@pytest.mark.data_safety
def test_invalid_tax_rates_and_discounts_get_every_field_error_and_write_nothing(tenant, staff_client):
    client = staff_client(tenant, roles.OWNER)
    connection.set_tenant(tenant)
    audit_before = AuditEvent.objects.count()

    bad_rate = client.post(
        "/api/v1/tax-rates/",
        {"name": " ", "rate": "1.5", "country": "XX", "categories": [], "valid_from": "2026-05-01",
         "valid_until": "2026-04-01"},
        format="json",
    )  # fmt: skip
    bad_region = client.post(
        "/api/v1/tax-rates/",
        {"name": "Tax", "rate": "0.05", "country": "US", "region": "DE-NW", "categories": ["fee"]},
        format="json",
    )
    bad_category = client.post(
        "/api/v1/tax-rates/", {"name": "Tax", "rate": "0.05", "country": "US", "categories": ["food"]}, format="json"
    )
    percents = [
        client.post("/api/v1/discounts/", {"name": "Half", "kind": "percent", "value": value}, format="json")
        for value in ("0", "100.5", "-3")
    ]
    fixed_zero = client.post("/api/v1/discounts/", {"name": "None", "kind": "fixed", "value": "0"}, format="json")
    bad_periods = client.post(
        "/api/v1/discounts/", {"name": "Half", "kind": "percent", "value": "50", "periods": 0}, format="json"
    )

    assert bad_rate.status_code == 400
    assert set(bad_rate.json()["error"]["fields"]) == {"name", "rate", "country", "categories", "valid_until"}
    assert set(bad_region.json()["error"]["fields"]) == {"region"}
    assert set(bad_category.json()["error"]["fields"]) == {"categories"}
    assert [p.status_code for p in percents] == [400, 400, 400]
    assert all(set(p.json()["error"]["fields"]) == {"value"} for p in percents)
    assert "more than 0 and at most 100" in percents[0].json()["error"]["fields"]["value"][0]
    assert set(fixed_zero.json()["error"]["fields"]) == {"value"}
    assert set(bad_periods.json()["error"]["fields"]) == {"periods"}
    connection.set_tenant(tenant)
    assert not TaxRate.objects.exists()
    assert not Discount.objects.exists()
    assert AuditEvent.objects.count() == audit_before


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_tax_rates_and_discounts_are_created_changed_assigned_and_deleted_through_the_services(tenant, staff_client):
    client = staff_client(tenant, roles.BILLING_ADMIN)
    plan = PlanFactory()
    customer = CustomerFactory()

    rate = client.post(
        "/api/v1/tax-rates/",
        {"name": "State tax", "rate": "0.0625", "country": tenant.country.lower(), "categories": ["service", "usage"]},
        format="json",
    ).json()
    changed = client.patch(f"/api/v1/tax-rates/{rate['id']}/", {"rate": "0.065"}, format="json").json()
    discount = client.post(
        "/api/v1/discounts/", {"name": "Welcome 50% x 3 months", "kind": "percent", "value": 50, "periods": 3},
        format="json",
    ).json()  # fmt: skip
    to_plan = client.post("/api/v1/discount-assignments/", {"discount": discount["id"], "plan": plan.pk}, format="json")
    twice = client.post("/api/v1/discount-assignments/", {"discount": discount["id"], "plan": plan.pk}, format="json")
    both = client.post(
        "/api/v1/discount-assignments/",
        {"discount": discount["id"], "plan": plan.pk, "customer": customer.pk},
        format="json",
    )
    to_customer = client.post(
        "/api/v1/discount-assignments/", {"discount": discount["id"], "customer": customer.pk}, format="json"
    )
    shown = client.get(f"/api/v1/discounts/{discount['id']}/").json()
    removed = client.delete(f"/api/v1/discount-assignments/{to_customer.json()['id']}/")
    deleted_rate = client.delete(f"/api/v1/tax-rates/{rate['id']}/")

    assert (rate["country"], rate["rate"], rate["categories"]) == (tenant.country, "0.062500", ["service", "usage"])
    assert changed["rate"] == "0.065000"
    assert (discount["value"], discount["periods"], discount["stackable"]) == ("50.000000", 3, True)
    assert (to_plan.status_code, twice.status_code, both.status_code, to_customer.status_code) == (201, 400, 400, 201)
    assert "already assigned" in twice.json()["error"]["fields"]["plan"][0]
    assert {(a["plan"], a["customer"]) for a in shown["assignments"]} == {(plan.pk, None), (None, customer.pk)}
    assert (removed.status_code, deleted_rate.status_code) == (204, 204)
    connection.set_tenant(tenant)
    assert list(DiscountAssignment.objects.values_list("plan_id", "customer_id")) == [(plan.pk, None)]
    assert not TaxRate.objects.exists()
    actions = set(AuditEvent.objects.filter(action__regex=r"^(tax_rate|discount)\.").values_list("action", flat=True))
    assert actions == {
        "tax_rate.created",
        "tax_rate.updated",
        "tax_rate.deleted",
        "discount.created",
        "discount.assigned",
        "discount.unassigned",
    }


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_tax_rate_or_discount_on_an_issued_invoice_cannot_be_deleted(tenant, staff_client):
    billed = bill_customers(count=1, with_usage=False)
    client = staff_client(tenant, roles.OWNER)
    connection.set_tenant(tenant)
    used_rate = InvoiceTax.objects.filter(invoice=billed.invoice_of(billed.customers[0])).first().tax_rate_id
    used_discount = InvoiceLine.objects.filter(kind="discount").first().discount_id

    rate = client.delete(f"/api/v1/tax-rates/{used_rate}/")
    discount = client.delete(f"/api/v1/discounts/{used_discount}/")

    assert rate.status_code == discount.status_code == 400
    assert "valid_until" in rate.json()["error"]["fields"]["non_field_errors"][0]
    connection.set_tenant(tenant)
    assert TaxRate.objects.filter(pk=used_rate).exists()
    assert Discount.objects.filter(pk=used_discount).exists()


# --- portal ------------------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_a_portal_customer_sees_only_their_own_invoices_pdfs_and_balance(tenant, staff_client, host_client):
    billed = bill_customers(count=2, with_usage=False)
    grace, alan = billed.customers
    own, foreign = billed.invoice_of(grace), billed.invoice_of(alan)
    portal = portal_client(host_client, tenant, grace)

    listed = portal.get("/api/v1/portal/invoices/")
    own_pdf = portal.get(f"/api/v1/portal/invoices/{own.pk}/pdf/")
    foreign_pdf = portal.get(f"/api/v1/portal/invoices/{foreign.pk}/pdf/")
    unknown_pdf = portal.get("/api/v1/portal/invoices/999999/pdf/")
    balance = portal.get("/api/v1/portal/balance/")

    assert listed.status_code == 200
    assert [row["number"] for row in listed.json()["results"]] == [own.number]
    assert listed.json()["results"][0]["amount_due"] == money(own.amount_due)
    assert "customer" not in listed.json()["results"][0]
    assert own_pdf.status_code == 200
    assert own_pdf["Content-Type"] == "application/pdf"
    text = " ".join(pdf_text(own_pdf.content, _tmp()).split())
    assert own.number in text
    assert "Grace Hopper" in text
    assert "Alan" not in text
    # another customer's invoice is exactly as absent as one that does not exist
    assert foreign_pdf.status_code == unknown_pdf.status_code == 404
    assert foreign_pdf.json() == unknown_pdf.json()
    assert foreign.number.encode() not in foreign_pdf.content
    assert balance.json() == {
        "currency": tenant.currency,
        "credit": money(0),
        "open_amount": money(own.amount_due),
        "overdue_amount": balance.json()["overdue_amount"],
        "open_invoices": 1,
    }
    # the portal user reaches no staff endpoint, staff reach no portal endpoint
    assert portal.get("/api/v1/invoices/").status_code == 403
    assert portal.get(f"/api/v1/invoices/{own.pk}/pdf/").status_code == 403
    assert portal.get(f"/api/v1/customers/{grace.pk}/balance/").status_code == 403
    assert staff_client(tenant, roles.OWNER).get("/api/v1/portal/invoices/").status_code == 403
    assert host_client(tenant).get("/api/v1/portal/invoices/").status_code in (401, 403)
    connection.set_tenant(tenant)
    assert not AuditEvent.objects.filter(action="pii.revealed").exists()  # the customer's own read


# --- schema ------------------------------------------------------------------------------------
@pytest.mark.contract
def test_the_openapi_schema_has_the_billing_endpoints_and_generates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--urlconf", "isp.urls_tenant", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for path in (
        "/api/v1/billing-runs/:",
        "/api/v1/invoices/{id}/pdf/:",
        "/api/v1/credit-notes/:",
        "/api/v1/payments/{id}/:",
        "/api/v1/customers/{id}/balance/:",
        "/api/v1/tax-rates/{id}/:",
        "/api/v1/discounts/:",
        "/api/v1/discount-assignments/{id}/:",
        "/api/v1/portal/invoices/:",
        "/api/v1/portal/invoices/{id}/pdf/:",
        "/api/v1/portal/balance/:",
    ):
        assert path in schema
    assert "application/pdf" in schema
