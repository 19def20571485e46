"""A real browser in the staff admin: Playwright driving Debian's chromium (no browser download)
against the project served over HTTP on 127.0.0.1, with the billing run done by a real Celery
worker (the one tests/billing/test_run_tasks.py starts).

- An owner signs in with a password and the code of the authenticator app they enrol, adds a
  customer, a service address and a subscription, activates it, starts a billing run, opens the
  invoice and fetches its PDF, which carries the customer's name and the amount due.
- An auditor sees customers, subscriptions and invoices with no way to change them: no add,
  change or delete button, no editable field, no bulk action, and the change URLs refuse a
  POST made by hand; nothing in the database moves.

Each test gets a throwaway tenant, committed (the server's requests and the worker run on their
own connections) and removed at the end with its schema, database role, rows and data keys
(`network.bench_support.throwaway_tenant`). Screenshots of each step (full page) are kept in
test-artifacts/browser/<test>-<step>.png."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.utils import timezone

from billing import display
from billing.domain.money import quantize
from billing.models import BillingRun, CreditNote, Invoice, InvoiceLine, Payment
from compliance.models import AuditEvent, PrivacyPolicy
from customers.models import Customer, Plan, ServiceAddress, Subscription
from tenants import roles
from tests.billing.test_pdf import pdf_text
from tests.billing.test_run_tasks import billing_worker  # noqa: F401 - fixture
from tests.browser.live_site import (
    CommittedTenant,
    Screenshots,
    authenticator_code,
    chromium,
    page_fetch,
    served_site,
)
from tests.customers.factories import PlanFactory
from tests.factories import StaffUserFactory
from tests.security.subjects import PII_A, subject_with_history

pytestmark = [pytest.mark.integration, pytest.mark.customer_journey, pytest.mark.behavior]

STAFF_PASSWORD = "staff-password-0"  # tests.factories.StaffUserFactory's
NAME, EMAIL, PHONE = "Margarethe Quellenhof-Ibarra", "m.quellenhof.5512@example-mail.net", "+12175550164"
STREET, CITY, POSTAL_CODE = "19 Lantern Row", "Springfield", "62704"
PRICE, SETUP_FEE = Decimal("59.90"), Decimal("25.00")


@pytest.fixture(scope="module")
def site():
    with served_site() as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def shop(django_db_setup, django_db_blocker, settings):
    """A throwaway tenant, committed, removed at the end; the database is open to the server's
    threads for the whole test."""
    config = settings.DATABASES["default"]
    assert config["NAME"] == config["TEST"]["NAME"], f"not the test database: {config['NAME']}"
    with django_db_blocker.unblock():
        committed = CommittedTenant("browser")
        try:
            yield committed
        finally:
            committed.close()


@pytest.fixture
def page(browser, shop):
    """A fresh browser context (no cookies), closed before the tenant is removed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def staff(shop, role: str):
    return shop.run(lambda: StaffUserFactory(role=role))


def sign_in(page, site, shop, user) -> None:
    page.goto(site.url(shop.tenant, "/admin/"))
    page.fill("#id_username", user.username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("#login-form input[type=submit]")


def from_the_index(page, site, shop, href: str) -> None:
    """Open a page as staff do: from the admin's home page, by its link."""
    page.goto(site.url(shop.tenant, "/admin/"))
    page.click(f"#content-main a[href='{href}']")


def pick_in_lookup(page, field: str, *, row_with: str) -> str:
    """Choose the related object of a raw-id field in the admin's lookup popup (the magnifier
    beside the field): the row showing `row_with`. Returns the id the popup filled in."""
    with page.expect_popup() as opened:
        page.click(f"#lookup_id_{field}")
    popup = opened.value
    popup.locator("#result_list tbody tr", has_text=row_with).locator("th a").click(no_wait_after=True)
    page.wait_for_function(f"document.getElementById('id_{field}').value !== ''")
    return page.input_value(f"#id_{field}")


def added_id(page, model: str) -> int:
    """The id of the object linked in the admin's "... was added successfully" message."""
    message = page.locator("ul.messagelist li.success").first
    assert "was added successfully" in message.inner_text(), message.inner_text()
    href = message.locator(f"a[href*='/{model}/']").get_attribute("href")
    return int(re.search(rf"/{model}/(\d+)/change/", href).group(1))


def run_outcome(page) -> str | None:
    """The status a billing run's page shows after a reload (as staff wait for a run); None while running."""
    page.reload()
    status = page.locator(".field-status .readonly").inner_text().strip().lower()
    return None if status == "running" else status


def decrypted(obj, *fields: str) -> dict:
    """Field values of a row, read (and decrypted) on the tenant's connection."""
    return {field: getattr(obj, field) for field in fields}


def stored_bytes(table: str, column: str, pk: int) -> bytes:
    """A column as PostgreSQL holds it (no decryption)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column}::bytea FROM {table} WHERE id = %s", [pk])  # noqa: S608 - constants
        return bytes(cursor.fetchone()[0])


def tenant_today(tenant) -> datetime.date:
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(tenant.time_zone))


def first_period_due(activated_on: datetime.date) -> tuple[Decimal, Decimal]:
    """What the first invoice of a subscription activated on `activated_on` (billing day 1, no
    tax, no discount) totals: the rest of the month prorated by days, rounded once to 6 places,
    plus the setup fee; and the amount due in cents (half-up)."""
    start = activated_on.replace(day=1)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    charge = quantize(Fraction(PRICE) * Fraction((end - activated_on).days, (end - start).days), 6)
    total = charge + SETUP_FEE
    return total, total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_an_owner_signs_up_a_customer_bills_them_and_opens_the_invoice_pdf(
    site,
    page,
    shop,
    billing_worker,  # noqa: F811 - the fixture imported above
    settings,
    request,
    tmp_path,
):
    settings.ISP_BILLING_QUEUE = billing_worker.queue  # the admin queues the run where this worker listens
    shots = Screenshots(page, request.node.name)
    owner = staff(shop, roles.OWNER)
    plan = shop.run(
        lambda: PlanFactory(code="browser-fiber", name="Fiber 500", monthly_price=PRICE, setup_fee=SETUP_FEE)
    )

    # given: the owner signs in with the password, then enrols the second factor their role needs,
    # typing the code their authenticator app shows for the secret on the page
    sign_in(page, site, shop, owner)
    page.wait_for_url(re.compile(r"/admin/2fa/setup/"))
    shots("second-factor")
    secret = page.locator("#otp-secret").inner_text().strip()
    page.fill("#id_token", authenticator_code(secret))
    page.click("#content-main input[type=submit]")
    page.wait_for_url(site.url(shop.tenant, "/admin/"))
    assert page.locator("a[href='/admin/customers/customer/add/']").count() == 1
    shots("signed-in")

    # when: they add a customer from the admin's home page
    from_the_index(page, site, shop, "/admin/customers/customer/add/")
    page.fill("#id_name", NAME)
    page.fill("#id_email", EMAIL)
    page.fill("#id_phone", PHONE)
    shots("customer-form")
    page.click("input[name=_save]")
    assert "was added successfully" in page.locator("ul.messagelist li.success").inner_text()
    shots("customer-added")

    # and their service address, choosing the customer in the lookup popup
    from_the_index(page, site, shop, "/admin/customers/serviceaddress/add/")
    customer_id = int(pick_in_lookup(page, "customer", row_with=EMAIL))
    page.fill("#id_street", STREET)
    page.fill("#id_city", CITY)
    page.fill("#id_postal_code", POSTAL_CODE)
    page.fill("#id_country", "US")
    page.fill("#id_region", "US-IL")
    page.click("input[name=_save]")
    assert "was added successfully" in page.locator("ul.messagelist li.success").inner_text()

    # and a subscription to the plan at that address
    from_the_index(page, site, shop, "/admin/customers/subscription/add/")
    assert int(pick_in_lookup(page, "customer", row_with=EMAIL)) == customer_id
    page.select_option("#id_plan", label=str(plan))
    address_id = int(pick_in_lookup(page, "service_address", row_with=STREET))
    shots("subscription-form")
    page.click("input[name=_save]")
    subscription_id = added_id(page, "customers/subscription")

    # and activate it with the subscription list's action
    before = tenant_today(shop.tenant)
    page.check(f"input[name=_selected_action][value='{subscription_id}']")
    page.select_option("select[name=action]", "activate_selected")
    shots("activate-action")
    page.click("button[name=index]")
    activated_message = page.locator("ul.messagelist li.success", has_text="activated").inner_text()
    shots("subscription-activated")
    subscription = shop.run(lambda: Subscription.objects.get(pk=subscription_id))
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.activated_on in {before, tenant_today(shop.tenant)}
    assert activated_message == f"1 subscription(s) activated from {subscription.activated_on}."

    # and start the billing run of the month the subscription started in (the workers do it),
    # then open the run and reload it until it has finished
    period = f"{subscription.activated_on:%Y-%m}"
    from_the_index(page, site, shop, "/admin/billing/billingrun/add/")
    page.fill("#id_period_label", period)
    shots("billing-run-form")
    page.click("input[name=_save]")
    assert "was added successfully" in page.locator("ul.messagelist li.success").inner_text()
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_url(re.compile(r"/admin/billing/billingrun/\d+/change/"))
    run_id = int(re.search(r"/billingrun/(\d+)/change/", page.url).group(1))
    status = billing_worker.wait_until(lambda: run_outcome(page), f"billing run {run_id} ending")
    assert status == "finished", f"billing run {run_id} is {status}"
    shots("billing-run-finished")

    # and open the run's invoice and its PDF
    page.click("a:has-text('invoice(s) of this run')")
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_url(re.compile(r"/admin/billing/invoice/\d+/change/"))
    shots("invoice")
    pdf_href = page.locator(".field-pdf_link a").get_attribute("href")
    is_pdf = re.compile(r"/admin/billing/invoice/\d+/pdf/$")
    with page.context.expect_event("response", lambda r: is_pdf.search(r.url)) as answered, page.expect_popup() as tab:
        page.click(".field-pdf_link a")  # the PDF opens in a new tab, in chromium's PDF viewer
    tab.value.wait_for_load_state()
    opened = answered.value
    pdf = page_fetch(page, pdf_href)  # the same document's bytes (the viewer keeps them), with the owner's session

    # then: the customer was stored with their personal data encrypted and read back as typed
    customer = shop.run(lambda: decrypted(Customer.objects.get(pk=customer_id), "name", "email", "phone"))
    assert customer == {"name": NAME, "email": EMAIL, "phone": PHONE}
    assert NAME.encode() not in shop.run(lambda: stored_bytes("customers_customer", "name", customer_id))
    address = shop.run(lambda: decrypted(ServiceAddress.objects.get(pk=address_id), "customer_id", "street", "city"))
    assert address == {"customer_id": customer_id, "street": STREET, "city": CITY}
    assert (subscription.customer_id, subscription.plan_id, subscription.service_address_id) == (
        customer_id,
        plan.pk,
        address_id,
    )
    # and the run billed them once: the rest of the month prorated by days, plus the setup fee
    total, amount_due = first_period_due(subscription.activated_on)
    run = shop.run(lambda: BillingRun.objects.get(pk=run_id))
    invoice = shop.run(lambda: Invoice.objects.get(customer_id=customer_id))
    lines = shop.run(lambda: sorted(InvoiceLine.objects.filter(invoice=invoice).values_list("category", "amount")))
    assert (run.customers_considered, run.invoices_issued, run.customers_failed) == (1, 1, 0)
    assert invoice.billing_run_id == run_id
    assert invoice.period_start == subscription.activated_on.replace(day=1)
    assert lines == [("fee", SETUP_FEE), ("service", total - SETUP_FEE)]
    assert (invoice.total, invoice.tax_total, invoice.amount_due) == (total, 0, amount_due)
    assert run.total_amount == amount_due
    assert f"/admin/billing/invoice/{invoice.pk}/change/" in page.url
    # and the PDF the owner opened is that invoice, with the customer's name and amount due
    assert tab.value.url == site.url(shop.tenant, pdf_href)
    assert (opened.status, opened.headers["content-type"]) == (200, "application/pdf")
    assert opened.headers["content-disposition"] == f'inline; filename="{invoice.number}.pdf"'
    assert (pdf.status, pdf.content_type) == (200, "application/pdf")
    data = pdf.body
    assert data.startswith(b"%PDF-")
    shots.pdf("invoice-pdf", data)  # headless chromium's viewer draws nothing: its first page, by poppler
    text = pdf_text(data, tmp_path)
    shown_due = display.format_money(amount_due, "USD", display.conventions_for("US"))
    assert invoice.number in text
    assert NAME in text
    assert shop.run(lambda: Customer.objects.get(pk=customer_id).account_code) in text
    assert shown_due in text, f"{shown_due} not in the PDF:\n{text}"
    # and the audit trail names the owner for every change they made
    events = shop.run(
        lambda: set(
            AuditEvent.objects.filter(actor_label=owner.username).values_list("action", "object_type", "object_id")
        ),
    )
    assert {
        ("customer.created", "customers.customer", str(customer_id)),
        ("subscription.activated", "customers.subscription", str(subscription_id)),
        ("billing_run.started", "billing.billingrun", str(run_id)),
    } <= events, events


# --- the auditor -------------------------------------------------------------------------------
READ_ONLY_PAGES = ("customers/customer", "customers/subscription", "billing/invoice")


def shop_state(subject) -> dict:
    """Everything an auditor could try to change, as stored (personal data decrypted)."""
    customer = Customer.objects.get(pk=subject.customer.pk)
    subscription = Subscription.objects.get(pk=subject.subscription.pk)
    invoice = Invoice.objects.get(pk=subject.invoice.pk)
    return {
        "customer": (customer.name, customer.email, customer.phone, customer.status, customer.updated_at),
        "subscription": (subscription.status, subscription.plan_id, subscription.terminated_on),
        "subscription changed at": subscription.updated_at,
        "invoice": (invoice.status, invoice.total, invoice.amount_due, invoice.amount_paid),
        "privacy policy": list(PrivacyPolicy.objects.values()),
        "counts": [
            model.objects.count() for model in (Customer, Subscription, Plan, Invoice, BillingRun, CreditNote, Payment)
        ],
    }


def test_an_auditor_reads_customers_subscriptions_and_invoices_but_cannot_change_anything(site, page, shop, request):
    shots = Screenshots(page, request.node.name)
    subject = shop.run(lambda: subject_with_history(tag="au", pii=PII_A, paid=False))
    auditor = staff(shop, roles.AUDITOR)
    before = shop.run(lambda: shop_state(subject))
    first_event = shop.run(lambda: AuditEvent.objects.order_by("-id").values_list("id", flat=True).first())
    ids = {
        "customers/customer": subject.customer.pk,
        "customers/subscription": subject.subscription.pk,
        "billing/invoice": subject.invoice.pk,
    }

    # given: the auditor signs in (a password is enough for their role)
    sign_in(page, site, shop, auditor)
    page.wait_for_url(site.url(shop.tenant, "/admin/"))
    shots("signed-in")
    assert page.locator("a.addlink, a.changelink").count() == 0
    assert page.locator("#content-main a.viewlink").count() > 0

    # when: they open each list and each page
    for model in READ_ONLY_PAGES:
        slug = model.replace("/", "-")
        page.goto(site.url(shop.tenant, f"/admin/{model}/"))
        shots(f"{slug}-list")
        # then: the row is listed, with nothing to add and no bulk action to run
        assert page.locator("#result_list tbody tr").count() == 1, model
        assert page.locator("#content-main a.addlink").count() == 0, model
        assert page.locator("select[name=action], input[name=_selected_action]").count() == 0, model

        page.goto(site.url(shop.tenant, f"/admin/{model}/{ids[model]}/change/"))
        shots(f"{slug}-page")
        # and the page shows the object with no field to edit, no save and no delete
        assert page.locator("#content-main .readonly").count() > 0, model
        editable = "#content-main input:not([type=hidden]), #content-main select, #content-main textarea"
        assert page.locator(editable).count() == 0, model
        assert page.locator("#content-main [type=submit], #content-main a.deletelink").count() == 0, model

    # the customer's personal data is masked for them, never in clear
    page.goto(site.url(shop.tenant, f"/admin/customers/customer/{subject.customer.pk}/change/"))
    content = page.content()
    assert PII_A["name"] not in content
    assert PII_A["email"] not in content
    assert "Z*** Q***" in content

    # when: they post to the change URLs by hand, with their session and CSRF token
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")

    def post(path: str, data: dict) -> int:
        return page_fetch(page, path, form={"csrfmiddlewaretoken": token, **data}).status

    customer_id, subscription_id, invoice_id = ids.values()
    refused = {
        "change customer": post(
            f"/admin/customers/customer/{customer_id}/change/",
            {"name": "Changed By Auditor", "email": "auditor@example.net", "kind": "residential"},
        ),
        "delete customer": post(f"/admin/customers/customer/{customer_id}/delete/", {"post": "yes"}),
        "add customer": post("/admin/customers/customer/add/", {"name": "New Person", "email": "new@example.net"}),
        "change subscription": post(f"/admin/customers/subscription/{subscription_id}/change/", {"plan": ""}),
        "change invoice": post(f"/admin/billing/invoice/{invoice_id}/change/", {"total": "0", "status": "void"}),
        "start billing": post("/admin/billing/billingrun/add/", {"period_label": "2026-11"}),
        "set the privacy policy": post(
            "/admin/compliance/privacypolicy/add/",
            {"response_days": "90", "export_archive_days": "365", "radius_session_retention_days": "30"},
        ),
    }
    terminate = post(
        "/admin/customers/subscription/",
        {"action": "terminate_selected", "_selected_action": str(subscription_id), "index": "0"},
    )

    # then: every change URL refuses them
    assert refused == dict.fromkeys(refused, 403)
    assert terminate == 200  # the list again: the action is not theirs to run
    # and nothing moved: rows, personal data, amounts, counts - and no change is recorded in their name
    assert shop.run(lambda: shop_state(subject)) == before
    changes = shop.run(
        lambda: list(
            AuditEvent.objects.filter(id__gt=first_event or 0, actor_label=auditor.username).values_list(
                "action", flat=True
            )
        ),
    )
    assert changes == []
    assert shop.run(lambda: LogEntry.objects.filter(user_id=auditor.pk).count()) == 0
