"""The billing catalogue: tax rates, discounts and discount assignments (services).

Every write validates the whole object first and reports every field error at once (a refusal
writes nothing), then saves and records its audit event in the same transaction. The rule that
matters most here is billing rules section 6: a compound tax on a tax-inclusive tenant is a
validation error, refused when it is configured rather than when a billing run meets it.

Issued invoices copy each tax's name and rate, so changing a rate never changes an invoice.
A rate or discount that an issued invoice points at cannot be deleted (end its validity
window instead)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pycountry
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction

from compliance.audit import Actor, audit_record

from .domain.taxes import CATEGORIES
from .models import Discount, DiscountAssignment, InvoiceLine, InvoiceTax, TaxRate

TAX_RATE_FIELDS = (
    "name", "rate", "country", "region", "locality", "compound", "categories", "valid_from", "valid_until",
)  # fmt: skip
DISCOUNT_FIELDS = ("name", "kind", "value", "priority", "stackable", "valid_from", "valid_until", "periods")
COMPOUND_ON_INCLUSIVE = (
    "Compound taxes are not allowed on a tax-inclusive tenant: prices already include every tax, "
    "so no tax can be charged on top of another."
)


def _places(value: Decimal) -> int:
    exponent = Decimal(value).as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _check_money(value, field: str, errors: dict) -> None:
    if isinstance(value, float):
        raise TypeError("money is never float")
    if not isinstance(value, Decimal | int) or isinstance(value, bool):
        errors[field] = ["A decimal number is required."]
    elif _places(Decimal(value)) > 6:
        errors[field] = ["At most 6 decimal places."]


def _check_window(values: dict, errors: dict) -> None:
    start, end = values.get("valid_from"), values.get("valid_until")
    for field in ("valid_from", "valid_until"):
        if values.get(field) is not None and not isinstance(values[field], datetime.date):
            errors[field] = ["A date is required."]
    if isinstance(start, datetime.date) and isinstance(end, datetime.date) and end <= start:
        errors["valid_until"] = ["The end of the validity window (exclusive) must come after its start."]


# --- tax rates ---------------------------------------------------------------------------------
def _clean_tax_rate(values: dict) -> dict:
    errors: dict = {}
    clean = dict(values)
    clean["name"] = (values.get("name") or "").strip()
    if not clean["name"]:
        errors["name"] = ["A name is required (it is printed on invoices)."]
    elif len(clean["name"]) > 100:
        errors["name"] = ["At most 100 characters."]
    rate = values.get("rate")
    _check_money(rate, "rate", errors)
    if "rate" not in errors:
        rate = Decimal(rate)
        if not Decimal(0) <= rate < Decimal(1):
            errors["rate"] = ["A rate is a fraction from 0 to below 1: 0.0725 for 7.25 %."]
    country = (values.get("country") or "").strip().upper()
    region = (values.get("region") or "").strip().upper()
    clean["country"], clean["region"] = country, region
    clean["locality"] = (values.get("locality") or "").strip()
    if pycountry.countries.get(alpha_2=country) is None:
        errors["country"] = [f"{country!r} is not an ISO 3166-1 alpha-2 country code."]
    elif region:
        subdivision = pycountry.subdivisions.get(code=region)
        if subdivision is None or subdivision.country_code != country:
            errors["region"] = [f"{region!r} is not an ISO 3166-2 subdivision of {country}."]
    if len(clean["locality"]) > 64:
        errors["locality"] = ["At most 64 characters."]
    elif clean["locality"] and not region:
        errors["locality"] = ["A locality needs its region."]
    categories = values.get("categories")
    if not categories:
        errors["categories"] = [f"Choose at least one of {', '.join(sorted(CATEGORIES))}."]
    elif not set(categories) <= CATEGORIES:
        errors["categories"] = [f"Categories are among {', '.join(sorted(CATEGORIES))}."]
    else:
        clean["categories"] = sorted(set(categories))
    clean["compound"] = bool(values.get("compound"))
    if clean["compound"] and connection.tenant.tax_inclusive:
        errors["compound"] = [COMPOUND_ON_INCLUSIVE]
    _check_window(values, errors)
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def tax_rate_create(*, actor: Actor, source_ip: str | None = None, **fields) -> TaxRate:
    unknown = set(fields) - set(TAX_RATE_FIELDS)
    if unknown:
        raise ValidationError({field: ["Unknown tax rate field."] for field in sorted(unknown)})
    values = {"region": "", "locality": "", "compound": False, "valid_from": None, "valid_until": None, **fields}
    rate = TaxRate.objects.create(**_clean_tax_rate(values))
    audit_record(
        actor=actor, action="tax_rate.created", target=rate, changed_fields=TAX_RATE_FIELDS, source_ip=source_ip
    )
    return rate


@transaction.atomic
def tax_rate_update(*, tax_rate: TaxRate, changes: dict, actor: Actor, source_ip: str | None = None) -> TaxRate:
    """Change a rate. Invoices already issued keep the name and rate they were issued with."""
    unknown = set(changes) - set(TAX_RATE_FIELDS)
    if unknown:
        raise ValidationError({field: ["Unknown tax rate field."] for field in sorted(unknown)})
    tax_rate = TaxRate.objects.select_for_update().get(pk=tax_rate.pk)
    current = {field: getattr(tax_rate, field) for field in TAX_RATE_FIELDS}
    clean = _clean_tax_rate({**current, **changes})
    changed = [field for field in TAX_RATE_FIELDS if clean[field] != current[field]]
    if changed:
        for field in changed:
            setattr(tax_rate, field, clean[field])
        tax_rate.save(update_fields=changed)
        audit_record(
            actor=actor, action="tax_rate.updated", target=tax_rate, changed_fields=changed, source_ip=source_ip
        )
    return tax_rate


@transaction.atomic
def tax_rate_delete(*, tax_rate: TaxRate, actor: Actor, source_ip: str | None = None) -> None:
    tax_rate = TaxRate.objects.select_for_update().get(pk=tax_rate.pk)
    if InvoiceTax.objects.filter(tax_rate=tax_rate).exists():
        raise ValidationError(
            "This rate is on issued invoices and cannot be deleted: set `valid_until` to stop applying it."
        )
    audit_record(actor=actor, action="tax_rate.deleted", target=tax_rate, source_ip=source_ip)
    tax_rate.delete()


# --- discounts ---------------------------------------------------------------------------------
def _clean_discount(values: dict) -> dict:
    errors: dict = {}
    clean = dict(values)
    clean["name"] = (values.get("name") or "").strip()
    if not clean["name"]:
        errors["name"] = ["A name is required (it is printed on invoices)."]
    elif len(clean["name"]) > 100:
        errors["name"] = ["At most 100 characters."]
    kind = values.get("kind")
    if kind not in Discount.Kind.values:
        errors["kind"] = [f"Choose one of {', '.join(Discount.Kind.values)}."]
    value = values.get("value")
    _check_money(value, "value", errors)
    if "value" not in errors:
        value = Decimal(value)
        if kind == Discount.Kind.PERCENT and not Decimal(0) < value <= Decimal(100):
            errors["value"] = ["A percent discount is more than 0 and at most 100."]
        elif kind == Discount.Kind.FIXED and value <= 0:
            errors["value"] = ["A fixed discount is an amount more than 0 (per billing period)."]
        elif len(Decimal(value).quantize(Decimal(1)).as_tuple().digits) > 14:
            errors["value"] = ["Too large."]
    priority = values.get("priority", 100)
    if not isinstance(priority, int) or isinstance(priority, bool) or not -(2**31) <= priority < 2**31:
        errors["priority"] = ["An integer is required."]
    clean["stackable"] = bool(values.get("stackable", True))
    periods = values.get("periods")
    if periods is not None and (not isinstance(periods, int) or isinstance(periods, bool) or not 1 <= periods <= 999):
        errors["periods"] = ["Empty (no limit) or a number of billing periods from 1 to 999."]
    _check_window(values, errors)
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def discount_create(*, actor: Actor, source_ip: str | None = None, **fields) -> Discount:
    unknown = set(fields) - set(DISCOUNT_FIELDS)
    if unknown:
        raise ValidationError({field: ["Unknown discount field."] for field in sorted(unknown)})
    values = {"priority": 100, "stackable": True, "valid_from": None, "valid_until": None, "periods": None, **fields}
    discount = Discount.objects.create(**_clean_discount(values))
    audit_record(
        actor=actor, action="discount.created", target=discount, changed_fields=DISCOUNT_FIELDS, source_ip=source_ip
    )
    return discount


@transaction.atomic
def discount_update(*, discount: Discount, changes: dict, actor: Actor, source_ip: str | None = None) -> Discount:
    """Change a discount. Issued invoices keep their discount lines; later runs use the new terms."""
    unknown = set(changes) - set(DISCOUNT_FIELDS)
    if unknown:
        raise ValidationError({field: ["Unknown discount field."] for field in sorted(unknown)})
    discount = Discount.objects.select_for_update().get(pk=discount.pk)
    current = {field: getattr(discount, field) for field in DISCOUNT_FIELDS}
    clean = _clean_discount({**current, **changes})
    changed = [field for field in DISCOUNT_FIELDS if clean[field] != current[field]]
    if changed:
        for field in changed:
            setattr(discount, field, clean[field])
        discount.save(update_fields=changed)
        audit_record(
            actor=actor, action="discount.updated", target=discount, changed_fields=changed, source_ip=source_ip
        )
    return discount


@transaction.atomic
def discount_delete(*, discount: Discount, actor: Actor, source_ip: str | None = None) -> None:
    discount = Discount.objects.select_for_update().get(pk=discount.pk)
    if InvoiceLine.objects.filter(discount=discount).exists():
        raise ValidationError("This discount is on issued invoices and cannot be deleted: set `valid_until` to end it.")
    audit_record(actor=actor, action="discount.deleted", target=discount, source_ip=source_ip)
    discount.delete()  # its assignments go with it


@transaction.atomic
def discount_assign(
    *,
    discount: Discount,
    customer: models.Model | None = None,
    plan: models.Model | None = None,
    actor: Actor,
    source_ip: str | None = None,
) -> DiscountAssignment:
    """Grant a discount to one customer, or to everyone on one plan (exactly one of the two)."""
    if (customer is None) == (plan is None):
        raise ValidationError({"non_field_errors": ["Assign the discount to a customer or to a plan (one of them)."]})
    target = {"customer": customer} if customer is not None else {"plan": plan}
    if DiscountAssignment.objects.filter(discount=discount, **target).exists():
        field = next(iter(target))
        raise ValidationError({field: [f"The discount is already assigned to this {field}."]})
    assignment = DiscountAssignment.objects.create(discount=discount, **target)
    audit_record(
        actor=actor,
        action="discount.assigned",
        target=assignment,
        changed_fields=["discount", *target],
        source_ip=source_ip,
    )
    return assignment


@transaction.atomic
def discount_unassign(*, assignment: DiscountAssignment, actor: Actor, source_ip: str | None = None) -> None:
    """Withdraw a discount from later invoices (issued ones keep their discount lines)."""
    audit_record(actor=actor, action="discount.unassigned", target=assignment, source_ip=source_ip)
    assignment.delete()
