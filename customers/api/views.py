"""Staff API for customers, service addresses, plans and subscriptions (tenant hosts).

Views are thin: parse input, call a service, render output. Responses with personal data follow
`customers.api.pii`: a page costs one key-store query, and every clear read is audited in the
transaction of the request."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from compliance.audit import Actor, client_ip
from customers import services
from customers.models import Customer, Plan, ServiceAddress, Subscription

from . import filters
from . import serializers as s
from .pii import ADDRESS_PII, CUSTOMER_PII, PIIMode, pii_mode_for, prepare, record_reveal

INCLUDE_PII = OpenApiParameter(
    "include_pii",
    OpenApiTypes.BOOL,
    description="false: leave personal data out of the response (neither loaded nor decrypted).",
    default=True,
)


def _audit_context(request) -> dict:
    return {"actor": Actor.from_request(request), "source_ip": client_ip(request)}


class PIIViewSetMixin:
    """Renders objects with personal data per the caller's PII mode, auditing clear reads.

    Call `present` inside `transaction.atomic()`, so the `pii.revealed` events commit with the read."""

    output_serializer: type
    pii_fields: dict

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.pii_mode()  # a bad ?include_pii= is refused before anything is written

    def pii_mode(self) -> PIIMode:
        if not hasattr(self, "_pii_mode"):
            query = s.IncludePIIQuery(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            self._pii_mode = pii_mode_for(self.request.user, include_pii=query.validated_data["include_pii"])
        return self._pii_mode

    def pii_queryset(self, queryset):
        """Without personal data, its ciphertext columns are not even loaded."""
        return queryset.defer(*self.pii_fields) if self.pii_mode() is PIIMode.OMITTED else queryset

    def present(self, objects, *, many: bool):
        mode = self.pii_mode()
        shown = prepare(objects if many else [objects], mode)
        data = self.output_serializer(shown if many else shown[0], many=many, context={"pii_mode": mode}).data
        record_reveal(mode=mode, objects=shown, fields=self.pii_fields, **_audit_context(self.request))
        return data

    def list(self, request):
        with transaction.atomic():
            page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
            return self.get_paginated_response(self.present(page, many=True))

    def retrieve(self, request, pk=None):
        with transaction.atomic():
            return Response(self.present(self.get_object(), many=False))


@extend_schema_view(
    list=extend_schema(parameters=[INCLUDE_PII], responses=s.CustomerOutput(many=True)),
    retrieve=extend_schema(parameters=[INCLUDE_PII], responses=s.CustomerOutput),
)
class CustomerViewSet(PIIViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customers. Personal data is in clear for roles with `customers.reveal_pii` (audited),
    masked for the others; `?include_pii=false` leaves it out."""

    required_permissions = {
        "list": ["customers.view_customer"],
        "retrieve": ["customers.view_customer"],
        "create": ["customers.add_customer"],
        "partial_update": ["customers.change_customer"],
    }
    http_method_names = ["get", "post", "patch", "head", "options"]
    serializer_class = s.CustomerOutput
    output_serializer = s.CustomerOutput
    pii_fields = CUSTOMER_PII
    filterset_class = filters.CustomerFilter
    ordering_fields = ("account_number", "created_at")
    ordering = ("account_number",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Customer.objects.none()
        return self.pii_queryset(Customer.objects.all())

    @extend_schema(parameters=[INCLUDE_PII], request=s.CustomerCreateInput, responses={201: s.CustomerOutput})
    def create(self, request):
        data = s.CustomerCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            customer = services.customer_create(**data.validated_data, **_audit_context(request))
            return Response(self.present(customer, many=False), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[INCLUDE_PII], request=s.CustomerUpdateInput, responses=s.CustomerOutput)
    def partial_update(self, request, pk=None):
        data = s.CustomerUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            customer = services.customer_update(
                customer=self.get_object(), changes=dict(data.validated_data), **_audit_context(request)
            )
            return Response(self.present(customer, many=False))


@extend_schema_view(
    list=extend_schema(parameters=[INCLUDE_PII], responses=s.ServiceAddressOutput(many=True)),
    retrieve=extend_schema(parameters=[INCLUDE_PII], responses=s.ServiceAddressOutput),
)
class ServiceAddressViewSet(PIIViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Service addresses; street, city and postal code follow the customers' PII rule."""

    required_permissions = {
        "list": ["customers.view_serviceaddress"],
        "retrieve": ["customers.view_serviceaddress"],
        "create": ["customers.add_serviceaddress"],
    }
    serializer_class = s.ServiceAddressOutput
    output_serializer = s.ServiceAddressOutput
    pii_fields = ADDRESS_PII
    filterset_class = filters.ServiceAddressFilter
    ordering_fields = ("id", "created_at")
    ordering = ("id",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ServiceAddress.objects.none()
        return self.pii_queryset(ServiceAddress.objects.all())

    @extend_schema(
        parameters=[INCLUDE_PII], request=s.ServiceAddressCreateInput, responses={201: s.ServiceAddressOutput}
    )
    def create(self, request):
        data = s.ServiceAddressCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            address = services.service_address_create(**data.validated_data, **_audit_context(request))
            return Response(self.present(address, many=False), status=status.HTTP_201_CREATED)


class PlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenant's plans. Money is a string with 6 decimal places; plans are archived, never deleted."""

    required_permissions = {
        "list": ["customers.view_plan"],
        "retrieve": ["customers.view_plan"],
        "create": ["customers.add_plan"],
        "partial_update": ["customers.change_plan"],
        "archive": ["customers.change_plan"],
    }
    http_method_names = ["get", "post", "patch", "head", "options"]
    serializer_class = s.PlanOutput
    queryset = Plan.objects.all()
    filterset_class = filters.PlanFilter
    ordering_fields = ("code", "monthly_price", "created_at")
    ordering = ("code",)

    @extend_schema(request=s.PlanCreateInput, responses={201: s.PlanOutput})
    def create(self, request):
        data = s.PlanCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_create(**data.validated_data, **_audit_context(request))
        return Response(s.PlanOutput(plan).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.PlanUpdateInput, responses=s.PlanOutput)
    def partial_update(self, request, pk=None):
        data = s.PlanUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        plan = services.plan_update(
            plan=self.get_object(), changes=dict(data.validated_data), **_audit_context(request)
        )
        return Response(s.PlanOutput(plan).data)

    @extend_schema(request=None, responses=s.PlanOutput)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        plan = services.plan_archive(plan=self.get_object(), **_audit_context(request))
        return Response(s.PlanOutput(plan).data)


class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Subscriptions and their lifecycle: pending -> active <-> suspended, any -> terminated.

    An illegal transition answers 400 with the reason in `error.fields.status`."""

    required_permissions = {
        "list": ["customers.view_subscription"],
        "retrieve": ["customers.view_subscription"],
        "history": ["customers.view_subscription"],
        "create": ["customers.add_subscription"],
        "activate": ["customers.change_subscription"],
        "suspend": ["customers.change_subscription"],
        "reactivate": ["customers.change_subscription"],
        "terminate": ["customers.change_subscription"],
        "change_plan": ["customers.change_subscription"],
    }
    serializer_class = s.SubscriptionOutput
    queryset = Subscription.objects.all()
    filterset_class = filters.SubscriptionFilter
    ordering_fields = ("id", "created_at", "activated_on")
    ordering = ("id",)

    @extend_schema(request=s.SubscriptionCreateInput, responses={201: s.SubscriptionOutput})
    def create(self, request):
        data = s.SubscriptionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = services.subscription_create(**data.validated_data, **_audit_context(request))
        return Response(s.SubscriptionOutput(subscription).data, status=status.HTTP_201_CREATED)

    def _act(self, request, input_class, service, **renamed):
        data = input_class(data=request.data)
        data.is_valid(raise_exception=True)
        values = {renamed.get(key, key): value for key, value in data.validated_data.items()}
        subscription = service(subscription=self.get_object(), **values, **_audit_context(request))
        return Response(s.SubscriptionOutput(subscription).data)

    @extend_schema(request=s.ActivateInput, responses=s.SubscriptionOutput)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """pending -> active from `activated_on`, the first billable day."""
        return self._act(request, s.ActivateInput, services.subscription_activate)

    @extend_schema(request=s.SuspendInput, responses=s.SubscriptionOutput)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        """active -> suspended from `effective_on`."""
        return self._act(request, s.SuspendInput, services.subscription_suspend)

    @extend_schema(request=s.ReactivateInput, responses=s.SubscriptionOutput)
    @action(detail=True, methods=["post"])
    def reactivate(self, request, pk=None):
        """suspended -> active from `effective_on`."""
        return self._act(request, s.ReactivateInput, services.subscription_reactivate)

    @extend_schema(request=s.TerminateInput, responses=s.SubscriptionOutput)
    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        """Any state but terminated -> terminated; `terminated_on` is the first day not billed."""
        return self._act(request, s.TerminateInput, services.subscription_terminate)

    @extend_schema(request=s.ChangePlanInput, responses=s.SubscriptionOutput)
    @action(detail=True, methods=["post"], url_path="change-plan")
    def change_plan(self, request, pk=None):
        """Switch plans from `effective_on`; the history keeps every plan with its dates."""
        return self._act(request, s.ChangePlanInput, services.subscription_change_plan, plan="new_plan")

    @extend_schema(responses=s.SubscriptionHistoryOutput)
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """Status changes and plan changes, each with the date it takes effect."""
        subscription = self.get_object()
        history = {
            "status_changes": subscription.status_changes.all(),
            "plan_changes": subscription.plan_changes.select_related("from_plan", "to_plan"),
        }
        return Response(s.SubscriptionHistoryOutput(history).data)
