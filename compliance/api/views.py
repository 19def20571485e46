from rest_framework import serializers, viewsets

from compliance.models import AuditEvent


class AuditEventOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = (
            "id",
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
        read_only_fields = fields


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The tenant's audit trail, read-only (auditors and owners)."""

    required_permissions = {"list": ["compliance.view_auditevent"], "retrieve": ["compliance.view_auditevent"]}
    serializer_class = AuditEventOutput
    queryset = AuditEvent.objects.all()
    filterset_fields = ("action", "actor_type", "actor_id", "object_type", "object_id")
    ordering_fields = ("occurred_at", "id")
    ordering = ("-occurred_at", "-id")
