"""Customers (encrypted personal data), service addresses, plans and subscriptions."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from compliance.pii.fields import (
    BlindIndexField,
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedPhoneField,
    EncryptedTextField,
    SubjectKeyField,
)

from .domain.lifecycle import SubscriptionStatus

MONEY = {"max_digits": 20, "decimal_places": 6}


class NumberSequence(models.Model):
    """Gap-free counters per tenant (account numbers; invoice and credit-note numbers per year).

    A number is taken inside the caller's transaction; a rollback gives it back."""

    name = models.CharField(max_length=32)
    period = models.CharField(max_length=8, blank=True, default="")
    last_value = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["name", "period"], name="number_sequence_unique")]

    def __str__(self) -> str:
        return f"{self.name}/{self.period or '-'}: {self.last_value}"


class Customer(models.Model):
    class Kind(models.TextChoices):
        RESIDENTIAL = "residential", "Residential"
        BUSINESS = "business", "Business"

    class Status(models.TextChoices):
        PROSPECT = "prospect", "Prospect (signed up, no active service yet)"
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"

    account_number = models.PositiveIntegerField(unique=True, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RESIDENTIAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROSPECT, db_index=True)

    # Personal data: encrypted with this customer's own data key (declared first).
    data_key_id = SubjectKeyField(auto_create=True)
    name = EncryptedTextField()
    email = EncryptedEmailField()
    email_index = BlindIndexField(source="email", normalizer="compliance.pii.normalize.email")
    phone = EncryptedPhoneField()
    phone_index = BlindIndexField(source="phone", normalizer="compliance.pii.normalize.phone")
    national_id = EncryptedTextField()
    tax_id = EncryptedTextField()
    date_of_birth = EncryptedDateField()

    billing_day = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(28)],
        help_text="Day of the month billing periods start on; empty: the tenant's.",
    )
    tax_exempt_certificate = models.CharField(max_length=64, blank=True)
    tax_exempt_until = models.DateField(null=True, blank=True)
    marketing_consent = models.BooleanField(default=False)
    marketing_consent_at = models.DateTimeField(null=True, blank=True)
    do_not_sell = models.BooleanField(default=False, help_text="CCPA: do not sell or share personal data.")
    do_not_sell_at = models.DateTimeField(null=True, blank=True)
    portal_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_number"]
        permissions = [("reveal_pii", "Can see customers' personal data in clear")]
        constraints = [
            models.UniqueConstraint(fields=["email_index"], name="customer_email_unique"),
            models.CheckConstraint(
                condition=Q(billing_day__isnull=True) | Q(billing_day__gte=1, billing_day__lte=28),
                name="customer_billing_day_1_28",
            ),
        ]

    def __str__(self) -> str:
        # Never personal data: this string lands in admin logs and audit trails.
        return f"Customer {self.account_code}"

    @property
    def account_code(self) -> str:
        return f"C{self.account_number:06d}" if self.account_number else "C(new)"


class ServiceAddress(models.Model):
    """Where service is delivered; its country/region/locality decide the taxes."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    data_key_id = SubjectKeyField()  # the customer's key, copied by the service
    street = EncryptedTextField()
    city = EncryptedTextField()
    postal_code = EncryptedTextField()
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(max_length=6, blank=True, help_text="ISO 3166-2 subdivision, e.g. US-CA")
    locality = models.CharField(max_length=64, blank=True, help_text="Tax locality code (e.g. county or city code)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Address {self.pk} ({self.country}{'/' + self.region if self.region else ''})"


class Plan(models.Model):
    class Category(models.TextChoices):
        RESIDENTIAL = "residential", "Residential"
        BUSINESS = "business", "Business"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived (no new subscriptions)"

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    download_kbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    upload_kbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    monthly_price = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal(0))])
    included_bytes = models.PositiveBigIntegerField(null=True, blank=True, help_text="Empty: unlimited data.")
    overage_rate_per_gb = models.DecimalField(**MONEY, default=Decimal(0), validators=[MinValueValidator(Decimal(0))])
    fair_use_download_kbps = models.PositiveIntegerField(null=True, blank=True)
    fair_use_upload_kbps = models.PositiveIntegerField(null=True, blank=True)
    setup_fee = models.DecimalField(**MONEY, default=Decimal(0), validators=[MinValueValidator(Decimal(0))])
    category = models.CharField(max_length=16, choices=Category.choices, default=Category.RESIDENTIAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(monthly_price__gte=0), name="plan_price_not_negative"),
            models.CheckConstraint(condition=Q(setup_fee__gte=0), name="plan_setup_fee_not_negative"),
            models.CheckConstraint(condition=Q(overage_rate_per_gb__gte=0), name="plan_overage_not_negative"),
            models.CheckConstraint(
                condition=Q(fair_use_download_kbps__isnull=True) | Q(fair_use_upload_kbps__isnull=False),
                name="plan_fair_use_both_or_none",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def is_unlimited(self) -> bool:
        return self.included_bytes is None


class Subscription(models.Model):
    Status = SubscriptionStatus

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    service_address = models.ForeignKey(ServiceAddress, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(
        max_length=16,
        choices=[(s.value, s.label) for s in SubscriptionStatus],
        default=SubscriptionStatus.PENDING,
        db_index=True,
    )
    activated_on = models.DateField(null=True, blank=True, help_text="First billable day.")
    terminated_on = models.DateField(null=True, blank=True, help_text="First day no longer billable.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(terminated_on__isnull=True)
                | Q(activated_on__isnull=True)
                | Q(terminated_on__gte=models.F("activated_on")),
                name="subscription_terminated_after_activated",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["active", "suspended"]) | Q(activated_on__isnull=False),
                name="subscription_live_has_activation_date",
            ),
            models.CheckConstraint(
                condition=~Q(status="terminated") | Q(terminated_on__isnull=False),
                name="subscription_terminated_has_date",
            ),
        ]

    def __str__(self) -> str:
        return f"Subscription {self.pk} ({self.status})"


class SubscriptionStatusChange(models.Model):
    """Every status transition, with the date it takes effect (billing reads suspended spans)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    effective_on = models.DateField()
    changed_at = models.DateTimeField(auto_now_add=True)
    actor_label = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["subscription_id", "changed_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status} on {self.effective_on}"


class SubscriptionPlanChange(models.Model):
    """Plan history: never overwritten. The plan in effect on a day is the last change on or before it."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="plan_changes")
    from_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    to_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    effective_on = models.DateField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    actor_label = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["subscription_id", "effective_on", "id"]

    def __str__(self) -> str:
        return f"plan {self.from_plan_id} -> {self.to_plan_id} from {self.effective_on}"
