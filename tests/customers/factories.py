"""factory-boy factories for the customers domain.

Every factory creates its row through the service that production uses (`plan_create`,
`customer_create`, `service_address_create`, `subscription_create`), so account numbers, data
keys, blind indexes and audit events are exactly what real rows get. Rows land in the schema
active on the connection. Money is a Decimal string; nothing reads the clock at import time.
"""

from __future__ import annotations

from decimal import Decimal

import factory

from compliance.audit import Actor
from customers.models import Customer, Plan, ServiceAddress, Subscription
from customers.services import (
    customer_create,
    plan_archive,
    plan_create,
    service_address_create,
    subscription_create,
)

FACTORY_ACTOR = Actor.system("test factory")


class _ServiceFactory(factory.django.DjangoModelFactory):
    """Creates through `service(actor=..., **fields)`; pass `actor=` to record another actor."""

    class Meta:
        abstract = True

    @classmethod
    def _service_create(cls, actor: Actor, **fields):
        raise NotImplementedError

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        actor = kwargs.pop("actor", FACTORY_ACTOR)
        return cls._service_create(actor, **kwargs)


class PlanFactory(_ServiceFactory):
    """An active residential plan; `PlanFactory(status=Plan.Status.ARCHIVED)` archives it after creation."""

    class Meta:
        model = Plan

    code = factory.Sequence(lambda n: f"fiber-{n}")
    name = factory.LazyAttribute(lambda plan: f"Fiber {plan.code}")
    download_kbps = 500_000
    upload_kbps = 100_000
    monthly_price = Decimal("49.990000")
    setup_fee = Decimal("0")
    overage_rate_per_gb = Decimal("0")
    category = Plan.Category.RESIDENTIAL

    @classmethod
    def _service_create(cls, actor: Actor, status: str = Plan.Status.ACTIVE, **fields) -> Plan:
        plan = plan_create(actor=actor, **fields)
        if status == Plan.Status.ARCHIVED:
            plan = plan_archive(plan=plan, actor=actor)
        return plan


class CustomerFactory(_ServiceFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Subscriber {n}")
    email = factory.Sequence(lambda n: f"subscriber{n}@example.net")
    phone = "+14155550123"
    kind = Customer.Kind.RESIDENTIAL

    @classmethod
    def _service_create(cls, actor: Actor, **fields) -> Customer:
        return customer_create(actor=actor, **fields)


class ServiceAddressFactory(_ServiceFactory):
    class Meta:
        model = ServiceAddress

    customer = factory.SubFactory(CustomerFactory)
    street = factory.Sequence(lambda n: f"{n + 1} Fiber Way")
    city = "Springfield"
    postal_code = "62701"
    country = "US"
    region = "US-IL"

    @classmethod
    def _service_create(cls, actor: Actor, **fields) -> ServiceAddress:
        return service_address_create(actor=actor, **fields)


class SubscriptionFactory(_ServiceFactory):
    """A pending subscription of a new customer, at that customer's address."""

    class Meta:
        model = Subscription

    customer = factory.SubFactory(CustomerFactory)
    plan = factory.SubFactory(PlanFactory)
    service_address = factory.SubFactory(ServiceAddressFactory, customer=factory.SelfAttribute("..customer"))

    @classmethod
    def _service_create(cls, actor: Actor, **fields) -> Subscription:
        return subscription_create(actor=actor, **fields)
