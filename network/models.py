"""RADIUS side of the network app (tenant schema).

FreeRADIUS never reads these tables directly: it calls the functions of the `radius` schema
(`network/radius/db.py`), which look the tenant up from the NAS and read here. What FreeRADIUS
writes (accounting) lands in `RadiusSession` through `radius.accounting`, and a trigger turns
every octet counter increase into daily usage for billing (`billing_usagerecord`)."""

from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from customers.models import Plan, Subscription

USERNAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$",
    "3-64 characters: letters, digits, '.', '_', '@', '-' (starting with a letter or digit).",
    code="invalid_username",
)
POOL_VALIDATOR = RegexValidator(r"^[A-Za-z0-9._-]{0,64}$", "Letters, digits, '.', '_', '-'.", code="invalid_pool")


class RadiusSettings(models.Model):
    """The tenant's RADIUS policy (one row, id 1)."""

    class SuspendedAccess(models.TextChoices):
        REJECT = "reject", "Reject the login"
        WALLED_GARDEN = "walled_garden", "Accept into the walled-garden pool"

    suspended_access = models.CharField(max_length=16, choices=SuspendedAccess.choices, default=SuspendedAccess.REJECT)
    walled_garden_pool = models.CharField(max_length=64, default="walled-garden", validators=[POOL_VALIDATOR])
    walled_garden_kbps = models.PositiveIntegerField(default=256, validators=[MinValueValidator(1)])
    default_pool = models.CharField(
        max_length=64, blank=True, default="", validators=[POOL_VALIDATOR], help_text="Framed-Pool when no static IP."
    )
    session_timeout_s = models.PositiveIntegerField(
        default=86400, validators=[MinValueValidator(60), MaxValueValidator(31 * 86400)]
    )
    interim_interval_s = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(60), MaxValueValidator(86400)]
    )
    stale_after_s = models.PositiveIntegerField(
        default=900,
        validators=[MinValueValidator(120)],
        help_text="An open session with no accounting for this long is closed as stale.",
    )

    class Meta:
        verbose_name = "RADIUS settings"
        verbose_name_plural = "RADIUS settings"
        constraints = [models.CheckConstraint(condition=Q(id=1), name="radius_settings_singleton")]

    def __str__(self) -> str:
        return "RADIUS settings"

    @classmethod
    def current(cls) -> RadiusSettings:
        return cls.objects.get_or_create(pk=1)[0]


class PlanRadiusProfile(models.Model):
    """Per-plan overrides of the RADIUS reply (plans live in customers)."""

    plan = models.OneToOneField(Plan, on_delete=models.CASCADE, related_name="radius_profile")
    session_timeout_s = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(60)])
    framed_pool = models.CharField(max_length=64, blank=True, default="", validators=[POOL_VALIDATOR])

    def __str__(self) -> str:
        return f"RADIUS profile of plan {self.plan_id}"


class Nas(models.Model):
    """A NAS/BRAS of this tenant. Its source IP decides the tenant of every RADIUS request."""

    class Vendor(models.TextChoices):
        MIKROTIK = "mikrotik", "MikroTik"
        CISCO = "cisco", "Cisco"
        JUNIPER = "juniper", "Juniper"
        HUAWEI = "huawei", "Huawei"
        OTHER = "other", "Other"

    name = models.CharField(max_length=100, unique=True)
    ip_address = models.GenericIPAddressField(unique=True, protocol="IPv4")
    # Shared secret, AES-GCM with the key ring (the back office needs it to send CoA); FreeRADIUS
    # reads its own sealed copy through radius.nas_client().
    secret = models.BinaryField(editable=False)
    vendor = models.CharField(max_length=16, choices=Vendor.choices, default=Vendor.MIKROTIK)
    coa_port = models.PositiveIntegerField(default=3799, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "NAS"
        verbose_name_plural = "NAS devices"

    def __str__(self) -> str:
        return f"{self.name} ({self.ip_address})"


class PppoeAccount(models.Model):
    """PPPoE credentials of one subscription. The secret is sealed in the database with a key
    only the `radius` schema's functions read; nothing in the back office decrypts it."""

    subscription = models.OneToOneField(Subscription, on_delete=models.PROTECT, related_name="pppoe")
    username = models.CharField(max_length=64, unique=True, validators=[USERNAME_VALIDATOR])
    secret_sealed = models.BinaryField(editable=False)
    static_ip = models.GenericIPAddressField(null=True, blank=True, unique=True, protocol="IPv4")
    simultaneous_use = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    over_cap = models.BooleanField(default=False, help_text="Over the plan's data cap: fair-use speed.")
    over_cap_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["username"]
        verbose_name = "PPPoE account"

    def __str__(self) -> str:
        return self.username


class RadiusSession(models.Model):
    """One accounting session (radacct), written by FreeRADIUS through radius.accounting()."""

    acct_unique_id = models.CharField(max_length=64, unique=True)
    acct_session_id = models.CharField(max_length=64)
    username = models.CharField(max_length=64)
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="radius_sessions"
    )
    nas_ip_address = models.GenericIPAddressField()
    nas_port_id = models.CharField(max_length=64, blank=True, default="")
    nas_port_type = models.CharField(max_length=32, blank=True, default="")
    framed_ip_address = models.GenericIPAddressField(null=True, blank=True)
    calling_station_id = models.CharField(max_length=64, blank=True, default="")
    called_station_id = models.CharField(max_length=64, blank=True, default="")
    start_time = models.DateTimeField()
    update_time = models.DateTimeField()
    stop_time = models.DateTimeField(null=True, blank=True)
    session_time = models.BigIntegerField(default=0)
    input_octets = models.BigIntegerField(default=0, help_text="From the subscriber (upload), gigawords included.")
    output_octets = models.BigIntegerField(default=0, help_text="To the subscriber (download), gigawords included.")
    terminate_cause = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ["-start_time"]
        indexes = [
            models.Index(fields=["username"], name="session_open_user_idx", condition=Q(stop_time__isnull=True)),
            models.Index(fields=["nas_ip_address"], name="session_open_nas_idx", condition=Q(stop_time__isnull=True)),
            models.Index(fields=["subscription", "start_time"], name="session_sub_start_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.acct_session_id}"


class CoaRequest(models.Model):
    """One CoA-Request or Disconnect-Request sent to a NAS, with its outcome (RFC 5176)."""

    class Kind(models.TextChoices):
        DISCONNECT = "disconnect", "Disconnect-Request"
        COA = "coa", "CoA-Request"

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        ACK = "ack", "Acknowledged"
        NAK = "nak", "Refused (NAK)"
        TIMEOUT = "timeout", "No answer"
        ERROR = "error", "Error"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="coa_requests")
    session = models.ForeignKey(RadiusSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    nas = models.ForeignKey(Nas, null=True, blank=True, on_delete=models.SET_NULL, related_name="coa_requests")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reason = models.CharField(max_length=100)
    attributes = models.JSONField(default=dict)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error_cause = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = "CoA / Disconnect request"

    def __str__(self) -> str:
        return f"{self.kind} {self.outcome}"


# === Inventory, monitoring, faults, GPON and provisioning (SNMP side) ==============================


class Site(models.Model):
    """A site or POP."""

    name = models.CharField(max_length=100, unique=True)
    address = models.CharField(max_length=200, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Device(models.Model):
    """A managed network element polled over SNMP (ONUs are `Onu`, reached through their OLT)."""

    class Kind(models.TextChoices):
        ROUTER = "router", "Router"
        SWITCH = "switch", "Switch"
        BRAS = "bras", "BRAS / NAS"
        OLT = "olt", "OLT"

    class SnmpVersion(models.TextChoices):
        V2C = "2c", "v2c"
        V3 = "3", "v3"

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not polled yet"
        UP = "up", "Reachable"
        DOWN = "down", "Unreachable"

    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="devices")
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    vendor = models.CharField(max_length=40, blank=True, help_text="For OLTs: the GPON profile (huawei, zte, ...).")
    model = models.CharField(max_length=60, blank=True)
    management_ip = models.GenericIPAddressField(unique=True)
    snmp_port = models.PositiveIntegerField(default=161, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    snmp_version = models.CharField(max_length=2, choices=SnmpVersion.choices, default=SnmpVersion.V2C)
    # v2c community or v3 auth/priv passphrases: AES-GCM with the key ring (purpose per field).
    snmp_community = models.BinaryField(null=True, blank=True, editable=False)
    snmp_v3_user = models.CharField(max_length=64, blank=True)
    snmp_v3_auth_protocol = models.CharField(max_length=8, blank=True, help_text="MD5 or SHA")
    snmp_v3_auth_key = models.BinaryField(null=True, blank=True, editable=False)
    snmp_v3_priv_protocol = models.CharField(max_length=8, blank=True, help_text="DES or AES")
    snmp_v3_priv_key = models.BinaryField(null=True, blank=True, editable=False)
    nas = models.OneToOneField(Nas, null=True, blank=True, on_delete=models.SET_NULL, related_name="device")
    poll_enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNKNOWN)
    sys_uptime_cs = models.BigIntegerField(null=True, blank=True, help_text="sysUpTime at the last poll (1/100 s).")
    sys_descr = models.CharField(max_length=255, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.management_ip})"


class Interface(models.Model):
    """An IF-MIB interface of a device, with the last counters read (to derive rates)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="interfaces")
    if_index = models.PositiveBigIntegerField(help_text="ifIndex (64-bit: Huawei PON ports sit above 2^31).")
    name = models.CharField(max_length=100, blank=True)
    descr = models.CharField(max_length=255, blank=True)
    alias = models.CharField(max_length=255, blank=True)
    speed_bps = models.BigIntegerField(null=True, blank=True)
    admin_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="IF-MIB: 1 up, 2 down")
    oper_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="IF-MIB: 1 up, 2 down, ...")
    monitored = models.BooleanField(default=True)
    last_in_octets = models.DecimalField(max_digits=20, decimal_places=0, null=True, blank=True)
    last_out_octets = models.DecimalField(max_digits=20, decimal_places=0, null=True, blank=True)
    last_in_errors = models.BigIntegerField(null=True, blank=True)
    last_out_errors = models.BigIntegerField(null=True, blank=True)
    last_uptime_cs = models.BigIntegerField(null=True, blank=True)
    last_sample_at = models.DateTimeField(null=True, blank=True)
    in_bps = models.FloatField(null=True, blank=True)
    out_bps = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["device_id", "if_index"]
        constraints = [models.UniqueConstraint(fields=["device", "if_index"], name="interface_unique_index")]

    def __str__(self) -> str:
        return f"{self.device_id}:{self.name or self.if_index}"


class InterfaceSample(models.Model):
    """Derived rates per poll. Written in batches (COPY); BRIN on time; rolled up and purged."""

    interface = models.ForeignKey(Interface, on_delete=models.CASCADE, related_name="+", db_index=False)
    sampled_at = models.DateTimeField()
    in_bps = models.FloatField()
    out_bps = models.FloatField()
    in_errors_per_s = models.FloatField(default=0)
    out_errors_per_s = models.FloatField(default=0)
    oper_status = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["interface", "sampled_at"], name="sample_iface_time_idx"),
            BrinIndex(fields=["sampled_at"], name="sample_time_brin"),
        ]

    def __str__(self) -> str:
        return f"{self.interface_id} @ {self.sampled_at}"


class InterfaceRollup(models.Model):
    """Hourly roll-up of samples (kept after raw samples are purged)."""

    interface = models.ForeignKey(Interface, on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    samples = models.PositiveIntegerField()
    in_bps_avg = models.FloatField()
    out_bps_avg = models.FloatField()
    in_bps_max = models.FloatField()
    out_bps_max = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["interface", "hour"], name="rollup_one_per_hour")]

    def __str__(self) -> str:
        return f"{self.interface_id} @ {self.hour}"


class IpPool(models.Model):
    class Kind(models.TextChoices):
        STATIC = "static", "Static assignments"
        DYNAMIC = "dynamic", "Dynamic (Framed-Pool on the NAS)"

    name = models.CharField(max_length=64, unique=True, validators=[POOL_VALIDATOR])
    network = models.CharField(max_length=43, help_text="CIDR, e.g. 100.64.0.0/22")
    gateway = models.GenericIPAddressField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.STATIC)
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="ip_pools")

    class Meta:
        ordering = ["name"]
        verbose_name = "IP pool"

    def __str__(self) -> str:
        return f"{self.name} {self.network}"


class IpAssignment(models.Model):
    """One address given out of a pool. Unique per address: never given twice."""

    pool = models.ForeignKey(IpPool, on_delete=models.PROTECT, related_name="assignments")
    address = models.GenericIPAddressField(unique=True)
    subscription = models.OneToOneField(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="ip_assignment"
    )
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["address"]

    def __str__(self) -> str:
        return self.address


class PonPort(models.Model):
    olt = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="pon_ports")
    # 64-bit: Huawei's PON port ifIndexes start at 0xFA000000, above a 32-bit integer column.
    index = models.PositiveBigIntegerField(help_text="The vendor's PON port index (from the profile's OIDs).")
    name = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["olt_id", "index"]
        constraints = [models.UniqueConstraint(fields=["olt", "index"], name="pon_port_unique_index")]

    def __str__(self) -> str:
        return self.name or f"PON {self.index}"


class Onu(models.Model):
    """A GPON ONU, found by autofind on its OLT; authorised = bound to a subscription."""

    class State(models.TextChoices):
        DISCOVERED = "discovered", "Discovered (not authorised)"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"
        DYING_GASP = "dying_gasp", "Dying gasp (power lost)"
        LOS = "los", "Loss of signal"

    olt = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="onus")
    pon_port = models.ForeignKey(PonPort, on_delete=models.CASCADE, related_name="onus")
    serial = models.CharField(max_length=32, unique=True, help_text="Vendor serial, e.g. HWTC1A2B3C4D")
    onu_index = models.PositiveIntegerField(null=True, blank=True, help_text="ONU id on its PON port.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.DISCOVERED)
    subscription = models.OneToOneField(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="onu"
    )
    authorised_at = models.DateTimeField(null=True, blank=True)
    rx_power_dbm = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    tx_power_dbm = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["olt_id", "pon_port_id", "onu_index"]
        verbose_name = "ONU"

    def __str__(self) -> str:
        return self.serial


class SubscriptionPort(models.Model):
    """Where a (non-fiber) subscription is plugged in: a switch/router port."""

    subscription = models.OneToOneField(Subscription, on_delete=models.CASCADE, related_name="port")
    interface = models.ForeignKey(Interface, on_delete=models.PROTECT, related_name="subscriptions")

    def __str__(self) -> str:
        return f"{self.subscription_id} @ {self.interface_id}"


class Alarm(models.Model):
    """A fault. At most one open alarm per (kind, object): `dedupe_key` is unique while open."""

    class Kind(models.TextChoices):
        DEVICE_UNREACHABLE = "device_unreachable", "Device unreachable"
        INTERFACE_DOWN = "interface_down", "Interface down"
        ERROR_RATE = "error_rate", "Interface error rate"
        UTILISATION = "utilisation", "Interface utilisation"
        ONU_LOW_RX = "onu_low_rx", "ONU low optical power"
        ONU_OFFLINE = "onu_offline", "ONU offline"
        ONU_DYING_GASP = "onu_dying_gasp", "ONU dying gasp"
        DEVICE_REBOOTED = "device_rebooted", "Device rebooted"

    class Severity(models.TextChoices):
        CRITICAL = "critical", "Critical"
        MAJOR = "major", "Major"
        MINOR = "minor", "Minor"
        WARNING = "warning", "Warning"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLEARED = "cleared", "Cleared"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    dedupe_key = models.CharField(max_length=120, help_text="kind:object, e.g. interface_down:iface:42")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="alarms")
    interface = models.ForeignKey(Interface, null=True, blank=True, on_delete=models.CASCADE, related_name="alarms")
    onu = models.ForeignKey(Onu, null=True, blank=True, on_delete=models.CASCADE, related_name="alarms")
    summary = models.CharField(max_length=255)
    details = models.JSONField(default=dict)
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="Last poll that still saw the condition.")
    cleared_at = models.DateTimeField(null=True, blank=True)
    occurrences = models.PositiveIntegerField(default=1, help_text="Polls that saw the condition.")
    flap_count = models.PositiveIntegerField(default=0, help_text="Re-opened within the flap window.")
    flapping = models.BooleanField(default=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"], condition=Q(state="open"), name="alarm_one_open_per_condition"
            ),
        ]
        indexes = [models.Index(fields=["state", "kind"], name="alarm_state_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.state}: {self.summary}"


class AlarmNotification(models.Model):
    """One notification of an alarm opening or clearing, per channel, with its outcome."""

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, help_text="opened / cleared / flapping")
    channel = models.CharField(max_length=16, help_text="email / webhook")
    target = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16, help_text="sent / failed")
    detail = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return f"{self.alarm_id} {self.event} via {self.channel}: {self.outcome}"


class ProvisioningJob(models.Model):
    """An idempotent, resumable provisioning sequence for one subscription (see network/provisioning.py)."""

    class Action(models.TextChoices):
        ACTIVATE = "activate", "Activate"
        SUSPEND = "suspend", "Suspend"
        TERMINATE = "terminate", "Terminate"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        FAILED = "failed", "Failed (retry possible)"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled (left as it stood)"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="provisioning_jobs")
    action = models.CharField(max_length=16, choices=Action.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    steps_done = models.JSONField(default=list, help_text="Names of the steps completed, in order.")
    current_step = models.CharField(max_length=40, blank=True)
    error = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    params = models.JSONField(default=dict, help_text="e.g. static IP wanted, pool, ONU serial.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "action"],
                condition=Q(state__in=["pending", "running", "failed"]),
                name="provisioning_one_open_job_per_action",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.subscription_id}: {self.state}"
