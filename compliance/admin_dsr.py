"""Tenant admin for data-subject requests, legal holds and the privacy policy.

Every write goes through compliance.dsr.services (audited): adding a request records it as
received; on a received request, filling "verification method" verifies it; on an open one,
filling "refusal reason" refuses it; the action "Fulfil" fulfils verified requests. Nothing is
deleted. Imported at the end of compliance/admin.py."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from compliance.audit import Actor, client_ip
from compliance.dsr import services
from compliance.models import DataSubjectRequest, LegalHold, PrivacyPolicy


def _actor(request) -> dict:
    return {"actor": Actor.from_user(request.user), "source_ip": client_ip(request)}


class OverdueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return (("yes", "Overdue (open, past the deadline)"), ("no", "Not overdue"))

    def queryset(self, request, queryset):
        overdue = DataSubjectRequest.objects.overdue(timezone.now()).values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=overdue)
        if self.value() == "no":
            return queryset.exclude(pk__in=overdue)
        return queryset


class NoDeleteAdmin(admin.ModelAdmin):
    actions = None

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(NoDeleteAdmin):
    list_display = ("id", "customer", "kind", "status", "received_at", "due_at", "overdue", "closed_at")
    list_filter = ("status", "kind", OverdueFilter)
    raw_id_fields = ("customer",)
    ordering = ("due_at", "id")
    actions = ["fulfil_selected"]
    readonly = (
        "customer",
        "kind",
        "status",
        "received_at",
        "due_at",
        "verified_at",
        "closed_at",
        "pseudonym",
        "received_by",
        "archive_sha256",
        "archive_expires_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).defer("archive")

    @admin.display(boolean=True, description="Overdue")
    def overdue(self, obj):
        return obj.is_overdue

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("customer", "kind", "received_at")
        return (*self.readonly, "verification_method", "refusal_reason")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        readonly = list(self.readonly)
        if obj.status != DataSubjectRequest.Status.RECEIVED:
            readonly.append("verification_method")
        if not obj.is_open:
            readonly.append("refusal_reason")
        return readonly

    def save_model(self, request, obj, form, change):
        try:
            if not change:
                saved = services.dsr_create(
                    customer=obj.customer, kind=obj.kind, received_at=obj.received_at, **_actor(request)
                )
                obj.pk = saved.pk
                obj.due_at = saved.due_at
                obj._state.adding = False
                return
            stored = DataSubjectRequest.objects.get(pk=obj.pk)
            if "verification_method" in form.changed_data and obj.verification_method.strip():
                services.dsr_verify(request=stored, method=obj.verification_method, **_actor(request))
            if "refusal_reason" in form.changed_data and obj.refusal_reason.strip():
                services.dsr_refuse(request=stored, reason=obj.refusal_reason, **_actor(request))
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)

    def save_related(self, request, form, formsets, change):
        """The services write everything."""

    @admin.action(description="Fulfil the selected verified requests", permissions=["change"])
    def fulfil_selected(self, request, queryset):
        for dsr in queryset.order_by("pk"):
            try:
                done = services.dsr_fulfil(request=dsr, **_actor(request))
            except ValidationError as exc:
                self.message_user(request, f"{dsr}: {'; '.join(exc.messages)}", level=messages.ERROR)
                continue
            level = messages.SUCCESS if done.status == DataSubjectRequest.Status.FULFILLED else messages.WARNING
            self.message_user(request, f"{done}: {done.refusal_reason or 'fulfilled'}", level=level)


@admin.register(LegalHold)
class LegalHoldAdmin(NoDeleteAdmin):
    list_display = ("id", "customer", "placed_at", "placed_by", "released_at")
    list_filter = ("released_at",)
    raw_id_fields = ("customer",)
    actions = ["release_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("customer", "reason")
        return ("customer", "reason", "placed_at", "placed_by", "released_at", "released_by")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            saved = services.legal_hold_place(customer=obj.customer, reason=obj.reason, **_actor(request))
            obj.pk, obj._state.adding = saved.pk, False

    @admin.action(description="Release the selected holds", permissions=["change"])
    def release_selected(self, request, queryset):
        for hold in queryset.filter(released_at__isnull=True):
            services.legal_hold_release(hold=hold, **_actor(request))


@admin.register(PrivacyPolicy)
class PrivacyPolicyAdmin(NoDeleteAdmin):
    fields = (
        "response_days",
        "refuse_erasure_with_unpaid_balance",
        "export_archive_days",
        "radius_session_retention_days",
        "updated_at",
    )
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request):
        """One policy row: added once, by someone whose role may add it."""
        return super().has_add_permission(request) and not PrivacyPolicy.objects.exists()

    def save_model(self, request, obj, form, change):
        changes = {f: form.cleaned_data[f] for f in form.changed_data if f in services.POLICY_FIELDS}
        if not change:
            changes = {f: form.cleaned_data[f] for f in services.POLICY_FIELDS if f in form.cleaned_data}
        saved = services.privacy_policy_update(changes=changes, **_actor(request))
        obj.pk, obj._state.adding = saved.pk, False
