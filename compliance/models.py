"""Audit trail. Installed in the public schema (operator actions) and in every tenant schema
(that tenant's actions); the search path decides which table a write lands in.

The table is append-only and hash-chained per schema by database triggers (migration
compliance/0002_audit_chain, `compliance/chain.py`, docs/compliance.md "Audit trail")."""

from django.db import models

# What a writer gives for an event (the rest the database sets), and the chain the database adds.
AUDIT_RECORD_FIELDS = (
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "changed_fields",
    "reason",
    "request_id",
    "source_ip",
)
AUDIT_CHAIN_FIELDS = ("seq", "prev_hash", "hash")


class AuditEvent(models.Model):
    class ActorType(models.TextChoices):
        USER = "user", "User"
        TOKEN = "token", "API token"
        SYSTEM = "system", "System task"
        ANONYMOUS = "anonymous", "Anonymous"

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    # Names of the fields that changed, never their values (values may be personal data).
    changed_fields = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    # The hash chain, set by the database whatever the writer sends: empty on insert, sealed when
    # the writing transaction commits (migration 0002_audit_chain); Django's copy of a record it
    # has just written still has the empty values.
    seq = models.BigIntegerField(
        null=True,
        unique=True,
        editable=False,
        help_text="Gap-free position in this schema's chain, from 1; set when the writing transaction commits.",
    )
    prev_hash = models.CharField(max_length=64, editable=False, db_default="", help_text="The previous record's hash.")
    hash = models.CharField(
        max_length=64, editable=False, db_default="", help_text="SHA-256 (hex) over this record's fields and prev_hash."
    )
    txid = models.BigIntegerField(null=True, editable=False, help_text="The writing transaction (set by the database).")

    class Meta:
        ordering = ["-seq"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["txid"], name="audit_unsealed_idx", condition=models.Q(seq__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}:{self.object_id}"


# --- Data-subject rights (GDPR / CCPA requests, legal holds, the tenant's privacy policy) -------
# Tenant-schema models (the tables also exist, unused, in the public schema: compliance is a shared
# and a tenant app). The customer is referenced without a database constraint, so the public copy
# never points into a tenant schema; rows are never deleted while a request or hold names them.
import datetime  # noqa: E402

from django.core.validators import MaxValueValidator, MinValueValidator  # noqa: E402
from django.db.models import Q  # noqa: E402
from django.utils import timezone  # noqa: E402

from compliance.pii.fields import EncryptedTextField, SubjectKeyField  # noqa: E402


class PrivacyPolicy(models.Model):
    """The tenant's data-protection policy: one row (pk=1), edited by the owner."""

    response_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text="Days to answer a data-subject request (GDPR: one month).",
    )
    refuse_erasure_with_unpaid_balance = models.BooleanField(
        default=True, help_text="Refuse an erasure while the customer has an unpaid balance."
    )
    export_archive_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Days an export archive is kept for download before it is purged.",
    )
    radius_session_retention_days = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(30)],
        help_text="Closed RADIUS accounting sessions older than this are deleted (usage stays billed).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "privacy policy"
        verbose_name_plural = "privacy policy"

    def __str__(self) -> str:
        return "Privacy policy"

    @classmethod
    def current(cls) -> "PrivacyPolicy":
        """The stored policy, or the defaults (unsaved) when the owner never changed it."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)


class LegalHold(models.Model):
    """A customer's data must be kept (litigation, an authority's order): erasure is refused."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, db_constraint=False, related_name="legal_holds"
    )
    reason = models.CharField(max_length=500)
    placed_at = models.DateTimeField(auto_now_add=True)
    placed_by = models.CharField(max_length=150, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]

    def __str__(self) -> str:
        return f"Legal hold {self.pk} ({'released' if self.released_at else 'active'})"

    @property
    def active(self) -> bool:
        return self.released_at is None


class DataSubjectRequestQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=DataSubjectRequest.OPEN_STATUSES)

    def overdue(self, now: datetime.datetime | None = None):
        """Open requests past their deadline."""
        return self.open().filter(due_at__lt=now or timezone.now())


class DataSubjectRequest(models.Model):
    """A request of a data subject (a customer): export, erasure or CCPA opt-out.

    received -> verified -> fulfilled, or received/verified -> refused (with the reason). Every
    transition is a service of compliance.dsr.services, audited in its transaction."""

    class Kind(models.TextChoices):
        EXPORT = "export", "Access / portability (export)"
        ERASURE = "erasure", "Erasure (right to be forgotten)"
        DO_NOT_SELL = "do_not_sell", "Do not sell or share (CCPA opt-out)"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        VERIFIED = "verified", "Identity verified"
        FULFILLED = "fulfilled", "Fulfilled"
        REFUSED = "refused", "Refused"

    OPEN_STATUSES = (Status.RECEIVED, Status.VERIFIED)

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, db_constraint=False, related_name="data_subject_requests"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(help_text="received_at + the policy's response days.")
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_method = models.CharField(
        max_length=200, blank=True, help_text="How the identity was checked (never the evidence itself)."
    )
    closed_at = models.DateTimeField(null=True, blank=True, help_text="Fulfilled or refused at.")
    refusal_reason = models.CharField(max_length=500, blank=True)
    pseudonym = models.CharField(max_length=16, blank=True, help_text="Erasure: the label the customer now carries.")
    received_by = models.CharField(max_length=150, blank=True)
    # Export archive (zip, base64), sealed with the subject's own data key: it becomes unreadable
    # when the subject is erased, and is purged after PrivacyPolicy.export_archive_days.
    data_key_id = SubjectKeyField(null=True, blank=True)
    archive = EncryptedTextField()
    archive_sha256 = models.CharField(max_length=64, blank=True)
    archive_expires_at = models.DateTimeField(null=True, blank=True)

    objects = DataSubjectRequestQuerySet.as_manager()

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = "data-subject request"
        indexes = [models.Index(fields=["status", "due_at"], name="dsr_status_due_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(due_at__gte=models.F("received_at")), name="dsr_due_after_received"),
            models.CheckConstraint(
                condition=~Q(status="refused") | ~Q(refusal_reason=""), name="dsr_refusal_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"DSR {self.pk} {self.kind} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_overdue(self) -> bool:
        return self.is_open and self.due_at is not None and self.due_at < timezone.now()
