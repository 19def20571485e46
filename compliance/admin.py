"""The audit trail in both admin sites: read-only for everyone (no add, change or delete, ever -
the database refuses them too); staff with `compliance.view_auditevent` (owners, auditors) read."""

from django.contrib import admin

from tenants.admin import platform_admin

from .models import AUDIT_RECORD_FIELDS, AuditEvent


class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "actor_type",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "request_id",
        "source_ip",
    )
    list_filter = ("action", "actor_type", "object_type", "occurred_at")
    search_fields = ("action", "object_type", "object_id", "actor_id", "actor_label", "request_id", "reason")
    date_hierarchy = "occurred_at"
    ordering = ("-seq",)
    show_full_result_count = False  # no COUNT(*) over the whole trail on every page
    fields = (
        "seq",
        "occurred_at",
        ("actor_type", "actor_id", "actor_label"),
        "action",
        ("object_type", "object_id"),
        "changed_fields",
        "reason",
        ("request_id", "source_ip"),
        "prev_hash",
        "hash",
    )
    readonly_fields = ("seq", *AUDIT_RECORD_FIELDS, "prev_hash", "hash")
    actions = None  # not even "delete selected"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


for _site in (admin.site, platform_admin):
    _site.register(AuditEvent, AuditEventAdmin)

from . import admin_dsr  # noqa: E402, F401 - data-subject requests, legal holds, privacy policy
