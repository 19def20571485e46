"""Staff API for data-subject requests (tenant hosts): owners act, auditors read.

    GET  /api/v1/data-subject-requests/?status=&kind=&customer=&overdue=true
    POST /api/v1/data-subject-requests/                  {"customer", "kind", "received_at"?}
    GET  /api/v1/data-subject-requests/<id>/erasure-blockers/
    POST /api/v1/data-subject-requests/<id>/verify/      {"method"}
    POST /api/v1/data-subject-requests/<id>/fulfil/      {}
    POST /api/v1/data-subject-requests/<id>/refuse/      {"reason"}
    GET  /api/v1/data-subject-requests/<id>/archive/     the export zip (needs customers.reveal_pii)

Thin: the workflow is compliance.dsr.services."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from compliance.audit import Actor, client_ip
from compliance.dsr import services
from compliance.models import DataSubjectRequest
from isp.api.filters import IsoDateTimeFilter
from isp.api.schema import error_response
from isp.api.serializers import StrictInput

VIEW = ["compliance.view_datasubjectrequest"]
CHANGE = ["compliance.change_datasubjectrequest"]


def _customers():
    return DataSubjectRequest._meta.get_field("customer").related_model.objects.all()


class DataSubjectRequestOutput(serializers.ModelSerializer):
    account_code = serializers.CharField(source="customer.account_code", read_only=True)
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)
    archive_available = serializers.SerializerMethodField()

    class Meta:
        model = DataSubjectRequest
        fields = (
            "id",
            "customer",
            "account_code",
            "kind",
            "status",
            "received_at",
            "due_at",
            "overdue",
            "verified_at",
            "verification_method",
            "closed_at",
            "refusal_reason",
            "pseudonym",
            "received_by",
            "archive_available",
            "archive_sha256",
            "archive_expires_at",
        )
        read_only_fields = fields

    def get_archive_available(self, obj) -> bool:  # no decryption: the digest is kept with the archive
        return bool(obj.archive_sha256)


class CreateInput(StrictInput):
    customer = serializers.PrimaryKeyRelatedField(queryset=_customers())
    kind = serializers.ChoiceField(choices=DataSubjectRequest.Kind.choices)
    received_at = serializers.DateTimeField(required=False)


class VerifyInput(StrictInput):
    method = serializers.CharField(max_length=200)


class RefuseInput(StrictInput):
    reason = serializers.CharField(max_length=500)


class EmptyInput(StrictInput):
    pass


class BlockersOutput(serializers.Serializer):
    blockers = serializers.ListField(child=serializers.CharField())


class DataSubjectRequestFilter(filters.FilterSet):
    overdue = filters.BooleanFilter(method="filter_overdue", help_text="true: open and past the deadline.")
    due_before = IsoDateTimeFilter(field_name="due_at", lookup_expr="lt")

    class Meta:
        model = DataSubjectRequest
        fields = ("status", "kind", "customer")

    def filter_overdue(self, queryset, name, value):
        overdue = DataSubjectRequest.objects.overdue(timezone.now()).values("pk")
        return queryset.filter(pk__in=overdue) if value else queryset.exclude(pk__in=overdue)


def _context(request) -> dict:
    return {"actor": Actor.from_request(request), "source_ip": client_ip(request)}


class DataSubjectRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Data-subject requests: received -> verified -> fulfilled, or refused with the reason."""

    required_permissions = {
        "list": VIEW,
        "retrieve": VIEW,
        "erasure_blockers": VIEW,
        "create": ["compliance.add_datasubjectrequest"],
        "verify": CHANGE,
        "fulfil": CHANGE,
        "refuse": CHANGE,
        "archive": VIEW + ["customers.reveal_pii"],
    }
    serializer_class = DataSubjectRequestOutput
    queryset = DataSubjectRequest.objects.select_related("customer").defer("archive")
    filterset_class = DataSubjectRequestFilter
    ordering_fields = ("due_at", "received_at", "id")
    ordering = ("due_at", "id")

    def _done(self, dsr, code=status.HTTP_200_OK):
        return Response(DataSubjectRequestOutput(self.get_queryset().get(pk=dsr.pk)).data, status=code)

    @extend_schema(request=CreateInput, responses={201: DataSubjectRequestOutput})
    def create(self, request):
        data = CreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.dsr_create(**data.validated_data, **_context(request))
        return self._done(created, status.HTTP_201_CREATED)

    @extend_schema(request=VerifyInput, responses=DataSubjectRequestOutput)
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        data = VerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._done(services.dsr_verify(request=self.get_object(), **data.validated_data, **_context(request)))

    @extend_schema(request=EmptyInput, responses=DataSubjectRequestOutput)
    @action(detail=True, methods=["post"])
    def fulfil(self, request, pk=None):
        """Export: build the archive. Erasure: erase, or end `refused` with the reasons. Opt-out: record it."""
        EmptyInput(data=request.data).is_valid(raise_exception=True)
        return self._done(services.dsr_fulfil(request=self.get_object(), **_context(request)))

    @extend_schema(request=RefuseInput, responses=DataSubjectRequestOutput)
    @action(detail=True, methods=["post"])
    def refuse(self, request, pk=None):
        data = RefuseInput(data=request.data)
        data.is_valid(raise_exception=True)
        return self._done(services.dsr_refuse(request=self.get_object(), **data.validated_data, **_context(request)))

    @extend_schema(responses=BlockersOutput)
    @action(detail=True, methods=["get"], url_path="erasure-blockers")
    def erasure_blockers(self, request, pk=None):
        """What would stop an erasure of this request's customer now (legal hold, unpaid balance)."""
        return Response({"blockers": services.erasure_blockers(self.get_object().customer)})

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY, 400: error_response(400)})
    @action(detail=True, methods=["get"])
    def archive(self, request, pk=None):
        """The export archive (zip). Audited as a reveal of the subject's personal data."""
        dsr = self.get_object()
        data = services.dsr_archive(request=dsr, **_context(request))
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="personal-data-{dsr.customer.account_code}.zip"'
        response["Cache-Control"] = "no-store"
        return response
