"""Subscription lifecycle: the pure state machine, then the services that move real rows.

pending -> active -> suspended -> active; any but terminated -> terminated. Billing prorates on
the dates these transitions record, and dunning drives suspension and reactivation, so every
(from, to) pair is pinned here: legal moves record history, audit and events; illegal ones
change nothing at all.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from compliance.audit import Actor
from compliance.models import AuditEvent
from customers import events
from customers.domain.lifecycle import IllegalTransition, check_dates, check_transition
from customers.models import Customer, Subscription, SubscriptionPlanChange, SubscriptionStatusChange
from customers.services import (
    subscription_activate,
    subscription_change_plan,
    subscription_reactivate,
    subscription_suspend,
    subscription_terminate,
)
from tests.customers.factories import PlanFactory, SubscriptionFactory

STATUSES = ("pending", "active", "suspended", "terminated")
# The golden table, written out here independently of customers.domain.lifecycle.TRANSITIONS.
LEGAL = frozenset(
    {
        ("pending", "active"),
        ("pending", "terminated"),
        ("active", "suspended"),
        ("active", "terminated"),
        ("suspended", "active"),
        ("suspended", "terminated"),
    }
)
ALL_PAIRS = [(current, target) for current in STATUSES for target in STATUSES]

STAFF = Actor(type=AuditEvent.ActorType.USER, id="7", label="noc.operator")
DAY = datetime.timedelta(days=1)
ACTIVATED = datetime.date(2025, 3, 1)
SUSPENDED = datetime.date(2025, 3, 10)
REACTIVATED = datetime.date(2025, 3, 20)
TERMINATED = datetime.date(2025, 4, 1)
MOVE_ON = datetime.date(2025, 5, 1)  # after every setup date: only the status decides


# --- the pure domain ---------------------------------------------------------------------------
@pytest.mark.business_logic_protection
@pytest.mark.behavior
@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_check_transition_allows_exactly_the_golden_table(current, target):
    if (current, target) in LEGAL:
        assert check_transition(current, target) is None
    else:
        with pytest.raises(IllegalTransition, match=f"{current} subscription cannot become {target}") as exc:
            check_transition(current, target)
        assert (exc.value.current, exc.value.target) == (current, target)


@pytest.mark.business_logic_protection
@pytest.mark.behavior
def test_a_terminated_subscription_is_told_its_state_is_final():
    with pytest.raises(IllegalTransition, match="none - it is final"):
        check_transition("terminated", "active")


class SubscriptionLifecycleMachine(RuleBasedStateMachine):
    """A model subscription driven through check_transition + check_dates, as the services do.

    The model decides from the golden table and the date rules written here; the domain must agree
    on every step, legal or not."""

    def __init__(self):
        super().__init__()
        self.status = "pending"
        self.activated_on: datetime.date | None = None
        self.last_effective_on: datetime.date | None = None
        self.first_activation: datetime.date | None = None
        self.was_terminated = False
        self.timeline: list[tuple[str, str, datetime.date]] = []

    def _date_refusal_expected(self, target: str, effective_on: datetime.date) -> bool:
        before_activation = (
            target in ("suspended", "terminated") and self.activated_on is not None and effective_on < self.activated_on
        )
        before_previous_change = self.last_effective_on is not None and effective_on < self.last_effective_on
        return before_activation or before_previous_change

    @rule(to_status=st.sampled_from(STATUSES), offset_days=st.integers(min_value=-60, max_value=60))
    def attempt(self, to_status, offset_days):
        effective_on = ACTIVATED + datetime.timedelta(days=offset_days)
        if (self.status, to_status) in LEGAL:
            check_transition(self.status, to_status)
        else:
            with pytest.raises(IllegalTransition):
                check_transition(self.status, to_status)
            return
        if self._date_refusal_expected(to_status, effective_on):
            with pytest.raises(ValueError, match="cannot take effect"):
                check_dates(
                    target=to_status,
                    effective_on=effective_on,
                    activated_on=self.activated_on,
                    last_effective_on=self.last_effective_on,
                )
            return
        check_dates(
            target=to_status,
            effective_on=effective_on,
            activated_on=self.activated_on,
            last_effective_on=self.last_effective_on,
        )
        self.timeline.append((self.status, to_status, effective_on))
        if to_status == "active" and self.activated_on is None:
            self.activated_on = self.first_activation = effective_on
        self.status = to_status
        self.last_effective_on = effective_on
        self.was_terminated = self.was_terminated or to_status == "terminated"

    @invariant()
    def terminated_is_absorbing(self):
        assert not self.was_terminated or self.status == "terminated"

    @invariant()
    def a_live_subscription_has_an_activation_date(self):
        if self.status in ("active", "suspended"):
            assert self.activated_on is not None

    @invariant()
    def the_activation_date_is_set_once(self):
        assert self.activated_on == self.first_activation

    @invariant()
    def the_timeline_only_moves_forward_through_legal_steps(self):
        dates = [on for _, _, on in self.timeline]
        assert dates == sorted(dates)
        assert all((current, target) in LEGAL for current, target, _ in self.timeline)
        if self.activated_on is not None:
            assert all(on >= self.activated_on for _, target, on in self.timeline if target != "active")


TestSubscriptionLifecycleMachine = pytest.mark.business_logic_protection(
    pytest.mark.property(SubscriptionLifecycleMachine.TestCase)
)


# --- the services, on real rows in every tenant -------------------------------------------------
def _activate(subscription, on):
    return subscription_activate(subscription=subscription, activated_on=on, actor=STAFF, reason="installed")


def _suspend(subscription, on):
    return subscription_suspend(subscription=subscription, effective_on=on, actor=STAFF, reason="invoice overdue")


def _reactivate(subscription, on):
    return subscription_reactivate(subscription=subscription, effective_on=on, actor=STAFF, reason="invoice paid")


def _terminate(subscription, on):
    return subscription_terminate(subscription=subscription, terminated_on=on, actor=STAFF, reason="moved away")


MOVES: dict[str, tuple[str, Callable]] = {
    "activate": ("active", _activate),
    "suspend": ("suspended", _suspend),
    "reactivate": ("active", _reactivate),
    "terminate": ("terminated", _terminate),
}
REASONS = {
    "activate": "installed",
    "suspend": "invoice overdue",
    "reactivate": "invoice paid",
    "terminate": "moved away",
}
LEGAL_MOVES = {
    ("pending", "activate"): ("subscription.activated", ["activated_on", "status"]),
    ("pending", "terminate"): ("subscription.terminated", ["status", "terminated_on"]),
    ("active", "suspend"): ("subscription.suspended", ["status"]),
    ("active", "terminate"): ("subscription.terminated", ["status", "terminated_on"]),
    ("suspended", "reactivate"): ("subscription.reactivated", ["status"]),
    ("suspended", "terminate"): ("subscription.terminated", ["status", "terminated_on"]),
}
ILLEGAL_MOVES = sorted({(current, move) for current in STATUSES for move in MOVES} - set(LEGAL_MOVES))


def subscription_in(status: str) -> Subscription:
    """A subscription brought to `status` through the services (history and dates included)."""
    subscription = SubscriptionFactory()
    if status in ("active", "suspended", "terminated"):
        subscription = _activate(subscription, ACTIVATED)
    if status == "suspended":
        subscription = _suspend(subscription, SUSPENDED)
    if status == "terminated":
        subscription = _terminate(subscription, TERMINATED)
    assert subscription.status == status
    return subscription


def footprint(subscription: Subscription) -> dict:
    """Everything a transition may write, as plain values."""
    return {
        "row": Subscription.objects.filter(pk=subscription.pk)
        .values("status", "activated_on", "terminated_on", "plan_id", "updated_at")
        .get(),
        "status_changes": list(SubscriptionStatusChange.objects.filter(subscription=subscription).values()),
        "plan_changes": list(SubscriptionPlanChange.objects.filter(subscription=subscription).values()),
        "audit_events": AuditEvent.objects.count(),
        "customer_status": Customer.objects.get(pk=subscription.customer_id).status,
    }


def subscription_audit(subscription: Subscription) -> AuditEvent:
    return AuditEvent.objects.filter(object_type="customers.subscription", object_id=str(subscription.pk)).latest("id")


@pytest.fixture
def received():
    """Events delivered to a listener registered for the test (and removed after it)."""
    got: list = []
    listener = got.append
    events.subscribe(events.SubscriptionStatusChanged, listener)
    events.subscribe(events.SubscriptionPlanChanged, listener)
    yield got
    events.unsubscribe(events.SubscriptionStatusChanged, listener)
    events.unsubscribe(events.SubscriptionPlanChanged, listener)


@pytest.mark.business_logic_protection
@pytest.mark.contract
def test_the_service_moves_cover_every_from_to_pair_of_the_golden_table():
    legal_pairs = {(current, MOVES[move][0]) for current, move in LEGAL_MOVES}
    tested_pairs = legal_pairs | {(current, MOVES[move][0]) for current, move in ILLEGAL_MOVES}
    assert legal_pairs == LEGAL
    # Every pair but "-> pending" goes through a service; no service can lead back to pending.
    assert tested_pairs == {(current, target) for current, target in ALL_PAIRS if target != "pending"}
    assert all(target != "pending" for target, _ in MOVES.values())


@pytest.mark.business_logic_protection
@pytest.mark.data_safety
@pytest.mark.behavior
@pytest.mark.parametrize(("from_status", "move"), sorted(LEGAL_MOVES))
def test_a_legal_transition_records_its_history_and_an_audit_event_of_field_names(tenant, from_status, move):
    # given
    subscription = subscription_in(from_status)
    target, service = MOVES[move]
    expected_action, expected_fields = LEGAL_MOVES[(from_status, move)]
    changes_before = SubscriptionStatusChange.objects.filter(subscription=subscription).count()
    audits_before = AuditEvent.objects.count()

    # when
    moved = service(subscription, MOVE_ON)

    # then
    stored = Subscription.objects.get(pk=subscription.pk)
    assert moved.status == stored.status == target
    assert SubscriptionStatusChange.objects.filter(subscription=subscription).count() == changes_before + 1
    change = SubscriptionStatusChange.objects.filter(subscription=subscription).latest("id")
    assert (change.from_status, change.to_status, change.effective_on) == (from_status, target, MOVE_ON)
    assert (change.actor_label, change.reason) == ("noc.operator", REASONS[move])

    assert AuditEvent.objects.count() == audits_before + 1
    audit = subscription_audit(subscription)
    assert audit.action == expected_action
    assert (audit.actor_type, audit.actor_id, audit.actor_label) == ("user", "7", "noc.operator")
    assert audit.changed_fields == expected_fields
    assert audit.reason == REASONS[move]
    # names, never values
    field_names = {field.name for field in Subscription._meta.get_fields()}
    assert set(audit.changed_fields) <= field_names
    assert MOVE_ON.isoformat() not in repr(AuditEvent.objects.filter(pk=audit.pk).values().get())


@pytest.mark.business_logic_protection
@pytest.mark.data_safety
@pytest.mark.behavior
@pytest.mark.parametrize(("from_status", "move"), ILLEGAL_MOVES)
def test_an_illegal_transition_is_refused_clearly_and_changes_nothing(
    tenant, from_status, move, django_capture_on_commit_callbacks
):
    # given
    subscription = subscription_in(from_status)
    _, service = MOVES[move]
    before = footprint(subscription)

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationError) as exc:
        service(subscription, MOVE_ON)

    # then
    assert list(exc.value.message_dict) == ["status"]
    assert from_status in exc.value.message_dict["status"][0]
    assert footprint(subscription) == before
    assert callbacks == []


@pytest.mark.business_logic_protection
@pytest.mark.data_safety
@pytest.mark.behavior
def test_activating_a_stale_copy_of_a_since_suspended_subscription_is_refused(tenant):
    # given: a copy loaded while pending; meanwhile it was activated and then suspended by dunning
    stale = subscription_in("pending")
    _suspend(_activate(Subscription.objects.get(pk=stale.pk), ACTIVATED), SUSPENDED)
    before = footprint(stale)

    # when
    with pytest.raises(ValidationError, match="suspended subscription is reactivated, not activated"):
        _activate(stale, MOVE_ON)

    # then: still suspended, and the unpaid suspension was not lifted
    assert footprint(stale) == before


@pytest.mark.business_logic_protection
@pytest.mark.data_safety
@pytest.mark.behavior
def test_reactivation_decides_on_the_stored_status_not_on_the_callers_copy(tenant):
    # given: a pending subscription whose caller's copy claims it is suspended
    subscription = subscription_in("pending")
    subscription.status = "suspended"
    before = footprint(subscription)

    # when
    with pytest.raises(ValidationError, match="it is pending"):
        _reactivate(subscription, MOVE_ON)

    # then: reactivation did not activate it
    assert footprint(subscription) == before


@pytest.mark.business_logic_protection
@pytest.mark.data_safety
@pytest.mark.behavior
@pytest.mark.parametrize("move", ["suspend", "terminate"])
def test_suspension_and_termination_need_a_reason(tenant, move):
    subscription = subscription_in("active")
    before = footprint(subscription)
    service = subscription_suspend if move == "suspend" else subscription_terminate
    date_arg = "effective_on" if move == "suspend" else "terminated_on"

    with pytest.raises(ValidationError, match="Say why") as exc:
        service(subscription=subscription, actor=STAFF, reason="  ", **{date_arg: MOVE_ON})

    assert list(exc.value.message_dict) == ["reason"]
    assert footprint(subscription) == before


# --- dates billing prorates on -----------------------------------------------------------------
@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
def test_the_activation_date_is_set_once_and_kept_through_suspension_and_reactivation(tenant):
    # given
    subscription = subscription_in("pending")
    assert (subscription.activated_on, subscription.terminated_on) == (None, None)
    assert subscription.customer.status == Customer.Status.PROSPECT

    # when
    reactivated = _reactivate(_suspend(_activate(subscription, ACTIVATED), SUSPENDED), REACTIVATED)

    # then
    stored = Subscription.objects.get(pk=subscription.pk)
    assert reactivated.activated_on == stored.activated_on == ACTIVATED
    assert stored.terminated_on is None
    assert list(stored.status_changes.values_list("from_status", "to_status", "effective_on")) == [
        ("pending", "active", ACTIVATED),
        ("active", "suspended", SUSPENDED),
        ("suspended", "active", REACTIVATED),
    ]
    # one initial plan row, at activation; reactivation does not start a new plan period
    assert list(stored.plan_changes.values_list("from_plan", "to_plan", "effective_on")) == [
        (None, stored.plan_id, ACTIVATED)
    ]
    assert Customer.objects.get(pk=stored.customer_id).status == Customer.Status.ACTIVE


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
def test_termination_records_the_first_unbilled_day_and_keeps_the_activation_date(tenant):
    subscription = subscription_in("suspended")

    terminated = _terminate(subscription, TERMINATED)

    stored = Subscription.objects.get(pk=subscription.pk)
    assert terminated.terminated_on == stored.terminated_on == TERMINATED
    assert stored.activated_on == ACTIVATED
    assert stored.status == "terminated"


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
def test_a_pending_subscription_terminated_before_installation_was_never_billable(tenant):
    subscription = subscription_in("pending")

    _terminate(subscription, TERMINATED)

    stored = Subscription.objects.get(pk=subscription.pk)
    assert (stored.status, stored.activated_on, stored.terminated_on) == ("terminated", None, TERMINATED)
    assert not stored.plan_changes.exists()


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
def test_a_termination_on_the_activation_day_leaves_zero_billable_days(tenant):
    subscription = subscription_in("active")

    _terminate(subscription, ACTIVATED)

    stored = Subscription.objects.get(pk=subscription.pk)
    assert stored.activated_on == stored.terminated_on == ACTIVATED


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
@pytest.mark.parametrize("move", ["suspend", "terminate"])
def test_an_effective_date_before_activation_is_refused(tenant, move):
    subscription = subscription_in("active")
    before = footprint(subscription)

    with pytest.raises(ValidationError, match=f"before activation on {ACTIVATED}") as exc:
        MOVES[move][1](subscription, ACTIVATED - DAY)

    assert list(exc.value.message_dict) == ["effective_on"]
    assert footprint(subscription) == before


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
@pytest.mark.parametrize("move", ["reactivate", "terminate"])
def test_a_status_change_cannot_take_effect_before_the_suspension_it_follows(tenant, move):
    # given: suspended on SUSPENDED; a change dated earlier would make the suspended span negative
    subscription = subscription_in("suspended")
    before = footprint(subscription)

    # when
    with pytest.raises(ValidationError, match=f"before the previous status change on {SUSPENDED}") as exc:
        MOVES[move][1](subscription, SUSPENDED - DAY)

    # then
    assert list(exc.value.message_dict) == ["effective_on"]
    assert footprint(subscription) == before


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
def test_a_same_day_suspension_and_reactivation_is_a_zero_length_span(tenant):
    subscription = subscription_in("suspended")

    _reactivate(subscription, SUSPENDED)

    assert list(Subscription.objects.get(pk=subscription.pk).status_changes.values_list("to_status", "effective_on"))[
        -2:
    ] == [("suspended", SUSPENDED), ("active", SUSPENDED)]


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("from_status", "values", "constraint"),
    [
        ("terminated", {"terminated_on": ACTIVATED - DAY}, "subscription_terminated_after_activated"),
        ("pending", {"status": "active"}, "subscription_live_has_activation_date"),
        ("active", {"status": "suspended", "activated_on": None}, "subscription_live_has_activation_date"),
        ("active", {"status": "terminated"}, "subscription_terminated_has_date"),
    ],
)
def test_the_database_refuses_incoherent_billing_dates_written_around_the_services(
    tenant, from_status, values, constraint
):
    subscription = subscription_in(from_status)
    before = footprint(subscription)

    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Subscription.objects.filter(pk=subscription.pk).update(**values)

    assert footprint(subscription) == before


# --- plan changes ------------------------------------------------------------------------------
def _change_plan(subscription, plan, on):
    return subscription_change_plan(subscription=subscription, new_plan=plan, effective_on=on, actor=STAFF)


@pytest.mark.billing_core
@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_plan_changes_are_appended_to_the_history_never_overwritten(tenant):
    # given
    basic, faster, fastest = PlanFactory(), PlanFactory(), PlanFactory()
    subscription = _activate(SubscriptionFactory(plan=basic), ACTIVATED)

    # when
    _change_plan(subscription, faster, datetime.date(2025, 4, 1))
    changed = _change_plan(subscription, fastest, datetime.date(2025, 5, 1))

    # then
    assert changed.plan == fastest
    assert Subscription.objects.get(pk=subscription.pk).plan_id == fastest.pk
    assert list(
        SubscriptionPlanChange.objects.filter(subscription=subscription).values_list(
            "from_plan", "to_plan", "effective_on", "actor_label"
        )
    ) == [
        (None, basic.pk, ACTIVATED, "noc.operator"),
        (basic.pk, faster.pk, datetime.date(2025, 4, 1), "noc.operator"),
        (faster.pk, fastest.pk, datetime.date(2025, 5, 1), "noc.operator"),
    ]
    audit = subscription_audit(subscription)
    assert (audit.action, audit.changed_fields, audit.actor_label) == (
        "subscription.plan_changed",
        ["plan"],
        "noc.operator",
    )


@pytest.mark.billing_core
@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_a_pending_subscription_switches_plan_freely_and_activation_starts_the_history(tenant, received):
    # given
    basic, faster = PlanFactory(), PlanFactory()
    subscription = SubscriptionFactory(plan=basic)

    # when: switched before installation - nothing was billed on the old plan
    _change_plan(subscription, faster, datetime.date(2025, 2, 1))

    # then
    assert not SubscriptionPlanChange.objects.filter(subscription=subscription).exists()
    _activate(subscription, ACTIVATED)
    assert list(
        SubscriptionPlanChange.objects.filter(subscription=subscription).values_list(
            "from_plan", "to_plan", "effective_on"
        )
    ) == [(None, faster.pk, ACTIVATED)]


@pytest.mark.billing_core
@pytest.mark.revenue_critical
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("case", "field", "message"),
    [
        ("archived plan", "plan", "archived"),
        ("same plan", "plan", "already on this plan"),
        ("before activation", "effective_on", "before the activation date"),
        ("before a later change", "effective_on", "A later plan change (effective 2025-06-01) already exists"),
        ("terminated", "status", "terminated subscription cannot change plan"),
    ],
)
def test_a_refused_plan_change_writes_nothing(tenant, django_capture_on_commit_callbacks, case, field, message):
    # given
    current, target = PlanFactory(), PlanFactory()
    subscription = _activate(SubscriptionFactory(plan=current), ACTIVATED)
    effective_on = datetime.date(2025, 7, 1)
    if case == "archived plan":
        target = PlanFactory(status="archived")
    elif case == "same plan":
        target = current
    elif case == "before activation":
        effective_on = ACTIVATED - DAY
    elif case == "before a later change":
        subscription = _change_plan(subscription, PlanFactory(), datetime.date(2025, 6, 1))
        effective_on = datetime.date(2025, 5, 15)
    elif case == "terminated":
        subscription = _terminate(subscription, TERMINATED)
    before = footprint(subscription)

    # when
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ValidationError) as exc:
        _change_plan(subscription, target, effective_on)

    # then
    assert message in exc.value.message_dict[field][0]
    assert footprint(subscription) == before
    assert callbacks == []


@pytest.mark.billing_core
@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_a_plan_change_is_announced_only_after_commit(tenant, received, django_capture_on_commit_callbacks):
    # given
    basic, faster = PlanFactory(), PlanFactory()
    subscription = _activate(SubscriptionFactory(plan=basic), ACTIVATED)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        _change_plan(subscription, faster, datetime.date(2025, 4, 1))
        assert received == []  # not before commit

    # then
    assert received == [
        events.SubscriptionPlanChanged(
            schema=tenant.schema_name,
            subscription_id=subscription.pk,
            from_plan_id=basic.pk,
            to_plan_id=faster.pk,
            effective_on=datetime.date(2025, 4, 1),
        )
    ]


@pytest.mark.billing_core
@pytest.mark.revenue_critical
@pytest.mark.behavior
def test_a_plan_change_of_a_pending_subscription_announces_nothing(
    tenant, received, django_capture_on_commit_callbacks
):
    subscription = SubscriptionFactory()

    with django_capture_on_commit_callbacks(execute=True):
        _change_plan(subscription, PlanFactory(), ACTIVATED)

    assert received == []


# --- suspension and reactivation (what dunning drives) -----------------------------------------
@pytest.mark.payment_flow
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("from_status", "move", "effective_on"),
    [("active", "suspend", SUSPENDED), ("suspended", "reactivate", REACTIVATED)],
)
def test_dunning_moves_announce_the_status_change_after_commit(
    tenant, received, django_capture_on_commit_callbacks, from_status, move, effective_on
):
    # given
    subscription = subscription_in(from_status)
    target, service = MOVES[move]

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        service(subscription, effective_on)
        assert received == []  # not before commit

    # then
    assert len(callbacks) == 1
    assert received == [
        events.SubscriptionStatusChanged(
            schema=tenant.schema_name,
            subscription_id=subscription.pk,
            from_status=from_status,
            to_status=target,
            effective_on=effective_on,
        )
    ]


class DunningRunAborted(Exception):
    pass


@pytest.mark.payment_flow
@pytest.mark.behavior
@pytest.mark.parametrize(
    ("from_status", "move", "effective_on"),
    [("active", "suspend", SUSPENDED), ("suspended", "reactivate", REACTIVATED)],
)
def test_dunning_moves_rolled_back_announce_nothing_and_leave_no_trace(
    tenant, received, django_capture_on_commit_callbacks, from_status, move, effective_on
):
    # given
    subscription = subscription_in(from_status)
    _, service = MOVES[move]
    before = footprint(subscription)

    # when: the dunning run fails after the move, in the same transaction
    def dunning_run():
        with transaction.atomic():
            service(subscription, effective_on)
            raise DunningRunAborted

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(DunningRunAborted):
        dunning_run()

    # then
    assert callbacks == []
    assert received == []
    assert footprint(subscription) == before


@pytest.mark.payment_flow
@pytest.mark.behavior
def test_a_refused_suspension_announces_nothing(tenant, received, django_capture_on_commit_callbacks):
    subscription = subscription_in("pending")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError, match="pending"):
        _suspend(subscription, SUSPENDED)

    assert received == []
