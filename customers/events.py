"""Typed, explicit hooks for other apps to react to subscription changes (after commit).

`network` registers its RADIUS reactions at app start; `customers` never imports it."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubscriptionStatusChanged:
    schema: str
    subscription_id: int
    from_status: str
    to_status: str
    effective_on: datetime.date


@dataclass(frozen=True)
class SubscriptionPlanChanged:
    schema: str
    subscription_id: int
    from_plan_id: int | None
    to_plan_id: int
    effective_on: datetime.date


Event = SubscriptionStatusChanged | SubscriptionPlanChanged
_listeners: dict[type, list[Callable]] = {SubscriptionStatusChanged: [], SubscriptionPlanChanged: []}


def subscribe(event_type: type, listener: Callable) -> Callable:
    """Register `listener(event)` for `event_type` (call from an AppConfig.ready)."""
    if listener not in _listeners[event_type]:
        _listeners[event_type].append(listener)
    return listener


def unsubscribe(event_type: type, listener: Callable) -> None:
    if listener in _listeners[event_type]:
        _listeners[event_type].remove(listener)


def publish(event: Event) -> None:
    """Deliver `event` to its listeners once the current transaction commits (never before)."""

    def deliver():
        for listener in list(_listeners[type(event)]):
            try:
                listener(event)
            except Exception:  # one failing listener must not stop the others; it is logged
                logger.exception("listener %s failed for %s", getattr(listener, "__name__", listener), type(event))

    transaction.on_commit(deliver)


def current_schema() -> str:
    return connection.schema_name
