"""Demo data for the `acme` tenant: plans, customers with addresses, subscriptions in every state.

Idempotent: plans are matched by code and customers by e-mail (blind index), so a second run
creates nothing. Everything goes through the services, so it is validated and audited."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.utils import timezone

from compliance.audit import Actor

from . import services
from .models import Plan

DEMO_PLANS = [
    {"code": "fiber-100", "name": "Fiber 100", "download_kbps": 100_000, "upload_kbps": 20_000,
     "monthly_price": Decimal("39.990000"), "included_bytes": None, "setup_fee": Decimal("49.000000")},
    {"code": "fiber-500", "name": "Fiber 500", "download_kbps": 500_000, "upload_kbps": 100_000,
     "monthly_price": Decimal("59.990000"), "included_bytes": None, "setup_fee": Decimal("49.000000")},
    {"code": "dsl-capped", "name": "DSL 50 (300 GB)", "download_kbps": 50_000, "upload_kbps": 10_000,
     "monthly_price": Decimal("24.500000"), "included_bytes": 300 * 10**9,
     "overage_rate_per_gb": Decimal("0.250000"), "fair_use_download_kbps": 5_000, "fair_use_upload_kbps": 1_000},
    {"code": "business-1g", "name": "Business 1G", "download_kbps": 1_000_000, "upload_kbps": 1_000_000,
     "monthly_price": Decimal("249.000000"), "category": "business", "setup_fee": Decimal("199.000000")},
]
FIRST = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam"]
LAST = ["Nguyen", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka"]
STREETS = ["Maple Ave", "Oak St", "Harbor Rd", "Hillcrest Dr", "Main St", "Pine Ct"]


def seed_demo_customers(*, count: int = 24) -> dict[str, int]:
    actor = Actor.system("manage.py demo_seed")
    plans = {}
    for spec in DEMO_PLANS:
        plan = Plan.objects.filter(code=spec["code"]).first()
        plans[spec["code"]] = plan or services.plan_create(actor=actor, **spec)
    today = timezone.localdate()
    created = 0
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
        email = f"{first}.{last}.{i}@example.com".lower()
        if services.customer_by_email(email) is not None:
            continue
        business = i % 8 == 7
        customer = services.customer_create(
            actor=actor, name=f"{first} {last}" + (" Consulting LLC" if business else ""), email=email,
            phone=f"+1202555{1000 + i:04d}", kind="business" if business else "residential",
            date_of_birth=None if business else datetime.date(1960 + i, 1 + i % 12, 1 + i % 28),
            marketing_consent=i % 3 == 0,
        )
        address = services.service_address_create(
            customer=customer, street=f"{100 + i} {STREETS[i % len(STREETS)]}", city="Springfield",
            postal_code=f"627{i:02d}", country="US", region="US-IL", locality="17167", actor=actor,
        )
        plan = plans["business-1g" if business else list(plans)[i % 3]]
        subscription = services.subscription_create(customer=customer, plan=plan, service_address=address,
                                                    actor=actor)
        if i % 12 == 11:
            created += 1
            continue  # left pending: waiting for staff approval
        activated = today - datetime.timedelta(days=10 + 3 * i)
        subscription = services.subscription_activate(subscription=subscription, activated_on=activated, actor=actor)
        if i % 12 == 5:
            services.subscription_suspend(subscription=subscription, effective_on=today, actor=actor,
                                          reason="Demo: unpaid invoice")
        created += 1
    return {"plans": len(plans), "customers_created": created}
