"""Input and output shapes of the network staff API. Secrets are write-only: a NAS secret is never
returned, a PPPoE password only once, in the response that set it."""

from __future__ import annotations

from rest_framework import serializers

from isp.api.serializers import StrictInput
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


class NasOutput(serializers.ModelSerializer):
    class Meta:
        model = Nas
        fields = ["id", "name", "ip_address", "vendor", "coa_port", "is_active", "description", "created_at"]


class NasCreateInput(StrictInput):
    name = serializers.CharField(max_length=100)
    ip_address = serializers.IPAddressField(protocol="IPv4")
    secret = serializers.CharField(min_length=8, max_length=128, write_only=True, trim_whitespace=False)
    vendor = serializers.ChoiceField(choices=Nas.Vendor.choices, default=Nas.Vendor.MIKROTIK)
    coa_port = serializers.IntegerField(min_value=1, max_value=65535, default=3799)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class NasUpdateInput(StrictInput):
    name = serializers.CharField(max_length=100, required=False)
    ip_address = serializers.IPAddressField(protocol="IPv4", required=False)
    secret = serializers.CharField(min_length=8, max_length=128, write_only=True, required=False, trim_whitespace=False)
    vendor = serializers.ChoiceField(choices=Nas.Vendor.choices, required=False)
    coa_port = serializers.IntegerField(min_value=1, max_value=65535, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)


class PppoeAccountOutput(serializers.ModelSerializer):
    class Meta:
        model = PppoeAccount
        fields = [
            "id",
            "subscription",
            "username",
            "static_ip",
            "simultaneous_use",
            "over_cap",
            "over_cap_since",
            "created_at",
            "updated_at",
        ]


class PppoeAccountWithPassword(PppoeAccountOutput):
    password = serializers.SerializerMethodField(help_text="Shown once: it cannot be read again.")

    class Meta(PppoeAccountOutput.Meta):
        fields = [*PppoeAccountOutput.Meta.fields, "password"]

    def get_password(self, obj) -> str:
        return self.context["password"]


class PppoeAccountCreateInput(StrictInput):
    subscription = serializers.IntegerField(min_value=1)
    username = serializers.CharField(max_length=64, required=False)
    password = serializers.CharField(min_length=8, max_length=128, required=False, trim_whitespace=False)
    static_ip = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True)
    simultaneous_use = serializers.IntegerField(min_value=1, max_value=16, default=1)


class PppoeAccountUpdateInput(StrictInput):
    static_ip = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True)
    simultaneous_use = serializers.IntegerField(min_value=1, max_value=16, required=False)


class PasswordResetInput(StrictInput):
    password = serializers.CharField(min_length=8, max_length=128, required=False, trim_whitespace=False)


class RadiusSessionOutput(serializers.ModelSerializer):
    class Meta:
        model = RadiusSession
        fields = [
            "id",
            "acct_session_id",
            "username",
            "subscription",
            "nas_ip_address",
            "nas_port_id",
            "framed_ip_address",
            "start_time",
            "update_time",
            "stop_time",
            "session_time",
            "input_octets",
            "output_octets",
            "terminate_cause",
        ]


class CoaRequestOutput(serializers.ModelSerializer):
    class Meta:
        model = CoaRequest
        fields = [
            "id",
            "subscription",
            "session",
            "nas",
            "kind",
            "reason",
            "attributes",
            "outcome",
            "attempts",
            "error_cause",
            "detail",
            "latency_ms",
            "requested_at",
            "completed_at",
        ]


class RadiusSettingsOutput(serializers.ModelSerializer):
    # Declared: the model field's blank-or-pattern would be documented as a oneOf that "" matches twice.
    default_pool = serializers.CharField(read_only=True, help_text="Framed-Pool when no static IP; empty: none.")

    class Meta:
        model = RadiusSettings
        fields = [
            "suspended_access",
            "walled_garden_pool",
            "walled_garden_kbps",
            "default_pool",
            "session_timeout_s",
            "interim_interval_s",
            "stale_after_s",
        ]


class RadiusSettingsInput(StrictInput):
    suspended_access = serializers.ChoiceField(choices=RadiusSettings.SuspendedAccess.choices, required=False)
    walled_garden_pool = serializers.CharField(max_length=64, required=False)
    walled_garden_kbps = serializers.IntegerField(min_value=1, required=False)
    default_pool = serializers.CharField(max_length=64, required=False, allow_blank=True)
    session_timeout_s = serializers.IntegerField(min_value=60, max_value=31 * 86400, required=False)
    interim_interval_s = serializers.IntegerField(min_value=60, max_value=86400, required=False)
    stale_after_s = serializers.IntegerField(min_value=120, required=False)


# --- monitoring -------------------------------------------------------------------------------


class DeviceOutput(serializers.ModelSerializer):
    class Meta:
        model = Device
        fields = [
            "id",
            "name",
            "kind",
            "vendor",
            "model",
            "site",
            "management_ip",
            "snmp_port",
            "snmp_version",
            "poll_enabled",
            "status",
            "sys_descr",
            "sys_uptime_cs",
            "last_polled_at",
            "last_seen_at",
            "nas",
        ]


class InterfaceOutput(serializers.ModelSerializer):
    class Meta:
        model = Interface
        fields = [
            "id",
            "device",
            "if_index",
            "name",
            "descr",
            "alias",
            "speed_bps",
            "admin_status",
            "oper_status",
            "monitored",
            "in_bps",
            "out_bps",
            "last_sample_at",
        ]


class TrafficPoint(serializers.Serializer):
    at = serializers.DateTimeField()
    in_bps = serializers.FloatField(allow_null=True)
    out_bps = serializers.FloatField(allow_null=True)


class AlarmOutput(serializers.ModelSerializer):
    class Meta:
        model = Alarm
        fields = [
            "id",
            "kind",
            "severity",
            "state",
            "device",
            "interface",
            "onu",
            "summary",
            "details",
            "opened_at",
            "last_seen_at",
            "cleared_at",
            "occurrences",
            "flap_count",
            "flapping",
            "acknowledged_at",
            "acknowledged_by",
        ]


class AffectedSubscriptionOutput(serializers.Serializer):
    subscription_id = serializers.IntegerField()
    account_code = serializers.CharField()
    plan_code = serializers.CharField()
    plan_name = serializers.CharField()
    status = serializers.CharField()
    via = serializers.CharField(help_text='How it is hit: "onu <serial>", "session on <NAS address>", "port <name>".')


class OutageReportOutput(serializers.Serializer):
    """network.outage.OutageReport.as_json(): the live subscriptions an alarm takes service from."""

    count = serializers.IntegerField()
    by_plan = serializers.DictField(child=serializers.IntegerField(), help_text="Plan code -> subscriptions.")
    by_status = serializers.DictField(child=serializers.IntegerField(), help_text="Status -> subscriptions.")
    subscriptions = AffectedSubscriptionOutput(many=True)


class AlarmAcknowledgeInput(StrictInput):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ReasonInput(StrictInput):
    """A reason is required (clearing an alarm or cancelling a provisioning job by hand)."""

    reason = serializers.CharField(max_length=500)


class OnuOutput(serializers.ModelSerializer):
    class Meta:
        model = Onu
        fields = [
            "id",
            "olt",
            "pon_port",
            "serial",
            "onu_index",
            "state",
            "subscription",
            "authorised_at",
            "rx_power_dbm",
            "tx_power_dbm",
            "last_seen_at",
        ]


class ProvisioningJobOutput(serializers.ModelSerializer):
    class Meta:
        model = ProvisioningJob
        fields = [
            "id",
            "subscription",
            "action",
            "state",
            "steps_done",
            "current_step",
            "error",
            "attempts",
            "created_at",
            "updated_at",
            "finished_at",
        ]


class DeviceCreateInput(StrictInput):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Device.Kind.choices)
    management_ip = serializers.IPAddressField()
    snmp_port = serializers.IntegerField(min_value=1, max_value=65535, default=161)
    snmp_version = serializers.ChoiceField(choices=Device.SnmpVersion.choices, default=Device.SnmpVersion.V2C)
    community = serializers.CharField(max_length=64, required=False, write_only=True, trim_whitespace=False)
    v3_user = serializers.CharField(max_length=64, required=False, default="")
    v3_auth_key = serializers.CharField(max_length=128, required=False, write_only=True, trim_whitespace=False)
    v3_priv_key = serializers.CharField(max_length=128, required=False, write_only=True, trim_whitespace=False)
    vendor = serializers.CharField(max_length=40, required=False, default="")
    model = serializers.CharField(max_length=60, required=False, default="")


class OnuAuthoriseInput(StrictInput):
    subscription = serializers.IntegerField(min_value=1)


class ProvisionInput(StrictInput):
    subscription = serializers.IntegerField(min_value=1)
    action = serializers.ChoiceField(choices=ProvisioningJob.Action.choices)
    params = serializers.DictField(required=False, default=dict)


class ProvisionRetryInput(StrictInput):
    params = serializers.DictField(required=False, default=dict)


class ProvisionManyItem(StrictInput):
    subscription = serializers.IntegerField(min_value=1)
    params = serializers.DictField(required=False, default=dict)


class ProvisionManyInput(StrictInput):
    items = serializers.ListField(child=ProvisionManyItem(), min_length=1, max_length=1000)


class ProvisioningJobResult(ProvisioningJobOutput):
    pppoe_password = serializers.SerializerMethodField(help_text="Only when this run created the credentials.")

    class Meta(ProvisioningJobOutput.Meta):
        fields = [*ProvisioningJobOutput.Meta.fields, "pppoe_password"]

    def get_pppoe_password(self, obj) -> str | None:
        return (getattr(obj, "result", None) or {}).get("pppoe_password")


class ProvisionManyOutcome(serializers.Serializer):
    subscription = serializers.IntegerField()
    job = ProvisioningJobResult(allow_null=True, help_text="The job (done or failed), when one was created.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        allow_null=True,
        help_text="Why no job was created (bad params, wrong status, a job already open).",
    )


class ProvisionManyOutput(serializers.Serializer):
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = ProvisionManyOutcome(many=True)
