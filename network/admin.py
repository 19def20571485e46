"""Tenant admin of the RADIUS side: NAS registry, PPPoE accounts, RADIUS settings and plan
profiles (saved through network.services, audited like the API), and the read-only records
FreeRADIUS and the CoA sender write (sessions, CoA/Disconnect requests).

Secrets go in and never come out: a NAS secret is write-only on its form; a PPPoE password is
shown once, in the message after it was set, and is not readable afterwards."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.html import format_html

from customers.admin import ServiceAdmin, ServiceForm, _audit_context

from . import services
from .models import CoaRequest, Nas, PlanRadiusProfile, PppoeAccount, RadiusSession, RadiusSettings


class NasForm(ServiceForm):
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Shared secret (8-128 printable characters). Leave empty to keep the current one.",
    )

    class Meta:
        model = Nas
        fields = ["name", "ip_address", "vendor", "coa_port", "description", "is_active"]


@admin.register(Nas)
class NasAdmin(ServiceAdmin):
    form = NasForm
    list_display = ("name", "ip_address", "vendor", "coa_port", "is_active", "created_at")
    list_filter = ("vendor", "is_active")
    search_fields = ("name", "ip_address")

    def persist(self, request, form, cleaned_data, *, obj):
        secret = cleaned_data.get("secret") or None
        fields = {f: cleaned_data[f] for f in ("name", "ip_address", "vendor", "coa_port", "description", "is_active")}
        if obj is None:
            if secret is None:
                raise ValidationError({"secret": "A new NAS needs its shared secret."})
            is_active = fields.pop("is_active")
            nas = services.nas_register(secret=secret, **fields, **_audit_context(request))
            if not is_active:
                nas = services.nas_update(nas=nas, changes={"is_active": False}, **_audit_context(request))
            return nas
        return services.nas_update(nas=obj, changes=fields, secret=secret, **_audit_context(request))

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("network.delete_nas")

    def delete_model(self, request, obj):
        services.nas_delete(nas=obj, **_audit_context(request))

    def delete_queryset(self, request, queryset):
        for nas in queryset:
            services.nas_delete(nas=nas, **_audit_context(request))


class PppoeAccountForm(ServiceForm):
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Leave empty to generate one. Shown once after saving; never readable again.",
    )

    class Meta:
        model = PppoeAccount
        fields = ["subscription", "username", "static_ip", "simultaneous_use"]


@admin.register(PppoeAccount)
class PppoeAccountAdmin(ServiceAdmin):
    form = PppoeAccountForm
    list_display = ("username", "subscription", "static_ip", "simultaneous_use", "over_cap", "updated_at")
    list_filter = ("over_cap",)
    search_fields = ("username", "static_ip")
    raw_id_fields = ("subscription",)
    actions = ["reset_password"]

    def get_readonly_fields(self, request, obj=None):
        return ("subscription", "username", "over_cap", "over_cap_since") if obj else ("over_cap", "over_cap_since")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["subscription", "username", "password", "static_ip", "simultaneous_use"]
        return ["subscription", "username", "static_ip", "simultaneous_use", "over_cap", "over_cap_since"]

    def persist(self, request, form, cleaned_data, *, obj):
        if obj is None:
            account, password = services.pppoe_account_create(
                subscription=cleaned_data["subscription"],
                username=cleaned_data.get("username") or None,
                password=cleaned_data.get("password") or None,
                static_ip=cleaned_data.get("static_ip") or None,
                simultaneous_use=cleaned_data.get("simultaneous_use") or 1,
                **_audit_context(request),
            )
            self._shown_password = (account.username, password)
            return account
        changes = {f: cleaned_data.get(f) for f in ("static_ip", "simultaneous_use")}
        return services.pppoe_account_update(account=obj, changes=changes, **_audit_context(request))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        shown = getattr(self, "_shown_password", None)
        if shown:
            self.message_user(
                request,
                format_html("PPPoE password of <b>{}</b>: <code>{}</code> (shown once)", *shown),
                messages.WARNING,
            )
            self._shown_password = None

    @admin.action(description="Reset the PPPoE password (shown once)", permissions=["change"])
    def reset_password(self, request, queryset):
        for account in queryset:
            with transaction.atomic():
                password = services.pppoe_password_set(account=account, **_audit_context(request))
            self.message_user(
                request,
                format_html(
                    "New PPPoE password of <b>{}</b>: <code>{}</code> (shown once)", account.username, password
                ),
                messages.WARNING,
            )


class RadiusSettingsForm(ServiceForm):
    class Meta:
        model = RadiusSettings
        fields = [
            "suspended_access",
            "walled_garden_pool",
            "walled_garden_kbps",
            "default_pool",
            "session_timeout_s",
            "interim_interval_s",
            "stale_after_s",
        ]


@admin.register(RadiusSettings)
class RadiusSettingsAdmin(ServiceAdmin):
    form = RadiusSettingsForm

    def has_add_permission(self, request):
        return False

    def persist(self, request, form, cleaned_data, *, obj):
        changes = {f: cleaned_data[f] for f in RadiusSettingsForm.Meta.fields}
        return services.radius_settings_update(changes=changes, **_audit_context(request))


@admin.register(PlanRadiusProfile)
class PlanRadiusProfileAdmin(admin.ModelAdmin):
    list_display = ("plan", "session_timeout_s", "framed_pool")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by FreeRADIUS or the CoA sender, never by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RadiusSession)
class RadiusSessionAdmin(ReadOnlyAdmin):
    list_display = (
        "username",
        "nas_ip_address",
        "framed_ip_address",
        "start_time",
        "stop_time",
        "session_time",
        "input_octets",
        "output_octets",
        "terminate_cause",
    )
    list_filter = ("terminate_cause", ("stop_time", admin.EmptyFieldListFilter))
    search_fields = ("username", "acct_session_id", "framed_ip_address")
    date_hierarchy = "start_time"


@admin.register(CoaRequest)
class CoaRequestAdmin(ReadOnlyAdmin):
    list_display = ("requested_at", "kind", "reason", "subscription", "nas", "outcome", "attempts", "error_cause")
    list_filter = ("kind", "outcome", "reason")
