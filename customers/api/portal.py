"""Customer portal API: self-signup, the customer's own profile and subscriptions, the plans on offer.

A portal user is linked to exactly one customer (`Customer.portal_user`) and every view reads
that customer from the authenticated user: no URL carries a customer id, so a portal user can
never name another customer. Portal users hold no model permissions, so staff endpoints refuse
them; staff have no customer, so portal endpoints refuse staff. Portal customers log in at
`POST auth/token/` with their e-mail address as the username."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.audit import Actor, client_ip
from customers import services
from customers.models import Plan, Subscription
from isp.api.permissions import PORTAL, PUBLIC
from isp.api.throttling import TenantScopedRateThrottle

from . import serializers as s
from .pii import PIIMode, prepare


class SignupView(APIView):
    """Sign up: customer, service address, pending subscription and a portal login.

    Staff approve the signup by activating the subscription."""

    required_permissions = {"post": PUBLIC}
    throttle_classes = [TenantScopedRateThrottle]
    throttle_scope = "signup"

    @extend_schema(request=s.SignupInput, responses={201: s.SignupOutput}, auth=[])
    def post(self, request):
        data = s.SignupInput(data=request.data)
        data.is_valid(raise_exception=True)
        customer, subscription = services.customer_signup(**data.validated_data, source_ip=client_ip(request))
        return Response(
            s.SignupOutput({"account_code": customer.account_code, "subscription": subscription}).data,
            status=status.HTTP_201_CREATED,
        )


class MeView(APIView):
    """The signed-in customer's own profile, in clear."""

    required_permissions = {"get": PORTAL, "patch": PORTAL}

    def _render(self, customer):
        (customer,) = prepare([customer], PIIMode.CLEAR)
        return s.PortalCustomerOutput(customer, context={"pii_mode": PIIMode.CLEAR}).data

    @extend_schema(responses=s.PortalCustomerOutput)
    def get(self, request):
        return Response(self._render(request.user.customer))

    @extend_schema(request=s.PortalProfileInput, responses=s.PortalCustomerOutput)
    def patch(self, request):
        data = s.PortalProfileInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            customer = services.customer_update(
                customer=request.user.customer,
                changes=dict(data.validated_data),
                actor=Actor.from_request(request),
                source_ip=client_ip(request),
            )
        return Response(self._render(customer))


class PortalSubscriptionListView(generics.ListAPIView):
    """The signed-in customer's subscriptions (only theirs)."""

    required_permissions = {"get": PORTAL}
    serializer_class = s.PortalSubscriptionOutput
    filter_backends: list = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Subscription.objects.none()
        return Subscription.objects.filter(customer=self.request.user.customer).select_related("plan").order_by("id")


class PortalPlanListView(generics.ListAPIView):
    """The plans on offer (active plans), for anyone."""

    required_permissions = {"get": PUBLIC}
    serializer_class = s.PortalPlanOutput
    filter_backends: list = []
    authentication_classes: list = []
    queryset = Plan.objects.filter(status=Plan.Status.ACTIVE).order_by("monthly_price", "code")

    @extend_schema(auth=[])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
