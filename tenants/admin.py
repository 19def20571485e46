"""Two admin sites: `platform_admin` on the public host (operators manage tenants) and Django's
default `admin.site` on every tenant host (the ISP's staff). Changes go through services, so
they are validated and audited the same way as through the API."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from compliance.audit import Actor, audit_record, client_ip

from . import services
from .models import Domain, Tenant

User = get_user_model()


class PlatformAdminSite(admin.AdminSite):
    site_header = "ISP platform - operators"
    site_title = "ISP platform"
    index_title = "Tenants and operators"


platform_admin = PlatformAdminSite(name="platform_admin")


class TenantCreateForm(forms.ModelForm):
    admin_email = forms.EmailField(help_text="The tenant's first owner; a one-time password is shown after saving.")

    class Meta:
        model = Tenant
        fields = (
            "slug",
            "name",
            "currency",
            "country",
            "time_zone",
            "billing_day",
            "payment_terms_days",
            "suspend_after_days",
            "tax_inclusive",
        )

    def _post_clean(self):
        # The schema name is derived by the service; skip ModelForm's instance validation here.
        pass


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    readonly_fields = ("domain", "is_primary")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Tenant, site=platform_admin)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "currency", "country", "tax_inclusive", "status", "created_at")
    list_filter = ("status", "currency", "country", "tax_inclusive")
    search_fields = ("slug", "name")
    readonly_fields = ("slug", "schema_name", "currency", "status", "status_reason", "status_changed_at", "created_at")
    inlines = [DomainInline]
    actions = ["suspend_selected", "reactivate_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(schema_name="public")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = TenantCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": [*TenantCreateForm.Meta.fields, "admin_email"]})]
        return super().get_fieldsets(request, obj)

    def save_model(self, request, obj, form, change):
        actor = Actor.from_user(request.user)
        if change:
            changes = {field: form.cleaned_data[field] for field in form.changed_data}
            services.tenant_update_by_operator(tenant=obj, changes=changes, actor=actor, source_ip=client_ip(request))
            return
        data = {field: form.cleaned_data[field] for field in TenantCreateForm.Meta.fields}
        created = services.tenant_create(
            **data, admin_email=form.cleaned_data["admin_email"], actor=actor, source_ip=client_ip(request)
        )
        obj.pk = created.tenant.pk
        self.message_user(
            request,
            f"Tenant {created.tenant.slug} created at http://{created.tenant.primary_host}/admin/ - owner "
            f"{created.admin_username}, one-time password {created.admin_password}",
            level=messages.WARNING,
        )

    def save_related(self, request, form, formsets, change):
        """Domains are created by the service; nothing related is edited here."""

    def has_delete_permission(self, request, obj=None):
        return False  # tenants are suspended, never deleted from the admin

    @admin.action(description="Suspend selected tenants")
    def suspend_selected(self, request, queryset):
        for tenant in queryset:
            try:
                services.tenant_suspend(
                    tenant=tenant,
                    reason="Suspended by an operator in the admin.",
                    actor=Actor.from_user(request.user),
                    source_ip=client_ip(request),
                )
            except ValidationError as exc:
                self.message_user(request, f"{tenant.slug}: {'; '.join(exc.messages)}", level=messages.ERROR)

    @admin.action(description="Reactivate selected tenants")
    def reactivate_selected(self, request, queryset):
        for tenant in queryset:
            try:
                services.tenant_reactivate(
                    tenant=tenant, actor=Actor.from_user(request.user), source_ip=client_ip(request)
                )
            except ValidationError as exc:
                self.message_user(request, f"{tenant.slug}: {'; '.join(exc.messages)}", level=messages.ERROR)


platform_admin.register(User, UserAdmin)
platform_admin.register(Group, GroupAdmin)


class StaffUserAdmin(UserAdmin):
    """Tenant staff: roles are groups; no superuser flag and no per-user permissions (roles only)."""

    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("username", "email", "is_active", "is_staff")
    list_filter = ("is_active", "is_staff", "groups")
    filter_horizontal = ("groups",)

    @transaction.atomic
    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        changed = [field for field in form.changed_data if field != "password"]
        if changed or not change:
            audit_record(
                actor=Actor.from_user(request.user),
                action="staff.changed" if change else "staff.created",
                target=form.instance,
                changed_fields=changed,
                source_ip=client_ip(request),
            )


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
admin.site.site_header = "ISP back office"
admin.site.site_title = "ISP back office"
