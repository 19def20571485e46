"""Real issued invoices for the PDF, API, admin and worker tests: customers, plans, taxes,
discounts and usage entered through the services, then billed by a real billing run.

Per matrix tenant, the service address sits in a taxed jurisdiction:
- us_isp: US-IL, locality 17167 - "Illinois state tax" 6.25 % + "Springfield local tax" 1.75 %;
- eu_isp: DE-NW (tax-inclusive) - "Umsatzsteuer" 19 %;
- jp_isp: JP-13 - "Consumption tax" 10 %.

Nothing reads the clock: every date is fixed."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection

from billing import catalog
from billing.models import Invoice, UsageRecord
from billing.services import billing_run_execute
from compliance.audit import Actor
from customers.models import Customer, Plan, Subscription
from customers.services import subscription_activate
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory, SubscriptionFactory

ACTOR = Actor.system("test billing")
ACTIVATED = datetime.date(2026, 2, 10)  # a partial February, then March in advance
RUN_PERIOD = "2026-03"
ISSUE_DATE = datetime.date(2026, 3, 1)
GB = 10**9


@dataclass(frozen=True)
class Jurisdiction:
    country: str
    region: str
    locality: str
    taxes: tuple[tuple[str, str, str, str], ...]  # (name, rate, region, locality)
    price: Decimal
    capped_price: Decimal
    overage: Decimal
    fixed_discount: Decimal


JURISDICTIONS = {
    "USD": Jurisdiction(
        "US",
        "US-IL",
        "17167",
        (("Illinois state tax", "0.062500", "US-IL", ""), ("Springfield local tax", "0.017500", "US-IL", "17167")),
        Decimal("39.99"),
        Decimal("24.50"),
        Decimal("0.25"),
        Decimal("5.00"),
    ),
    "EUR": Jurisdiction(
        "DE", "DE-NW", "", (("Umsatzsteuer", "0.190000", "", ""),), Decimal("34.90"), Decimal("19.95"),
        Decimal("0.20"), Decimal("4.00"),
    ),
    "JPY": Jurisdiction(
        "JP", "JP-13", "", (("Consumption tax", "0.100000", "", ""),), Decimal("4980"), Decimal("2980"),
        Decimal("30"), Decimal("500"),
    ),
}  # fmt: skip


def jurisdiction(tenant=None) -> Jurisdiction:
    return JURISDICTIONS[(tenant or connection.tenant).currency]


def tax_rates_create(tenant=None) -> list:
    j = jurisdiction(tenant)
    return [
        catalog.tax_rate_create(
            actor=ACTOR,
            name=name,
            rate=Decimal(rate),
            country=j.country,
            region=region,
            locality=locality,
            categories=["service", "usage", "fee", "equipment"],
        )
        for name, rate, region, locality in j.taxes
    ]


def address_for(customer: Customer, tenant=None, **overrides):
    j = jurisdiction(tenant)
    values = {"country": j.country, "region": j.region, "locality": j.locality, **overrides}
    return ServiceAddressFactory(customer=customer, **values)


@dataclass
class Billed:
    """What `bill_customers` made: the customers (in order), their invoices and the plans."""

    customers: list[Customer]
    invoices: dict[int, Invoice]  # by customer id
    plans: dict[str, Plan]
    subscriptions: list[Subscription] = field(default_factory=list)
    run: object = None

    def invoice_of(self, customer: Customer) -> Invoice:
        return self.invoices[customer.pk]


def subscriber(plan: Plan, *, name: str | None = None, email: str | None = None, activated=ACTIVATED):
    """An active subscriber of `plan` at an address in the tenant's taxed jurisdiction."""
    extra = {k: v for k, v in (("name", name), ("email", email)) if v is not None}
    customer = CustomerFactory(**extra)
    address = address_for(customer)
    subscription = SubscriptionFactory(customer=customer, plan=plan, service_address=address)
    subscription = subscription_activate(subscription=subscription, activated_on=activated, actor=ACTOR)
    return customer, subscription


def bill_customers(
    *,
    count: int = 2,
    names: tuple[str, ...] = ("Grace Hopper", "Alan Turing", "Ada Lovelace", "Edsger Dijkstra"),
    with_taxes: bool = True,
    with_discounts: bool = True,
    with_usage: bool = True,
    period: str = RUN_PERIOD,
    issue_date: datetime.date = ISSUE_DATE,
) -> Billed:
    """`count` subscribers billed by one real run for `period`: the first on the capped plan (with
    a 50 % welcome discount for 3 months on that plan and 480 GB used in February, 180 GB over
    the cap), the second with a fixed discount of their own, the others plain."""
    j = jurisdiction()
    plans = {
        "fiber": Plan.objects.filter(code="fiber-t").first()
        or PlanFactory(code="fiber-t", name="Fiber 100", monthly_price=j.price, setup_fee=j.price),
        "capped": Plan.objects.filter(code="dsl-t").first()
        or PlanFactory(
            code="dsl-t",
            name="DSL 50 (300 GB)",
            monthly_price=j.capped_price,
            included_bytes=300 * GB,
            overage_rate_per_gb=j.overage,
        ),
    }
    if with_taxes:
        tax_rates_create()
    customers, subscriptions = [], []
    for i in range(count):
        plan = plans["capped"] if i == 0 else plans["fiber"]
        name = names[i % len(names)] + ("" if i < len(names) else f" {i}")
        customer, subscription = subscriber(plan, name=name)
        customers.append(customer)
        subscriptions.append(subscription)
    if with_discounts:
        welcome = catalog.discount_create(
            actor=ACTOR, name="Welcome 50% x 3 months", kind="percent", value=Decimal("50"), periods=3
        )
        catalog.discount_assign(discount=welcome, plan=plans["capped"], actor=ACTOR)
        if count > 1:
            loyal = catalog.discount_create(
                actor=ACTOR, name="Loyalty credit", kind="fixed", value=j.fixed_discount, priority=200
            )
            catalog.discount_assign(discount=loyal, customer=customers[1], actor=ACTOR)
    if with_usage:
        day = datetime.date(2026, 2, 10)
        UsageRecord.objects.bulk_create(
            UsageRecord(subscription=subscriptions[0], day=day + datetime.timedelta(days=n), bytes_in=20 * GB,
                        bytes_out=4 * GB)
            for n in range(18)
        )  # fmt: skip
        UsageRecord.objects.create(subscription=subscriptions[0], day=datetime.date(2026, 2, 28), bytes_in=48 * GB)
    run = billing_run_execute(period=period, issue_date=issue_date, actor=ACTOR, customer_ids=[c.pk for c in customers])
    invoices = {inv.customer_id: inv for inv in Invoice.objects.filter(customer__in=customers)}
    return Billed(customers=customers, invoices=invoices, plans=plans, subscriptions=subscriptions, run=run)
