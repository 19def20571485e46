"""List filters. Personal data is encrypted, so it is only matched exactly, through its blind index."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from rest_framework.exceptions import ValidationError as APIValidationError

from customers.models import Customer, Plan, ServiceAddress, Subscription
from customers.services import normalize_phone


def _blind_index(field: str, value: str) -> bytes | None:
    return Customer._meta.get_field(field).lookup_value(value)


class CustomerFilter(filters.FilterSet):
    email = filters.CharFilter(method="filter_email", help_text="Exact e-mail address (case-insensitive).")
    phone = filters.CharFilter(method="filter_phone", help_text="Exact phone number, international format.")

    class Meta:
        model = Customer
        fields = ("status", "kind")

    def filter_email(self, queryset, name, value):
        index = _blind_index("email_index", value)
        return queryset.filter(email_index=index) if index else queryset.none()

    def filter_phone(self, queryset, name, value):
        try:
            normalized = normalize_phone(value)
        except ValidationError as exc:
            raise APIValidationError({"phone": exc.messages}) from None
        return queryset.filter(phone_index=_blind_index("phone_index", normalized))


class ServiceAddressFilter(filters.FilterSet):
    class Meta:
        model = ServiceAddress
        fields = ("customer", "country")


class PlanFilter(filters.FilterSet):
    class Meta:
        model = Plan
        fields = ("status", "category")


class SubscriptionFilter(filters.FilterSet):
    class Meta:
        model = Subscription
        fields = ("status", "customer", "plan")
