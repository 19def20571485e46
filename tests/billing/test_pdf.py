"""The invoice PDF of each matrix tenant: a real PDF whose text (pdftotext) carries the invoice's
number, dates, account, lines, taxes by rate and totals, amounts in the currency's minor unit
(JPY without decimals) and the tenant's conventions. Each rendered PDF is kept in
test-artifacts/ for a human look."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from billing import display
from billing.domain.money import round_to_currency
from billing.models import InvoiceLine, InvoiceTax
from billing.pdf import invoice_document, invoice_pdf
from customers.api.pii import PIIMode
from tests.billing.issued import bill_customers

pytestmark = [pytest.mark.django_db, pytest.mark.revenue_critical]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pdf_text(data: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is missing: scripts/setup.sh installs it", pytrace=False)
    source = tmp_path / "invoice.pdf"
    source.write_bytes(data)
    result = subprocess.run(["pdftotext", "-layout", str(source), "-"], capture_output=True, check=True)
    return result.stdout.decode()


def shown(amount: Decimal, tenant) -> str:
    return display.format_money(amount, tenant.currency, display.conventions_for(tenant.country))


@pytest.mark.behavior
def test_each_tenants_invoice_pdf_shows_number_dates_lines_taxes_and_totals(tenant, tmp_path):
    # given: two customers billed by a real run (proration, discounts, taxes, overage, setup fee)
    billed = bill_customers(count=2)
    invoice = billed.invoice_of(billed.customers[0])

    # when
    data = invoice_pdf(invoice)

    # then: a PDF, kept for a human look
    assert data.startswith(b"%PDF-")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"invoice-{tenant.slug}.pdf").write_bytes(data)
    text = pdf_text(data, tmp_path)
    flat = " ".join(text.split())
    conventions = display.conventions_for(tenant.country)
    assert tenant.name in flat
    assert invoice.number in flat
    assert billed.customers[0].account_code in flat
    assert "Grace Hopper" in flat  # the customer's own document: in clear
    assert display.format_date(invoice.issue_date, conventions) in flat
    assert display.format_date(invoice.due_date, conventions) in flat
    # every tax by name, with its rate and its amount
    for tax in InvoiceTax.objects.filter(invoice=invoice).values("name", "rate").distinct():
        assert tax["name"] in flat
        assert display.format_percent(tax["rate"], conventions).replace("\u00a0", " ") in flat
    taxes = {}
    for tax in InvoiceTax.objects.filter(invoice=invoice):
        taxes[tax.name] = taxes.get(tax.name, Decimal(0)) + tax.amount
    for amount in taxes.values():
        assert shown(amount, tenant).replace("\u00a0", " ") in flat
    # the totals the invoice stores, rounded for display only
    for amount in (invoice.subtotal, invoice.tax_total, invoice.amount_due):
        assert shown(amount, tenant).replace("\u00a0", " ") in flat
    assert invoice.amount_due == round_to_currency(invoice.total, tenant.currency)
    # lines: proration, the welcome discount under its charge, the overage in GB
    assert "Prorated: 19 of 28 days" in flat
    assert "Welcome 50% x 3 months" in flat
    assert "Data above the allowance" in flat
    assert re.search(r"\b180 GB\b", flat)
    assert "Payment is due within 14 days" in flat


@pytest.mark.behavior
def test_amounts_show_the_currencys_minor_unit_and_the_tenants_separators(tenant, tmp_path):
    billed = bill_customers(count=2)
    invoice = billed.invoice_of(billed.customers[1])  # setup fee and a fixed discount

    data = invoice_pdf(invoice)

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"invoice-{tenant.slug}-2.pdf").write_bytes(data)
    text = " ".join(pdf_text(data, tmp_path).split())

    money = re.findall(r"(?:[$¥€]\s?)?-?\d[\d.,]*(?:\s?€)?", text)
    amounts = [m for m in money if any(sign in m for sign in "$¥€")]
    assert amounts, text
    if tenant.currency == "JPY":
        # no decimals on any yen amount, thousands grouped with commas: ¥4,980
        assert all(re.fullmatch(r"-?¥\d{1,3}(,\d{3})*", a) for a in amounts), amounts
        assert "¥4,980" in text
    elif tenant.currency == "EUR":
        # German conventions: 1.234,56 € (decimal comma, symbol after)
        assert all(re.fullmatch(r"-?\d{1,3}(\.\d{3})*,\d{2} €", a) for a in amounts), amounts
        assert "34,90 €" in text
        assert "Prices include tax." in text
        assert "Subtotal (net of tax)" in text
    else:
        assert all(re.fullmatch(r"-?\$\d{1,3}(,\d{3})*\.\d{2}", a) for a in amounts), amounts
        assert "$39.99" in text
        assert "Mar 1, 2026" in text  # US date order


@pytest.mark.behavior
def test_the_printed_totals_foot_and_match_the_stored_invoice(tenant):
    billed = bill_customers(count=3)

    for invoice in billed.invoices.values():
        doc = invoice_document(invoice)

        places = Decimal(1).scaleb(-tenant.currency_minor_unit)
        lines = InvoiceLine.objects.filter(invoice=invoice)
        assert sum(line.amount for line in lines) == (
            invoice.total if tenant.tax_inclusive else invoice.subtotal
        )  # the lines add up to what the invoice stores
        assert doc["totals"]["amount_due"] == shown(invoice.balance_due, tenant)
        assert doc["totals"]["total"] == shown(invoice.amount_due, tenant)
        # subtotal + taxes + rounding, as printed, make the printed total
        parsed = [
            _parse(doc["totals"][key], tenant) for key in ("subtotal", "tax_total", "rounding") if doc["totals"][key]
        ]
        by_rate = sum(_parse(row.amount, tenant) for row in doc["taxes"])
        subtotal = _parse(doc["totals"]["subtotal"], tenant)
        rounding = _parse(doc["totals"]["rounding"], tenant) if doc["totals"]["rounding"] else Decimal(0)
        assert subtotal + by_rate + rounding == _parse(doc["totals"]["total"], tenant)
        assert all(value == value.quantize(places) for value in parsed)


def _parse(text: str, tenant) -> Decimal:
    conventions = display.conventions_for(tenant.country)
    cleaned = re.sub(r"[^\d,.\-]", "", text).replace(conventions.group, "").replace(conventions.decimal, ".")
    return Decimal(cleaned)


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_a_masked_pdf_for_staff_without_reveal_shows_no_name_or_street(tenant, tmp_path):
    billed = bill_customers(count=1, with_discounts=False, with_usage=False)
    invoice = billed.invoice_of(billed.customers[0])

    text = " ".join(pdf_text(invoice_pdf(invoice, pii=PIIMode.MASKED), tmp_path).split())

    assert "G*** H***" in text
    assert "Grace" not in text
    assert "Hopper" not in text
    assert "Fiber Way" not in text
    assert invoice.number in text
    assert shown(invoice.amount_due, tenant) in text.replace(" €", "\u00a0€")
