"""Plain data passed between the poller, fault detection and the GPON code (no ORM, no I/O).

The poller produces one `DevicePoll` per device and poll; fault detection (`network.faults`)
consumes it. Counters are raw SNMP values; rates are already derived (counter wrap and device
reboot handled: a rate is None when it cannot be derived honestly, never negative)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InterfacePoll:
    interface_id: int
    if_index: int
    name: str
    admin_status: int | None  # IF-MIB ifAdminStatus: 1 up, 2 down, 3 testing
    oper_status: int | None  # IF-MIB ifOperStatus: 1 up, 2 down, ...
    speed_bps: int | None
    in_bps: float | None
    out_bps: float | None
    in_errors_per_s: float | None
    out_errors_per_s: float | None

    @property
    def utilisation(self) -> float | None:
        """Highest of in/out over the speed, 0..1 (None when unknown)."""
        if not self.speed_bps or self.in_bps is None or self.out_bps is None:
            return None
        return max(self.in_bps, self.out_bps) / self.speed_bps


@dataclass(frozen=True)
class OnuPoll:
    onu_id: int
    serial: str
    state: str  # network.models.Onu.State value
    rx_power_dbm: float | None
    tx_power_dbm: float | None


@dataclass(frozen=True)
class DevicePoll:
    device_id: int
    polled_at: datetime.datetime
    reachable: bool
    error: str = ""  # why not reachable (timeout, auth failure, ...)
    sys_uptime_cs: int | None = None
    rebooted: bool = False  # sysUpTime went back since the previous poll
    interfaces: list[InterfacePoll] = field(default_factory=list)
    onus: list[OnuPoll] = field(default_factory=list)
    duration_s: float = 0.0
