"""Writing issued invoices in bulk: ids are taken from the sequences up front, then invoices,
lines, taxes and audit events go in with PostgreSQL COPY (the fastest path into the tables).

Runs inside the batch's transaction: everything of a batch commits together or not at all."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from psycopg import sql

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers.services import next_number_block
from isp.middleware import current_request_id

from .domain.invoice import CHARGE, DISCOUNT
from .domain.money import quantize
from .engine import InvoiceDraft
from .models import Invoice, InvoiceLine, InvoiceTax, SubscriptionBillingState

INVOICE_COLUMNS = (
    "id",
    "customer_id",
    "billing_run_id",
    "number",
    "status",
    "period_start",
    "period_end",
    "issue_date",
    "due_date",
    "currency",
    "tax_inclusive",
    "subtotal",
    "tax_total",
    "total",
    "amount_due",
    "rounding_adjustment",
    "credit_applied",
    "amount_paid",
    "created_at",
)
LINE_COLUMNS = (
    "id",
    "invoice_id",
    "position",
    "kind",
    "category",
    "description",
    "subscription_id",
    "plan_id",
    "discount_id",
    "period_start",
    "period_end",
    "service_start",
    "service_end",
    "quantity",
    "unit_price",
    "fraction_numerator",
    "fraction_denominator",
    "billable_days",
    "amount",
    "net_amount",
    "tax_amount",
    "applies_to_id",
    "credits_line_id",
)
TAX_COLUMNS = ("invoice_id", "line_id", "tax_rate_id", "name", "rate", "amount")
AUDIT_COLUMNS = (
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "changed_fields",
    "reason",
    "request_id",
    "source_ip",
)


def invoice_number(year: int, sequence: int) -> str:
    return f"INV-{year}-{sequence:06d}"


def _take_ids(cursor, model, count: int) -> list[int]:
    if count == 0:
        return []
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [model._meta.db_table, count]
    )
    return [row[0] for row in cursor.fetchall()]


def _copy(cursor, model, columns: tuple[str, ...], rows) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(model._meta.db_table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def write_invoices(
    drafts: list[InvoiceDraft],
    *,
    run_id: int | None,
    issue_date: datetime.date,
    currency: str,
    tax_inclusive: bool,
    payment_terms_days: int,
    actor: Actor,
) -> list[tuple[int, int, str, Decimal]]:
    """Insert the drafts as issued invoices. Returns (customer id, invoice id, number, amount due)."""
    if not drafts:
        return []
    now = timezone.now()
    due_date = issue_date + datetime.timedelta(days=payment_terms_days)
    numbers = next_number_block("invoice", str(issue_date.year), len(drafts))
    issued = []
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        invoice_ids = _take_ids(cursor, Invoice, len(drafts))
        line_ids = iter(_take_ids(cursor, InvoiceLine, sum(len(d.lines) for d in drafts)))
        invoice_rows, line_rows, tax_rows = [], [], []
        for draft, invoice_id, sequence in zip(drafts, invoice_ids, numbers, strict=True):
            number = invoice_number(issue_date.year, sequence)
            t = draft.totals
            invoice_rows.append(
                (
                    invoice_id,
                    draft.customer_id,
                    run_id,
                    number,
                    Invoice.Status.ISSUED,
                    draft.period.start,
                    draft.period.end,
                    issue_date,
                    due_date,
                    currency,
                    tax_inclusive,
                    t.subtotal,
                    t.tax_total,
                    t.total,
                    t.amount_due,
                    t.rounding_adjustment,
                    Decimal(0),
                    Decimal(0),
                    now,
                )
            )
            issued.append((draft.customer_id, invoice_id, number, t.amount_due))
            ids = {line.ref: next(line_ids) for line in draft.lines}
            discounts_of: dict[int, Decimal] = {}
            for line in draft.lines:
                if line.kind == DISCOUNT:
                    discounts_of[line.applies_to] = discounts_of.get(line.applies_to, Decimal(0)) + line.amount
            for position, line in enumerate(draft.lines, start=1):
                net = line.amount + discounts_of.get(line.ref, Decimal(0)) if line.kind == CHARGE else line.amount
                line_tax = sum((amount for _, amount in line.taxes), Decimal(0))
                line_rows.append(
                    (
                        ids[line.ref],
                        invoice_id,
                        position,
                        line.kind,
                        line.category,
                        line.description[:200],
                        line.subscription_id,
                        line.plan_id,
                        line.discount_id,
                        line.period_start,
                        line.period_end,
                        line.service_start,
                        line.service_end,
                        quantize(Decimal(line.quantity.numerator) / Decimal(line.quantity.denominator), 9),
                        line.unit_price,
                        line.fraction.numerator,
                        line.fraction.denominator,
                        line.billable_days,
                        line.amount,
                        quantize(net),
                        quantize(line_tax),
                        ids[line.applies_to] if line.applies_to else None,
                        line.credits_line_id,
                    )
                )
                for rate, amount in line.taxes:
                    tax_rows.append((invoice_id, ids[line.ref], rate.id, rate.name, rate.rate, amount))
        _copy(cursor, Invoice, INVOICE_COLUMNS, invoice_rows)
        _copy(cursor, InvoiceLine, LINE_COLUMNS, line_rows)
        _copy(cursor, InvoiceTax, TAX_COLUMNS, tax_rows)
        request_id = current_request_id() if current_request_id() != "-" else ""
        _copy(
            cursor,
            AuditEvent,
            AUDIT_COLUMNS,
            (
                (
                    now,
                    actor.type,
                    actor.id,
                    actor.label[:150],
                    "invoice.issued",
                    "billing.invoice",
                    str(invoice_id),
                    json.dumps(["number", "total", "amount_due"]),
                    number,
                    request_id,
                    None,
                )
                for _, invoice_id, number, _amount in issued
            ),
        )
        settlements = [s for d in drafts for s in d.settlements]
        if settlements:
            table = sql.Identifier(SubscriptionBillingState._meta.db_table)
            cursor.executemany(
                sql.SQL(
                    "INSERT INTO {t} "
                    "(subscription_id, setup_fee_billed, usage_billed_until, settled_until, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subscription_id) DO UPDATE SET "
                    "setup_fee_billed = EXCLUDED.setup_fee_billed, usage_billed_until = EXCLUDED.usage_billed_until, "
                    "settled_until = EXCLUDED.settled_until, updated_at = EXCLUDED.updated_at"
                ).format(t=table),
                [
                    (s.subscription_id, s.setup_fee_billed, s.usage_billed_until, s.settled_until, now)
                    for s in settlements
                ],
            )
    return issued
