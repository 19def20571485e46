"""Run FreeRADIUS in the foreground from the configuration in network/radius/freeradius:

    python manage.py radius_server [--auth-port 18112] [--acct-port 18113] [--mode sql|files]
                                   [--run-dir .local/radius/dev] [--client-network 127.0.0.0/8]
                                   [--client-lifetime 60] [--user NAME:PASSWORD ...] [--secret S]

SQL mode connects to the database of settings.DATABASES["default"] (host, port, name) as the
role RADIUS_DB_USER (settings; isp_radius when empty) with RADIUS_DB_PASSWORD (empty for none),
over TCP (127.0.0.1 when the URL names no host): DatabaseParams.from_settings. Files mode (the
benchmark baseline) needs --user entries and serves the static client 127.0.0.1 with --secret.
The FreeRADIUS log is copied to stdout; Ctrl-C or SIGTERM stops the server cleanly. The
accounting spool in the run directory survives restarts.
"""

from __future__ import annotations

import os
import signal
import time

from django.core.management.base import BaseCommand, CommandError

from network.radius.server import (
    BaselineUser,
    DatabaseParams,
    FreeRadiusError,
    FreeRadiusServer,
)


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def _baseline_user(value: str) -> BaselineUser:
    name, sep, password = value.partition(":")
    if not sep or not name:
        raise CommandError(f"--user {value!r}: expected NAME:PASSWORD")
    return BaselineUser(username=name, password=password)


class Command(BaseCommand):
    help = "Run FreeRADIUS (network/radius/freeradius) in the foreground for development; Ctrl-C stops it."

    def add_arguments(self, parser):
        parser.add_argument("--auth-port", type=int, default=18112, help="UDP auth port (default 18112; 0 = any)")
        parser.add_argument("--acct-port", type=int, default=18113, help="UDP acct port (default 18113; 0 = any)")
        parser.add_argument("--mode", choices=["sql", "files"], default="sql", help="sql (default) or files")
        parser.add_argument("--name", default="dev", help="run directory name under .local/radius (default dev)")
        parser.add_argument("--run-dir", help="run directory (default .local/radius/<name>)")
        parser.add_argument(
            "--listen-address",
            default="127.0.0.1",
            help="IPv4 address of the listeners (default 127.0.0.1; a container may need 0.0.0.0)",
        )
        parser.add_argument(
            "--client-network",
            default="127.0.0.0/8",
            help="where NAS may send from; looked up with radius.nas_client (default 127.0.0.0/8)",
        )
        parser.add_argument(
            "--client-lifetime", type=int, default=60, help="seconds a looked-up NAS stays cached (default 60)"
        )
        parser.add_argument(
            "--user",
            action="append",
            default=[],
            metavar="NAME:PASSWORD",
            help="files mode: a subscriber of the users file (repeatable)",
        )
        parser.add_argument(
            "--secret",
            default=os.environ.get("RADIUS_BASELINE_SECRET", "testing123"),
            help="files mode: secret of the static client 127.0.0.1",
        )

    def handle(self, *args, **options):
        mode = options["mode"]
        users = [_baseline_user(value) for value in options["user"]]
        if mode == "files" and not users:
            raise CommandError("files mode needs at least one --user NAME:PASSWORD")
        try:
            server = FreeRadiusServer(
                mode=mode,
                database=DatabaseParams.from_settings() if mode == "sql" else None,
                name=options["name"],
                run_dir=options["run_dir"],
                auth_port=options["auth_port"],
                acct_port=options["acct_port"],
                listen_address=options["listen_address"],
                client_network=options["client_network"],
                client_lifetime=options["client_lifetime"],
                static_client_secret=options["secret"],
                users=users,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        stopped_by_signal = False
        try:
            try:
                server.start()
            except FreeRadiusError as exc:
                raise CommandError(str(exc)) from exc
            db = server.database
            self.stdout.write(
                f"radius_server: {mode} mode, auth {server.listen_address}:{server.auth_port}, "
                f"acct {server.listen_address}:{server.acct_port}, pid {server.pid}"
                + (f", database {db.user}@{db.host or 'local socket'}:{db.port or 5432}/{db.dbname}" if db else "")
            )
            self.stdout.write(f"radius_server: run directory {server.run_dir}, spool {server.spool_dir}")
            self._follow(server)
        except _Stop as stop:
            stopped_by_signal = True
            self.stdout.write(f"radius_server: {stop}, stopping")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            status = server.stop()
        # Ctrl-C reaches FreeRADIUS too (same process group): its own exit status then is no error.
        if not stopped_by_signal and status not in (None, 0, -signal.SIGTERM):
            raise CommandError(f"freeradius exited with status {status}")

    def _follow(self, server: FreeRadiusServer) -> None:
        """Copy new log lines to stdout until the server exits (or a signal stops us)."""
        with open(server.log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            while True:
                chunk = log.read()
                if chunk:
                    self.stdout.write(chunk.decode(errors="replace"), ending="")
                elif not server.is_running():
                    raise CommandError(f"freeradius stopped unexpectedly:\n{server.log_tail()}")
                else:
                    time.sleep(0.2)
