"""Reads for billing runs: everything a batch of customers needs, in a fixed number of queries.

Nothing here is per customer: a batch of 500 customers costs the same ~10 queries as one. The
batch queries are plain SQL with one array parameter (`= ANY(%s)`) instead of the ORM's
`IN (%s, %s, ...)` with one placeholder per id, and return tuples, not model instances: on a
10,000-customer run that is what the reads cost (see docs/billing.md, benchmark)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import F, Sum
from psycopg import sql

from customers.models import (
    Customer,
    Plan,
    ServiceAddress,
    Subscription,
    SubscriptionPlanChange,
    SubscriptionStatusChange,
)

from .domain import discounts as disc
from .domain import taxes as tax
from .domain.periods import Period, period_containing
from .domain.recurring import BilledCharge, PlanTerms
from .models import (
    CustomerBalance,
    Discount,
    DiscountAssignment,
    Invoice,
    InvoiceLine,
    SubscriptionBillingState,
    TaxRate,
    UsageRecord,
)

LIVE_STATUSES = ("active", "suspended", "terminated")
# A change is "recorded since the last run" when recorded after the start of the batch that settled
# the subscription, minus this margin: a change committed while that batch ran (not seen by it)
# was recorded at most one transaction's length before the batch started; the margin also absorbs
# clock differences between application servers. Re-examining too much is harmless (reconciling
# is idempotent); too little would lose a credit or a charge.
RECORDING_MARGIN = datetime.timedelta(hours=1)


@dataclass
class SubscriptionRow:
    id: int
    customer_id: int
    status: str
    activated_on: datetime.date
    terminated_on: datetime.date | None
    plan_id: int
    country: str
    region: str
    locality: str
    plans: list[tuple[datetime.date, int]] = field(default_factory=list)  # (effective_on, plan id)
    status_changes: list[tuple[datetime.date, str, str]] = field(default_factory=list)  # (effective, from, to)
    setup_fee_billed: bool = False
    usage_billed_until: datetime.date | None = None
    settled_until: datetime.date | None = None
    changed_since_settled: datetime.date | None = None  # earliest effective date recorded after the last run


@dataclass
class CustomerRow:
    id: int
    billing_day: int | None
    tax_exempt_certificate: str
    tax_exempt_until: datetime.date | None

    def is_exempt_on(self, day: datetime.date) -> bool:
        return bool(self.tax_exempt_certificate) and (self.tax_exempt_until is None or self.tax_exempt_until >= day)


@dataclass
class BatchFacts:
    customers: dict[int, CustomerRow]
    subscriptions: dict[int, list[SubscriptionRow]]  # by customer
    plans: dict[int, PlanTerms]
    billed: dict[int, list[BilledCharge]]  # by subscription
    discounts_by_customer: dict[int, list[disc.Discount]]
    discounts_by_plan: dict[int, list[disc.Discount]]
    usage: dict[tuple[int, datetime.date], int]  # (subscription, period start) -> bytes


def plan_terms() -> dict[int, PlanTerms]:
    return {
        p.id: PlanTerms(
            plan_id=p.id,
            name=p.name,
            price=p.monthly_price,
            setup_fee=p.setup_fee,
            included_bytes=p.included_bytes,
            overage_rate=p.overage_rate_per_gb,
        )
        for p in Plan.objects.all()
    }


def tax_rates() -> list[tax.TaxRate]:
    return [
        tax.TaxRate(
            id=r.id,
            name=r.name,
            rate=r.rate,
            country=r.country,
            region=r.region,
            locality=r.locality,
            compound=r.compound,
            categories=frozenset(r.categories),
            valid_from=r.valid_from,
            valid_until=r.valid_until,
        )
        for r in TaxRate.objects.order_by("id")
    ]


def billable_customer_ids() -> list[int]:
    """Customers that have, or had, a subscription that was ever activated."""
    return list(
        Subscription.objects.filter(activated_on__isnull=False)
        .order_by("customer_id")
        .values_list("customer_id", flat=True)
        .distinct()
    )


def _table(model) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def pg_array(values) -> str:
    """A PostgreSQL array literal of ints, dates or bools, to pass as ONE parameter (`%s::bigint[]`):
    much cheaper to send than a list adapted element by element, or one placeholder per id."""
    values = list(values)
    kinds = set(map(type, values))
    if kinds <= {int}:
        return "{" + ",".join(map(str, values)) + "}"
    out = []
    for value in values:
        if value is None:
            out.append("NULL")
        elif value is True or value is False:
            out.append("t" if value else "f")
        elif isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            out.append(value.isoformat())
        elif isinstance(value, int):
            out.append(str(value))
        else:
            raise TypeError(f"pg_array takes ints, dates and bools, not {type(value).__name__}")
    return "{" + ",".join(out) + "}"


def _fetch(query: str, params: list, **tables) -> list[tuple]:
    """Run one read; `{name}` in `query` is the table of the model passed as `name=`."""
    statement = sql.SQL(query).format(**{name: _table(model) for name, model in tables.items()})
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def lock_customers(customer_ids: list[int]) -> dict[int, int | None]:
    """Lock the customers' rows, in id order (concurrent runs queue instead of deadlocking), and
    return their billing days. Call inside the batch's transaction."""
    if not customer_ids:
        return {}
    rows = _fetch(
        "SELECT id, billing_day FROM {customer} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
        [pg_array(customer_ids)],
        customer=Customer,
    )
    return dict(rows)


def invoiced_customer_ids(customer_ids: list[int], period_starts: dict[int, datetime.date]) -> set[int]:
    if not customer_ids:
        return set()
    rows = _fetch(
        "SELECT customer_id, period_start FROM {invoice} "
        "WHERE customer_id = ANY(%s::bigint[]) AND period_start = ANY(%s::date[])",
        [pg_array(customer_ids), pg_array(sorted(set(period_starts.values())))],
        invoice=Invoice,
    )
    return {customer_id for customer_id, start in rows if period_starts.get(customer_id) == start}


def customers_with_credit(customer_ids: list[int]) -> set[int]:
    """Those of the customers whose credit balance is above zero."""
    rows = _fetch(
        "SELECT customer_id FROM {balance} WHERE customer_id = ANY(%s::bigint[]) AND credit > 0",
        [pg_array(customer_ids)],
        balance=CustomerBalance,
    )
    return {customer_id for (customer_id,) in rows}


def load_batch(customer_ids: list[int], *, tenant_billing_day: int, run_periods: dict[int, Period]) -> BatchFacts:
    customers = {
        cid: CustomerRow(cid, billing_day, certificate, until)
        for cid, billing_day, certificate, until in _fetch(
            "SELECT id, billing_day, tax_exempt_certificate, tax_exempt_until FROM {customer} "
            "WHERE id = ANY(%s::bigint[])",
            [pg_array(customer_ids)],
            customer=Customer,
        )
    }
    subs: dict[int, SubscriptionRow] = {}
    for sid, cid, status, activated_on, terminated_on, plan_id, country, region, locality in _fetch(
        "SELECT s.id, s.customer_id, s.status, s.activated_on, s.terminated_on, s.plan_id, "
        "a.country, a.region, a.locality FROM {subscription} s JOIN {address} a ON a.id = s.service_address_id "
        "WHERE s.customer_id = ANY(%s::bigint[]) AND s.activated_on IS NOT NULL AND s.status = ANY(%s) ORDER BY s.id",
        [pg_array(customer_ids), list(LIVE_STATUSES)],
        subscription=Subscription,
        address=ServiceAddress,
    ):
        subs[sid] = SubscriptionRow(sid, cid, status, activated_on, terminated_on, plan_id, country, region, locality)
    sub_ids = pg_array(subs)
    states: dict[int, tuple] = {}
    plan_changes, status_changes = [], []
    if subs:
        states = {
            row[0]: row[1:]
            for row in _fetch(
                "SELECT subscription_id, setup_fee_billed, usage_billed_until, settled_until "
                "FROM {state} WHERE subscription_id = ANY(%s::bigint[])",
                [sub_ids],
                state=SubscriptionBillingState,
            )
        }
        # `since`: recorded after the last run settled the subscription (see earliest_period)
        plan_changes = _fetch(
            "SELECT c.subscription_id, c.effective_on, c.to_plan_id, "
            "COALESCE(c.recorded_at > st.updated_at - %s, false) AS since "
            "FROM {change} c LEFT JOIN {state} st ON st.subscription_id = c.subscription_id "
            "AND st.subscription_id = ANY(%s::bigint[]) "  # index lookups, not a scan of every state
            "WHERE c.subscription_id = ANY(%s::bigint[]) ORDER BY c.subscription_id, c.effective_on, c.id",
            [RECORDING_MARGIN, sub_ids, sub_ids],
            change=SubscriptionPlanChange,
            state=SubscriptionBillingState,
        )
        # Only what billing reads: the changes into and out of suspension (suspended spans) and any
        # change recorded since the last run (how far back to reconcile) - not the whole history.
        status_changes = _fetch(
            "SELECT c.subscription_id, c.effective_on, c.from_status, c.to_status, "
            "COALESCE(c.changed_at > st.updated_at - %s, false) AS since "
            "FROM {change} c LEFT JOIN {state} st ON st.subscription_id = c.subscription_id "
            "AND st.subscription_id = ANY(%s::bigint[]) "
            "WHERE c.subscription_id = ANY(%s::bigint[]) AND (c.from_status = 'suspended' "
            "OR c.to_status = 'suspended' OR c.changed_at > st.updated_at - %s) "
            "ORDER BY c.subscription_id, c.effective_on, c.changed_at, c.id",
            [RECORDING_MARGIN, sub_ids, sub_ids, RECORDING_MARGIN],
            change=SubscriptionStatusChange,
            state=SubscriptionBillingState,
        )
    for sub_id, effective_on, to_plan_id, since in plan_changes:
        row = subs[sub_id]
        if row.plans and row.plans[-1][0] == effective_on:
            row.plans[-1] = (effective_on, to_plan_id)  # same day: the later one wins
        else:
            row.plans.append((effective_on, to_plan_id))
        if since:
            _note_change(row, effective_on)
    for sub_id, effective_on, from_status, to_status, since in status_changes:
        row = subs[sub_id]
        row.status_changes.append((effective_on, from_status, to_status))
        if since:
            _note_change(row, effective_on)
    for row in subs.values():
        if not row.plans:  # activated before plan history existed: the current plan throughout
            row.plans = [(row.activated_on, row.plan_id)]
        state = states.get(row.id)
        if state:
            row.setup_fee_billed, row.usage_billed_until, row.settled_until = state
    by_customer: dict[int, list[SubscriptionRow]] = defaultdict(list)
    for row in subs.values():
        by_customer[row.customer_id].append(row)

    billed = _billed_charges(subs, tenant_billing_day, customers, run_periods)
    discounts_by_customer, discounts_by_plan = _discounts(customer_ids)
    usage = _usage(subs, customers, tenant_billing_day, run_periods)
    return BatchFacts(
        customers=customers,
        subscriptions=dict(by_customer),
        plans=plan_terms(),
        billed=billed,
        discounts_by_customer=discounts_by_customer,
        discounts_by_plan=discounts_by_plan,
        usage=usage,
    )


def _note_change(row: SubscriptionRow, effective_on: datetime.date) -> None:
    """A change recorded after the last run settled the subscription, effective on `effective_on`."""
    if row.changed_since_settled is None or effective_on < row.changed_since_settled:
        row.changed_since_settled = effective_on


def earliest_period(row: SubscriptionRow, billing_day: int) -> Period:
    """The first period that may still need reconciling: the one after what the last run settled
    (`settled_until`: every period starting before it was billed with all that was known when
    that run's batch started), or earlier when a change recorded since then takes effect earlier.
    Never settled: the period of the activation."""
    first = period_containing(row.activated_on, billing_day)
    candidates = [d for d in (row.settled_until, row.changed_since_settled) if d is not None]
    if row.settled_until is None or not candidates:
        return first
    horizon = period_containing(min(candidates), billing_day)
    return max(first, horizon)


def _billed_charges(
    subs: dict[int, SubscriptionRow],
    tenant_billing_day: int,
    customers: dict[int, CustomerRow],
    run_periods: dict[int, Period],
) -> dict[int, list[BilledCharge]]:
    if not subs:
        return {}
    horizon = {
        sub_id: earliest_period(row, customers[row.customer_id].billing_day or tenant_billing_day).start
        for sub_id, row in subs.items()
    }
    lines = [
        line
        for line in _fetch(
            "SELECT id, subscription_id, period_start, period_end, service_start, service_end, plan_id, net_amount, "
            "billable_days FROM {line} WHERE subscription_id = ANY(%s::bigint[]) AND kind = %s AND period_start >= %s",
            [pg_array(subs), InvoiceLine.Kind.CHARGE.value, min(horizon.values())],
            line=InvoiceLine,
        )
        if line[2] >= horizon[line[1]]
    ]
    credited: dict[int, list[tuple[datetime.date, datetime.date]]] = defaultdict(list)
    if lines:
        for credits_line_id, start, end in _fetch(
            "SELECT credits_line_id, service_start, service_end FROM {line} WHERE credits_line_id = ANY(%s::bigint[]) "
            "AND kind = %s",
            [pg_array(line[0] for line in lines), InvoiceLine.Kind.CREDIT.value],
            line=InvoiceLine,
        ):
            credited[credits_line_id].append((start, end))
    out: dict[int, list[BilledCharge]] = defaultdict(list)
    for line_id, sub_id, period_start, period_end, start, end, plan_id, net_amount, billable_days in lines:
        out[sub_id].append(
            BilledCharge(
                line_id=line_id,
                period=Period(period_start, period_end),
                start=start,
                end=end,
                plan_id=plan_id,
                net_amount=net_amount,
                billable_days=billable_days,
                credited=tuple(sorted(credited.get(line_id, []))),
            )
        )
    return dict(out)


def _discounts(customer_ids: list[int]) -> tuple[dict[int, list[disc.Discount]], dict[int, list[disc.Discount]]]:
    """The batch's customers' discounts and every plan's (each discount built once)."""
    by_customer: dict[int, list[disc.Discount]] = defaultdict(list)
    by_plan: dict[int, list[disc.Discount]] = defaultdict(list)
    built: dict[int, disc.Discount] = {}
    for customer_id, plan_id, did, kind, value, priority, stackable, valid_from, valid_until, periods in _fetch(
        "SELECT a.customer_id, a.plan_id, d.id, d.kind, d.value, d.priority, d.stackable, d.valid_from, "
        "d.valid_until, d.periods FROM {assignment} a JOIN {discount} d ON d.id = a.discount_id "
        "WHERE a.customer_id = ANY(%s::bigint[]) OR a.plan_id IS NOT NULL ORDER BY a.id",
        [pg_array(customer_ids)],
        assignment=DiscountAssignment,
        discount=Discount,
    ):
        if did not in built:
            built[did] = disc.Discount(
                id=did,
                kind=kind,
                value=value,
                priority=priority,
                stackable=stackable,
                valid_from=valid_from,
                valid_until=valid_until,
                periods=periods,
            )
        target = by_customer[customer_id] if customer_id else by_plan[plan_id]
        target.append(built[did])
    return dict(by_customer), dict(by_plan)


def usage_periods(row: SubscriptionRow, billing_day: int, run_period: Period) -> list[Period]:
    """Past periods whose usage is not billed yet (usage bills in arrears, once)."""
    start = row.usage_billed_until or row.activated_on
    current = period_containing(start, billing_day)
    out = []
    while current.end <= run_period.start:
        if row.terminated_on is None or current.start < row.terminated_on:
            out.append(current)
        current = current.next()
    return out


def _usage(
    subs: dict[int, SubscriptionRow],
    customers: dict[int, CustomerRow],
    tenant_billing_day: int,
    run_periods: dict[int, Period],
) -> dict[tuple[int, datetime.date], int]:
    wanted: dict[int, list[Period]] = {}
    for sub_id, row in subs.items():
        billing_day = customers[row.customer_id].billing_day or tenant_billing_day
        periods = usage_periods(row, billing_day, run_periods[row.customer_id])
        if periods:
            wanted[sub_id] = periods
    if not wanted:
        return {}
    first_day = min(p.start for periods in wanted.values() for p in periods)
    last_day = max(p.end for periods in wanted.values() for p in periods)
    out: dict[tuple[int, datetime.date], int] = defaultdict(int)
    for sub_id, day, total in _fetch(
        "SELECT subscription_id, day, bytes_in::numeric + bytes_out FROM {usage} "
        "WHERE subscription_id = ANY(%s::bigint[]) AND day >= %s AND day < %s",
        [pg_array(wanted), first_day, last_day],
        usage=UsageRecord,
    ):
        for period in wanted[sub_id]:
            if period.contains(day):
                out[(sub_id, period.start)] += int(total)
                break
    return dict(out)


def usage_bytes(subscription_id: int, period: Period) -> int:
    """Bytes a subscription used in a period (the usage selector other apps feed)."""
    total = UsageRecord.objects.filter(
        subscription_id=subscription_id, day__gte=period.start, day__lt=period.end
    ).aggregate(total=Sum(F("bytes_in") + F("bytes_out")))["total"]
    return int(total or 0)
