"""The subscription state machine: pure, no ORM.

pending -> active -> suspended -> active
any (but terminated) -> terminated
"""

from __future__ import annotations

import datetime
import enum


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"

    @property
    def label(self) -> str:
        return self.value.capitalize()


S = SubscriptionStatus
TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    S.PENDING: frozenset({S.ACTIVE, S.TERMINATED}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.TERMINATED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.TERMINATED}),
    S.TERMINATED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: str, target: str):
        self.current, self.target = current, target
        allowed = ", ".join(sorted(TRANSITIONS[S(current)])) or "none - it is final"
        article = "An" if current[:1] in "aeiou" else "A"
        super().__init__(f"{article} {current} subscription cannot become {target} (allowed: {allowed}).")


def check_transition(current: str, target: str) -> None:
    if S(target) not in TRANSITIONS[S(current)]:
        raise IllegalTransition(current, target)


def check_dates(
    *,
    target: str,
    effective_on: datetime.date,
    activated_on: datetime.date | None,
    last_effective_on: datetime.date | None = None,
) -> None:
    """Dates that billing prorates on must be coherent: nothing takes effect before activation,
    nor before the previous status change (a suspended span never ends before it starts)."""
    if target in (S.SUSPENDED, S.TERMINATED) and activated_on is not None and effective_on < activated_on:
        raise ValueError(f"{target} cannot take effect on {effective_on}, before activation on {activated_on}.")
    if last_effective_on is not None and effective_on < last_effective_on:
        raise ValueError(
            f"{target} cannot take effect on {effective_on}, before the previous status change on {last_effective_on}."
        )
