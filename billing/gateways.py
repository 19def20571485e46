"""Payment gateways: the interface the back office charges and refunds cards through, and a local
sandbox that behaves like a real gateway, deterministically.

The gateway in use is `settings.ISP_PAYMENT_GATEWAY` (a dotted path to a class taking no
arguments); the default is the sandbox. A real gateway is an adapter class with the same two
methods. Gateways never see the database: `billing.payments.payment_charge` calls them outside
any transaction and records what they answered.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Protocol, runtime_checkable

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class GatewayResult:
    """What the gateway answered. `ok` False is a decline: nothing was charged (or refunded)."""

    ok: bool
    reference: str = ""
    message: str = ""


class GatewayError(Exception):
    """The gateway could not answer (network, outage, bug on its side). Whether anything was
    charged is unknown: retry with the same idempotency key, never with a new one."""


@runtime_checkable
class PaymentGateway(Protocol):
    def charge(self, amount: Decimal, currency: str, token: str, idempotency_key: str) -> GatewayResult:
        """Charge `amount` (in `currency`) to the card behind `token`. The same idempotency key
        always gives the same result (and never charges twice)."""
        ...

    def refund(self, reference: str, amount: Decimal) -> GatewayResult:
        """Give back `amount` of the charge `reference` (at most what is left of it)."""
        ...


# The sandbox's references are stable: the same idempotency key gives the same reference in
# every process (uuid5 of the key), as a real gateway's stored answer would.
SANDBOX_NAMESPACE = uuid.UUID("6f1d3b8e-5b0c-4d7e-9a51-2f0e8c4b7a10")
# Test card tokens and what the sandbox does with them (any other token: declined, unknown card).
SANDBOX_CARDS = {"tok_visa": "approve", "tok_declined": "decline", "tok_error": "error"}


class SandboxGateway:
    """A deterministic stand-in for a card gateway (development, demo, tests).

    - token "tok_visa": the charge succeeds with reference "sb_<uuid>";
    - token "tok_declined": declined, with a message; nothing charged;
    - token "tok_error": raises `GatewayError` (as an unreachable gateway would);
    - any other token: declined as an unknown card.
    The same idempotency key returns the same result and reference; reusing a key for another
    amount, currency or token is refused, as real gateways do. Refunds succeed for "sb_"
    references up to the amount charged (when this process saw the charge).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._charges: dict[str, tuple[tuple, GatewayResult]] = {}
        self._charged: dict[str, Decimal] = {}
        self._refunded: dict[str, Decimal] = {}

    def charge(self, amount: Decimal, currency: str, token: str, idempotency_key: str) -> GatewayResult:
        if not idempotency_key:
            raise ValueError("an idempotency key is required")
        request = (str(amount), currency, token)
        with self._lock:
            if idempotency_key in self._charges:
                seen_request, result = self._charges[idempotency_key]
                if seen_request != request:
                    return GatewayResult(ok=False, message="idempotency key reused with different parameters")
                return result
            behaviour = SANDBOX_CARDS.get(token, "unknown")
            if behaviour == "error":
                raise GatewayError("sandbox gateway unavailable (test card tok_error)")
            if behaviour == "approve":
                reference = f"sb_{uuid.uuid5(SANDBOX_NAMESPACE, idempotency_key).hex}"
                result = GatewayResult(ok=True, reference=reference, message="approved")
                self._charged[reference] = Decimal(amount)
            elif behaviour == "decline":
                result = GatewayResult(ok=False, message="card declined: insufficient funds")
            else:
                result = GatewayResult(ok=False, message="card declined: unknown card token")
            self._charges[idempotency_key] = (request, result)
            return result

    def refund(self, reference: str, amount: Decimal) -> GatewayResult:
        if not reference.startswith("sb_"):
            return GatewayResult(ok=False, message="unknown charge reference")
        if amount <= 0:
            return GatewayResult(ok=False, message="a refund amount is positive")
        with self._lock:
            charged = self._charged.get(reference)
            refunded = self._refunded.get(reference, Decimal(0))
            if charged is not None and refunded + amount > charged:
                return GatewayResult(ok=False, message="refund exceeds the amount charged")
            self._refunded[reference] = refunded + amount
        return GatewayResult(ok=True, reference=f"sbr_{uuid.uuid4().hex}", message="refunded")


@lru_cache(maxsize=8)
def _gateway_for(path: str) -> PaymentGateway:
    return import_string(path)()


def get_gateway() -> PaymentGateway:
    """The configured gateway (one instance per process and setting)."""
    return _gateway_for(settings.ISP_PAYMENT_GATEWAY)
