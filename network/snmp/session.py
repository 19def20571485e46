"""SNMP sessions (easysnmp over Net-SNMP) from an `SnmpTarget`, numeric OIDs only, plain Python
values out: ints for numbers, str for strings/OIDs/addresses, None for noSuch*/endOfMibView.

    with open_session(target_for(device), timeout=2.0, retries=1) as snmp:
        uptime = snmp.get_one("1.3.6.1.2.1.1.3.0")
        rows = snmp.table({"oper": "1.3.6.1.2.1.2.2.1.8", "in": "1.3.6.1.2.1.31.1.1.1.6"})

Errors: `SnmpTimeout` (no answer: device down, filtered, or - with v2c - a wrong community, which
agents do not answer at all), `SnmpAuthError` (v3 user/keys refused), `SnmpError` otherwise.

Sessions are closed here, not by easysnmp's destructor. easysnmp 0.2.6 frees a session by walking
Net-SNMP's USM user list with `strcmp(user, session->securityName)`: for a v2c session that name
is NULL, so freeing any v2c session while a v3 user is cached crashes the process (SIGSEGV), and
for v3 it compares binary engine IDs as C strings (may drop another device's cached user). So
every session is closed with `snmp_sess_close` directly, and the USM user cache (which would
otherwise keep localized v3 keys: a wrong or rotated key would go on "working") is emptied
whenever the last open v3 session of the process closes - at the latest when a poll run ends."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

os.environ.setdefault("MIBS", "")  # no MIB loading (Debian ships no IETF MIBs): numeric OIDs only

from easysnmp import EasySNMPError, EasySNMPTimeoutError, Session  # noqa: E402
from easysnmp import interface as _interface  # noqa: E402

from .credentials import SnmpTarget  # noqa: E402

logger = logging.getLogger(__name__)

__all__ = [
    "SnmpAuthError",
    "SnmpError",
    "SnmpSession",
    "SnmpTimeout",
    "Varbind",
    "normalize_oid",
    "open_session",
]

NUMERIC_TYPES = frozenset({"INTEGER", "INTEGER32", "UNSIGNED32", "COUNTER", "COUNTER64", "GAUGE", "TICKS", "UINTEGER"})
MISSING_TYPES = frozenset({"NOSUCHOBJECT", "NOSUCHINSTANCE", "ENDOFMIBVIEW", "NULL"})
V3_AUTH = {"MD5": "MD5", "SHA": "SHA", "SHA1": "SHA", "SHA224": "SHA224", "SHA256": "SHA256", "SHA384": "SHA384"}
V3_AUTH["SHA512"] = "SHA512"
V3_PRIV = {"DES": "DES", "AES": "AES", "AES128": "AES", "AES192": "AES192", "AES256": "AES256"}
MAX_VARBINDS = 40  # per request/response: ~30 bytes per counter varbind, under a 1472-byte datagram


class SnmpError(Exception):
    """An SNMP request failed; `kind` is "timeout", "auth" or "error"."""

    kind = "error"


class SnmpTimeout(SnmpError):
    kind = "timeout"


class SnmpAuthError(SnmpError):
    kind = "auth"


@dataclass(frozen=True)
class Varbind:
    oid: str  # numeric, no leading dot
    type: str  # easysnmp's type name (COUNTER64, OCTETSTR, ...)
    value: int | str | None


def normalize_oid(oid: str) -> str:
    return str(oid).strip().lstrip(".")


def _convert(snmp_type: str, value: str) -> int | str | None:
    if snmp_type in MISSING_TYPES:
        return None
    if snmp_type in NUMERIC_TYPES:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return value


def _varbind(variable) -> Varbind:
    oid = normalize_oid(variable.oid)
    if variable.oid_index not in (None, ""):
        oid = f"{oid}.{variable.oid_index}"
    return Varbind(oid=oid, type=variable.snmp_type, value=_convert(variable.snmp_type, variable.value))


def as_bytes(value: str | None) -> bytes:
    """An OCTET STRING value as the agent sent it (easysnmp hands bytes over as latin-1 text)."""
    return b"" if value is None else value.encode("latin-1", "replace")


# --- closing sessions safely (see the module docstring) -------------------------------------------


class _Closer:
    """Closes easysnmp sessions without easysnmp's USM clean-up; empties the USM user cache when
    no v3 session is open. Falls back to easysnmp's own destructor if the C symbols are missing."""

    def __init__(self):
        self.lock = threading.Lock()
        self.v3_open = 0
        self.ready = False
        try:
            api = ctypes.pythonapi
            self._get_pointer = api.PyCapsule_GetPointer
            self._get_pointer.restype = ctypes.c_void_p
            self._get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
            self._set_destructor = api.PyCapsule_SetDestructor
            self._set_destructor.restype = ctypes.c_int
            self._set_destructor.argtypes = [ctypes.py_object, ctypes.c_void_p]
            library = ctypes.CDLL(_interface.__file__)  # dlsym also searches its libnetsnmp
            self._sess_close = library.snmp_sess_close
            self._sess_close.argtypes = [ctypes.c_void_p]
            self._user_list = library.usm_get_userList
            self._user_list.restype = ctypes.c_void_p
            self._remove_user = library.usm_remove_user
            self._remove_user.restype = ctypes.c_void_p
            self._remove_user.argtypes = [ctypes.c_void_p]
            self._free_user = library.usm_free_user
            self._free_user.restype = ctypes.c_void_p
            self._free_user.argtypes = [ctypes.c_void_p]
            self._free = ctypes.CDLL(None).free
            self._free.argtypes = [ctypes.c_void_p]
            self.ready = True
        except (AttributeError, OSError):  # pragma: no cover - another platform/library build
            logger.warning("easysnmp sessions: falling back to easysnmp's destructor (mixing v2c and v3 may crash)")

    def opened(self, version: str) -> None:
        if version == "3":
            with self.lock:
                self.v3_open += 1

    def abandoned(self, version: str) -> None:
        """A session that never opened."""
        if version == "3":
            with self.lock:
                self.v3_open -= 1
                if self.v3_open == 0 and self.ready:
                    self._clear_users()

    def close(self, session: Session, version: str) -> None:
        capsule = getattr(session, "sess_ptr", None)
        session.sess_ptr = None
        if not self.ready:
            del capsule  # easysnmp's destructor
            if version == "3":
                with self.lock:
                    self.v3_open -= 1
            return
        if capsule is not None:
            context = self._get_pointer(capsule, None)
            if context:
                self._set_destructor(capsule, None)
                handle = ctypes.c_void_p.from_address(context).value  # session_capsule_ctx.handle
                if handle:
                    self._sess_close(handle)
                self._free(context)
        if version == "3":
            with self.lock:
                self.v3_open -= 1
                if self.v3_open == 0:
                    self._clear_users()

    def _clear_users(self) -> None:
        # Always unlink the head: its `prev` is NULL, so usm_free_user's own unlinking is harmless.
        for _ in range(1_000_000):
            user = self._user_list()
            if not user:
                return
            self._remove_user(user)
            self._free_user(user)


_closer = _Closer()


# --- sessions ---------------------------------------------------------------------------------------


def _session_kwargs(target: SnmpTarget, *, timeout: float, retries: int) -> dict:
    common = {
        "hostname": target.host,
        "remote_port": int(target.port),
        "timeout": timeout,
        "retries": retries,
        "use_numeric": True,
        "use_sprint_value": False,
        "use_enums": False,
    }
    if target.version in ("2c", "2", "1"):
        if not target.community:
            raise SnmpError("no SNMP community configured")
        return {**common, "version": 1 if target.version == "1" else 2, "community": target.community}
    if target.version != "3":
        raise SnmpError(f"unsupported SNMP version {target.version!r}")
    if not target.v3_user:
        raise SnmpError("SNMPv3 needs a user name")
    kwargs = {**common, "version": 3, "security_username": target.v3_user}
    if not target.v3_auth_key:
        return {**kwargs, "security_level": "no_auth_or_privacy"}
    auth = V3_AUTH.get((target.v3_auth_protocol or "SHA").upper())
    if auth is None:
        raise SnmpError(f"unsupported SNMPv3 auth protocol {target.v3_auth_protocol!r}")
    kwargs.update(auth_protocol=auth, auth_password=target.v3_auth_key, security_level="auth_without_privacy")
    if target.v3_priv_key:
        priv = V3_PRIV.get((target.v3_priv_protocol or "AES").upper())
        if priv is None:
            raise SnmpError(f"unsupported SNMPv3 privacy protocol {target.v3_priv_protocol!r}")
        kwargs.update(privacy_protocol=priv, privacy_password=target.v3_priv_key, security_level="auth_with_privacy")
    return kwargs


class SnmpSession:
    """One open session. Not shared between threads (one per device poll)."""

    def __init__(self, target: SnmpTarget, session: Session, *, timeout: float, retries: int):
        self.target = target
        self._session = session
        self.timeout = timeout
        self.retries = retries
        self.requests = 0

    def _fail(self, exc: Exception) -> SnmpError:
        where = f"{self.target.host}:{self.target.port}"
        if isinstance(exc, EasySNMPTimeoutError):
            hint = "device down or unreachable" + (", or wrong community" if self.target.version != "3" else "")
            return SnmpTimeout(f"timeout: no answer from {where} ({1 + self.retries} x {self.timeout:g}s; {hint})")
        text = str(exc)
        lowered = text.lower()
        if "authentication" in lowered or "unknown user" in lowered or "decrypt" in lowered:
            return SnmpAuthError(f"authentication refused by {where}: {text}")
        if "timeout" in lowered or "timed out" in lowered:
            return SnmpTimeout(f"timeout: no answer from {where}: {text}")
        return SnmpError(f"SNMP error from {where}: {text}")

    def get(self, oids: Iterable[str]) -> dict[str, int | str | None]:
        """GET several OIDs in one request: {oid: value or None when the agent has no such object}."""
        wanted = [normalize_oid(o) for o in oids]
        if not wanted:
            return {}
        self.requests += 1
        try:
            variables = self._session.get(["." + o for o in wanted])
        except EasySNMPError as exc:
            raise self._fail(exc) from None
        values = {}
        for oid, variable in zip(wanted, variables, strict=True):
            values[oid] = _convert(variable.snmp_type, variable.value)
        return values

    def get_many(self, oids: Iterable[str], *, per_request: int = MAX_VARBINDS) -> dict[str, int | str | None]:
        """GET any number of OIDs, `per_request` per PDU."""
        wanted = list(oids)
        values: dict[str, int | str | None] = {}
        for start in range(0, len(wanted), per_request):
            values.update(self.get(wanted[start : start + per_request]))
        return values

    def get_one(self, oid: str) -> int | str | None:
        return self.get([oid])[normalize_oid(oid)]

    def bulkwalk(self, base: str, *, max_repetitions: int = 25) -> list[Varbind]:
        """Every object under `base` (GETBULK), in agent order."""
        return [
            vb for rows in self.table({"v": base}, max_repetitions=max_repetitions).values() for vb in rows.values()
        ]

    def walk_values(self, base: str) -> dict[str, int | str | None]:
        """{index suffix under base: value} of one column."""
        return {index: row["v"].value for index, row in self.table({"v": base}).items()}

    def table(self, columns: Mapping[str, str], *, max_repetitions: int | None = None) -> dict[str, dict[str, Varbind]]:
        """Walk several columns of a table at once (GETBULK with one repeater per column).

        Returns {index suffix: {column name: Varbind}}; a column that ends (leaves its subtree) stops
        being requested; sparse rows simply lack that column."""
        bases = {name: normalize_oid(oid) for name, oid in columns.items()}
        cursors = dict(bases)
        active = list(bases)
        rows: dict[str, dict[str, Varbind]] = {}
        while active:
            repetitions = max_repetitions or max(1, MAX_VARBINDS // len(active))
            self.requests += 1
            try:
                variables = self._session.get_bulk(
                    ["." + cursors[name] for name in active], non_repeaters=0, max_repetitions=repetitions
                )
            except EasySNMPError as exc:
                raise self._fail(exc) from None
            if not variables:
                break
            finished: set[str] = set()
            advanced = False
            for position, variable in enumerate(variables):
                name = active[position % len(active)]
                if name in finished:
                    continue
                varbind = _varbind(variable)
                prefix = bases[name] + "."
                if variable.snmp_type == "ENDOFMIBVIEW" or not varbind.oid.startswith(prefix):
                    finished.add(name)
                    continue
                if _oid_tuple(varbind.oid) <= _oid_tuple(cursors[name]):
                    finished.add(name)  # an agent going backwards: stop rather than loop
                    continue
                rows.setdefault(varbind.oid[len(prefix) :], {})[name] = varbind
                cursors[name] = varbind.oid
                advanced = True
            active = [name for name in active if name not in finished]
            if not advanced:
                break
        return rows


def _oid_tuple(oid: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in oid.split("."))
    except ValueError:
        return ()


@contextlib.contextmanager
def open_session(target: SnmpTarget, *, timeout: float = 2.0, retries: int = 1) -> Iterator[SnmpSession]:
    """An SNMP session to `target` for the block (closed safely at the end, see the docstring)."""
    kwargs = _session_kwargs(target, timeout=timeout, retries=retries)
    version = "3" if kwargs["version"] == 3 else "2c"
    _closer.opened(version)
    try:
        session = Session(**kwargs)
    except EasySNMPError as exc:
        _closer.abandoned(version)
        raise SnmpError(f"cannot open an SNMP session to {target.host}:{target.port}: {exc}") from None
    try:
        yield SnmpSession(target, session, timeout=timeout, retries=retries)
    finally:
        _closer.close(session, version)
