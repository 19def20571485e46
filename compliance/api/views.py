"""The audit trail over the API: read-only, searchable, with the hash chain of every record."""

from django.db.models import Q
from django_filters import rest_framework as filters
from rest_framework import serializers, viewsets

from compliance.models import AUDIT_RECORD_FIELDS, AuditEvent
from isp.api.filters import IsoDateTimeFilter


class AuditEventFilter(filters.FilterSet):
    actor = filters.CharFilter(method="filter_actor", help_text="The actor's user id or username (exact).")
    object = filters.CharFilter(
        method="filter_object", help_text="`app.model` or `app.model:id`, e.g. `customers.customer:42`."
    )
    occurred_after = IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", help_text="ISO 8601; this instant included."
    )
    occurred_before = IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", help_text="ISO 8601; this instant excluded."
    )
    seq_after = filters.NumberFilter(
        field_name="seq", lookup_expr="gt", help_text="Records after this chain position (incremental export)."
    )
    search = filters.CharFilter(
        method="filter_search",
        help_text="Substring (case-insensitive) of the action, object type or id, actor, request id or reason.",
    )

    class Meta:
        model = AuditEvent
        fields = ("action", "actor_type", "actor_id", "object_type", "object_id", "request_id", "seq")

    def filter_actor(self, queryset, name, value):
        return queryset.filter(Q(actor_id=value) | Q(actor_label__iexact=value))

    def filter_object(self, queryset, name, value):
        object_type, _, object_id = value.partition(":")
        queryset = queryset.filter(object_type=object_type.strip().lower())
        return queryset.filter(object_id=object_id.strip()) if object_id else queryset

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        fields = ("action", "object_type", "object_id", "actor_id", "actor_label", "request_id", "reason")
        query = Q()
        for field in fields:
            query |= Q(**{f"{field}__icontains": value})
        return queryset.filter(query)


class AuditEventOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ("id", "seq", *AUDIT_RECORD_FIELDS, "prev_hash", "hash")
        read_only_fields = fields


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The tenant's audit trail, read-only (auditors and owners), newest first (by chain position)."""

    required_permissions = {"list": ["compliance.view_auditevent"], "retrieve": ["compliance.view_auditevent"]}
    serializer_class = AuditEventOutput
    queryset = AuditEvent.objects.all()
    filterset_class = AuditEventFilter
    ordering_fields = ("seq", "occurred_at", "id")
    ordering = ("-seq",)
