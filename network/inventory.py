"""Writes of the network inventory: sites, managed devices (SNMP credentials sealed with the key
ring), IP pools and address assignments.

Every write is atomic and audited in the same transaction; secrets are never written to the
audit trail (only the names of the fields that changed). Address allocation is safe under
concurrency: the subscription and the pool rows are locked (in that order, always), and the
unique address constraint is the last word - an address is never given twice."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from compliance.audit import Actor, audit_record
from customers.models import Subscription

from .models import Device, IpAssignment, IpPool, Nas, Site
from .snmp.credentials import seal_field

DEVICE_FIELDS = frozenset(
    {"name", "kind", "vendor", "model", "management_ip", "snmp_port", "snmp_version", "site", "nas", "poll_enabled"}
)
DEVICE_FIELDS |= {"snmp_v3_user", "snmp_v3_auth_protocol", "snmp_v3_priv_protocol"}
V3_AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
V3_PRIV_PROTOCOLS = ("DES", "AES", "AES192", "AES256")
_V3_USER = re.compile(r"^[A-Za-z0-9._@-]{1,32}$")
# Addresses scanned per allocation before giving up on a huge, almost full pool (IPv6 /64...).
ALLOCATION_SCAN_LIMIT = 1_000_000


# --- validation -------------------------------------------------------------------------------------


def _check_secret(value, *, field: str, minimum: int, label: str) -> str:
    if not isinstance(value, str) or not (minimum <= len(value) <= 64):
        raise ValidationError({field: f"{label} must be {minimum}-64 characters."}, code="invalid_secret")
    if not value.isascii() or not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValidationError({field: f"{label}: printable ASCII without spaces only."}, code="invalid_secret")
    return value


def _check_ip(value, *, field: str) -> str:
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValidationError({field: f"{value!r} is not an IP address."}, code="invalid_ip") from None
    if address.is_unspecified or address.is_multicast:
        raise ValidationError({field: f"{address} cannot be used here."}, code="invalid_ip")
    return str(address)


def _check_choice(value, choices, *, field: str) -> str:
    allowed = [c for c, _ in choices] if choices and isinstance(choices[0], tuple) else list(choices)
    if value not in allowed:
        raise ValidationError({field: f"{value!r} is not one of {', '.join(allowed)}."}, code="invalid_choice")
    return value


def _snmp_credentials(
    device: Device,
    *,
    version: str,
    community: str | None,
    v3_user: str,
    v3_auth_protocol: str,
    v3_auth_key: str | None,
    v3_priv_protocol: str,
    v3_priv_key: str | None,
    changing: bool,
) -> list[str]:
    """Validate and set the SNMP credentials on `device`; returns the fields that were set. When
    `changing`, a secret left as None keeps the stored one."""
    changed = []
    if version == Device.SnmpVersion.V2C:
        if community is not None:
            _check_secret(community, field="community", minimum=1, label="The community")
            device.snmp_community = seal_field(device.pk, "snmp_community", community)
            changed.append("snmp_community")
        elif not (changing and device.snmp_community):
            raise ValidationError({"community": "SNMP v2c needs a community."}, code="required")
        for name in ("snmp_v3_user", "snmp_v3_auth_protocol", "snmp_v3_priv_protocol"):
            if getattr(device, name):
                setattr(device, name, "")
                changed.append(name)
        for name in ("snmp_v3_auth_key", "snmp_v3_priv_key"):
            if getattr(device, name) is not None:
                setattr(device, name, None)
                changed.append(name)
        return changed
    # SNMPv3: a user, authentication (authNoPriv at least), privacy optional.
    if not _V3_USER.match(v3_user or ""):
        raise ValidationError({"v3_user": "SNMPv3 needs a user name (1-32 letters, digits, . _ @ -)."}, code="invalid")
    auth_protocol = (v3_auth_protocol or "SHA").upper()
    _check_choice(auth_protocol, V3_AUTH_PROTOCOLS, field="v3_auth_protocol")
    if v3_auth_key is not None:
        _check_secret(v3_auth_key, field="v3_auth_key", minimum=8, label="The SNMPv3 auth key")
        device.snmp_v3_auth_key = seal_field(device.pk, "snmp_v3_auth_key", v3_auth_key)
        changed.append("snmp_v3_auth_key")
    elif not (changing and device.snmp_v3_auth_key):
        raise ValidationError({"v3_auth_key": "SNMPv3 needs an authentication key."}, code="required")
    priv_protocol = ""
    if v3_priv_key is not None:
        if v3_priv_key == "":
            if device.snmp_v3_priv_key is not None:
                device.snmp_v3_priv_key = None
                changed.append("snmp_v3_priv_key")
        else:
            priv_protocol = (v3_priv_protocol or "AES").upper()
            _check_choice(priv_protocol, V3_PRIV_PROTOCOLS, field="v3_priv_protocol")
            _check_secret(v3_priv_key, field="v3_priv_key", minimum=8, label="The SNMPv3 privacy key")
            device.snmp_v3_priv_key = seal_field(device.pk, "snmp_v3_priv_key", v3_priv_key)
            changed.append("snmp_v3_priv_key")
    elif changing and device.snmp_v3_priv_key:
        priv_protocol = (v3_priv_protocol or device.snmp_v3_priv_protocol or "AES").upper()
        _check_choice(priv_protocol, V3_PRIV_PROTOCOLS, field="v3_priv_protocol")
    for name, value in (
        ("snmp_v3_user", v3_user),
        ("snmp_v3_auth_protocol", auth_protocol),
        ("snmp_v3_priv_protocol", priv_protocol),
    ):
        if getattr(device, name) != value:
            setattr(device, name, value)
            changed.append(name)
    if device.snmp_community is not None:
        device.snmp_community = None
        changed.append("snmp_community")
    return changed


# --- sites --------------------------------------------------------------------------------------


@transaction.atomic
def site_create(
    *,
    name: str,
    actor: Actor,
    address: str = "",
    latitude=None,
    longitude=None,
    source_ip: str | None = None,
) -> Site:
    site = Site(name=(name or "").strip(), address=address or "", latitude=latitude, longitude=longitude)
    site.full_clean()
    site.save()
    audit_record(
        actor=actor,
        action="site.created",
        target=site,
        changed_fields=["name", "address", "latitude", "longitude"],
        source_ip=source_ip,
    )
    return site


# --- devices ------------------------------------------------------------------------------------


@transaction.atomic
def device_register(
    *,
    name: str,
    kind: str,
    management_ip: str,
    actor: Actor,
    snmp_version: str = Device.SnmpVersion.V2C,
    community: str | None = None,
    v3_user: str = "",
    v3_auth_protocol: str = "SHA",
    v3_auth_key: str | None = None,
    v3_priv_protocol: str = "AES",
    v3_priv_key: str | None = None,
    snmp_port: int = 161,
    site: Site | None = None,
    vendor: str = "",
    model: str = "",
    nas: Nas | None = None,
    poll_enabled: bool = True,
    source_ip: str | None = None,
) -> Device:
    """A managed device. The SNMP secrets are sealed (AES-GCM, one purpose per field) before they
    reach the database; the audit event names the fields, never the values."""
    device = Device(
        name=(name or "").strip(),
        kind=_check_choice(kind, Device.Kind.choices, field="kind"),
        management_ip=_check_ip(management_ip, field="management_ip"),
        snmp_port=snmp_port,
        snmp_version=_check_choice(snmp_version, Device.SnmpVersion.choices, field="snmp_version"),
        site=site,
        vendor=vendor or "",
        model=model or "",
        nas=nas,
        poll_enabled=poll_enabled,
    )
    secrets_set = _snmp_credentials(
        device,
        version=snmp_version,
        community=community,
        v3_user=v3_user,
        v3_auth_protocol=v3_auth_protocol,
        v3_auth_key=v3_auth_key,
        v3_priv_protocol=v3_priv_protocol,
        v3_priv_key=v3_priv_key,
        changing=False,
    )
    device.full_clean()
    device.save()
    audit_record(
        actor=actor,
        action="device.registered",
        target=device,
        changed_fields=["name", "kind", "management_ip", "snmp_port", "snmp_version", *secrets_set],
        source_ip=source_ip,
    )
    return device


_UNSET = object()


@transaction.atomic
def device_update(
    *,
    device: Device,
    actor: Actor,
    changes: dict | None = None,
    community: str | None = None,
    v3_auth_key: str | None = None,
    v3_priv_key: str | None = None,
    source_ip: str | None = None,
) -> Device:
    """Change a device's fields (`changes`: name, kind, management_ip, snmp_port, snmp_version,
    snmp_v3_user/auth_protocol/priv_protocol, site, nas, vendor, model, poll_enabled) and/or its
    secrets (None keeps the stored one; v3_priv_key="" drops privacy)."""
    changes = dict(changes or {})
    unknown = set(changes) - DEVICE_FIELDS
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "Unknown or read-only field."), code="unknown_field")
    device = Device.objects.select_for_update().get(pk=device.pk)
    changed = []
    if "management_ip" in changes:
        changes["management_ip"] = _check_ip(changes["management_ip"], field="management_ip")
    if "kind" in changes:
        _check_choice(changes["kind"], Device.Kind.choices, field="kind")
    version = changes.get("snmp_version", device.snmp_version)
    _check_choice(version, Device.SnmpVersion.choices, field="snmp_version")
    for field in sorted(set(changes) - {"snmp_v3_user", "snmp_v3_auth_protocol", "snmp_v3_priv_protocol"}):
        value = changes[field]
        if field == "name":
            value = (value or "").strip()
        if getattr(device, field) != value:
            setattr(device, field, value)
            changed.append(field)
    credentials_touched = (
        any(v is not None for v in (community, v3_auth_key, v3_priv_key))
        or "snmp_version" in changed
        or any(f in changes for f in ("snmp_v3_user", "snmp_v3_auth_protocol", "snmp_v3_priv_protocol"))
    )
    if credentials_touched:
        changed += _snmp_credentials(
            device,
            version=version,
            community=community,
            v3_user=changes.get("snmp_v3_user", device.snmp_v3_user),
            v3_auth_protocol=changes.get("snmp_v3_auth_protocol", device.snmp_v3_auth_protocol),
            v3_auth_key=v3_auth_key,
            v3_priv_protocol=changes.get("snmp_v3_priv_protocol", device.snmp_v3_priv_protocol),
            v3_priv_key=v3_priv_key,
            changing=True,
        )
    if not changed:
        return device
    device.full_clean()
    device.save()
    audit_record(actor=actor, action="device.updated", target=device, changed_fields=changed, source_ip=source_ip)
    return device


# --- IP pools ---------------------------------------------------------------------------------


def _check_network(value) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = str(value or "").strip()
    if "/" not in text:
        raise ValidationError({"network": f"{text!r} is not a CIDR block (e.g. 100.64.0.0/22)."}, code="invalid_cidr")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValidationError({"network": f"{text!r} is not a CIDR block: {exc}."}, code="invalid_cidr") from None
        raise ValidationError(
            {"network": f"{text} has host bits set; did you mean {fixed}?"}, code="invalid_cidr"
        ) from None


def reserved_addresses(network, gateway: str | None) -> set:
    reserved = {network.network_address}
    if network.version == 4 and network.prefixlen < 31:
        reserved.add(network.broadcast_address)
    if gateway:
        reserved.add(ipaddress.ip_address(gateway))
    return reserved


@transaction.atomic
def ip_pool_create(
    *,
    name: str,
    network: str,
    actor: Actor,
    gateway: str | None = None,
    kind: str = IpPool.Kind.STATIC,
    site: Site | None = None,
    source_ip: str | None = None,
) -> IpPool:
    """A pool of addresses. The CIDR must be exact (no host bits), must not overlap another pool
    of the tenant, and the gateway must be a host of it."""
    block = _check_network(network)
    _check_choice(kind, IpPool.Kind.choices, field="kind")
    if gateway:
        gateway = _check_ip(gateway, field="gateway")
        address = ipaddress.ip_address(gateway)
        if address.version != block.version or address not in block:
            raise ValidationError({"gateway": f"{gateway} is not inside {block}."}, code="gateway_outside")
        if address == block.network_address or (block.version == 4 and address == block.broadcast_address):
            raise ValidationError({"gateway": f"{gateway} is not a host address of {block}."}, code="gateway_invalid")
    for other in IpPool.objects.select_for_update().all():
        try:
            other_block = ipaddress.ip_network(other.network, strict=False)
        except ValueError:
            continue
        if other_block.version == block.version and other_block.overlaps(block):
            raise ValidationError(
                {"network": f"{block} overlaps pool {other.name} ({other_block})."}, code="pool_overlap"
            )
    pool = IpPool(name=(name or "").strip(), network=str(block), gateway=gateway or None, kind=kind, site=site)
    pool.full_clean()
    pool.save()
    audit_record(
        actor=actor,
        action="ip_pool.created",
        target=pool,
        changed_fields=["name", "network", "gateway", "kind", "site"],
        source_ip=source_ip,
    )
    return pool


def free_hosts(network, taken: set, reserved: set) -> Iterator[str]:
    """The free host addresses of `network`, lowest first (gives up after ALLOCATION_SCAN_LIMIT)."""
    for scanned, host in enumerate(network.hosts() if network.num_addresses > 2 else iter(network)):
        if scanned >= ALLOCATION_SCAN_LIMIT:
            return
        if host not in reserved and str(host) not in taken:
            yield str(host)


def _first_free(network, taken: set, reserved: set) -> str | None:
    return next(free_hosts(network, taken, reserved), None)


@transaction.atomic
def ip_allocate(
    *,
    pool: IpPool,
    subscription: Subscription,
    actor: Actor,
    address: str | None = None,
    source_ip: str | None = None,
) -> IpAssignment:
    """Give `subscription` an address of `pool`: the one asked for, or the lowest free host (never
    the network, broadcast or gateway address). Idempotent: a subscription that already holds an
    address gets that assignment back. Concurrent calls never hand out one address twice."""
    subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)  # lock order: sub, pool
    existing = IpAssignment.objects.filter(subscription=subscription).select_related("pool").first()
    if existing is not None:
        if address and ipaddress.ip_address(address) != ipaddress.ip_address(existing.address):
            raise ValidationError(
                {"address": f"The subscription already holds {existing.address}; release it first."},
                code="already_assigned",
            )
        return existing
    pool = IpPool.objects.select_for_update().get(pk=pool.pk)
    if pool.kind != IpPool.Kind.STATIC:
        raise ValidationError(
            {"pool": f"Pool {pool.name} is dynamic: the NAS hands its addresses out."}, code="dynamic"
        )
    network = ipaddress.ip_network(pool.network, strict=False)
    reserved = reserved_addresses(network, pool.gateway)
    taken = set(IpAssignment.objects.filter(pool=pool).values_list("address", flat=True))
    if address:
        wanted = ipaddress.ip_address(_check_ip(address, field="address"))
        if wanted.version != network.version or wanted not in network:
            raise ValidationError({"address": f"{wanted} is not inside pool {pool.name} ({network})."}, code="outside")
        if wanted in reserved:
            raise ValidationError(
                {"address": f"{wanted} is the network, broadcast or gateway address of {network}."}, code="reserved"
            )
        if str(wanted) in taken:
            raise ValidationError({"address": f"{wanted} is already assigned."}, code="ip_taken")
        candidates = [str(wanted)]
    else:
        candidates = []
    for _attempt in range(16):
        chosen = candidates.pop(0) if candidates else _first_free(network, taken, reserved)
        if chosen is None:
            raise ValidationError({"pool": f"Pool {pool.name} ({pool.network}) has no free address."}, code="exhausted")
        try:
            with transaction.atomic():  # a savepoint: the unique address is the last word
                assignment = IpAssignment.objects.create(pool=pool, address=chosen, subscription=subscription)
        except IntegrityError:
            if address:
                raise ValidationError({"address": f"{chosen} is already assigned."}, code="ip_taken") from None
            taken.add(chosen)  # held elsewhere (e.g. by an overlapping pool of old data): next one
            continue
        audit_record(
            actor=actor,
            action="ip.allocated",
            target=assignment,
            changed_fields=["address", "subscription"],
            reason=f"pool {pool.name}",
            source_ip=source_ip,
        )
        return assignment
    raise ValidationError({"pool": f"Pool {pool.name}: could not allocate an address, try again."}, code="contention")


@transaction.atomic
def ip_release(
    *,
    actor: Actor,
    assignment: IpAssignment | None = None,
    subscription: Subscription | None = None,
    source_ip: str | None = None,
) -> IpAssignment | None:
    """Return an address to its pool (by assignment or by subscription). Releasing what is not
    held is a no-op (returns None)."""
    if assignment is None and subscription is None:
        raise ValueError("ip_release needs an assignment or a subscription")
    query = IpAssignment.objects.select_for_update()
    query = query.filter(pk=assignment.pk) if assignment is not None else query.filter(subscription=subscription)
    held = query.first()
    if held is None:
        return None
    audit_record(
        actor=actor,
        action="ip.released",
        target=held,
        changed_fields=["subscription"],
        reason=f"{held.address} back to pool {held.pool_id}",
        source_ip=source_ip,
    )
    held.delete()
    return held
