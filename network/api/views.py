"""Staff API of the network app (tenant hosts): NAS registry, PPPoE accounts, RADIUS sessions,
CoA/Disconnect requests, RADIUS settings.

Views are thin: parse input, call network.services, render output. Sessions and CoA requests are
read-only (FreeRADIUS and the CoA sender write them). Roles (tenants.roles): owner and network_ops
write; support and auditor read; billing_admin has no access to the network."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.audit import Actor, client_ip
from customers.models import Subscription
from isp.api.errors import django_validation_to_drf
from isp.api.filters import IPAddressFilter
from isp.api.schema import error_response
from network import alarms as alarm_services
from network import services
from network.graphs import traffic_svg
from network.models import (
    Alarm,
    CoaRequest,
    Device,
    Interface,
    Nas,
    Onu,
    PppoeAccount,
    ProvisioningJob,
    RadiusSession,
    RadiusSettings,
)
from network.outage import outage_report
from network.snmp.retention import traffic_points

from . import serializers as s


def _audit_context(request) -> dict:
    return {"actor": Actor.from_request(request), "source_ip": client_ip(request)}


# A subscription named in the body is looked up like a path id: one that does not exist is a 404.
SUBSCRIPTION_NOT_FOUND = {404: error_response(404)}


@extend_schema_view(
    create=extend_schema(request=s.NasCreateInput, responses={201: s.NasOutput}),
    partial_update=extend_schema(request=s.NasUpdateInput, responses=s.NasOutput),
)
class NasViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """NAS/BRAS devices of this tenant. The source address of a RADIUS packet decides its tenant;
    an address can be registered by one tenant of the platform only. The secret is write-only."""

    required_permissions = {
        "list": ["network.view_nas"],
        "retrieve": ["network.view_nas"],
        "create": ["network.add_nas"],
        "partial_update": ["network.change_nas"],
        "destroy": ["network.delete_nas"],
    }
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    serializer_class = s.NasOutput
    queryset = Nas.objects.all()
    ordering = ("name",)

    def create(self, request):
        data = s.NasCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        nas = services.nas_register(**data.validated_data, **_audit_context(request))
        return Response(s.NasOutput(nas).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        data = s.NasUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        secret = changes.pop("secret", None)
        nas = services.nas_update(nas=self.get_object(), changes=changes, secret=secret, **_audit_context(request))
        return Response(s.NasOutput(nas).data)

    def destroy(self, request, pk=None):
        services.nas_delete(nas=self.get_object(), **_audit_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    create=extend_schema(
        request=s.PppoeAccountCreateInput, responses={201: s.PppoeAccountWithPassword, **SUBSCRIPTION_NOT_FOUND}
    ),
    partial_update=extend_schema(request=s.PppoeAccountUpdateInput, responses=s.PppoeAccountOutput),
    reset_password=extend_schema(request=s.PasswordResetInput, responses=s.PppoeAccountWithPassword),
)
class PppoeAccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """PPPoE credentials per subscription. The password is in the response that sets it (create,
    reset-password) and nowhere else: it is sealed for FreeRADIUS and never read back."""

    required_permissions = {
        "list": ["network.view_pppoeaccount"],
        "retrieve": ["network.view_pppoeaccount"],
        "create": ["network.add_pppoeaccount"],
        "partial_update": ["network.change_pppoeaccount"],
        "reset_password": ["network.change_pppoeaccount"],
    }
    http_method_names = ["get", "post", "patch", "head", "options"]
    serializer_class = s.PppoeAccountOutput
    queryset = PppoeAccount.objects.all()
    filterset_fields = ("subscription", "over_cap")
    ordering = ("username",)

    def create(self, request):
        data = s.PppoeAccountCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        subscription = get_object_or_404(Subscription, pk=values.pop("subscription"))
        account, password = services.pppoe_account_create(
            subscription=subscription, **values, **_audit_context(request)
        )
        body = s.PppoeAccountWithPassword(account, context={"password": password}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    def partial_update(self, request, pk=None):
        data = s.PppoeAccountUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        account = services.pppoe_account_update(
            account=self.get_object(), changes=dict(data.validated_data), **_audit_context(request)
        )
        return Response(s.PppoeAccountOutput(account).data)

    @action(detail=True, methods=["post"], url_path="reset-password")
    def reset_password(self, request, pk=None):
        data = s.PasswordResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = self.get_object()
        password = services.pppoe_password_set(
            account=account, password=data.validated_data.get("password"), **_audit_context(request)
        )
        account.refresh_from_db()
        body = s.PppoeAccountWithPassword(account, context={"password": password}).data
        return Response(body, headers={"Cache-Control": "no-store"})


class RadiusSessionFilter(filters.FilterSet):
    nas_ip_address = IPAddressFilter()

    class Meta:
        model = RadiusSession
        fields = ("username", "subscription", "nas_ip_address")


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("open", OpenApiTypes.BOOL, description="true: open sessions only; false: closed ones.")
        ]
    )
)
class RadiusSessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Accounting sessions as FreeRADIUS stored them (read-only)."""

    required_permissions = {"list": ["network.view_radiussession"], "retrieve": ["network.view_radiussession"]}
    serializer_class = s.RadiusSessionOutput
    queryset = RadiusSession.objects.all()
    filterset_class = RadiusSessionFilter
    ordering = ("-start_time",)

    def get_queryset(self):
        queryset = super().get_queryset()
        open_only = self.request.query_params.get("open")
        if open_only in ("1", "true"):
            queryset = queryset.filter(stop_time__isnull=True)
        elif open_only in ("0", "false"):
            queryset = queryset.filter(stop_time__isnull=False)
        return queryset


class CoaRequestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """CoA and Disconnect requests sent to the NAS, with their outcomes (read-only)."""

    required_permissions = {"list": ["network.view_coarequest"], "retrieve": ["network.view_coarequest"]}
    serializer_class = s.CoaRequestOutput
    queryset = CoaRequest.objects.all()
    filterset_fields = ("subscription", "kind", "outcome", "reason")
    ordering = ("-requested_at", "-id")


class RadiusSettingsView(APIView):
    """The tenant's RADIUS policy: suspended subscribers rejected or walled-garden, pools, timers."""

    required_permissions = {"get": ["network.view_radiussettings"], "patch": ["network.change_radiussettings"]}

    @extend_schema(responses=s.RadiusSettingsOutput)
    def get(self, request):
        return Response(s.RadiusSettingsOutput(RadiusSettings.current()).data)

    @extend_schema(request=s.RadiusSettingsInput, responses=s.RadiusSettingsOutput)
    def patch(self, request):
        data = s.RadiusSettingsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        settings_row = services.radius_settings_update(changes=dict(data.validated_data), **_audit_context(request))
        return Response(s.RadiusSettingsOutput(settings_row).data)


# --- monitoring ---------------------------------------------------------------------------------


@extend_schema_view(create=extend_schema(request=s.DeviceCreateInput, responses={201: s.DeviceOutput}))
class DeviceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Managed devices (routers, switches, BRAS, OLTs) and their polling state. SNMP secrets are
    write-only (encrypted at rest)."""

    required_permissions = {
        "list": ["network.view_device"],
        "retrieve": ["network.view_device"],
        "create": ["network.add_device"],
    }
    http_method_names = ["get", "post", "head", "options"]

    def create(self, request):
        from network.inventory import device_register

        data = s.DeviceCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        with transaction.atomic():
            device = device_register(**values, **_audit_context(request))
        return Response(s.DeviceOutput(device).data, status=status.HTTP_201_CREATED)

    serializer_class = s.DeviceOutput
    queryset = Device.objects.all()
    filterset_fields = ("kind", "status", "site")
    ordering = ("name",)


class InterfaceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Interfaces with their last rates; `traffic/` gives the last 24 h (JSON, or an SVG graph with ?as=svg)."""

    required_permissions = {
        "list": ["network.view_interface"],
        "retrieve": ["network.view_interface"],
        "traffic": ["network.view_interface"],
    }
    serializer_class = s.InterfaceOutput
    queryset = Interface.objects.select_related("device")
    filterset_fields = ("device", "oper_status")
    ordering = ("device_id", "if_index")

    @extend_schema(
        responses={
            (200, "application/json"): s.TrafficPoint(many=True),
            (200, "image/svg+xml"): OpenApiResponse(OpenApiTypes.STR, description="?as=svg: the graph."),
        },
        parameters=[OpenApiParameter("as", str, enum=["json", "svg"], description="svg: the graph as image/svg+xml")],
        filters=False,
    )
    @action(detail=True, methods=["get"], pagination_class=None)  # the last 24 h, never paginated
    def traffic(self, request, pk=None):
        interface = self.get_object()
        end = timezone.now()
        points = traffic_points(interface.pk, end=end)
        if request.query_params.get("as") == "svg":
            title = f"{interface.device.name} {interface.name or interface.if_index} - last 24 h"
            svg = traffic_svg(points, title=title, end=end, speed_bps=interface.speed_bps)
            return HttpResponse(svg, content_type="image/svg+xml")
        return Response([{"at": at, "in_bps": i, "out_bps": o} for at, i, o in points])


@extend_schema_view(
    acknowledge=extend_schema(request=s.AlarmAcknowledgeInput, responses=s.AlarmOutput),
    clear=extend_schema(request=s.ReasonInput, responses=s.AlarmOutput),
)
class AlarmViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alarms: open ones first. Acknowledge (someone is on it) or clear by hand (with a reason);
    `outage/` lists the subscribers affected by a device-unreachable alarm."""

    required_permissions = {
        "list": ["network.view_alarm"],
        "retrieve": ["network.view_alarm"],
        "acknowledge": ["network.change_alarm"],
        "clear": ["network.change_alarm"],
        "outage": ["network.view_alarm", "customers.view_subscription"],
    }
    serializer_class = s.AlarmOutput
    queryset = Alarm.objects.all()
    filterset_fields = ("state", "kind", "severity", "device", "flapping")
    ordering = ("state", "-opened_at", "-id")

    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        data = s.AlarmAcknowledgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            alarm = alarm_services.alarm_acknowledge(
                alarm=self.get_object(), note=data.validated_data["note"], **_audit_context(request)
            )
        return Response(s.AlarmOutput(alarm).data)

    @action(detail=True, methods=["post"])
    def clear(self, request, pk=None):
        data = s.ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        alarm = alarm_services.alarm_clear_manually(
            alarm=self.get_object(), reason=data.validated_data["reason"], **_audit_context(request)
        )
        return Response(s.AlarmOutput(alarm).data)

    @extend_schema(responses=s.OutageReportOutput)
    @action(detail=True, methods=["get"])
    def outage(self, request, pk=None):
        return Response(outage_report(self.get_object()).as_json())


@extend_schema_view(authorise=extend_schema(request=s.OnuAuthoriseInput, responses=s.OnuOutput))
class OnuViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """GPON ONUs with their state and optical levels (dBm); `authorise/` binds one to a subscription."""

    required_permissions = {
        "list": ["network.view_onu"],
        "retrieve": ["network.view_onu"],
        "authorise": ["network.change_onu"],
    }

    @action(detail=True, methods=["post"])
    def authorise(self, request, pk=None):
        from network.gpon.service import onu_authorise

        data = s.OnuAuthoriseInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = get_object_or_404(Subscription, pk=data.validated_data["subscription"])
        with transaction.atomic():
            onu = onu_authorise(onu=self.get_object(), subscription=subscription, **_audit_context(request))
        return Response(s.OnuOutput(onu).data)

    serializer_class = s.OnuOutput
    queryset = Onu.objects.all()
    filterset_fields = ("olt", "state", "subscription")
    ordering = ("olt_id", "pon_port_id", "onu_index")


@extend_schema_view(
    create=extend_schema(request=s.ProvisionInput, responses={201: s.ProvisioningJobResult, **SUBSCRIPTION_NOT_FOUND}),
    retry=extend_schema(request=s.ProvisionRetryInput, responses=s.ProvisioningJobResult),
    cancel=extend_schema(request=s.ReasonInput, responses=s.ProvisioningJobOutput),
    activate_many=extend_schema(request=s.ProvisionManyInput, responses=s.ProvisionManyOutput),
)
class ProvisioningJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Provisioning status per subscription: steps done, the failed step and its error. POST runs a
    workflow (activate, suspend, terminate); `retry/` resumes a failed one at its failed step. A
    PPPoE password created by the run is in that response only."""

    required_permissions = {
        "list": ["network.view_provisioningjob"],
        "retrieve": ["network.view_provisioningjob"],
        "create": ["network.add_provisioningjob"],
        "retry": ["network.change_provisioningjob"],
        "cancel": ["network.change_provisioningjob"],
        "activate_many": ["network.add_provisioningjob"],
    }
    http_method_names = ["get", "post", "head", "options"]

    def create(self, request):
        from network.provisioning import provision

        data = s.ProvisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = get_object_or_404(Subscription, pk=data.validated_data["subscription"])
        job = provision(
            subscription=subscription,
            action=data.validated_data["action"],
            params=data.validated_data["params"],
            actor=Actor.from_request(request),
        )
        body = s.ProvisioningJobResult(job).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        from network.provisioning import provision_retry

        data = s.ProvisionRetryInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = provision_retry(
            self.get_object(), params=data.validated_data["params"] or None, actor=Actor.from_request(request)
        )
        return Response(s.ProvisioningJobResult(job).data, headers={"Cache-Control": "no-store"})

    @action(detail=False, methods=["post"], url_path="activate-many")
    def activate_many(self, request):
        """Activate up to 1,000 subscriptions at once (a street lit up, an import): one job each,
        as POST would create, run a step at a time for the whole batch. Each subscription's
        outcome is listed: its job (done, or failed at a step: retry it), or why none was created."""
        from network.provisioning_batch import provision_activate_many

        data = s.ProvisionManyInput(data=request.data)
        data.is_valid(raise_exception=True)
        items = data.validated_data["items"]
        outcomes = provision_activate_many(
            requests=[(item["subscription"], item["params"]) for item in items], actor=Actor.from_request(request)
        )
        results = []
        for item in items:
            outcome = outcomes[item["subscription"]]
            if isinstance(outcome, ProvisioningJob):
                results.append({"subscription": item["subscription"], "job": outcome, "errors": None})
            else:
                errors = django_validation_to_drf(outcome).detail
                results.append({"subscription": item["subscription"], "job": None, "errors": errors})
        body = {
            "done": sum(1 for r in results if r["job"] is not None and r["job"].state == ProvisioningJob.State.DONE),
            "failed": sum(
                1 for r in results if r["job"] is not None and r["job"].state == ProvisioningJob.State.FAILED
            ),
            "refused": sum(1 for r in results if r["job"] is None),
            "results": results,
        }
        return Response(s.ProvisionManyOutput(body).data, headers={"Cache-Control": "no-store"})

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Close a failed job that will not be retried (with a reason); what it did stays done."""
        from network.provisioning import provision_cancel

        data = s.ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = provision_cancel(
            self.get_object(), reason=data.validated_data["reason"], actor=Actor.from_request(request)
        )
        return Response(s.ProvisioningJobOutput(job).data)

    serializer_class = s.ProvisioningJobOutput
    queryset = ProvisioningJob.objects.all()
    filterset_fields = ("subscription", "state", "action")
    ordering = ("-created_at", "-id")
