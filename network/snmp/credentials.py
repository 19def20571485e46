"""SNMP credentials of a device: stored encrypted with the key ring, one purpose per field, so a
ciphertext cannot be moved from one field (or device) to another. Never logged."""

from __future__ import annotations

from dataclasses import dataclass

from compliance.pii.keyring import get_keyring

PURPOSES = {
    "snmp_community": b"network.device.snmp_community",
    "snmp_v3_auth_key": b"network.device.snmp_v3_auth_key",
    "snmp_v3_priv_key": b"network.device.snmp_v3_priv_key",
}


def seal_field(device_pk_or_none, field: str, value: str) -> bytes:
    return get_keyring().encrypt(value.encode(), PURPOSES[field])


def open_field(blob, field: str) -> str:
    if blob is None:
        return ""
    return get_keyring().decrypt(bytes(blob), PURPOSES[field]).decode()


@dataclass(frozen=True)
class SnmpTarget:
    """Everything needed to open an SNMP session to a device (secrets in clear: keep in memory only)."""

    host: str
    port: int
    version: str  # "2c" or "3"
    community: str = ""
    v3_user: str = ""
    v3_auth_protocol: str = ""
    v3_auth_key: str = ""
    v3_priv_protocol: str = ""
    v3_priv_key: str = ""

    def __repr__(self) -> str:  # never print secrets
        return f"SnmpTarget({self.host}:{self.port} v{self.version})"


def target_for(device) -> SnmpTarget:
    return SnmpTarget(
        host=device.management_ip,
        port=device.snmp_port,
        version=device.snmp_version,
        community=open_field(device.snmp_community, "snmp_community"),
        v3_user=device.snmp_v3_user,
        v3_auth_protocol=device.snmp_v3_auth_protocol,
        v3_auth_key=open_field(device.snmp_v3_auth_key, "snmp_v3_auth_key"),
        v3_priv_protocol=device.snmp_v3_priv_protocol,
        v3_priv_key=open_field(device.snmp_v3_priv_key, "snmp_v3_priv_key"),
    )
