"""Rates from SNMP counters: pure functions, no I/O.

Rules (RFC 2863 counters, RFC 3418 sysUpTime):
- A counter only goes up, modulo 2**bits: a reading below the previous one is a wrap (one at
  most per interval) - unless that would be implausible, then it was a reset (see below).
- The interval is the agent's own clock: the sysUpTime difference (1/100 s), which is when the
  agent read its counters; the wall clock is the fallback when sysUpTime did not move.
- sysUpTime going back is a reboot (all counters restarted from zero): no rate for that interval,
  the new readings become the baseline. A TimeTicks wrap (after 497 days) is told apart from a
  reboot by the wall clock: the wrapped difference matches the time that really passed.
- A rate above twice the interface speed is a counter reset or a glitch: discarded (None), and
  the new readings become the baseline, so no spike is ever stored.
- Rates are never negative; None means "cannot be derived honestly for this interval"."""

from __future__ import annotations

from dataclasses import dataclass

TIMETICKS_MODULO = 2**32
PLAUSIBILITY_FACTOR = 2.0  # a rate above this times ifSpeed is discarded
UNKNOWN_SPEED_MAX_BPS = 4e12  # 4 Tbit/s: the bound when the interface speed is unknown
MIN_FRAME_BITS = 64 * 8  # errors per second cannot exceed the frames per second of the link


@dataclass(frozen=True)
class Interval:
    seconds: float | None  # None: no rate for this interval
    rebooted: bool = False
    reason: str = ""


def counter_delta(previous: int, current: int, *, bits: int = 64) -> int:
    """How much the counter went up from `previous` to `current`, allowing one wrap. >= 0."""
    if bits not in (32, 64):
        raise ValueError("counters are 32 or 64 bits")
    modulo = 2**bits
    if not (0 <= previous < modulo and 0 <= current < modulo):
        raise ValueError(f"counter reading out of range for {bits} bits")
    return (current - previous) % modulo


def uptime_interval(
    previous_cs: int | None,
    current_cs: int | None,
    *,
    wall_elapsed_s: float | None = None,
    tolerance_s: float = 30.0,
) -> Interval:
    """The interval between two polls, from sysUpTime (centiseconds), and whether the device
    rebooted in between."""
    if current_cs is None or previous_cs is None:
        if wall_elapsed_s is not None and wall_elapsed_s > 0:
            return Interval(wall_elapsed_s, reason="wall clock")  # an agent without sysUpTime
        return Interval(None, reason="first sample" if current_cs is not None else "no sysUpTime")
    if current_cs >= previous_cs:
        seconds = (current_cs - previous_cs) / 100
        if seconds > 0:
            return Interval(seconds)
        if wall_elapsed_s is not None and wall_elapsed_s > 0:
            return Interval(wall_elapsed_s)  # an agent whose clock did not move: trust ours
        return Interval(None, reason="no time passed")
    # sysUpTime went back: the 497-day TimeTicks wrap, or a reboot.
    wrapped_s = (current_cs + TIMETICKS_MODULO - previous_cs) / 100
    if wall_elapsed_s is not None and abs(wrapped_s - wall_elapsed_s) <= max(tolerance_s, 0.1 * wall_elapsed_s):
        return Interval(wrapped_s)
    return Interval(None, rebooted=True, reason="rebooted")


def max_bps(speed_bps: int | None) -> float:
    return PLAUSIBILITY_FACTOR * speed_bps if speed_bps and speed_bps > 0 else UNKNOWN_SPEED_MAX_BPS


def octet_rate_bps(
    previous: int | None, current: int | None, seconds: float | None, *, bits: int = 64, speed_bps: int | None = None
) -> float | None:
    """Bits per second between two octet counter readings; None when not derivable or implausible."""
    if previous is None or current is None or not seconds or seconds <= 0:
        return None
    if not (0 <= previous < 2**bits and 0 <= current < 2**bits):
        return None
    rate = counter_delta(previous, current, bits=bits) * 8 / seconds
    if rate > max_bps(speed_bps):
        return None
    return rate


def event_rate(
    previous: int | None, current: int | None, seconds: float | None, *, bits: int = 32, speed_bps: int | None = None
) -> float | None:
    """Events (errors, discards) per second; bounded by twice the link's minimum-size frame rate."""
    if previous is None or current is None or not seconds or seconds <= 0:
        return None
    if not (0 <= previous < 2**bits and 0 <= current < 2**bits):
        return None
    rate = counter_delta(previous, current, bits=bits) / seconds
    if rate > max_bps(speed_bps) / MIN_FRAME_BITS:
        return None
    return rate


@dataclass(frozen=True)
class CounterReading:
    """An interface's counters at one poll. `bits` is the width of the octet counters (64 for
    ifHC*, 32 for the ifIn/OutOctets fallback); error counters are always 32 bits."""

    in_octets: int | None
    out_octets: int | None
    in_errors: int | None = None
    out_errors: int | None = None
    bits: int = 64


@dataclass(frozen=True)
class Rates:
    in_bps: float | None
    out_bps: float | None
    in_errors_per_s: float | None
    out_errors_per_s: float | None
    reason: str = ""  # why some rate is missing ("first sample", "rebooted", "implausible", ...)

    @property
    def complete(self) -> bool:
        return self.in_bps is not None and self.out_bps is not None


NO_RATES = Rates(None, None, None, None)


def interface_rates(
    previous: CounterReading | None, current: CounterReading, interval: Interval, *, speed_bps: int | None
) -> Rates:
    """Rates of one interface between two readings. The caller stores `current` as the new
    baseline whatever this returns (that is what re-baselines after a reboot or a reset)."""
    if interval.rebooted:
        return Rates(None, None, None, None, reason="rebooted")
    if previous is None:
        return Rates(None, None, None, None, reason="first sample")
    if interval.seconds is None:
        return Rates(None, None, None, None, reason=interval.reason or "no interval")
    if previous.bits != current.bits:
        return Rates(None, None, None, None, reason="counter width changed")
    seconds, bits = interval.seconds, current.bits
    in_bps = octet_rate_bps(previous.in_octets, current.in_octets, seconds, bits=bits, speed_bps=speed_bps)
    out_bps = octet_rate_bps(previous.out_octets, current.out_octets, seconds, bits=bits, speed_bps=speed_bps)
    in_err = event_rate(previous.in_errors, current.in_errors, seconds, speed_bps=speed_bps)
    out_err = event_rate(previous.out_errors, current.out_errors, seconds, speed_bps=speed_bps)
    reason = ""
    if in_bps is None or out_bps is None:
        missing = previous.in_octets is None or current.in_octets is None
        missing = missing or previous.out_octets is None or current.out_octets is None
        reason = "no counter" if missing else "implausible"
    return Rates(in_bps, out_bps, in_err, out_err, reason=reason)
