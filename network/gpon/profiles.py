"""GPON vendor profiles: where an OLT keeps its ONU table and how to read it (pure: no ORM, no I/O).

A profile is a JSON file in `network/gpon/profiles/`, named after the value of `Device.vendor`
(`huawei.json` serves OLTs whose vendor is "huawei"). A third vendor is a new file, not new code:

```
{
  "vendor": "huawei",                      # must equal the file name
  "title": "...", "notes": ["..."],        # documentation only
  "index": ["pon_port", "onu_index"],      # how a row's OID suffix reads (default of every column)
  "pon_port_offset": 4194304000,           # optional: stored port index = OID port component - offset
  "pon_port_name": {"oid": "..."},         # optional: a column indexed by the PON port (ifName)
  "serial": {"oid": "...", "encoding": "gpon_octets" | "ascii" | "hex"},
  "state": {"oid": "...", "map": {"<raw>": "<state>"}, "default": "<state>",
            "refine": {"when": "<state>", "oid": "...", "map": {"<raw>": "<state>"}}},   # refine optional
  "optics": {"rx": {"oid": "...", "scale": "0.01", "offset": "0", "invalid": [2147483647]},
             "tx": {...}},                 # dBm = raw * scale + offset; `invalid` raws mean no reading
  "thresholds": {"rx_low_dbm": "-27", "rx_high_dbm": "-8", "tx_low_dbm": "0.5", "tx_high_dbm": "5"}
}
```

An index layout names each component of the OID suffix after the column's OID: `pon_port`,
`onu_index`, or `*` (a component that is read and ignored, e.g. ZTE's optical interface number).
States are the observed ones of `Onu.State` (online, offline, dying_gasp, los); `discovered` is the
back office's own state of an ONU nobody has authorised, never something an OLT reports.

Serials are kept in one canonical form whatever the vendor sends: the 4-letter vendor id and the
8 hex digits of the vendor-specific part, e.g. `HWTC1A2B3C4D` (see `serial_normalize`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
OBSERVED_STATES = frozenset({"online", "offline", "dying_gasp", "los"})
SERIAL_ENCODINGS = frozenset({"gpon_octets", "ascii", "hex"})
INDEX_PARTS = frozenset({"pon_port", "onu_index", "*"})
# A decoded power outside this range is a broken reading, not a fibre problem: it is reported as no reading.
PLAUSIBLE_DBM = (Decimal("-50"), Decimal("20"))
DBM_PLACES = Decimal("0.01")  # what Onu.rx_power_dbm / tx_power_dbm keep
PON_PORT_MAX = 2**63 - 1  # PonPort.index is a 64-bit column

_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_VENDOR = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_SERIAL = re.compile(r"^[A-Z0-9]{4}[0-9A-F]{8}$")
_SEPARATORS = re.compile(r"[\s:.\-]")


class ProfileError(ValueError):
    """A profile file that cannot be used (with the file and the field at fault)."""


# --- serials --------------------------------------------------------------------------------


def _serial_from_octets(octets: bytes) -> str:
    if len(octets) != 8:
        raise ValueError(f"a GPON serial has 8 octets, not {len(octets)}")
    vendor = octets[:4].decode("ascii", errors="replace").upper()
    if not re.fullmatch(r"[A-Z0-9]{4}", vendor):
        raise ValueError(f"the vendor id of a GPON serial is 4 letters or digits, not {octets[:4]!r}")
    return vendor + octets[4:].hex().upper()


def serial_normalize(text: str) -> str:
    """The canonical form of a serial typed or read in any usual way.

    `HWTC1A2B3C4D`, `hwtc-1a2b3c4d`, `HWTC 1A2B 3C4D` and `485754431A2B3C4D` (all 8 octets in hex)
    all give `HWTC1A2B3C4D`. Raises ValueError for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"a serial is text, not {type(text).__name__}")
    compact = _SEPARATORS.sub("", text).upper()
    if _SERIAL.fullmatch(compact):
        return compact
    if re.fullmatch(r"[0-9A-F]{16}", compact):
        return _serial_from_octets(bytes.fromhex(compact))
    raise ValueError(f"{text!r} is not a GPON serial (4-letter vendor id + 8 hex digits, e.g. HWTC1A2B3C4D)")


def _as_octets(raw) -> bytes:
    """SNMP OCTET STRING as received: bytes, or text with one character per octet (easysnmp)."""
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    try:
        return raw.encode("latin-1")
    except UnicodeEncodeError:
        return raw.encode("utf-8", errors="surrogateescape")


def serial_decode(raw, encoding: str) -> str:
    """A serial as an OLT sends it -> the canonical form (ValueError when it is not a serial).

    - `gpon_octets`: the 8 octets of the GPON serial (4 ASCII + 4 binary). Text that is already a
      readable serial or 16 hex digits is accepted too (agents that print hex strings).
    - `ascii`: the serial as printable text, `ZTEGC0A1B2C3`.
    - `hex`: the 8 octets written as 16 hex digits, `5A544547C0A1B2C3` (separators allowed).
    """
    if encoding not in SERIAL_ENCODINGS:
        raise ValueError(f"unknown serial encoding {encoding!r}")
    if encoding == "gpon_octets":
        octets = _as_octets(raw)
        if len(octets) == 8:
            return _serial_from_octets(octets)
        return serial_normalize(octets.decode("ascii", errors="replace"))
    text = raw.decode("ascii", errors="replace") if isinstance(raw, bytes | bytearray) else str(raw)
    text = text.strip().strip('"').strip("\x00")
    if encoding == "hex":
        compact = _SEPARATORS.sub("", text)
        if not re.fullmatch(r"[0-9A-Fa-f]{16}", compact):
            raise ValueError(f"{text!r} is not 16 hex digits")
        return _serial_from_octets(bytes.fromhex(compact))
    return serial_normalize(text)


# --- profile parts ----------------------------------------------------------------------------


def _raw_int(raw) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, int):
        return raw
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class Column:
    """One SNMP table column: its OID and how the OID suffix of a row reads."""

    oid: str
    index: tuple[str, ...]

    def key(self, oid: str) -> tuple[int, ...] | None:
        """The named index components (`pon_port`, `onu_index`, in that order of the layout,
        ignored parts dropped) of a row's full OID; None when the OID is not a row of this column."""
        oid = oid.lstrip(".")
        if not oid.startswith(self.oid + "."):
            return None
        parts = oid[len(self.oid) + 1 :].split(".")
        if len(parts) != len(self.index) or not all(p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p, name in zip(parts, self.index, strict=True) if name != "*")


@dataclass(frozen=True)
class PowerColumn(Column):
    scale: Decimal
    offset: Decimal
    invalid: frozenset[int]

    def decode(self, raw) -> Decimal | None:
        """Raw reading -> dBm (2 places, half away from zero); None for no reading or nonsense."""
        value = _raw_int(raw)
        if value is None or value in self.invalid:
            return None
        dbm = (Decimal(value) * self.scale + self.offset).quantize(DBM_PLACES, rounding=ROUND_HALF_UP)
        low, high = PLAUSIBLE_DBM
        return dbm if low <= dbm <= high else None


@dataclass(frozen=True)
class Thresholds:
    """The vendor's usual optical window (GPON class B+ ONU: receive -8 .. -27/-28 dBm)."""

    rx_low_dbm: Decimal
    rx_high_dbm: Decimal
    tx_low_dbm: Decimal
    tx_high_dbm: Decimal

    def rx_status(self, dbm) -> str | None:
        """'low' (too little light: dirty connector, long or bent fibre), 'high' (overload), 'ok',
        or None without a reading."""
        return _window(dbm, self.rx_low_dbm, self.rx_high_dbm)

    def tx_status(self, dbm) -> str | None:
        return _window(dbm, self.tx_low_dbm, self.tx_high_dbm)


def _window(dbm, low: Decimal, high: Decimal) -> str | None:
    if dbm is None:
        return None
    value = Decimal(str(dbm))
    return "low" if value < low else "high" if value > high else "ok"


@dataclass(frozen=True)
class OnuRow:
    """One ONU as the OLT reports it, decoded."""

    pon_port: int
    onu_index: int
    serial: str
    state: str  # one of OBSERVED_STATES
    rx_power_dbm: Decimal | None = None
    tx_power_dbm: Decimal | None = None


@dataclass(frozen=True)
class GponProfile:
    vendor: str
    title: str
    serial: Column
    serial_encoding: str
    state: Column
    state_map: Mapping[int, str]
    state_default: str
    refine: Column | None
    refine_when: str
    refine_map: Mapping[int, str]
    rx: PowerColumn
    tx: PowerColumn
    pon_port_name: Column | None
    pon_port_offset: int
    thresholds: Thresholds

    def decode_state(self, raw_state, raw_cause=None) -> str:
        state = self.state_map.get(_raw_int(raw_state), self.state_default)
        if self.refine is not None and state == self.refine_when:
            state = self.refine_map.get(_raw_int(raw_cause), state)
        return state

    def port_index(self, raw: int) -> int | None:
        """The stored PON port index of a port's OID component (None when out of range)."""
        port = raw - self.pon_port_offset
        return port if 0 <= port <= PON_PORT_MAX else None

    def autofind_columns(self) -> dict[str, Column]:
        """The columns an autofind walks: serial and state (and the state's refinement)."""
        columns = {"serial": self.serial, "state": self.state}
        if self.refine is not None:
            columns["refine"] = self.refine
        return columns

    def poll_columns(self) -> dict[str, Column]:
        """The columns an optics poll walks: the autofind ones plus rx and tx."""
        return {**self.autofind_columns(), "rx": self.rx, "tx": self.tx}

    def rows(self, walks: Mapping[str, Iterable[tuple[str, object]]]) -> tuple[list[OnuRow], list[str]]:
        """Assemble decoded ONU rows from column walks ({column name: [(full OID, raw value)]}).

        A row exists where the serial column has one; other columns may miss it (no reading).
        Returns (rows sorted by port and ONU, problems): a row whose serial cannot be decoded is
        left out and reported, so one bad ONU does not hide the others."""
        columns = self.poll_columns()
        values: dict[str, dict[tuple[int, int], object]] = {}
        for name, varbinds in walks.items():
            column = columns[name]
            found = values.setdefault(name, {})
            for oid, raw in varbinds:
                key = column.key(oid)
                if key is not None:
                    found[key] = raw
        rows, problems = [], []
        for key, raw_serial in sorted(values.get("serial", {}).items()):
            port, onu = self.port_index(key[0]), key[1]
            if port is None:
                problems.append(f"PON port {key[0]} ONU {onu}: the port index is out of range for this profile")
                continue
            try:
                serial = serial_decode(raw_serial, self.serial_encoding)
            except ValueError as exc:
                problems.append(f"PON port {port} ONU {onu}: {exc}")
                continue
            rows.append(
                OnuRow(
                    pon_port=port,
                    onu_index=onu,
                    serial=serial,
                    state=self.decode_state(values.get("state", {}).get(key), values.get("refine", {}).get(key)),
                    rx_power_dbm=self.rx.decode(values["rx"].get(key)) if "rx" in values else None,
                    tx_power_dbm=self.tx.decode(values["tx"].get(key)) if "tx" in values else None,
                )
            )
        return rows, problems


# --- parsing and validation -------------------------------------------------------------------


def _need(data: Mapping, field: str, where: str):
    if not isinstance(data, Mapping) or field not in data:
        raise ProfileError(f"{where}: `{field}` is missing")
    return data[field]


def _oid(value, where: str) -> str:
    if not isinstance(value, str) or not _OID.fullmatch(value.lstrip(".")):
        raise ProfileError(f"{where}: {value!r} is not a numeric OID like 1.3.6.1.4.1.2011...")
    return value.lstrip(".")


def _index(value, where: str, *, needs: Iterable[str] = ("pon_port", "onu_index")) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(part not in INDEX_PARTS for part in value):
        raise ProfileError(f"{where}: an index layout is a list of {sorted(INDEX_PARTS)}")
    named = [part for part in value if part != "*"]
    if named != list(needs):
        raise ProfileError(f"{where}: the index must name {', '.join(needs)} once each, in that order")
    return tuple(value)


def _column(data, where: str, default_index: tuple[str, ...]) -> Column:
    oid = _oid(_need(data, "oid", where), f"{where}.oid")
    index = _index(data["index"], f"{where}.index") if "index" in data else default_index
    return Column(oid=oid, index=index)


def _decimal(value, where: str) -> Decimal:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ProfileError(f'{where}: write numbers as strings ("0.01") so they stay exact, not {value!r}')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ProfileError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ProfileError(f"{where}: {value!r} is not a finite number")
    return number


def _state_map(data, where: str) -> dict[int, str]:
    if not isinstance(data, Mapping) or not data:
        raise ProfileError(f"{where}: a map of raw values to states is required")
    result = {}
    for raw, state in data.items():
        if not re.fullmatch(r"-?[0-9]+", str(raw)):
            raise ProfileError(f"{where}: raw value {raw!r} is not an integer")
        if state not in OBSERVED_STATES:
            raise ProfileError(f"{where}: {state!r} is not one of {sorted(OBSERVED_STATES)}")
        result[int(raw)] = state
    return result


def _power(data, where: str, default_index: tuple[str, ...]) -> PowerColumn:
    column = _column(data, where, default_index)
    scale = _decimal(_need(data, "scale", where), f"{where}.scale")
    if scale == 0:
        raise ProfileError(f"{where}.scale: must not be 0")
    invalid = data.get("invalid", [])
    if not isinstance(invalid, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in invalid):
        raise ProfileError(f"{where}.invalid: a list of raw integers meaning 'no reading'")
    return PowerColumn(
        oid=column.oid,
        index=column.index,
        scale=scale,
        offset=_decimal(data.get("offset", "0"), f"{where}.offset"),
        invalid=frozenset(invalid),
    )


def profile_parse(data: Mapping, *, name: str) -> GponProfile:
    """Validate a profile's JSON data; `name` is the file's stem (= Device.vendor)."""
    where = f"GPON profile {name!r}"
    if not isinstance(data, Mapping):
        raise ProfileError(f"{where}: the file must hold a JSON object")
    if not _VENDOR.fullmatch(name):
        raise ProfileError(f"{where}: a profile name is lower-case letters, digits, '_' or '-'")
    vendor = _need(data, "vendor", where)
    if vendor != name:
        raise ProfileError(f"{where}: `vendor` is {vendor!r} but the file is named {name!r}.json")
    index = _index(_need(data, "index", where), f"{where}.index")

    serial_data = _need(data, "serial", where)
    serial = _column(serial_data, f"{where}.serial", index)
    encoding = _need(serial_data, "encoding", f"{where}.serial")
    if encoding not in SERIAL_ENCODINGS:
        raise ProfileError(f"{where}.serial.encoding: {encoding!r} is not one of {sorted(SERIAL_ENCODINGS)}")

    state_data = _need(data, "state", where)
    state = _column(state_data, f"{where}.state", index)
    state_map = _state_map(_need(state_data, "map", f"{where}.state"), f"{where}.state.map")
    default = state_data.get("default", "offline")
    if default not in OBSERVED_STATES:
        raise ProfileError(f"{where}.state.default: {default!r} is not one of {sorted(OBSERVED_STATES)}")
    refine, refine_when, refine_map = None, "", {}
    if "refine" in state_data:
        refine_data = state_data["refine"]
        refine = _column(refine_data, f"{where}.state.refine", index)
        refine_when = _need(refine_data, "when", f"{where}.state.refine")
        if refine_when not in OBSERVED_STATES:
            raise ProfileError(f"{where}.state.refine.when: {refine_when!r} is not an observed state")
        refine_map = _state_map(_need(refine_data, "map", f"{where}.state.refine"), f"{where}.state.refine.map")

    optics = _need(data, "optics", where)
    rx = _power(_need(optics, "rx", f"{where}.optics"), f"{where}.optics.rx", index)
    tx = _power(_need(optics, "tx", f"{where}.optics"), f"{where}.optics.tx", index)

    port_name = None
    if "pon_port_name" in data:
        port_data = data["pon_port_name"]
        port_name = Column(
            oid=_oid(_need(port_data, "oid", f"{where}.pon_port_name"), f"{where}.pon_port_name.oid"),
            index=_index(port_data.get("index", ["pon_port"]), f"{where}.pon_port_name.index", needs=("pon_port",)),
        )

    offset = data.get("pon_port_offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 2**32:
        raise ProfileError(f"{where}.pon_port_offset: an integer from 0 to 2^32 - 1")

    limits = _need(data, "thresholds", where)
    thresholds = Thresholds(
        **{
            field: _decimal(_need(limits, field, f"{where}.thresholds"), f"{where}.thresholds.{field}")
            for field in ("rx_low_dbm", "rx_high_dbm", "tx_low_dbm", "tx_high_dbm")
        }
    )
    if thresholds.rx_low_dbm >= thresholds.rx_high_dbm or thresholds.tx_low_dbm >= thresholds.tx_high_dbm:
        raise ProfileError(f"{where}.thresholds: each low limit must be below its high limit")

    oids = [c.oid for c in (serial, state, refine, rx, tx) if c is not None]
    if len(set(oids)) != len(oids):
        raise ProfileError(f"{where}: two columns share an OID")
    return GponProfile(
        vendor=name,
        title=str(data.get("title", name)),
        serial=serial,
        serial_encoding=encoding,
        state=state,
        state_map=state_map,
        state_default=default,
        refine=refine,
        refine_when=refine_when,
        refine_map=refine_map,
        rx=rx,
        tx=tx,
        pon_port_name=port_name,
        pon_port_offset=offset,
        thresholds=thresholds,
    )


def profile_read(path: Path) -> GponProfile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProfileError(f"GPON profile {path.name}: not valid JSON ({exc})") from None
    return profile_parse(data, name=path.stem)


def profile_names(directory: Path = PROFILE_DIR) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.json"))


def profile_load(vendor: str) -> GponProfile:
    """The profile for an OLT's `vendor` ("huawei", "ZTE " -> "zte"); ProfileError when there is none.
    Read once per process."""
    name = (vendor or "").strip().lower()
    if not _VENDOR.fullmatch(name) or not (PROFILE_DIR / f"{name}.json").is_file():
        known = ", ".join(profile_names()) or "none"
        raise ProfileError(f"no GPON profile for vendor {vendor!r} (profiles: {known})")
    return _profile_cached(name)


@functools.cache
def _profile_cached(name: str) -> GponProfile:
    return profile_read(PROFILE_DIR / f"{name}.json")
