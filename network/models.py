"""RADIUS side of the network app (tenant schema).

FreeRADIUS never reads these tables directly: it calls the functions of the `radius` schema
(`network/radius/db.py`), which look the tenant up from the NAS and read here. What FreeRADIUS
writes (accounting) lands in `RadiusSession` through `radius.accounting`, and a trigger turns
every octet counter increase into daily usage for billing (`billing_usagerecord`)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from customers.models import Plan, Subscription

USERNAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$",
    "3-64 characters: letters, digits, '.', '_', '@', '-' (starting with a letter or digit).",
    code="invalid_username",
)
POOL_VALIDATOR = RegexValidator(r"^[A-Za-z0-9._-]{0,64}$", "Letters, digits, '.', '_', '-'.", code="invalid_pool")


class RadiusSettings(models.Model):
    """The tenant's RADIUS policy (one row, id 1)."""

    class SuspendedAccess(models.TextChoices):
        REJECT = "reject", "Reject the login"
        WALLED_GARDEN = "walled_garden", "Accept into the walled-garden pool"

    suspended_access = models.CharField(max_length=16, choices=SuspendedAccess.choices, default=SuspendedAccess.REJECT)
    walled_garden_pool = models.CharField(max_length=64, default="walled-garden", validators=[POOL_VALIDATOR])
    walled_garden_kbps = models.PositiveIntegerField(default=256, validators=[MinValueValidator(1)])
    default_pool = models.CharField(
        max_length=64, blank=True, default="", validators=[POOL_VALIDATOR], help_text="Framed-Pool when no static IP."
    )
    session_timeout_s = models.PositiveIntegerField(
        default=86400, validators=[MinValueValidator(60), MaxValueValidator(31 * 86400)]
    )
    interim_interval_s = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(60), MaxValueValidator(86400)]
    )
    stale_after_s = models.PositiveIntegerField(
        default=900,
        validators=[MinValueValidator(120)],
        help_text="An open session with no accounting for this long is closed as stale.",
    )

    class Meta:
        verbose_name = "RADIUS settings"
        verbose_name_plural = "RADIUS settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="radius_settings_singleton")]

    def __str__(self) -> str:
        return "RADIUS settings"

    @classmethod
    def current(cls) -> RadiusSettings:
        return cls.objects.get_or_create(pk=1)[0]


class PlanRadiusProfile(models.Model):
    """Per-plan overrides of the RADIUS reply (plans live in customers)."""

    plan = models.OneToOneField(Plan, on_delete=models.CASCADE, related_name="radius_profile")
    session_timeout_s = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(60)])
    framed_pool = models.CharField(max_length=64, blank=True, default="", validators=[POOL_VALIDATOR])

    def __str__(self) -> str:
        return f"RADIUS profile of plan {self.plan_id}"


class Nas(models.Model):
    """A NAS/BRAS of this tenant. Its source IP decides the tenant of every RADIUS request."""

    class Vendor(models.TextChoices):
        MIKROTIK = "mikrotik", "MikroTik"
        CISCO = "cisco", "Cisco"
        JUNIPER = "juniper", "Juniper"
        HUAWEI = "huawei", "Huawei"
        OTHER = "other", "Other"

    name = models.CharField(max_length=100, unique=True)
    ip_address = models.GenericIPAddressField(unique=True, protocol="IPv4")
    # Shared secret, AES-GCM with the key ring (the back office needs it to send CoA); FreeRADIUS
    # reads its own sealed copy through radius.nas_client().
    secret = models.BinaryField(editable=False)
    vendor = models.CharField(max_length=16, choices=Vendor.choices, default=Vendor.MIKROTIK)
    coa_port = models.PositiveIntegerField(default=3799, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "NAS"
        verbose_name_plural = "NAS devices"

    def __str__(self) -> str:
        return f"{self.name} ({self.ip_address})"


class PppoeAccount(models.Model):
    """PPPoE credentials of one subscription. The secret is sealed in the database with a key
    only the `radius` schema's functions read; nothing in the back office decrypts it."""

    subscription = models.OneToOneField(Subscription, on_delete=models.PROTECT, related_name="pppoe")
    username = models.CharField(max_length=64, unique=True, validators=[USERNAME_VALIDATOR])
    secret_sealed = models.BinaryField(editable=False)
    static_ip = models.GenericIPAddressField(null=True, blank=True, unique=True, protocol="IPv4")
    simultaneous_use = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    over_cap = models.BooleanField(default=False, help_text="Over the plan's data cap: fair-use speed.")
    over_cap_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["username"]
        verbose_name = "PPPoE account"

    def __str__(self) -> str:
        return self.username


class RadiusSession(models.Model):
    """One accounting session (radacct), written by FreeRADIUS through radius.accounting()."""

    acct_unique_id = models.CharField(max_length=64, unique=True)
    acct_session_id = models.CharField(max_length=64)
    username = models.CharField(max_length=64)
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="radius_sessions"
    )
    nas_ip_address = models.GenericIPAddressField()
    nas_port_id = models.CharField(max_length=64, blank=True, default="")
    nas_port_type = models.CharField(max_length=32, blank=True, default="")
    framed_ip_address = models.GenericIPAddressField(null=True, blank=True)
    calling_station_id = models.CharField(max_length=64, blank=True, default="")
    called_station_id = models.CharField(max_length=64, blank=True, default="")
    start_time = models.DateTimeField()
    update_time = models.DateTimeField()
    stop_time = models.DateTimeField(null=True, blank=True)
    session_time = models.BigIntegerField(default=0)
    input_octets = models.BigIntegerField(default=0, help_text="From the subscriber (upload), gigawords included.")
    output_octets = models.BigIntegerField(default=0, help_text="To the subscriber (download), gigawords included.")
    terminate_cause = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["-start_time"]
        indexes = [
            models.Index(fields=["username"], name="session_open_user_idx", condition=Q(stop_time__isnull=True)),
            models.Index(fields=["nas_ip_address"], name="session_open_nas_idx", condition=Q(stop_time__isnull=True)),
            models.Index(fields=["subscription", "start_time"], name="session_sub_start_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.acct_session_id}"


class CoaRequest(models.Model):
    """One CoA-Request or Disconnect-Request sent to a NAS, with its outcome (RFC 5176)."""

    class Kind(models.TextChoices):
        DISCONNECT = "disconnect", "Disconnect-Request"
        COA = "coa", "CoA-Request"

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        ACK = "ack", "Acknowledged"
        NAK = "nak", "Refused (NAK)"
        TIMEOUT = "timeout", "No answer"
        ERROR = "error", "Error"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="coa_requests")
    session = models.ForeignKey(RadiusSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    nas = models.ForeignKey(Nas, null=True, blank=True, on_delete=models.SET_NULL, related_name="coa_requests")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.CharField(max_length=100)
    attributes = models.JSONField(default=dict)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error_cause = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = "CoA / Disconnect request"

    def __str__(self) -> str:
        return f"{self.kind} {self.outcome}"
