from django.contrib.auth import get_user_model
from rest_framework import serializers

from isp.api.serializers import StrictInput
from tenants import roles
from tenants.models import Tenant, validate_country, validate_currency, validate_slug, validate_time_zone

TENANT_FIELDS = (
    "slug",
    "name",
    "currency",
    "currency_minor_unit",
    "country",
    "time_zone",
    "billing_day",
    "payment_terms_days",
    "suspend_after_days",
    "tax_inclusive",
    "status",
)


class TenantOutput(serializers.ModelSerializer):
    currency_minor_unit = serializers.IntegerField(read_only=True)
    host = serializers.CharField(source="primary_host", read_only=True)

    class Meta:
        model = Tenant
        fields = ("id", *TENANT_FIELDS, "status_reason", "host", "created_at")
        read_only_fields = fields


class TenantSettingsInput(StrictInput):
    """What a tenant's owner may change. Currency and country are fixed (operators only)."""

    name = serializers.CharField(max_length=200, required=False)
    time_zone = serializers.CharField(max_length=64, required=False, validators=[validate_time_zone])
    billing_day = serializers.IntegerField(min_value=1, max_value=28, required=False)
    payment_terms_days = serializers.IntegerField(min_value=0, max_value=365, required=False)
    suspend_after_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    tax_inclusive = serializers.BooleanField(required=False)


class OperatorTenantUpdateInput(TenantSettingsInput):
    country = serializers.CharField(max_length=2, required=False, validators=[validate_country])


class TenantCreateInput(StrictInput):
    slug = serializers.CharField(max_length=32, validators=[validate_slug])
    name = serializers.CharField(max_length=200)
    currency = serializers.CharField(max_length=3, validators=[validate_currency])
    country = serializers.CharField(max_length=2, validators=[validate_country])
    admin_email = serializers.EmailField()
    time_zone = serializers.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    billing_day = serializers.IntegerField(min_value=1, max_value=28, required=False)
    payment_terms_days = serializers.IntegerField(min_value=0, max_value=365, required=False)
    suspend_after_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    tax_inclusive = serializers.BooleanField(default=False)


class TenantCreatedOutput(serializers.Serializer):
    tenant = TenantOutput()
    admin_username = serializers.CharField()
    admin_password = serializers.CharField(help_text="Shown once; only its hash is stored.")


class SuspendInput(StrictInput):
    reason = serializers.CharField(max_length=500)


class TokenObtainInput(StrictInput):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"}, trim_whitespace=False)


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


def user_roles(user) -> list[str]:
    return sorted(name for name in user.groups.values_list("name", flat=True) if name in roles.STAFF_ROLES)


class StaffOutput(serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ("id", "username", "email", "is_active", "roles", "date_joined", "last_login")
        read_only_fields = fields

    def get_roles(self, user) -> list[str]:
        return sorted(group.name for group in user.groups.all() if group.name in roles.STAFF_ROLES)


class StaffCreateInput(StrictInput):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=roles.STAFF_ROLES)


class StaffCreatedOutput(serializers.Serializer):
    staff = StaffOutput()
    password = serializers.CharField(help_text="One-time password, shown once.")


class RoleInput(StrictInput):
    role = serializers.ChoiceField(choices=roles.STAFF_ROLES)


class MeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    permissions = serializers.ListField(child=serializers.CharField())
    tenant = serializers.CharField()
