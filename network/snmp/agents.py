"""Simulated SNMP agents on loopback, for tests and the demo: real snmpsim responders (snmpsim
1.2.2, pysnmp 7) serving `.snmprec` files this module writes.

    with SimulatedAgent("edge-1", if_mib_records(interfaces, sys_uptime_cs=100), host="127.0.2.1") as agent:
        ...  # poll agent.host:agent.port with community agent.community
        agent.update(if_mib_records(moved_interfaces, sys_uptime_cs=30_100))  # seen by the next query
        agent.pause()  # a dead device: the port stays bound, nothing answers
        agent.resume()

How it works:
- One responder process per agent, bound to `host:port` (port 0 = a free port). The community is
  the data file's name (`<community>.snmprec`); another community gets no answer at all, exactly
  like a real device configured with another community. With `v3_user`, the same records answer
  SNMPv3 (USM user, SHA/MD5 authentication, AES/DES privacy) through the `self` context.
- Every record goes through a small variation module (`isp_live`) that reads a "live values"
  file on each query when it changed (a stat per variable binding): `set()`/`update()` of OIDs
  the agent already serves take effect for the next query without a restart. Adding or removing
  OIDs rewrites the data file and restarts the responder on the same port (~0.6 s).
- `pause()`/`resume()` are SIGSTOP/SIGCONT: the port stays bound and requests time out, as with a
  device that died or a path that drops packets.
- As root (CI), the responder binds and loads as root, then snmpsim itself drops to
  `nobody:nogroup` (`--process-user/--process-group`) before answering any request. The working
  directory is handed to that user; the few modules snmpsim imports lazily after the drop are
  imported up front, because the interpreter may live where `nobody` cannot read (e.g. under
  the home directory of root).
- A watchdog thread in the responder exits when the process that started it is gone, so a killed
  test run leaves no responders behind; `atexit` stops the agents of a normal exit.

Records are `{oid: (snmp_type, value)}` with numeric OIDs (a leading dot is accepted). Types:
Integer/Integer32, OctetString/String (str or bytes), Hex (bytes or hex text), ObjectIdentifier/OID,
IpAddress, Counter32, Gauge32/Unsigned32, TimeTicks, Counter64, Opaque, Null - or a snmprec tag
("2", "4", "4x", "6", "64", "65", "66", "67", "68", "70").

`python -m network.snmp.agents --demo` starts a small simulated network with moving counters and
prints where each agent answers (`--json` for machines)."""

from __future__ import annotations

import argparse
import atexit
import binascii
import contextlib
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping

__all__ = [
    "SNMP_TYPES",
    "SimulatedAgent",
    "if_mib_records",
    "normalize_oid",
]

# --- records ------------------------------------------------------------------------------------

# snmprec tags (BER tag sums) of the SNMP types, by the names accepted in records.
SNMP_TYPES: dict[str, str] = {
    "integer": "2",
    "integer32": "2",
    "int": "2",
    "octetstring": "4",
    "string": "4",
    "str": "4",
    "hex": "4x",
    "hexstring": "4x",
    "null": "5",
    "objectidentifier": "6",
    "oid": "6",
    "ipaddress": "64",
    "counter32": "65",
    "counter": "65",
    "gauge32": "66",
    "gauge": "66",
    "unsigned32": "66",
    "timeticks": "67",
    "opaque": "68",
    "counter64": "70",
}
_NUMERIC_TAGS = {"2", "4", "4x", "5", "6", "64", "65", "66", "67", "68", "70"}
_RANGES = {
    "2": (-(2**31), 2**31 - 1),
    "65": (0, 2**32 - 1),
    "66": (0, 2**32 - 1),
    "67": (0, 2**32 - 1),
    "70": (0, 2**64 - 1),
}
_OID_RE = re.compile(r"^\d+(\.\d+)+$")
_COMMUNITY_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_V3_PROTOCOLS = {"auth": {"MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"}, "priv": {"DES", "3DES", "AES"}}

Records = Mapping[str, tuple[str, object]]


def normalize_oid(oid: str) -> str:
    """'.1.3.6.1.2.1.1.3.0' -> '1.3.6.1.2.1.1.3.0' (ValueError when not a numeric OID)."""
    text = str(oid).strip().lstrip(".")
    if not _OID_RE.match(text):
        raise ValueError(f"{oid!r} is not a numeric OID")
    return text


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


def _tag_of(snmp_type: str) -> str:
    text = str(snmp_type).strip()
    if text in _NUMERIC_TAGS:
        return text
    tag = SNMP_TYPES.get(re.sub(r"[^a-z0-9]", "", text.lower()))
    if tag is None:
        raise ValueError(f"unknown SNMP type {snmp_type!r} (one of {', '.join(sorted(SNMP_TYPES))})")
    return tag


def _encode(oid: str, snmp_type: str, value: object) -> tuple[str, str]:
    """(snmprec tag, snmprec value) of one record, validated."""
    tag = _tag_of(snmp_type)
    if tag in _RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{oid}: {snmp_type} needs an int, not {value!r}")
        low, high = _RANGES[tag]
        if not low <= value <= high:
            raise ValueError(f"{oid}: {value} is out of range for {snmp_type} ({low}..{high})")
        return tag, str(value)
    if tag == "4":
        if isinstance(value, bytes | bytearray):
            return "4x", binascii.hexlify(bytes(value)).decode()
        text = str(value)
        # The snmprec parser strips each line and splits on newlines: anything else goes as hex.
        if text.isascii() and text.isprintable() and text == text.strip():
            return tag, text
        return "4x", binascii.hexlify(text.encode()).decode()
    if tag == "4x":
        if isinstance(value, bytes | bytearray):
            return tag, binascii.hexlify(bytes(value)).decode()
        text = str(value).replace(" ", "").replace(":", "")
        binascii.unhexlify(text)  # ValueError when not hex
        return tag, text.lower()
    if tag == "6":
        return tag, normalize_oid(str(value))
    if tag == "64":
        return tag, str(ipaddress.IPv4Address(str(value)))
    if tag == "5":
        return tag, ""
    if tag == "68":
        data = bytes(value) if isinstance(value, bytes | bytearray) else str(value).encode()
        return "68x", binascii.hexlify(data).decode()
    raise ValueError(f"{oid}: unsupported type {snmp_type!r}")  # pragma: no cover


def _encode_all(records: Records) -> dict[str, tuple[str, str]]:
    encoded = {}
    for oid, spec in records.items():
        try:
            snmp_type, value = spec
        except (TypeError, ValueError):
            raise ValueError(f"{oid}: a record is (snmp_type, value), not {spec!r}") from None
        key = normalize_oid(oid)
        encoded[key] = _encode(key, snmp_type, value)
    return encoded


def _snmprec(encoded: Mapping[str, tuple[str, str]], *, module: str | None) -> str:
    lines = []
    for oid in sorted(encoded, key=_oid_key):
        tag, value = encoded[oid]
        lines.append(f"{oid}|{tag}:{module}|{value}" if module else f"{oid}|{tag}|{value}")
    return "\n".join(lines) + "\n"


# --- IF-MIB record sets -------------------------------------------------------------------------

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF_NUMBER = "1.3.6.1.2.1.2.1.0"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"
NET_SNMP_LINUX = "1.3.6.1.4.1.8072.3.2.10"


def if_mib_records(
    interfaces: list[dict],
    sys_uptime_cs: int,
    *,
    sys_descr: str = "Simulated router (snmpsim)",
    sys_name: str = "",
    sys_object_id: str = NET_SNMP_LINUX,
) -> dict[str, tuple[str, object]]:
    """The records of a router or switch: system group, ifTable and ifXTable.

    Each interface is a dict: `if_index` (required), `name`, `descr`, `alias`, `speed_bps` (or
    `high_speed_mbps`), `admin_status` (1 up, 2 down; default 1), `oper_status` (default 1),
    `in_octets`, `out_octets` (64-bit, ifHCIn/OutOctets; the 32-bit ifIn/OutOctets carry the low
    32 bits), `in_errors`, `out_errors` (Counter32), `if_type` (default 6, ethernetCsmacd)."""
    records: dict[str, tuple[str, object]] = {
        SYS_DESCR: ("OctetString", sys_descr),
        SYS_OBJECT_ID: ("ObjectIdentifier", sys_object_id),
        SYS_UPTIME: ("TimeTicks", int(sys_uptime_cs) % 2**32),
        SYS_NAME: ("OctetString", sys_name),
        IF_NUMBER: ("Integer", len(interfaces)),
    }
    for spec in interfaces:
        index = int(spec["if_index"])
        name = spec.get("name") or f"eth{index}"
        if spec.get("speed_bps") is not None:
            speed = int(spec["speed_bps"])
        else:
            speed = int(spec.get("high_speed_mbps", 1000)) * 1_000_000
        in_octets = int(spec.get("in_octets", 0)) % 2**64
        out_octets = int(spec.get("out_octets", 0)) % 2**64
        columns = {
            f"{IF_ENTRY}.1.{index}": ("Integer", index),
            f"{IF_ENTRY}.2.{index}": ("OctetString", spec.get("descr") or name),
            f"{IF_ENTRY}.3.{index}": ("Integer", int(spec.get("if_type", 6))),
            f"{IF_ENTRY}.5.{index}": ("Gauge32", min(speed, 2**32 - 1)),
            f"{IF_ENTRY}.7.{index}": ("Integer", int(spec.get("admin_status", 1))),
            f"{IF_ENTRY}.8.{index}": ("Integer", int(spec.get("oper_status", 1))),
            f"{IF_ENTRY}.10.{index}": ("Counter32", in_octets % 2**32),
            f"{IF_ENTRY}.14.{index}": ("Counter32", int(spec.get("in_errors", 0)) % 2**32),
            f"{IF_ENTRY}.16.{index}": ("Counter32", out_octets % 2**32),
            f"{IF_ENTRY}.20.{index}": ("Counter32", int(spec.get("out_errors", 0)) % 2**32),
            f"{IFX_ENTRY}.1.{index}": ("OctetString", name),
            f"{IFX_ENTRY}.6.{index}": ("Counter64", in_octets),
            f"{IFX_ENTRY}.10.{index}": ("Counter64", out_octets),
            f"{IFX_ENTRY}.15.{index}": ("Gauge32", min(speed // 1_000_000, 2**32 - 1)),
            f"{IFX_ENTRY}.18.{index}": ("OctetString", spec.get("alias", "")),
        }
        records.update(columns)
    return records


# --- the responder process ----------------------------------------------------------------------

_LIVE_MODULE = "isp_live"
# The variation module every record goes through (snmpsim loads it with exec() from a file).
_LIVE_MODULE_SOURCE = '''"""isp_live: record values overridden from a file the test rewrites (network.snmp.agents)."""
import os


def init(**context):
    moduleContext["path"] = os.environ.get("ISP_SNMPSIM_LIVE", "")
    moduleContext["stamp"] = None
    moduleContext["values"] = {}


def _refresh():
    try:
        st = os.stat(moduleContext["path"])
    except OSError:
        moduleContext["stamp"], moduleContext["values"] = None, {}
        return
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    if stamp == moduleContext["stamp"]:
        return
    values = {}
    with open(moduleContext["path"], encoding="iso-8859-1") as fh:
        for line in fh:
            line = line.rstrip("\\n")
            if line:
                oid, tag, value = line.split("|", 2)
                values[oid] = (tag, value)
    moduleContext["stamp"], moduleContext["values"] = stamp, values


def variate(oid, tag, value, **context):
    if context["setFlag"] or (not context["nextFlag"] and not context["exactMatch"]):
        return context["origOid"], tag, context["errorStatus"]
    _refresh()
    live = moduleContext["values"].get(str(oid))
    if live is not None:
        tag, value = live
    return oid, tag, value


def shutdown(**context):
    pass
'''

# Run by the responder's interpreter: a watchdog on the parent, the modules snmpsim imports lazily
# (after it dropped privileges, when the interpreter's directory may be unreadable), then snmpsim.
_LAUNCHER = """
import os, sys, threading, time
parent = int(os.environ["ISP_SNMPSIM_PARENT"])
def _watch():
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)
threading.Thread(target=_watch, daemon=True).start()
import dbm, dbm.dumb, encodings.ascii, encodings.latin_1, encodings.utf_8, encodings.idna, shelve
for name in ("dbm.gnu", "dbm.ndbm"):
    try:
        __import__(name)
    except ImportError:
        pass
import runpy
sys.argv[0] = "snmpsim-command-responder"
runpy.run_module("snmpsim.commands.responder", run_name="__main__")
"""

_RUNNING: set[SimulatedAgent] = set()
_RUNNING_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _RUNNING_LOCK:
        agents = list(_RUNNING)
    for agent in agents:
        with contextlib.suppress(Exception):
            agent.stop()


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _unprivileged_ids() -> tuple[str, str, int, int] | None:
    """(user, group, uid, gid) to drop to when running as root; None otherwise."""
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    user = os.environ.get("ISP_SNMPSIM_USER", "nobody")
    entry = pwd.getpwnam(user)
    group = grp.getgrgid(entry.pw_gid).gr_name
    return user, group, entry.pw_uid, entry.pw_gid


class AgentError(RuntimeError):
    """The simulated agent could not start (the message includes the responder's log)."""


class SimulatedAgent:
    """A real SNMP agent (snmpsim) on loopback serving `records`; see the module docstring."""

    def __init__(
        self,
        name: str,
        records: Records,
        *,
        community: str = "public",
        host: str = "127.0.0.1",
        port: int = 0,
        v3_user: str = "",
        v3_auth_protocol: str = "SHA",
        v3_auth_key: str = "",
        v3_priv_protocol: str = "AES",
        v3_priv_key: str = "",
        start_timeout: float = 20.0,
    ):
        if not _COMMUNITY_RE.match(community or ""):
            raise ValueError("community: 1-32 characters among letters, digits, '.', '_', '-'")
        if v3_user:
            if v3_auth_protocol.upper() not in _V3_PROTOCOLS["auth"] or len(v3_auth_key) < 8:
                raise ValueError("SNMPv3 needs an auth protocol (MD5/SHA...) and a key of 8+ characters")
            if v3_priv_key and (v3_priv_protocol.upper() not in _V3_PROTOCOLS["priv"] or len(v3_priv_key) < 8):
                raise ValueError("SNMPv3 privacy needs a protocol (DES/AES) and a key of 8+ characters")
        self.name = name
        self.community = community
        self.host = str(ipaddress.IPv4Address(host))
        self.port = int(port)
        self.v3_user = v3_user
        self.v3_auth_protocol = v3_auth_protocol.upper()
        self.v3_auth_key = v3_auth_key
        self.v3_priv_protocol = v3_priv_protocol.upper()
        self.v3_priv_key = v3_priv_key
        self.start_timeout = start_timeout
        self._records = _encode_all(records)
        self._served: set[str] = set()  # the OIDs of the data file the responder runs with
        self._process: subprocess.Popen | None = None
        self._workdir: str | None = None
        self._log = None
        self._paused = False
        self._lock = threading.RLock()

    # --- lifecycle -------------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SimulatedAgent({self.name!r} {self.host}:{self.port} {state})"

    def __enter__(self) -> SimulatedAgent:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def records(self) -> dict[str, tuple[str, str]]:
        """The records served, as snmprec (tag, text) pairs."""
        return dict(self._records)

    def start(self) -> SimulatedAgent:
        with self._lock:
            if self.running:
                return self
            self._workdir = tempfile.mkdtemp(prefix=f"snmpsim-{re.sub(r'[^A-Za-z0-9_-]', '_', self.name)}-")
            for sub in ("data", "cache", "variation"):
                os.mkdir(os.path.join(self._workdir, sub))
            with open(os.path.join(self._workdir, "variation", f"{_LIVE_MODULE}.py"), "w") as fh:
                fh.write(_LIVE_MODULE_SOURCE)
            if not self.port:
                self.port = _free_udp_port(self.host)
            self._spawn()
            with _RUNNING_LOCK:
                _RUNNING.add(self)
            return self

    def stop(self) -> None:
        with self._lock:
            self._kill()
            if self._workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            with _RUNNING_LOCK:
                _RUNNING.discard(self)

    def pause(self) -> None:
        """Stop answering (SIGSTOP): the port stays bound, requests time out."""
        with self._lock:
            if self.running and not self._paused:
                os.kill(self._process.pid, signal.SIGSTOP)
                self._paused = True

    def resume(self) -> None:
        with self._lock:
            if self._process is not None and self._paused:
                os.kill(self._process.pid, signal.SIGCONT)
                self._paused = False

    # --- records ---------------------------------------------------------------------------

    def set(self, oid: str, snmp_type: str, value: object) -> None:
        self.update({oid: (snmp_type, value)})

    def update(self, records: Records) -> None:
        """Add or change records; the next query sees them (a restart when OIDs are added)."""
        encoded = _encode_all(records)
        with self._lock:
            self._records.update(encoded)
            self._apply()

    def remove(self, oids: Iterable[str]) -> None:
        """Drop records (restarts the responder on the same port)."""
        with self._lock:
            for oid in oids:
                self._records.pop(normalize_oid(oid), None)
            self._apply()

    def replace(self, records: Records) -> None:
        """Serve exactly `records` from now on."""
        encoded = _encode_all(records)
        with self._lock:
            self._records = encoded
            self._apply()

    def target(self):
        """A `network.snmp.credentials.SnmpTarget` for this agent (v3 when it has a v3 user)."""
        from network.snmp.credentials import SnmpTarget

        if self.v3_user:
            return SnmpTarget(
                host=self.host,
                port=self.port,
                version="3",
                v3_user=self.v3_user,
                v3_auth_protocol=self.v3_auth_protocol,
                v3_auth_key=self.v3_auth_key,
                v3_priv_protocol=self.v3_priv_protocol if self.v3_priv_key else "",
                v3_priv_key=self.v3_priv_key,
            )
        return SnmpTarget(host=self.host, port=self.port, version="2c", community=self.community)

    # --- internals -------------------------------------------------------------------------

    def _apply(self) -> None:
        if not self.running:
            return
        if set(self._records) == self._served:
            self._write_live()
        else:
            paused = self._paused
            self._kill()
            self._spawn()
            if paused:
                self.pause()

    def _path(self, *parts: str) -> str:
        return os.path.join(self._workdir, *parts)

    def _write_live(self) -> None:
        # Atomic replace: the responder sees the old file or the new one, never half of it.
        temporary = self._path("live.tmp")
        with open(temporary, "w", encoding="iso-8859-1") as fh:
            fh.write(_snmprec(self._records, module=None))
        ids = _unprivileged_ids()
        if ids:
            os.chown(temporary, ids[2], ids[3])
        os.replace(temporary, self._path("live.snmprec"))

    def _write_data(self) -> None:
        data = _snmprec(self._records, module=_LIVE_MODULE)
        names = [self.community] + (["self"] if self.v3_user else [])  # v3 with no context: "self"
        for entry in os.listdir(self._path("data")):
            os.unlink(self._path("data", entry))
        for name in names:
            with open(self._path("data", f"{name}.snmprec"), "w", encoding="iso-8859-1") as fh:
                fh.write(data)
        self._served = set(self._records)
        self._write_live()

    def _command(self, ids) -> list[str]:
        command = [
            sys.executable,
            "-c",
            _LAUNCHER,
            f"--cache-dir={self._path('cache')}",
            f"--variation-modules-dir={self._path('variation')}",
            f"--pid-file={self._path('responder.pid')}",
            "--force-index-rebuild",
            "--log-level=error",
        ]
        if ids:
            command += [f"--process-user={ids[0]}", f"--process-group={ids[1]}"]
        command.append(f"--data-dir={self._path('data')}")
        if self.v3_user:
            command += [f"--v3-user={self.v3_user}", f"--v3-auth-key={self.v3_auth_key}"]
            command.append(f"--v3-auth-proto={self.v3_auth_protocol}")
            if self.v3_priv_key:
                command += [f"--v3-priv-key={self.v3_priv_key}", f"--v3-priv-proto={self.v3_priv_protocol}"]
        command.append(f"--agent-udpv4-endpoint={self.host}:{self.port}")
        return command

    def _spawn(self) -> None:
        self._write_data()
        ids = _unprivileged_ids()
        if ids:
            for root, dirs, files in os.walk(self._workdir):
                for entry in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
                    os.chown(entry, ids[2], ids[3])
            os.chmod(self._workdir, 0o700)
        env = {
            **os.environ,
            "MIBS": "",
            "ISP_SNMPSIM_LIVE": self._path("live.snmprec"),
            "ISP_SNMPSIM_PARENT": str(os.getpid()),
        }
        self._log = open(self._path("responder.log"), "ab")  # noqa: SIM115 - kept open while it runs
        self._process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            self._command(ids), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self._paused = False
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise

    def _wait_ready(self) -> None:
        os.environ.setdefault("MIBS", "")
        from easysnmp import EasySNMPError, Session

        session = Session(
            hostname=self.host,
            remote_port=self.port,
            version=2,
            community=self.community,
            timeout=0.2,
            retries=0,
            use_numeric=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AgentError(f"snmpsim for {self.name} exited ({self._process.returncode}): {self._log_tail()}")
            try:
                session.get(SYS_UPTIME)  # any answer (even noSuchObject) means it serves
                return
            except EasySNMPError:
                time.sleep(0.05)
        raise AgentError(f"snmpsim for {self.name} did not answer on {self.endpoint}: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            with open(self._path("responder.log"), "rb") as fh:
                return fh.read()[-2000:].decode(errors="replace").strip()
        except OSError:
            return ""

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if self._paused:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
            self._paused = False
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


# --- demo network -------------------------------------------------------------------------------


def demo_interfaces(count: int, *, seed: int, elapsed_s: float) -> list[dict]:
    """Interfaces whose counters move with time (a steady, per-interface rate), for the demo."""
    interfaces = []
    for index in range(1, count + 1):
        speed = 10_000_000_000 if index == 1 else 1_000_000_000
        in_rate = speed / 8 * (0.05 + 0.5 * ((seed * 7 + index * 13) % 17) / 17)  # bytes/s
        out_rate = in_rate * (0.2 + ((seed + index) % 5) / 10)
        interfaces.append(
            {
                "if_index": index,
                "name": "uplink0" if index == 1 else f"ge-0/0/{index - 1}",
                "alias": "to core" if index == 1 else f"customer port {index - 1}",
                "speed_bps": speed,
                "oper_status": 2 if (seed + index) % 11 == 0 else 1,
                "in_octets": int(10**12 * seed + in_rate * elapsed_s),
                "out_octets": int(10**12 * seed + out_rate * elapsed_s),
                "in_errors": int(elapsed_s / 60) if index == 2 else 0,
            }
        )
    return interfaces


def demo_records(seed: int, *, elapsed_s: float, interfaces: int = 8) -> dict[str, tuple[str, object]]:
    return if_mib_records(
        demo_interfaces(interfaces, seed=seed, elapsed_s=elapsed_s),
        sys_uptime_cs=int((86_400 * seed + elapsed_s) * 100),
        sys_descr=f"Simulated edge router {seed} (snmpsim)",
        sys_name=f"demo-edge-{seed}",
    )


# A Huawei-like OLT for the demo (network/gpon/profiles/huawei.json): two PON ports, eight ONTs.
_HW = "1.3.6.1.4.1.2011.6.128.1.1.2"
DEMO_OLT_PORTS = (4194312192, 4194312448)  # GPON 0/1/0, 0/1/1 (ifIndex)


def demo_olt_serial(port: int, ont: int) -> bytes:
    return b"HWTC" + bytes([0xD0, port, 0x00, ont])


def demo_olt_records(*, elapsed_s: float) -> dict[str, tuple[str, object]]:
    """ONT 3 of port 0 receives too little light (-28.5 dBm), ONT 1 of port 1 lost power (dying
    gasp); the others are online around -21 dBm, drifting a little with time."""
    records: dict[str, tuple[str, object]] = {
        "1.3.6.1.2.1.1.1.0": ("OctetString", "Simulated GPON OLT (Huawei-like profile)"),
        "1.3.6.1.2.1.1.3.0": ("TimeTicks", int((3 * 86_400 + elapsed_s) * 100)),
    }
    for p, port in enumerate(DEMO_OLT_PORTS):
        records[f"1.3.6.1.2.1.31.1.1.1.1.{port}"] = ("OctetString", f"GPON 0/1/{p}")
        for ont in range(4):
            index = f"{port}.{ont}"
            gasp = (p, ont) == (1, 1)
            rx = -2850 if (p, ont) == (0, 3) else -2100 - 40 * ont - 30 * p + int(20 * math.sin(elapsed_s / 600 + ont))
            records[f"{_HW}.43.1.3.{index}"] = ("Hex", demo_olt_serial(p, ont))
            records[f"{_HW}.46.1.15.{index}"] = ("Integer", 2 if gasp else 1)
            records[f"{_HW}.46.1.24.{index}"] = ("Integer", 13 if gasp else -1)
            records[f"{_HW}.51.1.4.{index}"] = ("Integer", 2147483647 if gasp else rx)
            records[f"{_HW}.51.1.3.{index}"] = ("Integer", 2147483647 if gasp else 230)
    return records


def _demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m network.snmp.agents", description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="start a small simulated network and wait")
    parser.add_argument("--routers", type=int, default=3)
    parser.add_argument("--olts", type=int, default=1, help="Huawei-like OLTs on <prefix>10<i>")
    parser.add_argument("--interfaces", type=int, default=8)
    parser.add_argument("--host-prefix", default="127.0.1.", help="agent i listens on <prefix><i>")
    parser.add_argument("--port", type=int, default=0, help="UDP port of every agent (0: a free port each)")
    parser.add_argument("--community", default="public")
    parser.add_argument("--tick", type=float, default=10.0, help="seconds between counter updates")
    parser.add_argument("--json", action="store_true", help="print one JSON line per agent")
    args = parser.parse_args(argv)
    if not args.demo:
        parser.print_help()
        return 2
    started = time.monotonic()
    agents = []
    olts: list[SimulatedAgent] = []
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        for seed in range(1, args.routers + 1):
            agent = SimulatedAgent(
                f"demo-edge-{seed}",
                demo_records(seed, elapsed_s=0, interfaces=args.interfaces),
                community=args.community,
                host=f"{args.host_prefix}{seed}",
                port=args.port,
            ).start()
            agents.append(agent)
            info = {"name": agent.name, "host": agent.host, "port": agent.port, "community": agent.community}
            print(
                json.dumps(info) if args.json else f"{agent.name:<14} {agent.endpoint:<22} community={agent.community}"
            )
        for number in range(1, args.olts + 1):
            olt = SimulatedAgent(
                f"demo-olt-{number}",
                demo_olt_records(elapsed_s=0),
                community=args.community,
                host=f"{args.host_prefix}{100 + number}",
                port=args.port,
            ).start()
            olts.append(olt)
            info = {"name": olt.name, "host": olt.host, "port": olt.port, "community": olt.community}
            print(json.dumps(info) if args.json else f"{olt.name:<14} {olt.endpoint:<22} community={olt.community}")
        sys.stdout.flush()
        while not stop.wait(args.tick):
            elapsed = time.monotonic() - started
            for seed, agent in enumerate(agents, 1):
                agent.update(demo_records(seed, elapsed_s=elapsed, interfaces=args.interfaces))
            for olt in olts:
                olt.update(demo_olt_records(elapsed_s=elapsed))
    finally:
        for agent in agents + olts:
            agent.stop()
    return 0


def _bench(argv: list[str]) -> int:
    """Devices polled per second by the real poller (`network.snmp.poller.poll_job`, thread pool)
    against N simulated agents; several "devices" share an agent. No database is touched."""
    parser = argparse.ArgumentParser(prog="python -m network.snmp.agents --bench")
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--agents", type=int, default=4, help="responder processes (about 800 requests/s each)")
    parser.add_argument("--devices", type=int, default=400, help="devices polled per round (spread over the agents)")
    parser.add_argument("--interfaces", type=int, default=8)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--dead", type=int, default=0, help="agents paused (their devices time out)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "isp.settings.base")
    import resource

    import django

    django.setup()
    from network.snmp.poller import InterfaceState, PollJob, _run_parallel, poll_job

    agents = []
    try:
        for seed in range(1, args.agents + 1):
            records = demo_records(seed, elapsed_s=0, interfaces=args.interfaces)
            agents.append(SimulatedAgent(f"bench-{seed}", records, host=f"127.0.3.{seed}").start())
        jobs = []
        for device in range(args.devices):
            agent = agents[device % len(agents)]
            states = tuple(
                InterfaceState(device * 1000 + index, index, f"if{index}", None, None, None, None)
                for index in range(1, args.interfaces + 1)
            )
            jobs.append(PollJob(device, f"bench-device-{device}", agent.target(), None, None, states))

        def work(job):
            return poll_job(job, timeout=args.timeout, retries=0)

        _run_parallel(jobs[: len(agents)], work, workers=args.workers, on_result=None)  # warm-up
        for agent in agents[: args.dead]:
            agent.pause()
        for round_number in range(1, args.rounds + 1):
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            polls = _run_parallel(jobs, work, workers=args.workers, on_result=None)
            seconds = time.perf_counter() - started
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu_s = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
            requests = sum(getattr(p, "requests", 0) for p in polls)
            failed = sum(1 for p in polls if not p.reachable)
            print(
                json.dumps(
                    {
                        "round": round_number,
                        "agents": len(agents),
                        "devices": len(jobs),
                        "interfaces_per_device": args.interfaces,
                        "workers": args.workers,
                        "seconds": round(seconds, 3),
                        "devices_per_s": round(len(jobs) / seconds, 1),
                        "snmp_requests_per_s": round(requests / seconds, 1),
                        "varbinds_per_s": round(len(jobs) * (2 + 9 * args.interfaces) / seconds, 1),
                        "poller_cpu_ms_per_device": round(1000 * cpu_s / len(jobs), 3),
                        "unreachable": failed,
                    }
                )
            )
    finally:
        for agent in agents:
            agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_bench(sys.argv[1:]) if "--bench" in sys.argv[1:] else _demo(sys.argv[1:]))
