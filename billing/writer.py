"""Writing issued invoices in bulk: ids are taken from the sequences up front, then lines, taxes,
invoices and audit events go in with PostgreSQL COPY (the fastest path into the tables), billing
states with one upsert.

Runs inside the batch's transaction: everything of a batch commits together or not at all."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from fractions import Fraction

from django.db import connection
from django.utils import timezone
from psycopg import sql

from compliance.audit import Actor
from compliance.models import AUDIT_RECORD_FIELDS, AuditEvent
from customers.services import next_number_block
from isp.middleware import current_request_id

from .domain.invoice import CHARGE, DISCOUNT
from .domain.money import ZERO, quantize
from .engine import InvoiceDraft
from .models import Invoice, InvoiceLine, InvoiceTax, SubscriptionBillingState
from .selectors import pg_array

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
AUDIT_COLUMNS = AUDIT_RECORD_FIELDS  # the chain is the database's (compliance/models.py)


_AUDIT_FIELDS = json.dumps(["number", "total", "amount_due"])


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


ONE = Decimal(1)


def _quantity(value: Fraction) -> Decimal:
    if value.denominator == 1:
        return ONE if value.numerator == 1 else Decimal(value.numerator)
    return quantize(value, 9)


def _check_foreign_keys_now(cursor) -> None:
    """Check now, not at commit, the deferred foreign keys of the lines and taxes just written,
    except those to the invoices (not written yet): the same checks, done before the invoice
    numbers are taken, so that concurrent runs wait less on the numbering lock."""
    cursor.execute(
        "SELECT string_agg(format('%%I.%%I', n.nspname, c.conname), ', ') FROM pg_constraint c "
        "JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND c.condeferrable "
        "AND c.conrelid IN (%s::regclass, %s::regclass) AND c.confrelid <> %s::regclass",
        [InvoiceLine._meta.db_table, InvoiceTax._meta.db_table, Invoice._meta.db_table],
    )
    names = cursor.fetchone()[0]
    if names:
        cursor.execute(sql.SQL("SET CONSTRAINTS {} IMMEDIATE").format(sql.SQL(names)))


def line_and_tax_rows(drafts: list[InvoiceDraft], invoice_ids: list[int], line_ids: list[int]) -> tuple[list, list]:
    """The COPY rows (LINE_COLUMNS, TAX_COLUMNS) of the drafts' lines and taxes, with the ids
    taken for them (line ids in draft order). Pure."""
    line_rows: list[tuple] = []
    tax_rows: list[tuple] = []
    next_line_id = iter(line_ids).__next__
    add_line, add_tax = line_rows.append, tax_rows.append
    for draft, invoice_id in zip(drafts, invoice_ids, strict=True):
        lines = draft.lines
        ids = {line.ref: next_line_id() for line in lines}
        net_of = {line.ref: line.amount for line in lines if line.kind == CHARGE}
        for line in lines:
            if line.kind == DISCOUNT:
                net_of[line.applies_to] += line.amount  # sums of 6-place amounts: exact
        for position, line in enumerate(lines, 1):
            line_id = ids[line.ref]
            line_tax = ZERO
            for rate, amount in line.taxes:
                line_tax += amount
                add_tax((invoice_id, line_id, rate.id, rate.name, rate.rate, amount))
            quantity, fraction = line.quantity, line.fraction
            add_line(
                (
                    line_id,
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
                    ONE if quantity == 1 else _quantity(quantity),
                    line.unit_price,
                    fraction.numerator,
                    fraction.denominator,
                    line.billable_days,
                    line.amount,
                    net_of.get(line.ref, line.amount),
                    line_tax,
                    ids[line.applies_to] if line.applies_to else None,
                    line.credits_line_id,
                )
            )
    return line_rows, tax_rows


def write_invoices(
    drafts: list[InvoiceDraft],
    *,
    run_id: int | None,
    issue_date: datetime.date,
    currency: str,
    tax_inclusive: bool,
    payment_terms_days: int,
    actor: Actor,
    settled_at: datetime.datetime | None = None,
) -> list[tuple[int, int, str, Decimal]]:
    """Insert the drafts as issued invoices. Returns (customer id, invoice id, number, amount due).

    Order matters for concurrent runs: the invoice numbers (one row of the gap-free sequence,
    locked until the batch commits) are taken last, once lines, taxes and billing states are
    written - the foreign keys to the invoices are deferred to the commit - so that runs sharing
    a tenant hold that lock only for the invoices' own COPY and the commit."""
    if not drafts:
        return []
    now = timezone.now()
    settled_at = settled_at or now  # when the facts were read: the billing states' `updated_at`
    due_date = issue_date + datetime.timedelta(days=payment_terms_days)
    issued = []
    # The raw psycopg cursor (for COPY) raises psycopg's own errors: wrap them into Django's, so
    # that callers that isolate a refused write (`except DatabaseError`) see them.
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        invoice_ids = _take_ids(cursor, Invoice, len(drafts))
        line_ids = _take_ids(cursor, InvoiceLine, sum(len(d.lines) for d in drafts))
        line_rows, tax_rows = line_and_tax_rows(drafts, invoice_ids, line_ids)
        _copy(cursor, InvoiceLine, LINE_COLUMNS, line_rows)
        _copy(cursor, InvoiceTax, TAX_COLUMNS, tax_rows)
        settlements = [s for d in drafts for s in d.settlements]
        if settlements:
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {t} "
                    "(subscription_id, setup_fee_billed, usage_billed_until, settled_until, updated_at) "
                    "SELECT u.*, %s FROM unnest(%s::bigint[], %s::boolean[], %s::date[], %s::date[]) AS u "
                    "ON CONFLICT (subscription_id) DO UPDATE SET "
                    "setup_fee_billed = EXCLUDED.setup_fee_billed, usage_billed_until = EXCLUDED.usage_billed_until, "
                    "settled_until = EXCLUDED.settled_until, updated_at = EXCLUDED.updated_at"
                ).format(t=sql.Identifier(SubscriptionBillingState._meta.db_table)),
                [
                    settled_at,
                    pg_array(s.subscription_id for s in settlements),
                    pg_array(s.setup_fee_billed for s in settlements),
                    pg_array(s.usage_billed_until for s in settlements),
                    pg_array(s.settled_until for s in settlements),
                ],
            )

        _check_foreign_keys_now(cursor)
        numbers = next_number_block("invoice", str(issue_date.year), len(drafts))  # locked until commit
        invoice_rows = []
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
                    ZERO,
                    ZERO,
                    now,
                )
            )
            issued.append((draft.customer_id, invoice_id, number, t.amount_due))
        _copy(cursor, Invoice, INVOICE_COLUMNS, invoice_rows)
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
                    _AUDIT_FIELDS,
                    number,
                    request_id,
                    None,
                )
                for _, invoice_id, number, _amount in issued
            ),
        )
    return issued
