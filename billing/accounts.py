"""Selectors: where a customer's account stands (credit balance, open and overdue invoices) and
which invoices are overdue. Reads only; one query each.

An invoice is overdue when it is issued, has something left to pay (balance_due > 0) and its
due date is before today in the tenant's time zone - the day dunning counts as 1 day overdue."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from .domain.money import ZERO
from .dunning import tenant_today
from .models import BalanceMovement, CustomerBalance, Invoice

OPEN_AMOUNT = ExpressionWrapper(
    F("amount_due") - F("credit_applied") - F("amount_paid"), output_field=DecimalField(max_digits=20, decimal_places=6)
)


def invoices_overdue(queryset: QuerySet[Invoice] | None = None, *, today: datetime.date | None = None):
    queryset = Invoice.objects.all() if queryset is None else queryset
    return queryset.alias(open_amount=OPEN_AMOUNT).filter(
        status=Invoice.Status.ISSUED, open_amount__gt=0, due_date__lt=today or tenant_today()
    )


def invoices_not_overdue(queryset: QuerySet[Invoice] | None = None, *, today: datetime.date | None = None):
    queryset = Invoice.objects.all() if queryset is None else queryset
    return queryset.alias(open_amount=OPEN_AMOUNT).exclude(
        status=Invoice.Status.ISSUED, open_amount__gt=0, due_date__lt=today or tenant_today()
    )


@dataclass
class AccountStanding:
    customer_id: int
    currency: str
    credit: Decimal
    open_amount: Decimal
    overdue_amount: Decimal
    open_invoices: int
    movements: list[BalanceMovement] = field(default_factory=list)


def account_standing(customer_id: int, *, with_ledger: bool = True) -> AccountStanding:
    today = tenant_today()
    money = DecimalField(max_digits=20, decimal_places=6)
    totals = (
        Invoice.objects.filter(customer_id=customer_id, status=Invoice.Status.ISSUED)
        .alias(left_to_pay=OPEN_AMOUNT)
        .filter(left_to_pay__gt=0)
        .aggregate(
            open_amount=Coalesce(Sum(OPEN_AMOUNT), Value(ZERO, output_field=money)),
            overdue_amount=Coalesce(Sum(OPEN_AMOUNT, filter=Q(due_date__lt=today)), Value(ZERO, output_field=money)),
            open_invoices=Count("id"),
        )
    )
    credit = CustomerBalance.objects.filter(customer_id=customer_id).values_list("credit", flat=True).first()
    movements = list(BalanceMovement.objects.filter(customer_id=customer_id).order_by("id")) if with_ledger else []
    return AccountStanding(
        customer_id=customer_id,
        currency=connection.tenant.currency,
        credit=credit if credit is not None else ZERO,
        movements=movements,
        **totals,
    )
