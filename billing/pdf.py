"""The invoice as a PDF document (WeasyPrint over a Django template).

`invoice_document` turns an issued invoice into what the page shows (plain values, amounts
already formatted per the tenant's currency and country, billing.display); the template only
lays it out; `invoice_pdf` renders it. Nothing is computed here that the invoice does not
store: totals, taxes and amounts are the invoice's own, only rounded for display.

Printed figures foot: lines and totals are shown rounded to the currency's minor unit, and the
"Rounding" row is `amount due - (shown subtotal + shown taxes)`: the stored rounding adjustment
(billing rules, section 7) as it appears at display precision. It is printed only when it is
not zero.

Personal data: the customer's name and service addresses are decrypted - the invoice is the
customer's own document. Staff callers pass the PII mode of the reader (`pii=PIIMode.MASKED`
for roles without `customers.reveal_pii`) and audit a clear read themselves."""

from __future__ import annotations

import datetime
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.db import connection
from django.template.loader import render_to_string

from compliance.pii.fields import pii_prefetch
from customers.api.pii import ADDRESS_PII, CUSTOMER_PII, PIIMode, shown_value

from . import display as d
from .domain.money import ZERO, minor_unit, quantize
from .models import Invoice, InvoiceLine, InvoiceTax

STATIC_DIR = Path(__file__).resolve().parent / "templates" / "billing"
KIND_ORDER = {"charge": 0, "credit": 1, "usage": 2, "fee": 3}


@dataclass
class Row:
    description: str
    detail: str = ""
    dates: str = ""
    quantity: str = ""
    unit_price: str = ""
    amount: str = ""
    kind: str = "charge"
    indent: bool = False


@dataclass
class Group:
    title: str
    address: str
    rows: list[Row] = field(default_factory=list)
    total: str = ""


@dataclass
class TaxRow:
    name: str
    rate: str
    base: str
    amount: str


def _shown(value, masker, pii: PIIMode) -> str:
    if pii is PIIMode.OMITTED:
        return ""
    return shown_value(value, mode=pii, masker=masker) or ""


def _address(address, pii: PIIMode, conventions: d.Conventions) -> str:
    if address is None:
        return ""
    city = _shown(address.city, ADDRESS_PII["city"], pii)
    postal_code = _shown(address.postal_code, ADDRESS_PII["postal_code"], pii)
    town = (city, postal_code) if conventions.city_first else (postal_code, city)
    parts = [_shown(address.street, ADDRESS_PII["street"], pii), " ".join(p for p in town if p), address.country]
    return ", ".join(p for p in parts if p)


def load_invoice(invoice_id: int) -> tuple[Invoice, list[InvoiceLine], list[InvoiceTax]]:
    """The invoice with everything the document shows, in three queries (+ one key-store query)."""
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    lines = list(
        InvoiceLine.objects.filter(invoice=invoice)
        .select_related("plan", "discount", "subscription__plan", "subscription__service_address")
        .order_by("position")
    )
    taxes = list(InvoiceTax.objects.filter(invoice=invoice).select_related("tax_rate").order_by("line_id", "id"))
    return invoice, lines, taxes


def _line_description(line: InvoiceLine, conv: d.Conventions) -> tuple[str, str]:
    plan = line.plan.name if line.plan_id else ""
    if line.kind == InvoiceLine.Kind.CHARGE:
        days = (line.period_end - line.period_start).days if line.period_start and line.period_end else 0
        detail = f"Prorated: {line.billable_days} of {days} days" if days and line.billable_days != days else ""
        return plan or line.description, detail
    if line.kind == InvoiceLine.Kind.DISCOUNT:
        return (line.discount.name if line.discount_id else line.description), ""
    if line.kind == InvoiceLine.Kind.CREDIT:
        return f"Credit: {plan}" if plan else line.description, f"{line.billable_days} days not used as billed"
    if line.kind == InvoiceLine.Kind.USAGE:
        included = line.plan.included_bytes if line.plan_id else None
        gigabytes = d.format_quantity(Decimal(included) / 10**9, conv) if included is not None else ""
        allowance = f"{plan}: above the {gigabytes} GB included, " if included is not None else ""
        return "Data above the allowance", f"{allowance}billed in arrears"
    return line.description, ""


def _discount_detail(line: InvoiceLine, currency: str, conv: d.Conventions) -> str:
    if not line.discount_id:
        return ""
    discount = line.discount
    if discount.kind == discount.Kind.PERCENT:
        return f"{d.format_percent(discount.value / 100, conv)} off"
    return f"{d.format_money(discount.value, currency, conv)} per period, prorated"


def invoice_document(invoice: Invoice, *, pii: PIIMode = PIIMode.CLEAR) -> dict:
    """Everything the invoice template shows, formatted for people."""
    tenant = connection.tenant
    invoice, lines, taxes = load_invoice(invoice.pk)
    currency = invoice.currency
    conv = d.conventions_for(tenant.country)
    places = minor_unit(currency)

    def money(value: Decimal, **kwargs) -> str:
        return d.format_money(value, currency, conv, **kwargs)

    customer = invoice.customer
    addresses = []
    seen = set()
    for line in lines:
        address = line.subscription.service_address if line.subscription_id else None
        if address is not None and address.pk not in seen:
            seen.add(address.pk)
            addresses.append(address)
    if pii is not PIIMode.OMITTED:
        pii_prefetch([customer, *addresses])  # one key-store query for the whole document

    # lines grouped per subscription; discounts right under the charge they reduce
    groups: OrderedDict[int | None, Group] = OrderedDict()
    sums: dict[int | None, Decimal] = {}
    by_id = {line.pk: line for line in lines}
    discounts_of: dict[int, list[InvoiceLine]] = {}
    for line in lines:
        if line.kind == InvoiceLine.Kind.DISCOUNT and line.applies_to_id in by_id:
            discounts_of.setdefault(line.applies_to_id, []).append(line)
    ordered = sorted(
        (line for line in lines if not (line.kind == InvoiceLine.Kind.DISCOUNT and line.applies_to_id in by_id)),
        key=lambda line: (line.subscription_id or 0, line.period_start or datetime.date.min, line.position),
    )
    for line in ordered:
        key = line.subscription_id
        if key not in groups:
            sub = line.subscription
            title = f"{sub.plan.name} — subscription {sub.pk}" if sub is not None else "Other charges"
            groups[key] = Group(title=title, address=_address(sub.service_address if sub else None, pii, conv))
            sums[key] = ZERO
        description, detail = _line_description(line, conv)
        is_usage = line.kind == InvoiceLine.Kind.USAGE
        dates = d.format_span(
            line.service_start or (line.period_start if is_usage else None),
            line.service_end or (line.period_end if is_usage else None),
            conv,
        )
        if line.kind == InvoiceLine.Kind.FEE:
            dates = "one-time"
        show_price = line.kind in (InvoiceLine.Kind.CHARGE, InvoiceLine.Kind.USAGE, InvoiceLine.Kind.FEE)
        groups[key].rows.append(
            Row(
                description=description,
                detail=detail,
                dates=dates,
                quantity=(d.format_quantity(line.quantity, conv) + (" GB" if is_usage else "")) if show_price else "",
                unit_price=money(line.unit_price, places=d.price_places(line.unit_price, currency))
                if show_price
                else "",
                amount=money(line.amount),
                kind=line.kind,
            )
        )
        sums[key] += line.amount
        for discount in discounts_of.get(line.pk, []):
            groups[key].rows.append(
                Row(
                    description=_line_description(discount, conv)[0],
                    detail=_discount_detail(discount, currency, conv),
                    amount=money(discount.amount),
                    kind="discount",
                    indent=True,
                )
            )
            sums[key] += discount.amount
    for key, group in groups.items():
        group.total = money(sums[key])

    # taxes by rate: the taxable base is the net of every amount the rate taxed (a compound rate
    # taxes that net plus the non-compound taxes of the same amount)
    taxes_of_line: dict[int, list[InvoiceTax]] = {}
    for tax in taxes:
        taxes_of_line.setdefault(tax.line_id, []).append(tax)
    by_rate: OrderedDict[int, dict] = OrderedDict()
    for line_id, line_taxes in taxes_of_line.items():
        head = by_id[line_id]
        net = head.net_amount - head.tax_amount if invoice.tax_inclusive else head.net_amount
        simple = sum((t.amount for t in line_taxes if not t.tax_rate.compound), ZERO)
        for tax in line_taxes:
            entry = by_rate.setdefault(
                tax.tax_rate_id, {"name": tax.name, "rate": tax.rate, "base": ZERO, "amount": ZERO}
            )
            entry["base"] += net + (simple if tax.tax_rate.compound else ZERO)
            entry["amount"] += tax.amount
    tax_rows = [
        TaxRow(
            name=entry["name"],
            rate=d.format_percent(entry["rate"], conv),
            base=money(entry["base"]),
            amount=money(entry["amount"]),
        )
        for entry in sorted(by_rate.values(), key=lambda e: (e["name"], e["rate"]))
    ]
    shown_taxes = sum((quantize(entry["amount"], places) for entry in by_rate.values()), ZERO)
    shown_subtotal = quantize(invoice.subtotal, places)
    rounding = invoice.amount_due - shown_subtotal - shown_taxes
    terms_days = (invoice.due_date - invoice.issue_date).days
    return {
        "tenant": {"name": tenant.name, "country": tenant.country, "currency": currency},
        "invoice": {
            "number": invoice.number,
            "status": invoice.get_status_display(),
            "paid": invoice.status == Invoice.Status.PAID,
            "issue_date": d.format_date(invoice.issue_date, conv),
            "due_date": d.format_date(invoice.due_date, conv),
            "period": d.format_span(invoice.period_start, invoice.period_end, conv),
            "tax_inclusive": invoice.tax_inclusive,
        },
        "customer": {
            "account_code": customer.account_code,
            "name": _shown(customer.name, CUSTOMER_PII["name"], pii),
            "address": _address(addresses[0], pii, conv) if addresses else "",
        },
        "groups": list(groups.values()),
        "taxes": tax_rows,
        "totals": {
            "subtotal": money(invoice.subtotal),
            "tax_total": money(invoice.tax_total),
            "rounding": money(rounding) if rounding else "",
            "total": money(invoice.amount_due),
            "credit_applied": money(-invoice.credit_applied) if invoice.credit_applied else "",
            "amount_paid": money(-invoice.amount_paid) if invoice.amount_paid else "",
            "amount_due": money(invoice.balance_due),
        },
        "terms": {
            "days": terms_days,
            "due_date": d.format_date(invoice.due_date, conv),
        },
    }


def invoice_html(invoice: Invoice, *, pii: PIIMode = PIIMode.CLEAR) -> str:
    return render_to_string("billing/invoice.html", {"doc": invoice_document(invoice, pii=pii)})


def invoice_pdf(invoice: Invoice, *, pii: PIIMode = PIIMode.CLEAR) -> bytes:
    """The invoice as PDF bytes (A4)."""
    from weasyprint import CSS, HTML  # imported on use: it loads pango when imported

    html = invoice_html(invoice, pii=pii)
    stylesheet = CSS(filename=str(STATIC_DIR / "invoice.css"))
    return HTML(string=html, base_url=str(STATIC_DIR)).write_pdf(stylesheets=[stylesheet])


def invoice_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf"
