"""A customer's credit balance and its ledger. Callers hold the transaction; the balance row is
locked while it moves."""

from __future__ import annotations

from decimal import Decimal

from .domain.money import ZERO, ensure_money, quantize
from .models import BalanceMovement, CustomerBalance


def balance_for_update(customer_id: int) -> CustomerBalance:
    balance, _ = CustomerBalance.objects.select_for_update().get_or_create(customer_id=customer_id)
    return balance


def balance_add(*, customer_id: int, amount: Decimal, reason: str, **refs) -> CustomerBalance:
    """Add credit (overpayment, credit note, negative invoice). `refs`: invoice / payment / credit_note."""
    amount = quantize(ensure_money(amount))
    if amount <= 0:
        raise ValueError("credit added to a balance is positive")
    balance = balance_for_update(customer_id)
    balance.credit = quantize(balance.credit + amount)
    balance.save(update_fields=["credit"])
    BalanceMovement.objects.create(customer_id=customer_id, amount=amount, reason=reason, **refs)
    return balance


def balance_use(*, customer_id: int, up_to: Decimal, reason: str, **refs) -> Decimal:
    """Use credit for at most `up_to` (never below zero). Returns the amount used."""
    up_to = ensure_money(up_to)
    if up_to <= 0:
        return ZERO
    balance = balance_for_update(customer_id)
    used = min(balance.credit, up_to)
    if used > 0:
        balance.credit = quantize(balance.credit - used)
        balance.save(update_fields=["credit"])
        BalanceMovement.objects.create(customer_id=customer_id, amount=-used, reason=reason, **refs)
    return quantize(used)


def credit_of(customer_id: int) -> Decimal:
    return CustomerBalance.objects.filter(customer_id=customer_id).values_list("credit", flat=True).first() or ZERO
