"""Tenant-host API (auth, me, tenant settings, staff) and public-host operator API (tenants).

Views are thin: parse input, call a service, render output."""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.audit import Actor, client_ip
from isp.api.errors import error_body
from isp.api.permissions import AUTHENTICATED, PUBLIC
from isp.api.throttling import TenantScopedRateThrottle
from tenants import services
from tenants.models import Tenant

from . import serializers as s


class TokenView(APIView):
    """Exchange username + password for an API token of *this* host's tenant (or the platform)."""

    required_permissions = {"post": PUBLIC, "delete": AUTHENTICATED}
    throttle_classes = [TenantScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(request=s.TokenObtainInput, responses={200: s.TokenOutput}, auth=[])
    def post(self, request):
        data = s.TokenObtainInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            return Response(
                error_body("authentication_failed", "Unknown username or wrong password."),
                status=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": "Token"},
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response(s.TokenOutput({"token": token.key}).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    required_permissions = {"get": AUTHENTICATED}

    @extend_schema(responses=s.MeOutput)
    def get(self, request):
        user = request.user
        return Response(
            s.MeOutput(
                {
                    "id": user.pk,
                    "username": user.get_username(),
                    "roles": s.user_roles(user),
                    "permissions": sorted(user.get_all_permissions()),
                    "tenant": request.tenant.slug,
                }
            ).data
        )


class TenantSettingsView(APIView):
    """The current tenant's settings: every staff role reads them, owners change them."""

    required_permissions = {"get": ["tenants.view_tenant"], "patch": ["tenants.change_tenant"]}

    @extend_schema(responses=s.TenantOutput)
    def get(self, request):
        return Response(s.TenantOutput(request.tenant).data)

    @extend_schema(request=s.TenantSettingsInput, responses=s.TenantOutput)
    def patch(self, request):
        data = s.TenantSettingsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_update_settings(
            tenant=request.tenant,
            changes=dict(data.validated_data),
            actor=Actor.from_request(request),
            source_ip=client_ip(request),
        )
        return Response(s.TenantOutput(tenant).data)


class StaffViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenant's staff accounts and their roles (owners manage them)."""

    required_permissions = {
        "list": ["auth.view_user"],
        "retrieve": ["auth.view_user"],
        "create": ["auth.add_user"],
        "set_role": ["auth.change_user"],
    }
    serializer_class = s.StaffOutput
    ordering_fields = ("username", "date_joined")
    ordering = ("username",)
    filterset_fields = ("is_active",)

    def get_queryset(self):
        return get_user_model().objects.filter(is_staff=True).prefetch_related("groups")

    @extend_schema(request=s.StaffCreateInput, responses={201: s.StaffCreatedOutput})
    def create(self, request):
        data = s.StaffCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        user, password = services.staff_user_create(
            **data.validated_data, actor=Actor.from_request(request), source_ip=client_ip(request)
        )
        return Response(
            s.StaffCreatedOutput({"staff": user, "password": password}).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=s.RoleInput, responses=s.StaffOutput)
    @action(detail=True, methods=["post"], url_path="role")
    def set_role(self, request, pk=None):
        data = s.RoleInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.staff_user_set_role(
            user=self.get_object(),
            role=data.validated_data["role"],
            actor=Actor.from_request(request),
            source_ip=client_ip(request),
        )
        return Response(s.StaffOutput(get_user_model().objects.prefetch_related("groups").get(pk=user.pk)).data)


class OperatorTenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Platform operators (public schema) provision, change, suspend and reactivate tenants."""

    required_permissions = {
        "list": ["tenants.view_tenant"],
        "retrieve": ["tenants.view_tenant"],
        "create": ["tenants.add_tenant"],
        "partial_update": ["tenants.change_tenant"],
        "suspend": ["tenants.change_tenant"],
        "reactivate": ["tenants.change_tenant"],
    }
    serializer_class = s.TenantOutput
    lookup_field = "slug"
    filterset_fields = ("status", "currency", "country")
    ordering_fields = ("slug", "created_at")
    ordering = ("slug",)

    def get_queryset(self):
        return Tenant.objects.exclude(schema_name="public")

    def initial(self, request, *args, **kwargs):
        # Belt and braces: this viewset is only routed on the public host.
        if connection.schema_name != "public":
            raise NotFound()
        super().initial(request, *args, **kwargs)

    @extend_schema(request=s.TenantCreateInput, responses={201: s.TenantCreatedOutput})
    def create(self, request):
        data = s.TenantCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.tenant_create(
            **data.validated_data, actor=Actor.from_request(request), source_ip=client_ip(request)
        )
        return Response(
            s.TenantCreatedOutput(
                {
                    "tenant": created.tenant,
                    "admin_username": created.admin_username,
                    "admin_password": created.admin_password,
                }
            ).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=s.OperatorTenantUpdateInput, responses=s.TenantOutput)
    def partial_update(self, request, slug=None):
        data = s.OperatorTenantUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_update_by_operator(
            tenant=self.get_object(),
            changes=dict(data.validated_data),
            actor=Actor.from_request(request),
            source_ip=client_ip(request),
        )
        return Response(s.TenantOutput(tenant).data)

    @extend_schema(request=s.SuspendInput, responses=s.TenantOutput)
    @action(detail=True, methods=["post"])
    def suspend(self, request, slug=None):
        data = s.SuspendInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_suspend(
            tenant=self.get_object(),
            reason=data.validated_data["reason"],
            actor=Actor.from_request(request),
            source_ip=client_ip(request),
        )
        return Response(s.TenantOutput(tenant).data)

    @extend_schema(request=None, responses=s.TenantOutput)
    @action(detail=True, methods=["post"])
    def reactivate(self, request, slug=None):
        tenant = services.tenant_reactivate(
            tenant=self.get_object(), actor=Actor.from_request(request), source_ip=client_ip(request)
        )
        return Response(s.TenantOutput(tenant).data)
