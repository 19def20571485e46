"""FreeRADIUS as a project component: render the configuration kept in ``freeradius/`` into a
run directory and run Debian's ``freeradius`` on it.

The configuration files are copied unchanged; the only generated pieces are ``instance.conf``
(ports, client network, database connection string, mode - included by ``radiusd.conf``), the
``pgpass`` file holding the database password, and, in files mode, the ``users`` file.

Two modes:

* ``sql`` - the real thing: NAS are dynamic clients resolved with ``radius.nas_client``;
  subscribers and accounting go through the ``radius.*`` functions of the back office;
  accounting that the database cannot take is spooled to ``<run dir>/spool`` and replayed.
* ``files`` - the benchmark baseline: the same listeners and threads, subscribers from a rendered
  ``users`` file, one static client 127.0.0.1; no SQL at all.

The listeners bind 127.0.0.1 (``listen_address``; only a container changes it); the spool
replay reads a file, not a socket. Nothing here imports Django.

    with FreeRadiusServer(database="postgres://isp_radius@127.0.0.1:5432/isp") as radius:
        ...  # radius.auth_port, radius.acct_port, radius.spool_dir, radius.log_tail()
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

Mode = Literal["sql", "files"]

CONFIG_DIR = Path(__file__).resolve().parent / "freeradius"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RUN_ROOT = REPO_ROOT / ".local" / "radius"
DEFAULT_DB_USER = "isp_radius"
READY_LINE = "Ready to process requests"

# Characters allowed in values that end up unquoted in FreeRADIUS or libpq syntax (paths, host,
# database and role names). Anything else is refused rather than escaped.
_PLAIN = re.compile(r"^[A-Za-z0-9_./+@,~:-]+$")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


class FreeRadiusError(RuntimeError):
    """FreeRADIUS could not be started, or stopped answering."""


class FreeRadiusNotInstalled(FreeRadiusError):
    pass


class FreeRadiusConfigError(FreeRadiusError):
    pass


@dataclass(frozen=True)
class DatabaseParams:
    """Where FreeRADIUS's ``sql`` module connects. ``host`` may differ from DATABASE_URL's (a
    TCP proxy in tests); an empty password means none (trust / peer authentication)."""

    dbname: str
    host: str = ""
    port: int | None = None
    user: str = DEFAULT_DB_USER
    password: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, *, port: int | None = None) -> DatabaseParams:
        """The back office's database (settings.DATABASES) as the FreeRADIUS role sees it
        (RADIUS_DB_USER / RADIUS_DB_PASSWORD), over TCP: that role has no system account for a
        local socket's peer authentication. `port` replaces the database's (a proxy in tests)."""
        from django.conf import settings

        db = settings.DATABASES["default"]
        return cls(
            dbname=db["NAME"],
            host=db.get("HOST") or "127.0.0.1",
            port=port or int(db.get("PORT") or 5432),
            user=getattr(settings, "RADIUS_DB_USER", None) or DEFAULT_DB_USER,
            password=getattr(settings, "RADIUS_DB_PASSWORD", None) or "",
        )

    @classmethod
    def parse(cls, value: str | Mapping[str, object] | DatabaseParams) -> DatabaseParams:
        """From a libpq URL / key=value string, or a mapping with host, port, dbname (or name),
        user, password. The user defaults to isp_radius when the source names none."""
        if isinstance(value, DatabaseParams):
            return value
        if isinstance(value, str):
            from psycopg.conninfo import conninfo_to_dict

            value = conninfo_to_dict(value)
        items = {str(k).lower(): v for k, v in value.items()}
        dbname = items.get("dbname") or items.get("name")
        if not dbname:
            raise ValueError("database parameters need a dbname")
        port = items.get("port")
        return cls(
            dbname=str(dbname),
            host=str(items.get("host") or ""),
            port=int(port) if port not in (None, "") else None,
            user=str(items.get("user") or DEFAULT_DB_USER),
            password=str(items.get("password") or ""),
        )


@dataclass(frozen=True)
class BaselineUser:
    """A subscriber of the files-mode ``users`` file."""

    username: str
    password: str
    reply: Mapping[str, str] = field(default_factory=dict)


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port that was free a moment ago (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def users_quote(value: str) -> str:
    """A single-quoted value in a FreeRADIUS ``users`` file: taken literally (no %{...}
    expansion); that parser undoes backslash escapes."""
    if any(ord(c) < 0x20 for c in value):
        raise ValueError("control characters cannot be written into a users file")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conf_quote(value: str) -> str:
    """A single-quoted value in a FreeRADIUS configuration file: no ${...} expansion. That
    parser keeps backslashes as they are (only \\' is undone), so a backslash cannot be
    represented reliably and is refused."""
    if "\\" in value or any(ord(c) < 0x20 for c in value):
        raise ValueError("backslashes and control characters are not supported in FreeRADIUS configuration values")
    return "'" + value.replace("'", "\\'") + "'"


def _plain(name: str, value: str) -> str:
    if not _PLAIN.match(value):
        raise ValueError(f"{name} {value!r}: only letters, digits and _./+@,~:- are supported")
    return value


def _pgpass_escape(value: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("the database password cannot contain line breaks")
    return value.replace("\\", "\\\\").replace(":", "\\:")


class FreeRadiusServer:
    """One FreeRADIUS process on 127.0.0.1, configured from ``network/radius/freeradius``.

    ``start()`` renders the run directory, checks the configuration (``freeradius -C``), starts
    ``freeradius -f`` and returns once the log says it is ready; ``stop()`` sends SIGTERM and
    kills after a grace period. The spool (``spool_dir``) survives restarts of the same run
    directory; replayed records are removed from it by FreeRADIUS itself.

    ``database``: a libpq URL / key=value string or a mapping (host, port, dbname, user,
    password) - any host and port, e.g. a proxy a test can stop. ``auth_port``/``acct_port`` 0
    pick free ports at render time. ``client_network``: sources that are looked up with
    ``radius.nas_client``; a found NAS is cached for ``client_lifetime`` seconds.
    ``replay_attempts``: how often the replay retries a spooled request that the database
    answers with an error before moving it to the quarantine (an unreachable database is
    retried forever). ``static_client_secret`` and ``users``: files mode only.
    """

    def __init__(
        self,
        *,
        mode: Mode = "sql",
        database: str | Mapping[str, object] | DatabaseParams | None = None,
        name: str = "default",
        run_dir: str | os.PathLike[str] | None = None,
        auth_port: int = 0,
        acct_port: int = 0,
        listen_address: str = "127.0.0.1",
        client_network: str = "127.0.0.0/8",
        client_lifetime: int = 60,
        replay_attempts: int = 12,
        static_client_secret: str | None = None,
        users: Iterable[BaselineUser] = (),
        binary: str = "freeradius",
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if mode not in ("sql", "files"):
            raise ValueError(f"mode must be 'sql' or 'files', not {mode!r}")
        if mode == "sql" and database is None:
            raise ValueError("sql mode needs database parameters")
        if mode == "files" and not static_client_secret:
            raise ValueError("files mode needs static_client_secret (the secret of client 127.0.0.1)")
        network = ipaddress.ip_network(client_network, strict=True)
        if network.num_addresses < 2:
            raise ValueError("client_network must be a network (FreeRADIUS refuses /32 for dynamic clients)")
        if ipaddress.ip_address(listen_address).version != 4:
            raise ValueError("listen_address must be an IPv4 address")
        for port in (auth_port, acct_port):
            if not 0 <= int(port) <= 65535:
                raise ValueError(f"invalid port {port}")
        if client_lifetime < 1:
            raise ValueError("client_lifetime must be at least 1 second (0 would cache clients forever)")
        if replay_attempts < 1:
            raise ValueError("replay_attempts must be at least 1")

        self.mode: Mode = mode
        self.database = DatabaseParams.parse(database) if database is not None else None
        self.name = _plain("name", name)
        self.run_dir = Path(run_dir) if run_dir is not None else DEFAULT_RUN_ROOT / name
        self.auth_port = int(auth_port)
        self.acct_port = int(acct_port)
        self.listen_address = str(ipaddress.ip_address(listen_address))
        self.client_network = str(network)
        self.client_lifetime = int(client_lifetime)
        self.replay_attempts = int(replay_attempts)
        self.static_client_secret = static_client_secret or ""
        self.users = tuple(users)
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------------------------
    @property
    def spool_dir(self) -> Path:
        """Accounting requests the database could not take, until replayed."""
        return self.run_dir / "spool"

    @property
    def quarantine_dir(self) -> Path:
        """Spooled requests the database rejected while up (a bad record, kept for a human)."""
        return self.run_dir / "quarantine"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "radius.log"

    @property
    def output_path(self) -> Path:
        """stdout/stderr of the process (startup errors before the log is open)."""
        return self.run_dir / "output.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def spooled_files(self) -> list[Path]:
        """Spool files not yet replayed (``detail.work`` is the one being replayed)."""
        return self._detail_files(self.spool_dir)

    def quarantined_files(self) -> list[Path]:
        """Requests the database kept rejecting. Watch this: to retry them after a fix, move a
        file back into ``spool_dir`` under a name starting with ``detail-``."""
        return self._detail_files(self.quarantine_dir)

    @staticmethod
    def _detail_files(directory: Path) -> list[Path]:
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.iterdir() if p.name.startswith("detail"))

    # -- rendering ---------------------------------------------------------------------------
    def render(self) -> Path:
        """Write the run directory: the repo's configuration, ``instance.conf`` and friends.
        Ports left at 0 are chosen now. The spool and quarantine directories are kept."""
        run_dir = self.run_dir.resolve()
        _plain("run directory", str(run_dir))
        if self.auth_port == 0:
            self.auth_port = free_udp_port(self.listen_address)
        if self.acct_port == 0 or self.acct_port == self.auth_port:
            self.acct_port = free_udp_port(self.listen_address)
            while self.acct_port == self.auth_port:
                self.acct_port = free_udp_port(self.listen_address)

        run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(run_dir, 0o700)
        for sub in ("mods", "sites"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        for source in CONFIG_DIR.rglob("*"):
            target = run_dir / source.relative_to(CONFIG_DIR)
            if source.is_dir():
                target.mkdir(mode=0o700, exist_ok=True)
            else:
                shutil.copyfile(source, target)
                os.chmod(target, 0o640)
        for sub in ("spool", "quarantine"):
            (run_dir / sub).mkdir(mode=0o700, exist_ok=True)

        settings = [
            "# Generated by network/radius/server.py for this run directory - do not edit.",
            f"raddbdir = {run_dir}",
            f"run_dir = {run_dir}",
            f"mode = {self.mode}",
            f"listen_address = {self.listen_address}",
            f"auth_port = {self.auth_port}",
            f"acct_port = {self.acct_port}",
            f"client_network = {self.client_network}",
            f"client_lifetime = {self.client_lifetime}",
            f"replay_attempts = {self.replay_attempts}",
            f'db_conninfo = "{self._conninfo(run_dir)}"',
        ]
        self._write(run_dir / "instance.conf", "\n".join(settings) + "\n")
        if self.mode == "files":
            self._write(run_dir / "clients.conf", self._clients_file())
            self._write(run_dir / "users", self._users_file())
        return run_dir

    def _conninfo(self, run_dir: Path) -> str:
        pgpass = run_dir / "pgpass"
        if self.database is None:
            pgpass.unlink(missing_ok=True)
            return "dbname=unused"
        db = self.database
        parts = [f"dbname={_plain('dbname', db.dbname)}", f"user={_plain('user', db.user)}"]
        if db.host:
            parts.append(f"host={_plain('host', db.host)}")
        if db.port:
            parts.append(f"port={int(db.port)}")
        if db.password:
            self._write(pgpass, f"*:*:*:*:{_pgpass_escape(db.password)}\n", mode=0o600)
            parts.append(f"passfile={pgpass}")
        else:
            pgpass.unlink(missing_ok=True)
        # Dead peer without a TCP reset: give up after 5 s instead of the kernel's minutes.
        parts.append("tcp_user_timeout=5000")
        return " ".join(parts)

    def _clients_file(self) -> str:
        return (
            "# Generated by network/radius/server.py (files mode) - do not edit.\n"
            "client baseline {\n"
            "\tipaddr = 127.0.0.1\n"
            f"\tsecret = {conf_quote(self.static_client_secret)}\n"
            "\tshortname = baseline\n"
            "}\n"
        )

    def _users_file(self) -> str:
        lines = ["# Generated by network/radius/server.py (files mode) - do not edit."]
        for user in self.users:
            if user.username.upper() == "DEFAULT":
                raise ValueError("'DEFAULT' is the users file's match-anyone entry, not a username")
            if "\\" in user.username:
                raise ValueError(f"{user.username!r}: the users file cannot match a username with a backslash")
            lines.append(f"{users_quote(user.username)}\tCleartext-Password := {users_quote(user.password)}")
            reply = list(user.reply.items())
            for index, (attribute, value) in enumerate(reply):
                if not _ATTRIBUTE.match(attribute):
                    raise ValueError(f"invalid attribute name {attribute!r}")
                comma = "," if index < len(reply) - 1 else ""
                lines.append(f"\t{attribute} = {users_quote(str(value))}{comma}")
            lines.append("")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _write(path: Path, text: str, mode: int = 0o640) -> None:
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)

    # -- process -----------------------------------------------------------------------------
    def _executable(self) -> str:
        found = shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin:/sbin")
        if not found:
            raise FreeRadiusNotInstalled(
                f"{self.binary!r} not found: install FreeRADIUS 3.2 (freeradius, freeradius-postgresql, "
                "freeradius-utils) with `make setup`"
            )
        return found

    def check(self) -> None:
        """``freeradius -C``: parse the rendered configuration and load the modules."""
        result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [self._executable(), "-C", "-l", "stdout", "-d", str(self.run_dir.resolve())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
            raise FreeRadiusConfigError(f"freeradius -C rejected {self.run_dir}:\n{tail}")

    def start(self) -> Self:
        """Render, check, start, and wait until FreeRADIUS is ready to process requests."""
        if self.is_running():
            return self
        executable = self._executable()
        run_dir = self.render()
        self.check()
        self.log_path.touch(exist_ok=True)
        offset = self.log_path.stat().st_size
        with open(self.output_path, "ab") as output:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                [executable, "-f", "-d", str(run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=run_dir,
                # The spool stores Event-Timestamp as a local date string and parses it back on
                # replay; UTC keeps that round trip exact whatever the host's zone.
                env={**os.environ, "TZ": "UTC"},
            )
        try:
            self._wait_ready(offset)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, offset: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                if READY_LINE.encode() in log.read():
                    return
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise FreeRadiusError(f"freeradius exited with status {code} while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise FreeRadiusError(f"freeradius not ready after {self.start_timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, wait up to ``stop_timeout`` seconds, then SIGKILL. Returns the exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the FreeRADIUS log (and of its stdout/stderr, if any)."""
        text = ""
        for path in (self.output_path, self.log_path):
            if path.exists():
                content = path.read_text(errors="replace").strip()
                if content:
                    text += "\n".join(content.splitlines()[-lines:]) + "\n"
        return text

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<FreeRadiusServer {self.name} mode={self.mode} auth={self.listen_address}:{self.auth_port} "
            f"acct={self.listen_address}:{self.acct_port} run_dir={self.run_dir}>"
        )
