"""Writes on customers, addresses, plans and subscriptions. Every function is atomic, locks the
rows whose state it moves, and records an audit event in the same transaction."""

from __future__ import annotations

import datetime
import secrets
from decimal import Decimal

import phonenumbers
import pycountry
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from psycopg import sql

from compliance.audit import Actor, audit_many, audit_record

from . import events
from .domain.lifecycle import IllegalTransition, SubscriptionStatus, check_dates, check_transition
from .models import (
    Customer,
    NumberSequence,
    Plan,
    ServiceAddress,
    Subscription,
    SubscriptionPlanChange,
    SubscriptionStatusChange,
)

S = SubscriptionStatus
CUSTOMER_PII_FIELDS = ("name", "email", "phone", "national_id", "tax_id", "date_of_birth")
CUSTOMER_EDITABLE_FIELDS = frozenset(
    CUSTOMER_PII_FIELDS
    + ("kind", "billing_day", "tax_exempt_certificate", "tax_exempt_until", "marketing_consent", "do_not_sell")
)
PLAN_FIELDS = frozenset(
    {
        "code",
        "name",
        "download_kbps",
        "upload_kbps",
        "monthly_price",
        "included_bytes",
        "overage_rate_per_gb",
        "fair_use_download_kbps",
        "fair_use_upload_kbps",
        "setup_fee",
        "category",
    }
)
PLAN_EDITABLE_FIELDS = PLAN_FIELDS - {"code"}


# --- numbers ---------------------------------------------------------------------------------
def next_number(name: str, period: str = "") -> int:
    """The next number of a gap-free per-tenant sequence. Call inside the transaction that uses
    it: the row stays locked until commit, and a rollback returns the number."""
    if not connection.in_atomic_block:
        raise RuntimeError("next_number must run inside the transaction that uses the number")
    table = sql.Identifier(NumberSequence._meta.db_table)
    query = sql.SQL(
        "INSERT INTO {table} (name, period, last_value) VALUES (%s, %s, 1) "
        "ON CONFLICT (name, period) DO UPDATE SET last_value = {table}.last_value + 1 RETURNING last_value"
    ).format(table=table)
    with connection.cursor() as cursor:
        cursor.execute(query, [name, period])
        return cursor.fetchone()[0]


def next_number_block(name: str, period: str, count: int) -> range:
    """`count` consecutive numbers of a gap-free sequence, taken at once (for bulk issuing)."""
    if count < 1:
        return range(0)
    if not connection.in_atomic_block:
        raise RuntimeError("next_number_block must run inside the transaction that uses the numbers")
    table = sql.Identifier(NumberSequence._meta.db_table)
    query = sql.SQL(
        "INSERT INTO {table} (name, period, last_value) VALUES (%s, %s, %s) "
        "ON CONFLICT (name, period) DO UPDATE SET last_value = {table}.last_value + EXCLUDED.last_value "
        "RETURNING last_value"
    ).format(table=table)
    with connection.cursor() as cursor:
        cursor.execute(query, [name, period, count])
        last = cursor.fetchone()[0]
    return range(last - count + 1, last + 1)


# --- validation helpers ------------------------------------------------------------------------
def normalize_phone(value: str) -> str:
    """E.164 or a ValidationError: '+14155550123'."""
    value = (value or "").strip()
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationError("Enter the phone number in international format, e.g. +14155550123.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("This phone number is not valid.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _validate_customer_fields(values: dict, errors: dict) -> dict:
    clean = dict(values)
    if "name" in values:
        clean["name"] = (values["name"] or "").strip()
        if not clean["name"]:
            errors["name"] = ["A name is required."]
        elif len(clean["name"]) > 200:
            errors["name"] = ["At most 200 characters."]
    if "email" in values:
        clean["email"] = (values["email"] or "").strip()
        try:
            validate_email(clean["email"])
        except ValidationError:
            errors["email"] = ["Enter a valid e-mail address."]
    if values.get("phone"):
        try:
            clean["phone"] = normalize_phone(values["phone"])
        except ValidationError as exc:
            errors["phone"] = exc.messages
    for field in ("national_id", "tax_id"):
        if field in values:
            clean[field] = (values[field] or "").strip()
            if len(clean[field]) > 64:
                errors[field] = ["At most 64 characters."]
    if values.get("date_of_birth") is not None:
        dob = values["date_of_birth"]
        today = timezone.localdate()
        if not isinstance(dob, datetime.date) or dob >= today or dob.year < today.year - 130:
            errors["date_of_birth"] = ["Enter a real date of birth in the past."]
    if values.get("billing_day") is not None and not 1 <= int(values["billing_day"]) <= 28:
        errors["billing_day"] = ["The billing day is between 1 and 28."]
    if "kind" in values and values["kind"] not in Customer.Kind.values:
        errors["kind"] = [f"Choose one of {', '.join(Customer.Kind.values)}."]
    return clean


def _email_taken(email: str, exclude_pk: int | None = None) -> bool:
    index = Customer._meta.get_field("email_index").lookup_value(email)
    return Customer.objects.filter(email_index=index).exclude(pk=exclude_pk).exists()


def _save_customer(customer: Customer) -> None:
    try:
        with transaction.atomic():
            customer.save()
    except IntegrityError:
        # Another customer took the address between the check and the insert. Decided by a fresh
        # look-up, not by the constraint's name: tenant schemas cloned from the template get
        # generated names for unique constraints (customers_customer_email_index_key).
        if customer.email and _email_taken(customer.email, exclude_pk=customer.pk):
            raise ValidationError({"email": ["A customer with this e-mail address already exists."]}) from None
        raise


# --- customers ---------------------------------------------------------------------------------
@transaction.atomic
def customer_create(
    *,
    actor: Actor,
    name: str,
    email: str,
    kind: str = Customer.Kind.RESIDENTIAL,
    phone: str = "",
    national_id: str = "",
    tax_id: str = "",
    date_of_birth: datetime.date | None = None,
    billing_day: int | None = None,
    tax_exempt_certificate: str = "",
    tax_exempt_until: datetime.date | None = None,
    marketing_consent: bool = False,
    do_not_sell: bool = False,
    source_ip: str | None = None,
) -> Customer:
    errors: dict = {}
    values = _validate_customer_fields(
        {
            "name": name,
            "email": email,
            "kind": kind,
            "phone": phone,
            "national_id": national_id,
            "tax_id": tax_id,
            "date_of_birth": date_of_birth,
            "billing_day": billing_day,
        },
        errors,
    )
    if "email" not in errors and _email_taken(values["email"]):
        errors["email"] = ["A customer with this e-mail address already exists."]
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    customer = Customer(
        account_number=next_number("customer"),
        tax_exempt_certificate=(tax_exempt_certificate or "").strip(),
        tax_exempt_until=tax_exempt_until,
        marketing_consent=marketing_consent,
        marketing_consent_at=now if marketing_consent else None,
        do_not_sell=do_not_sell,
        do_not_sell_at=now if do_not_sell else None,
        **{k: v for k, v in values.items() if v not in (None, "")},
    )
    _save_customer(customer)
    audit_record(
        actor=actor,
        action="customer.created",
        target=customer,
        changed_fields=[f for f in CUSTOMER_EDITABLE_FIELDS if getattr(customer, f) not in (None, "", False)],
        source_ip=source_ip,
    )
    return customer


@transaction.atomic
def customer_update(*, customer: Customer, changes: dict, actor: Actor, source_ip: str | None = None) -> Customer:
    unknown = set(changes) - CUSTOMER_EDITABLE_FIELDS
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in sorted(unknown)})
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    errors: dict = {}
    values = _validate_customer_fields(changes, errors)
    if "email" in values and "email" not in errors and _email_taken(values["email"], exclude_pk=customer.pk):
        errors["email"] = ["A customer with this e-mail address already exists."]
    if errors:
        raise ValidationError(errors)
    changed = []
    now = timezone.now()
    for field, value in values.items():
        new = None if value == "" and Customer._meta.get_field(field).null else value
        if getattr(customer, field) != new:
            setattr(customer, field, new)
            changed.append(field)
    if "marketing_consent" in changed:
        customer.marketing_consent_at = now
    if "do_not_sell" in changed:
        customer.do_not_sell_at = now
    if changed:
        _save_customer(customer)
        audit_record(
            actor=actor, action="customer.updated", target=customer, changed_fields=changed, source_ip=source_ip
        )
    return customer


def customer_by_email(email: str) -> Customer | None:
    """Exact match through the blind index (no decryption, no scan)."""
    index = Customer._meta.get_field("email_index").lookup_value(email)
    return Customer.objects.filter(email_index=index).first() if index else None


# --- addresses ---------------------------------------------------------------------------------
@transaction.atomic
def service_address_create(
    *,
    customer: Customer,
    street: str,
    city: str,
    postal_code: str,
    country: str,
    region: str = "",
    locality: str = "",
    actor: Actor,
    source_ip: str | None = None,
) -> ServiceAddress:
    errors: dict = {}
    country = (country or "").strip().upper()
    region = (region or "").strip().upper()
    for field, value in (("street", street), ("city", city), ("postal_code", postal_code)):
        if not (value or "").strip():
            errors[field] = ["This field is required."]
        elif len(value) > 200:
            errors[field] = ["At most 200 characters."]
    if pycountry.countries.get(alpha_2=country) is None:
        errors["country"] = [f"{country!r} is not an ISO 3166-1 alpha-2 country code."]
    elif region:
        subdivision = pycountry.subdivisions.get(code=region)
        if subdivision is None or subdivision.country_code != country:
            errors["region"] = [f"{region!r} is not an ISO 3166-2 subdivision of {country}."]
    if len(locality or "") > 64:
        errors["locality"] = ["At most 64 characters."]
    if errors:
        raise ValidationError(errors)
    address = ServiceAddress.objects.create(
        customer=customer,
        data_key_id=customer.data_key_id,
        street=street.strip(),
        city=city.strip(),
        postal_code=postal_code.strip(),
        country=country,
        region=region,
        locality=(locality or "").strip(),
    )
    audit_record(
        actor=actor,
        action="service_address.created",
        target=address,
        changed_fields=["street", "city", "postal_code", "country", "region", "locality"],
        source_ip=source_ip,
    )
    return address


# --- plans -------------------------------------------------------------------------------------
def _validate_plan(plan: Plan) -> None:
    # Before full_clean, which would turn a float into a Decimal (50.0 would pass unnoticed).
    for field in ("monthly_price", "overage_rate_per_gb", "setup_fee"):
        if isinstance(getattr(plan, field), float):
            raise TypeError("money is never float")
    plan.full_clean()
    for field in ("monthly_price", "overage_rate_per_gb", "setup_fee"):
        value = getattr(plan, field)
        if Decimal(value).as_tuple().exponent < -6:
            raise ValidationError({field: ["At most 6 decimal places."]})


@transaction.atomic
def plan_create(*, actor: Actor, source_ip: str | None = None, **fields) -> Plan:
    unknown = set(fields) - PLAN_FIELDS
    if unknown:
        raise ValidationError({field: ["Unknown plan field."] for field in sorted(unknown)})
    plan = Plan(**fields)
    _validate_plan(plan)
    plan.save()
    audit_record(actor=actor, action="plan.created", target=plan, changed_fields=sorted(fields), source_ip=source_ip)
    return plan


@transaction.atomic
def plan_update(*, plan: Plan, changes: dict, actor: Actor, source_ip: str | None = None) -> Plan:
    """Change a plan. Prices apply from the next billing of every subscription on it."""
    unknown = set(changes) - PLAN_EDITABLE_FIELDS
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in sorted(unknown)})
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    changed = [field for field, value in changes.items() if getattr(plan, field) != value]
    for field in changed:
        setattr(plan, field, changes[field])
    _validate_plan(plan)
    if changed:
        plan.save()
        audit_record(actor=actor, action="plan.updated", target=plan, changed_fields=changed, source_ip=source_ip)
    return plan


@transaction.atomic
def plan_archive(*, plan: Plan, actor: Actor, source_ip: str | None = None) -> Plan:
    """No new subscriptions on the plan; existing ones keep it."""
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    if plan.status != Plan.Status.ARCHIVED:
        plan.status = Plan.Status.ARCHIVED
        plan.save(update_fields=["status"])
        audit_record(actor=actor, action="plan.archived", target=plan, changed_fields=["status"], source_ip=source_ip)
    return plan


# --- subscriptions -----------------------------------------------------------------------------
@transaction.atomic
def subscription_create(
    *, customer: Customer, plan: Plan, service_address: ServiceAddress, actor: Actor, source_ip: str | None = None
) -> Subscription:
    """A pending subscription; it becomes billable when activated."""
    errors = {}
    if plan.status != Plan.Status.ACTIVE:
        errors["plan"] = ["This plan is archived and takes no new subscriptions."]
    if service_address.customer_id != customer.pk:
        errors["service_address"] = ["This address belongs to another customer."]
    if customer.status == Customer.Status.CLOSED:
        errors["customer"] = ["This customer's account is closed."]
    if errors:
        raise ValidationError(errors)
    subscription = Subscription.objects.create(customer=customer, plan=plan, service_address=service_address)
    audit_record(
        actor=actor,
        action="subscription.created",
        target=subscription,
        changed_fields=["status", "plan", "service_address"],
        source_ip=source_ip,
    )
    return subscription


def _transition(
    *, subscription: Subscription, target: S, effective_on: datetime.date, actor: Actor, reason: str, source_ip
) -> Subscription:
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    current = subscription.status
    last_effective_on = (
        subscription.status_changes.order_by("-effective_on").values_list("effective_on", flat=True).first()
    )
    try:
        check_transition(current, target)
        check_dates(
            target=target,
            effective_on=effective_on,
            activated_on=subscription.activated_on,
            last_effective_on=last_effective_on,
        )
    except IllegalTransition as exc:
        raise ValidationError({"status": [str(exc)]}) from None
    except ValueError as exc:
        raise ValidationError({"effective_on": [str(exc)]}) from None
    changed = ["status"]
    subscription.status = target
    if target == S.ACTIVE and subscription.activated_on is None:
        subscription.activated_on = effective_on
        changed.append("activated_on")
        SubscriptionPlanChange.objects.create(
            subscription=subscription,
            from_plan=None,
            to_plan=subscription.plan,
            effective_on=effective_on,
            actor_label=actor.label,
        )
    if target == S.TERMINATED:
        subscription.terminated_on = effective_on
        changed.append("terminated_on")
    subscription.save(update_fields=[*changed, "updated_at"])
    SubscriptionStatusChange.objects.create(
        subscription=subscription,
        from_status=current,
        to_status=target,
        effective_on=effective_on,
        actor_label=actor.label,
        reason=reason[:500],
    )
    if target == S.ACTIVE:
        Customer.objects.filter(pk=subscription.customer_id, status=Customer.Status.PROSPECT).update(
            status=Customer.Status.ACTIVE
        )
    audit_record(
        actor=actor,
        action={
            S.ACTIVE: "subscription.activated" if current == S.PENDING else "subscription.reactivated",
            S.SUSPENDED: "subscription.suspended",
            S.TERMINATED: "subscription.terminated",
        }[target],
        target=subscription,
        changed_fields=changed,
        reason=reason,
        source_ip=source_ip,
    )
    events.publish(
        events.SubscriptionStatusChanged(
            schema=connection.schema_name,
            subscription_id=subscription.pk,
            from_status=current,
            to_status=target.value,
            effective_on=effective_on,
        )
    )
    return subscription


@transaction.atomic
def subscription_activate(
    *,
    subscription: Subscription,
    activated_on: datetime.date,
    actor: Actor,
    reason: str = "",
    source_ip: str | None = None,
) -> Subscription:
    """pending -> active from `activated_on` (the first billable day)."""
    # Decide on the locked row, not on the caller's copy (it may be stale).
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status != S.PENDING:
        raise ValidationError(
            {
                "status": [
                    str(IllegalTransition(subscription.status, S.ACTIVE))
                    if subscription.status != S.SUSPENDED
                    else "A suspended subscription is reactivated, not activated."
                ]
            }
        )
    return _transition(
        subscription=subscription,
        target=S.ACTIVE,
        effective_on=activated_on,
        actor=actor,
        reason=reason,
        source_ip=source_ip,
    )


def subscriptions_activate_many(
    *, requests: list[tuple[int, datetime.date, str]], actor: Actor
) -> tuple[list[Subscription], dict[int, ValidationError]]:
    """pending -> active for many subscriptions at once: (subscription id, first billable day,
    reason) each. The same checks, history rows, audit events and events as `subscription_activate`,
    written with one statement per table. A subscription that may not be activated is returned
    in the failures (by id) and nothing is written for it; the others are activated.

    Call inside the caller's transaction (it locks the subscriptions, in id order)."""
    from django.db.models import Max

    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("subscriptions_activate_many must run inside a transaction")
    wanted = {sub_id: (day, reason) for sub_id, day, reason in requests}
    locked = {s.pk: s for s in Subscription.objects.select_for_update().filter(pk__in=wanted).order_by("pk")}
    last = dict(
        SubscriptionStatusChange.objects.filter(subscription_id__in=list(locked))
        .values("subscription_id")
        .annotate(last=Max("effective_on"))
        .values_list("subscription_id", "last")
    )
    failures: dict[int, ValidationError] = {}
    ready: list[Subscription] = []
    for sub_id, (day, _reason) in wanted.items():
        sub = locked.get(sub_id)
        if sub is None:
            failures[sub_id] = ValidationError({"subscription": ["No such subscription."]})
            continue
        if sub.status != S.PENDING:
            message = (
                str(IllegalTransition(sub.status, S.ACTIVE))
                if sub.status != S.SUSPENDED
                else "A suspended subscription is reactivated, not activated."
            )
            failures[sub_id] = ValidationError({"status": [message]})
            continue
        try:
            check_dates(
                target=S.ACTIVE, effective_on=day, activated_on=sub.activated_on, last_effective_on=last.get(sub_id)
            )
        except ValueError as exc:
            failures[sub_id] = ValidationError({"effective_on": [str(exc)]})
            continue
        ready.append(sub)
    if not ready:
        return [], failures
    now = timezone.now()
    first_time = set()
    for sub in ready:
        sub.status = S.ACTIVE
        if sub.activated_on is None:
            sub.activated_on = wanted[sub.pk][0]
            first_time.add(sub.pk)
        sub.updated_at = now
    with connection.cursor() as cursor:  # one statement (bulk_update builds a CASE per row)
        cursor.execute(
            "UPDATE customers_subscription SET status = %s, activated_on = v.day, updated_at = %s "
            "FROM unnest(%s::bigint[], %s::date[]) AS v(id, day) WHERE customers_subscription.id = v.id",
            [S.ACTIVE.value, now, [sub.pk for sub in ready], [sub.activated_on for sub in ready]],
        )
    SubscriptionPlanChange.objects.bulk_create(
        [
            SubscriptionPlanChange(
                subscription=sub,
                from_plan=None,
                to_plan_id=sub.plan_id,
                effective_on=sub.activated_on,
                actor_label=actor.label,
            )
            for sub in ready
            if sub.pk in first_time
        ],
        batch_size=1000,
    )
    SubscriptionStatusChange.objects.bulk_create(
        [
            SubscriptionStatusChange(
                subscription=sub,
                from_status=S.PENDING,
                to_status=S.ACTIVE,
                effective_on=wanted[sub.pk][0],
                actor_label=actor.label,
                reason=wanted[sub.pk][1][:500],
            )
            for sub in ready
        ],
        batch_size=1000,
    )
    Customer.objects.filter(pk__in={sub.customer_id for sub in ready}, status=Customer.Status.PROSPECT).update(
        status=Customer.Status.ACTIVE
    )
    audit_many(
        actor=actor,
        action="subscription.activated",
        entries=[
            (sub, ("status", "activated_on") if sub.pk in first_time else ("status",), wanted[sub.pk][1])
            for sub in ready
        ],
    )
    for sub in ready:
        events.publish(
            events.SubscriptionStatusChanged(
                schema=connection.schema_name,
                subscription_id=sub.pk,
                from_status=S.PENDING.value,
                to_status=S.ACTIVE.value,
                effective_on=wanted[sub.pk][0],
            )
        )
    return ready, failures


@transaction.atomic
def subscription_suspend(
    *,
    subscription: Subscription,
    effective_on: datetime.date,
    actor: Actor,
    reason: str,
    source_ip: str | None = None,
) -> Subscription:
    if not (reason or "").strip():
        raise ValidationError({"reason": ["Say why the subscription is suspended."]})
    return _transition(
        subscription=subscription,
        target=S.SUSPENDED,
        effective_on=effective_on,
        actor=actor,
        reason=reason.strip(),
        source_ip=source_ip,
    )


@transaction.atomic
def subscription_reactivate(
    *,
    subscription: Subscription,
    effective_on: datetime.date,
    actor: Actor,
    reason: str = "",
    source_ip: str | None = None,
) -> Subscription:
    """suspended -> active."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if subscription.status != S.SUSPENDED:
        raise ValidationError(
            {"status": [f"Only a suspended subscription can be reactivated (it is {subscription.status})."]}
        )
    return _transition(
        subscription=subscription,
        target=S.ACTIVE,
        effective_on=effective_on,
        actor=actor,
        reason=reason,
        source_ip=source_ip,
    )


@transaction.atomic
def subscription_terminate(
    *,
    subscription: Subscription,
    terminated_on: datetime.date,
    actor: Actor,
    reason: str,
    source_ip: str | None = None,
) -> Subscription:
    """any (not terminated) -> terminated; `terminated_on` is the first day no longer billed."""
    if not (reason or "").strip():
        raise ValidationError({"reason": ["Say why the subscription is terminated."]})
    return _transition(
        subscription=subscription,
        target=S.TERMINATED,
        effective_on=terminated_on,
        actor=actor,
        reason=reason.strip(),
        source_ip=source_ip,
    )


@transaction.atomic
def subscription_change_plan(
    *,
    subscription: Subscription,
    new_plan: Plan,
    effective_on: datetime.date,
    actor: Actor,
    source_ip: str | None = None,
) -> Subscription:
    """Switch plans from `effective_on`; the history keeps every plan with its dates."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
    errors = {}
    if subscription.status == S.TERMINATED:
        errors["status"] = ["A terminated subscription cannot change plan."]
    if new_plan.pk == subscription.plan_id:
        errors["plan"] = ["The subscription is already on this plan."]
    if new_plan.status != Plan.Status.ACTIVE:
        errors["plan"] = ["This plan is archived and takes no new subscriptions."]
    if subscription.activated_on and effective_on < subscription.activated_on:
        errors["effective_on"] = ["A plan change cannot take effect before the activation date."]
    last = subscription.plan_changes.order_by("-effective_on", "-id").first()
    if last is not None and effective_on < last.effective_on and "effective_on" not in errors:
        errors["effective_on"] = [f"A later plan change (effective {last.effective_on}) already exists."]
    if errors:
        raise ValidationError(errors)
    old_plan_id = subscription.plan_id
    if subscription.status != S.PENDING:
        SubscriptionPlanChange.objects.create(
            subscription=subscription,
            from_plan_id=old_plan_id,
            to_plan=new_plan,
            effective_on=effective_on,
            actor_label=actor.label,
        )
    subscription.plan = new_plan
    subscription.save(update_fields=["plan", "updated_at"])
    audit_record(
        actor=actor,
        action="subscription.plan_changed",
        target=subscription,
        changed_fields=["plan"],
        source_ip=source_ip,
    )
    if subscription.status != S.PENDING:
        events.publish(
            events.SubscriptionPlanChanged(
                schema=connection.schema_name,
                subscription_id=subscription.pk,
                from_plan_id=old_plan_id,
                to_plan_id=new_plan.pk,
                effective_on=effective_on,
            )
        )
    return subscription


# --- portal signup -----------------------------------------------------------------------------
@transaction.atomic
def customer_signup(
    *,
    name: str,
    email: str,
    phone: str,
    password: str,
    plan_code: str,
    address: dict,
    kind: str = Customer.Kind.RESIDENTIAL,
    marketing_consent: bool = False,
    source_ip: str | None = None,
) -> tuple[Customer, Subscription]:
    """Self-signup from the portal: customer + service address + pending subscription + a portal
    login. Staff approve it by activating the subscription."""
    from django.contrib.auth.password_validation import validate_password

    errors: dict = {}
    plan = Plan.objects.filter(code=plan_code, status=Plan.Status.ACTIVE).first()
    if plan is None:
        errors["plan_code"] = ["Choose one of the plans on offer."]
    try:
        validate_password(password)
    except ValidationError as exc:
        errors["password"] = exc.messages
    actor = Actor(type="anonymous", label="portal signup")
    try:
        customer = customer_create(
            actor=actor,
            name=name,
            email=email,
            phone=phone,
            kind=kind,
            marketing_consent=marketing_consent,
            source_ip=source_ip,
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
        customer = None
    if customer is not None:
        try:
            service_address = service_address_create(customer=customer, actor=actor, source_ip=source_ip, **address)
        except ValidationError as exc:
            errors.update({f"address.{k}": v for k, v in exc.message_dict.items()})
        except TypeError:
            errors["address"] = ["street, city, postal_code, country and optionally region, locality."]
    if errors:
        raise ValidationError(errors)
    # The login name is not personal data (it is stored in clear): customers log in with their
    # e-mail, found through the blind index (customers.auth.CustomerEmailBackend).
    user = get_user_model().objects.create_user(username=f"portal-{secrets.token_hex(8)}", password=password)
    customer.portal_user = user
    customer.save(update_fields=["portal_user", "updated_at"])
    subscription = subscription_create(
        customer=customer, plan=plan, service_address=service_address, actor=actor, source_ip=source_ip
    )
    audit_record(
        actor=actor, action="customer.signed_up", target=customer, changed_fields=["portal_user"], source_ip=source_ip
    )
    return customer, subscription
