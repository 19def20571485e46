"""Tenants: one row per ISP (or reseller), each with its own PostgreSQL schema."""

from __future__ import annotations

import re
import zoneinfo

import pycountry
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin
from iso4217 import Currency

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
RESERVED_SLUGS = frozenset({"public", "www", "api", "admin", "static", "template", "postgres", "pg"})
SCHEMA_PREFIX = "tenant_"


def validate_slug(value: str) -> None:
    if not SLUG_RE.match(value or ""):
        raise ValidationError(
            "A slug is 3-32 characters: lower-case letters, digits and hyphens, "
            "starting with a letter and not ending with a hyphen.",
            code="invalid_slug",
        )
    if value in RESERVED_SLUGS or "--" in value:
        raise ValidationError(f"The slug {value!r} is reserved.", code="reserved_slug")


def validate_currency(value: str) -> None:
    """An ISO 4217 currency that has a minor unit (XAU and friends cannot be billed)."""
    try:
        currency = Currency(value)
    except ValueError:
        raise ValidationError(f"{value!r} is not an ISO 4217 currency code.", code="invalid_currency") from None
    if currency.exponent is None:
        raise ValidationError(f"{value!r} has no minor unit and cannot be billed in.", code="invalid_currency")


def validate_country(value: str) -> None:
    if not value or len(value) != 2 or pycountry.countries.get(alpha_2=value) is None:
        raise ValidationError(f"{value!r} is not an ISO 3166-1 alpha-2 country code.", code="invalid_country")


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone.", code="invalid_time_zone")


def schema_name_for_slug(slug: str) -> str:
    return SCHEMA_PREFIX + slug.replace("-", "_")


class Tenant(TenantMixin):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    # The schema is cloned explicitly by tenants.services.tenant_create, inside its transaction.
    auto_create_schema = False
    auto_drop_schema = False

    slug = models.CharField(max_length=32, unique=True, validators=[validate_slug])
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    country = models.CharField(max_length=2, validators=[validate_country])
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    billing_day = models.PositiveSmallIntegerField(
        default=settings.ISP_DEFAULT_BILLING_DAY, validators=[MinValueValidator(1), MaxValueValidator(28)]
    )
    payment_terms_days = models.PositiveSmallIntegerField(
        default=settings.ISP_DEFAULT_PAYMENT_TERMS_DAYS, validators=[MaxValueValidator(365)]
    )
    suspend_after_days = models.PositiveSmallIntegerField(
        default=settings.ISP_DEFAULT_SUSPEND_AFTER_DAYS, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    tax_inclusive = models.BooleanField(
        default=False, help_text="Prices include tax (VAT style) instead of tax being added on top."
    )
    bill_during_suspension = models.BooleanField(
        default=True, help_text="Suspended days are billed (default). Off: suspended days are excluded."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(billing_day__gte=1, billing_day__lte=28), name="tenant_billing_day_1_28"
            ),
            models.CheckConstraint(condition=models.Q(status__in=["active", "suspended"]), name="tenant_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def is_public(self) -> bool:
        return self.schema_name == settings.PUBLIC_SCHEMA_NAME

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED

    @property
    def currency_minor_unit(self) -> int:
        """Decimal places of the tenant's currency, from ISO 4217 (USD 2, JPY 0, KWD 3)."""
        return Currency(self.currency).exponent

    @property
    def primary_host(self) -> str:
        return f"{self.slug}.{settings.ISP_BASE_DOMAIN}"


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain
