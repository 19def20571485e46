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
from django.db.models import F
from django.utils.html import format_html

from customers.admin import ServiceAdmin, ServiceForm, _audit_context

from . import services
from .models import (
    Alarm,
    CoaRequest,
    Device,
    Interface,
    IpPool,
    Nas,
    Onu,
    PlanRadiusProfile,
    PppoeAccount,
    ProvisioningJob,
    RadiusSession,
    RadiusSettings,
    Site,
)


class NasForm(ServiceForm):
    # Not named `secret`: that is the model's (non-editable) ciphertext column.
    shared_secret = forms.CharField(
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
        secret = cleaned_data.get("shared_secret") or None
        fields = {f: cleaned_data[f] for f in ("name", "ip_address", "vendor", "coa_port", "description", "is_active")}
        if obj is None:
            if secret is None:
                raise ValidationError({"shared_secret": "A new NAS needs its shared secret."})
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


# --- monitoring ----------------------------------------------------------------------------------

GRAPHED_INTERFACES = 8


def _traffic_graphs(interfaces) -> str:
    from django.utils import timezone
    from django.utils.safestring import mark_safe

    from network.graphs import traffic_svg
    from network.snmp.retention import traffic_points

    end = timezone.now()
    graphs = []
    for interface in interfaces:
        title = f"{interface.device.name} {interface.name or interface.if_index} - last 24 h"
        points = traffic_points(interface.pk, end=end)
        # traffic_svg escapes every text it draws; the SVG is ours, not user HTML.
        graphs.append(traffic_svg(points, title=title, end=end, speed_bps=interface.speed_bps))
    return mark_safe("<br>".join(graphs)) if graphs else "No interfaces discovered yet."  # noqa: S308


class InterfaceInline(admin.TabularInline):
    model = Interface
    fields = ("if_index", "name", "alias", "speed_bps", "admin_status", "oper_status", "in_bps", "out_bps")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "vendor", "management_ip", "status", "last_polled_at", "site")
    list_filter = ("kind", "status", "vendor", "site")
    search_fields = ("name", "management_ip")
    exclude = ("snmp_community", "snmp_v3_auth_key", "snmp_v3_priv_key")
    readonly_fields = ("traffic",)
    inlines = [InterfaceInline]

    @admin.display(description="Traffic (busiest interfaces)")
    def traffic(self, obj):
        busiest = obj.interfaces.select_related("device").order_by(F("in_bps").desc(nulls_last=True))
        return _traffic_graphs(busiest[:GRAPHED_INTERFACES])


@admin.register(Interface)
class InterfaceAdmin(ReadOnlyAdmin):
    list_display = ("device", "if_index", "name", "speed_bps", "oper_status", "in_bps", "out_bps", "last_sample_at")
    list_filter = ("oper_status", "device")
    search_fields = ("name", "alias", "device__name")
    readonly_fields = ("traffic",)

    @admin.display(description="Traffic, last 24 h")
    def traffic(self, obj):
        return _traffic_graphs([obj])


@admin.register(Alarm)
class AlarmAdmin(ReadOnlyAdmin):
    list_display = ("opened_at", "severity", "kind", "summary", "state", "flapping", "acknowledged_by", "cleared_at")
    list_filter = ("state", "severity", "kind", "flapping")
    search_fields = ("summary", "dedupe_key")
    actions = ["acknowledge", "clear_by_hand"]

    def has_change_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm("network.change_alarm"):
            actions.pop("acknowledge", None)
            actions.pop("clear_by_hand", None)
        return actions

    @admin.action(description="Acknowledge (someone is on it)")
    def acknowledge(self, request, queryset):
        from network import alarms as alarm_services

        done = 0
        for alarm in queryset.filter(state=Alarm.State.OPEN):
            with transaction.atomic():
                alarm_services.alarm_acknowledge(alarm=alarm, **_audit_context(request))
            done += 1
        self.message_user(request, f"{done} alarm(s) acknowledged.", messages.SUCCESS)

    @admin.action(description="Clear by hand (the condition is gone or the device retired)")
    def clear_by_hand(self, request, queryset):
        from network import alarms as alarm_services

        done = 0
        for alarm in queryset.filter(state=Alarm.State.OPEN):
            alarm_services.alarm_clear_manually(
                alarm=alarm, reason=f"Cleared by hand in the admin by {request.user}", **_audit_context(request)
            )
            done += 1
        self.message_user(request, f"{done} alarm(s) cleared.", messages.SUCCESS)


@admin.register(Onu)
class OnuAdmin(ReadOnlyAdmin):
    list_display = ("serial", "olt", "pon_port", "onu_index", "state", "rx_power_dbm", "tx_power_dbm", "subscription")
    list_filter = ("state", "olt")
    search_fields = ("serial",)


@admin.register(ProvisioningJob)
class ProvisioningJobAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "subscription", "action", "state", "current_step", "attempts", "error")
    list_filter = ("state", "action")


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "address")


@admin.register(IpPool)
class IpPoolAdmin(ReadOnlyAdmin):
    list_display = ("name", "network", "kind", "gateway", "site")
