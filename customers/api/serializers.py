"""Input and output serializers of the customers API (staff and portal).

Inputs are strict (unknown fields are refused) and only parse types and bounds; the services
validate the rest, so that one response reports every field error the service finds.
Outputs show personal data through `PIIField`, per the PII mode in the serializer's context."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField

from customers.domain.lifecycle import SubscriptionStatus
from customers.models import (
    MONEY,
    Customer,
    Plan,
    ServiceAddress,
    Subscription,
    SubscriptionPlanChange,
    SubscriptionStatusChange,
)
from isp.api.serializers import StrictInput

from .pii import ADDRESS_PII, CUSTOMER_PII, Masker, PIIMode, shown_value

# The subscription status choice set, by name for the OpenAPI schema (settings: ENUM_NAME_OVERRIDES).
SUBSCRIPTION_STATUS_CHOICES = [(status.value, status.label) for status in SubscriptionStatus]


# --- personal data in outputs ------------------------------------------------------------------
@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "description": "Personal data: in clear, masked or absent, as `pii` says.",
    }
)
class PIIField(serializers.Field):
    """A personal-data attribute shown per `context["pii_mode"]`; absent (not decrypted) when omitted.

    Not read-only on purpose: the schema then lists it as optional, which it is."""

    def __init__(self, masker: Masker, **kwargs):
        self.masker = masker
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def get_attribute(self, instance):
        mode = self.context["pii_mode"]
        if mode is PIIMode.OMITTED:
            raise SkipField()
        return shown_value(super().get_attribute(instance), mode=mode, masker=self.masker)

    def to_representation(self, value):
        return value

    def to_internal_value(self, data):  # pragma: no cover - output only
        raise NotImplementedError("PIIField is output only")


class PIIModeField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(
            choices=[mode.value for mode in PIIMode],
            source="*",
            read_only=True,
            help_text="clear: personal data in clear (the read is audited); masked: masked values; "
            "omitted: no personal data (?include_pii=false).",
            **kwargs,
        )

    def to_representation(self, value):
        return str(self.context["pii_mode"])


class IncludePIIQuery(serializers.Serializer):
    include_pii = serializers.BooleanField(
        default=True, help_text="false: leave personal data out (it is then neither loaded nor decrypted)."
    )


# --- customers ---------------------------------------------------------------------------------
CUSTOMER_NON_PII_OUTPUT = (
    "billing_day",
    "tax_exempt_certificate",
    "tax_exempt_until",
    "marketing_consent",
    "marketing_consent_at",
    "do_not_sell",
    "do_not_sell_at",
)


class CustomerOutput(serializers.ModelSerializer):
    account_code = serializers.CharField(read_only=True)
    name = PIIField(CUSTOMER_PII["name"])
    email = PIIField(CUSTOMER_PII["email"])
    phone = PIIField(CUSTOMER_PII["phone"])
    national_id = PIIField(CUSTOMER_PII["national_id"])
    tax_id = PIIField(CUSTOMER_PII["tax_id"])
    date_of_birth = PIIField(CUSTOMER_PII["date_of_birth"])
    pii = PIIModeField()

    class Meta:
        model = Customer
        fields = (
            "id",
            "account_number",
            "account_code",
            "kind",
            "status",
            *CUSTOMER_PII,
            *CUSTOMER_NON_PII_OUTPUT,
            "pii",
            "created_at",
        )
        read_only_fields = tuple(f for f in fields if f not in CUSTOMER_PII)


class _CustomerFieldsInput(StrictInput):
    kind = serializers.ChoiceField(choices=Customer.Kind.choices, required=False)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    national_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    tax_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    date_of_birth = serializers.DateField(required=False, allow_null=True)
    billing_day = serializers.IntegerField(min_value=1, max_value=28, required=False, allow_null=True)
    tax_exempt_certificate = serializers.CharField(max_length=64, required=False, allow_blank=True)
    tax_exempt_until = serializers.DateField(required=False, allow_null=True)
    marketing_consent = serializers.BooleanField(required=False)
    do_not_sell = serializers.BooleanField(required=False)


class CustomerCreateInput(_CustomerFieldsInput):
    """Personal data is write-only for every role that may add customers."""

    name = serializers.CharField(max_length=200, allow_blank=True)
    email = serializers.CharField(max_length=254, allow_blank=True, help_text="An e-mail address.")


class CustomerUpdateInput(_CustomerFieldsInput):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, help_text="An e-mail address.")


# --- service addresses -------------------------------------------------------------------------
class ServiceAddressOutput(serializers.ModelSerializer):
    street = PIIField(ADDRESS_PII["street"])
    city = PIIField(ADDRESS_PII["city"])
    postal_code = PIIField(ADDRESS_PII["postal_code"])
    pii = PIIModeField()

    class Meta:
        model = ServiceAddress
        fields = ("id", "customer", *ADDRESS_PII, "country", "region", "locality", "pii", "created_at")
        read_only_fields = tuple(f for f in fields if f not in ADDRESS_PII)


class ServiceAddressCreateInput(StrictInput):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    street = serializers.CharField(max_length=200, allow_blank=True)
    city = serializers.CharField(max_length=200, allow_blank=True)
    postal_code = serializers.CharField(max_length=200, allow_blank=True)
    country = serializers.CharField(max_length=2, allow_blank=True, help_text="ISO 3166-1 alpha-2")
    region = serializers.CharField(max_length=6, required=False, allow_blank=True, help_text="ISO 3166-2")
    locality = serializers.CharField(max_length=64, required=False, allow_blank=True)


# --- plans -------------------------------------------------------------------------------------
class Money(serializers.DecimalField):
    """Money in: a JSON string ("39.99") or number, parsed from its text (never through float
    arithmetic); at most 6 decimal places. Money out: a string with 6 decimal places."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=MONEY["max_digits"], decimal_places=MONEY["decimal_places"], **kwargs)


PLAN_OUTPUT_FIELDS = (
    "id",
    "code",
    "name",
    "download_kbps",
    "upload_kbps",
    "monthly_price",
    "included_bytes",
    "overage_rate_per_gb",
    "fair_use_download_kbps",
    "fair_use_upload_kbps",
    "setup_fee",
    "category",
    "status",
    "created_at",
)


class PlanOutput(serializers.ModelSerializer):
    monthly_price = Money(read_only=True)
    overage_rate_per_gb = Money(read_only=True)
    setup_fee = Money(read_only=True)

    class Meta:
        model = Plan
        fields = PLAN_OUTPUT_FIELDS
        read_only_fields = fields


class PlanUpdateInput(StrictInput):
    name = serializers.CharField(max_length=120, required=False)
    download_kbps = serializers.IntegerField(min_value=1, required=False)
    upload_kbps = serializers.IntegerField(min_value=1, required=False)
    monthly_price = Money(required=False)
    included_bytes = serializers.IntegerField(
        min_value=0, required=False, allow_null=True, help_text="null: unlimited data."
    )
    overage_rate_per_gb = Money(required=False)
    fair_use_download_kbps = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    fair_use_upload_kbps = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    setup_fee = Money(required=False)
    category = serializers.ChoiceField(choices=Plan.Category.choices, required=False)


class PlanCreateInput(PlanUpdateInput):
    code = serializers.SlugField(max_length=40)
    name = serializers.CharField(max_length=120)
    download_kbps = serializers.IntegerField(min_value=1)
    upload_kbps = serializers.IntegerField(min_value=1)
    monthly_price = Money()


class PortalPlanOutput(serializers.ModelSerializer):
    monthly_price = Money(read_only=True)
    overage_rate_per_gb = Money(read_only=True)
    setup_fee = Money(read_only=True)

    class Meta:
        model = Plan
        fields = tuple(f for f in PLAN_OUTPUT_FIELDS if f not in ("id", "status", "created_at"))
        read_only_fields = fields


# --- subscriptions -----------------------------------------------------------------------------
class SubscriptionOutput(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = (
            "id",
            "customer",
            "plan",
            "service_address",
            "status",
            "activated_on",
            "terminated_on",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class SubscriptionCreateInput(StrictInput):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all())
    service_address = serializers.PrimaryKeyRelatedField(queryset=ServiceAddress.objects.all())


class ActivateInput(StrictInput):
    activated_on = serializers.DateField(help_text="The first billable day.")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class SuspendInput(StrictInput):
    effective_on = serializers.DateField()
    reason = serializers.CharField(max_length=500)


class ReactivateInput(StrictInput):
    effective_on = serializers.DateField()
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class TerminateInput(StrictInput):
    terminated_on = serializers.DateField(help_text="The first day no longer billed.")
    reason = serializers.CharField(max_length=500)


class ChangePlanInput(StrictInput):
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all())
    effective_on = serializers.DateField()


class StatusChangeOutput(serializers.ModelSerializer):
    class Meta:
        model = SubscriptionStatusChange
        fields = ("from_status", "to_status", "effective_on", "changed_at", "actor_label", "reason")
        read_only_fields = fields


class PlanChangeOutput(serializers.ModelSerializer):
    from_plan_code = serializers.CharField(source="from_plan.code", read_only=True, allow_null=True, default=None)
    to_plan_code = serializers.CharField(source="to_plan.code", read_only=True)

    class Meta:
        model = SubscriptionPlanChange
        fields = (
            "from_plan",
            "from_plan_code",
            "to_plan",
            "to_plan_code",
            "effective_on",
            "recorded_at",
            "actor_label",
        )
        read_only_fields = fields


class SubscriptionHistoryOutput(serializers.Serializer):
    status_changes = StatusChangeOutput(many=True, read_only=True)
    plan_changes = PlanChangeOutput(many=True, read_only=True)


# --- portal ------------------------------------------------------------------------------------
class PortalCustomerOutput(serializers.ModelSerializer):
    """The customer's own profile, in clear (the data subject sees their own data)."""

    account_code = serializers.CharField(read_only=True)
    name = PIIField(CUSTOMER_PII["name"])
    email = PIIField(CUSTOMER_PII["email"])
    phone = PIIField(CUSTOMER_PII["phone"])

    class Meta:
        model = Customer
        fields = (
            "account_code",
            "kind",
            "status",
            "name",
            "email",
            "phone",
            "marketing_consent",
            "marketing_consent_at",
            "do_not_sell",
            "do_not_sell_at",
            "created_at",
        )
        read_only_fields = tuple(f for f in fields if f not in CUSTOMER_PII)


class PortalProfileInput(StrictInput):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, help_text="An e-mail address.")
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    marketing_consent = serializers.BooleanField(required=False)
    do_not_sell = serializers.BooleanField(required=False)


class PortalSubscriptionOutput(serializers.ModelSerializer):
    plan = serializers.CharField(source="plan.code", read_only=True)
    plan_name = serializers.CharField(source="plan.name", read_only=True)

    class Meta:
        model = Subscription
        fields = ("id", "status", "plan", "plan_name", "activated_on", "terminated_on", "created_at")
        read_only_fields = fields


class SignupAddressInput(StrictInput):
    street = serializers.CharField(max_length=200, allow_blank=True)
    city = serializers.CharField(max_length=200, allow_blank=True)
    postal_code = serializers.CharField(max_length=200, allow_blank=True)
    country = serializers.CharField(max_length=2, allow_blank=True, help_text="ISO 3166-1 alpha-2")
    region = serializers.CharField(max_length=6, required=False, allow_blank=True, help_text="ISO 3166-2")
    locality = serializers.CharField(max_length=64, required=False, allow_blank=True)


class SignupInput(StrictInput):
    name = serializers.CharField(max_length=200, allow_blank=True)
    email = serializers.CharField(max_length=254, allow_blank=True, help_text="An e-mail address; the login name.")
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        max_length=128, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )
    plan_code = serializers.SlugField(max_length=40)
    kind = serializers.ChoiceField(choices=Customer.Kind.choices, default=Customer.Kind.RESIDENTIAL)
    marketing_consent = serializers.BooleanField(default=False)
    address = SignupAddressInput()


class SignupOutput(serializers.Serializer):
    account_code = serializers.CharField()
    subscription = PortalSubscriptionOutput()
