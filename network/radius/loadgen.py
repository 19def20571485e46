"""RADIUS load generator: many Access-Requests or Accounting-Requests in flight at once (asyncio).

Built on ``pyrad.client_async``, whose packets this module builds itself (the same builders as
`client.py`: PAP or CHAP, Message-Authenticator, strict attribute types). A RADIUS Identifier is
one octet, so one socket carries at most 256 outstanding requests; `in_flight` is spread over
``ceil(in_flight / 255)`` sockets (each its own source port), every worker staying on one.

Each worker sends one request, awaits its answer (or its timeout) and sends the next, so exactly
`in_flight` requests are outstanding until the work runs out. ``retries`` counts retransmissions
(0 by default: a benchmark should see losses, not hide them).

One process is CPU-bound at about 300 us per Access-Request (building, PAP, Message-Authenticator,
verifying the answer): some 3.5-4k auth/s on one core. For more, run several processes.

    python -m network.radius.loadgen auth --server 127.0.0.1 --port 18112 --secret S \\
        --user alice --password pw --requests 20000 --in-flight 64
    python -m network.radius.loadgen acct --server 127.0.0.1 --port 18113 --secret S \\
        --sessions 5000 --interim-updates 2 --in-flight 64
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pyrad import packet as pyrad_packet
from pyrad.client_async import ClientAsync
from pyrad.packet import Packet

from network.radius.client import (
    AuthMethod,
    build_access_request,
    build_accounting_request,
    resolve_endpoint,
    validate_secret,
    validate_timing,
)
from network.radius.dictionary import load_dictionary

PER_SOCKET = 255  # outstanding requests per socket; the Identifier has 256 values
_ERROR_SAMPLES = 5
_GIGAWORD = 2**32


@dataclass
class LoadResult:
    """What a load run did. `accepted` counts Access-Accepts (auth) or Accounting-Responses (acct)."""

    kind: Literal["auth", "acct"]
    in_flight: int
    sockets: int
    sent: int = 0  # requests (not datagrams: a retransmission is the same request)
    accepted: int = 0
    rejected: int = 0  # Access-Reject
    timeouts: int = 0
    errors: int = 0  # any other answer or failure; see error_samples
    latencies_ms: list[float] = field(default_factory=list)  # one per answered request
    wall_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.accepted + self.rejected

    @property
    def per_second(self) -> float:
        """Answered requests per second of wall time (auth/s, or accounting records/s)."""
        return self.answered / self.wall_s if self.wall_s > 0 else 0.0

    def percentile_ms(self, p: float) -> float | None:
        """Nearest-rank percentile of the answered requests' latencies."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def p50_ms(self) -> float | None:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile_ms(99)

    @property
    def max_ms(self) -> float | None:
        return max(self.latencies_ms, default=None)

    def summary(self) -> dict[str, Any]:
        """The figures without the per-request latencies, JSON-ready."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "kind": self.kind,
            "in_flight": self.in_flight,
            "sockets": self.sockets,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": ms(self.p50_ms),
            "p99_ms": ms(self.p99_ms),
            "max_ms": ms(self.max_ms),
            "error_samples": self.error_samples,
        }

    def _error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < _ERROR_SAMPLES:
            self.error_samples.append(message)


class _Pool:
    """`ceil(in_flight / 255)` ClientAsync instances, each with its own socket for one packet kind."""

    def __init__(
        self,
        *,
        kind: str,
        server: str,
        port: int,
        secret: bytes,
        in_flight: int,
        timeout: float,
        retries: int,
        source_ip: str | None,
    ):
        self.kind = kind
        self.clients = [
            ClientAsync(
                server=server,
                auth_port=port,
                acct_port=port,
                secret=secret,
                dict=load_dictionary(),
                timeout=timeout,
                retries=retries,
                logger_name=f"{__name__}.pyrad",
            )
            for _ in range(math.ceil(in_flight / PER_SOCKET))
        ]
        self.source_ip = source_ip

    async def __aenter__(self) -> _Pool:
        try:
            for client in self.clients:
                await client.initialize_transports(
                    enable_auth=self.kind == "auth", enable_acct=self.kind == "acct", local_addr=self.source_ip
                )
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        for client in self.clients:
            await client.deinitialize_transports()

    def send(self, worker: int, request: Packet) -> asyncio.Future:
        client = self.clients[worker % len(self.clients)]
        protocol = client.protocol_auth if self.kind == "auth" else client.protocol_acct
        request.id = protocol.create_id()
        return client.SendPacket(request)


def _check_load(
    *, server: str, port: int, secret: bytes, in_flight: int, timeout: float, retries: int, source_ip: str | None
) -> None:
    validate_secret(secret)
    validate_timing(timeout, retries)
    if isinstance(in_flight, bool) or not isinstance(in_flight, int) or in_flight < 1:
        raise ValueError(f"in_flight must be an int >= 1, got {in_flight!r}")
    resolve_endpoint(server, port, source_ip=source_ip)


async def _exchange(pool: _Pool, worker: int, request: Packet, result: LoadResult) -> Packet | None:
    """Send one request, account for it in `result`; the verified reply or None."""
    result.sent += 1
    started = time.perf_counter()
    try:
        reply = await pool.send(worker, request)
    except TimeoutError:
        result.timeouts += 1
        return None
    except Exception as exc:  # noqa: BLE001 - a load run reports failures, it does not stop at the first
        result._error(f"{type(exc).__name__}: {exc}")
        return None
    result.latencies_ms.append((time.perf_counter() - started) * 1000)
    return reply


async def run_auth_load(
    *,
    server: str,
    port: int,
    secret: bytes,
    credentials: Sequence[tuple[str, str]],
    in_flight: int,
    method: AuthMethod = "pap",
    source_ip: str | None = None,
    nas_ip: str | None = "127.0.0.1",
    timeout: float = 2.0,
    retries: int = 0,
    requests: int | None = None,
) -> LoadResult:
    """Authenticate every (username, password) once - or `requests` times in all, cycling through
    them - with `in_flight` requests outstanding."""
    _check_load(
        server=server,
        port=port,
        secret=secret,
        in_flight=in_flight,
        timeout=timeout,
        retries=retries,
        source_ip=source_ip,
    )
    if not credentials:
        raise ValueError("credentials is empty")
    if requests is not None and requests < 1:
        raise ValueError(f"requests must be >= 1, got {requests!r}")
    total = len(credentials) if requests is None else requests
    next_index = iter(range(total))
    async with _Pool(
        kind="auth",
        server=server,
        port=port,
        secret=secret,
        in_flight=in_flight,
        timeout=timeout,
        retries=retries,
        source_ip=source_ip,
    ) as pool:
        result = LoadResult(kind="auth", in_flight=in_flight, sockets=len(pool.clients))

        async def worker(number: int) -> None:
            for index in next_index:
                username, password = credentials[index % len(credentials)]
                request = build_access_request(
                    secret=secret, username=username, password=password, method=method, nas_ip=nas_ip
                )
                reply = await _exchange(pool, number, request, result)
                if reply is None:
                    continue
                if reply.code == pyrad_packet.AccessAccept:
                    result.accepted += 1
                elif reply.code == pyrad_packet.AccessReject:
                    result.rejected += 1
                else:
                    result.latencies_ms.pop()
                    result._error(f"unexpected answer code {reply.code} for {username}")

        started = time.perf_counter()
        await asyncio.gather(*(worker(number) for number in range(in_flight)))
        result.wall_s = time.perf_counter() - started
    return result


def _session_attributes(*, index: int, username: str, session_id: str, nas_ip: str | None, update: int) -> dict:
    """Plausible accounting attributes: update 0 is the Start, update k the k-th Interim-Update
    (five minutes apart; the octet counters pass 2^32, so the Gigawords attributes are exercised)."""
    attributes: dict[str, Any] = {
        "User-Name": username,
        "Acct-Session-Id": session_id,
        "NAS-Port": index,
        "NAS-Port-Type": "Ethernet",
        "Framed-IP-Address": str(ipaddress.IPv4Address("100.64.0.0") + (index % 4_000_000) + 1),
        "Acct-Authentic": "RADIUS",
        "Acct-Delay-Time": 0,
        "Event-Timestamp": int(time.time()),
    }
    if nas_ip is not None:
        attributes["NAS-IP-Address"] = nas_ip
    if update:
        received = update * (3 * _GIGAWORD + 123_456_789)
        sent = update * (_GIGAWORD // 3)
        attributes.update(
            {
                "Acct-Session-Time": 300 * update,
                "Acct-Input-Octets": received % _GIGAWORD,
                "Acct-Input-Gigawords": received // _GIGAWORD,
                "Acct-Output-Octets": sent % _GIGAWORD,
                "Acct-Output-Gigawords": sent // _GIGAWORD,
                "Acct-Input-Packets": update * 2_500_000,
                "Acct-Output-Packets": update * 900_000,
            }
        )
    return attributes


async def run_acct_load(
    *,
    server: str,
    port: int,
    secret: bytes,
    usernames: Sequence[str],
    in_flight: int,
    interim_updates: int = 1,
    source_ip: str | None = None,
    nas_ip: str | None = "127.0.0.1",
    timeout: float = 2.0,
    retries: int = 0,
) -> LoadResult:
    """One session per username: an Accounting-Request Start, then `interim_updates`
    Interim-Updates, in order (the next one only after the previous was answered or timed out).
    `in_flight` sessions are served at once; session ids are unique per run."""
    _check_load(
        server=server,
        port=port,
        secret=secret,
        in_flight=in_flight,
        timeout=timeout,
        retries=retries,
        source_ip=source_ip,
    )
    if interim_updates < 0:
        raise ValueError(f"interim_updates must be >= 0, got {interim_updates!r}")
    run_id = secrets.token_hex(4)
    next_index = iter(range(len(usernames)))
    async with _Pool(
        kind="acct",
        server=server,
        port=port,
        secret=secret,
        in_flight=in_flight,
        timeout=timeout,
        retries=retries,
        source_ip=source_ip,
    ) as pool:
        result = LoadResult(kind="acct", in_flight=in_flight, sockets=len(pool.clients))

        async def worker(number: int) -> None:
            for index in next_index:
                session_id = f"{run_id}{index:08x}"
                for update in range(interim_updates + 1):
                    request = build_accounting_request(
                        secret=secret,
                        status="Interim-Update" if update else "Start",
                        attributes=_session_attributes(
                            index=index,
                            username=usernames[index],
                            session_id=session_id,
                            nas_ip=nas_ip,
                            update=update,
                        ),
                    )
                    reply = await _exchange(pool, number, request, result)
                    if reply is None:
                        continue
                    if reply.code == pyrad_packet.AccountingResponse:
                        result.accepted += 1
                    else:
                        result.latencies_ms.pop()
                        result._error(f"unexpected answer code {reply.code} for session {session_id}")

        started = time.perf_counter()
        await asyncio.gather(*(worker(number) for number in range(in_flight)))
        result.wall_s = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m network.radius.loadgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["auth", "acct"])
    parser.add_argument("--server", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--source-ip")
    parser.add_argument("--nas-ip", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--retries", type=int, default=0)
    auth = parser.add_argument_group("auth")
    auth.add_argument("--user", default="loadtest")
    auth.add_argument("--password", default="loadtest")
    auth.add_argument("--requests", type=int, default=10_000)
    auth.add_argument("--chap", action="store_true")
    acct = parser.add_argument_group("acct")
    acct.add_argument("--sessions", type=int, default=2_000)
    acct.add_argument("--interim-updates", type=int, default=1)
    args = parser.parse_args(argv)
    common = {
        "server": args.server,
        "port": args.port,
        "secret": args.secret.encode(),
        "in_flight": args.in_flight,
        "source_ip": args.source_ip,
        "nas_ip": args.nas_ip,
        "timeout": args.timeout,
        "retries": args.retries,
    }
    try:
        if args.kind == "auth":
            coroutine = run_auth_load(
                credentials=[(args.user, args.password)],
                requests=args.requests,
                method="chap" if args.chap else "pap",
                **common,
            )
        else:
            coroutine = run_acct_load(
                usernames=[f"{args.user}{i}" for i in range(args.sessions)],
                interim_updates=args.interim_updates,
                **common,
            )
        result = asyncio.run(coroutine)
    except (ValueError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(json.dumps(result.summary()))
    return 0 if result.answered else 1


if __name__ == "__main__":
    sys.exit(main())
