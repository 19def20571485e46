"""A NAS simulator: the Dynamic Authorization Server end of RFC 5176, for tests and the demo.

It listens on UDP (127.0.0.1 and a given port; 0 picks a free one, see `port`), checks each
request's authenticator with the shared secret, records every datagram it receives and answers
CoA-Request / Disconnect-Request with an ACK or a NAK:

- by default everything is acknowledged;
- with `known_sessions`, a request whose Acct-Session-Id is not among them gets a NAK with
  Error-Cause 503 (Session-Context-Not-Found), one without an Acct-Session-Id a NAK with 402
  (Missing-Attribute); an acknowledged Disconnect-Request ends the session, like a real NAS;
- `rule` replaces both: a function ``(code, attributes) -> Answer``;
- `drop_first` leaves the first N valid requests unanswered, to exercise retransmission.

Like a NAS, it silently discards requests with a wrong authenticator (a wrong secret) and
answers a retransmission (same source, Identifier and authenticator) with the same answer
again, without deciding twice.

In a test::

    with NasSimulator(secret=b"s3cret", known_sessions={"81a00003"}) as nas:
        send_disconnect(nas_ip="127.0.0.1", port=nas.port, secret=b"s3cret", attributes=...)
        assert nas.received[0].verdict == "ack"

From a shell (one JSON object per line on stdout, the first one says where it listens)::

    python -m network.radius.nas_simulator --port 3799 --secret s3cret --known-session 81a00003
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrad import packet as pyrad_packet
from pyrad.packet import CoAPacket, PacketError

from network.radius.dictionary import (
    attribute_key,
    decode_attributes,
    encode_attributes,
    jsonable,
    load_dictionary,
    packet_code_name,
)

ERROR_CAUSE_MISSING_ATTRIBUTE = 402
ERROR_CAUSE_SESSION_NOT_FOUND = 503
_NAK_FOR = {pyrad_packet.CoARequest: pyrad_packet.CoANAK, pyrad_packet.DisconnectRequest: pyrad_packet.DisconnectNAK}
_REPLAY_CACHE_SIZE = 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What the NAS says: ACK or NAK, with an optional Error-Cause and further reply attributes."""

    ack: bool
    error_cause: int | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def accept(cls) -> Answer:
        return cls(ack=True)

    @classmethod
    def refuse(cls, error_cause: int | None) -> Answer:
        return cls(ack=False, error_cause=error_cause)


Rule = Callable[[int, dict[str, list]], Answer]


@dataclass(frozen=True)
class ReceivedRequest:
    """One datagram as the simulator saw it, and what it did with it.

    verdict: ``ack`` / ``nak`` (answered), ``dropped`` (left unanswered on purpose),
    ``duplicate`` (a retransmission, answered again with the cached answer), ``bad-authenticator``
    (wrong secret: discarded), ``unsupported-code`` (not CoA/Disconnect: discarded), ``malformed``.
    """

    code: int
    identifier: int
    attributes: dict[str, list]
    source: tuple[str, int]
    received_at: float  # time.time()
    verdict: str
    error_cause: int | None = None

    @property
    def code_name(self) -> str:
        return packet_code_name(self.code)

    @property
    def session_id(self) -> str | None:
        values = self.attributes.get("Acct-Session-Id")
        return values[0] if values else None

    def as_json(self) -> dict[str, Any]:
        return {
            "event": "request",
            "code": self.code,
            "code_name": self.code_name,
            "identifier": self.identifier,
            "source": f"{self.source[0]}:{self.source[1]}",
            "received_at": self.received_at,
            "verdict": self.verdict,
            "error_cause": self.error_cause,
            "attributes": jsonable(self.attributes),
        }


class NasSimulator:
    """See the module docstring. `received` and `sessions` are safe to read from any thread."""

    def __init__(
        self,
        *,
        secret: bytes,
        host: str = "127.0.0.1",
        port: int = 0,
        known_sessions: Iterable[str] | None = None,
        rule: Rule | None = None,
        drop_first: int = 0,
        on_request: Callable[[ReceivedRequest], None] | None = None,
    ):
        if not isinstance(secret, bytes) or not secret:
            raise ValueError("the secret must be non-empty bytes")
        if drop_first < 0:
            raise ValueError("drop_first must be >= 0")
        self.secret = secret
        self.host = host
        self._requested_port = port
        self._sessions = None if known_sessions is None else set(known_sessions)
        self._rule = rule
        self._drops_left = drop_first
        self._on_request = on_request
        self._received: list[ReceivedRequest] = []
        self._answered: OrderedDict[tuple, bytes] = OrderedDict()  # replay cache
        self._changed = threading.Condition()
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._dictionary = load_dictionary()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> NasSimulator:
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._port = sock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"nas-simulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in (self._socket, self._wake_r, self._wake_w):
            sock.close()
        self._thread = None

    def __enter__(self) -> NasSimulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The UDP port it listens (or, once stopped, listened) on."""
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    # --- what happened --------------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedRequest]:
        with self._changed:
            return list(self._received)

    @property
    def sessions(self) -> frozenset[str] | None:
        with self._changed:
            return None if self._sessions is None else frozenset(self._sessions)

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least `count` datagrams were received; False if `timeout` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._received) >= count, timeout=timeout)

    # --- the server -----------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            readable, _, _ = select.select([self._socket, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            try:
                data, source = self._socket.recvfrom(4096)
            except OSError:
                continue
            reply = self._handle(data, source[:2])
            if reply is not None:
                self._socket.sendto(reply, source)

    def _record(self, request: ReceivedRequest) -> None:
        with self._changed:
            self._received.append(request)
            self._changed.notify_all()
        if self._on_request is not None:
            try:
                self._on_request(request)
            except Exception:  # a failing observer must not stop the NAS
                log.exception("on_request failed for %s", request)

    def _handle(self, data: bytes, source: tuple[str, int]) -> bytes | None:
        now = time.time()
        try:
            request = CoAPacket(packet=data, secret=self.secret, dict=self._dictionary)
        except PacketError:
            code, identifier = (data[0], data[1]) if len(data) >= 2 else (0, 0)
            self._record(ReceivedRequest(code, identifier, {}, source, now, "malformed"))
            return None
        attributes = decode_attributes(request, dictionary=self._dictionary)

        def record(verdict: str, error_cause: int | None = None) -> None:
            self._record(ReceivedRequest(request.code, request.id, attributes, source, now, verdict, error_cause))

        if request.code not in _NAK_FOR:
            record("unsupported-code")
            return None
        if not request.VerifyCoARequest() or (
            request.message_authenticator and not request.verify_message_authenticator()
        ):
            record("bad-authenticator")
            return None
        replay_key = (source, request.id, request.authenticator)
        with self._changed:
            cached = self._answered.get(replay_key)
            drop = cached is None and self._drops_left > 0
            if drop:
                self._drops_left -= 1
        if cached is not None:
            record("duplicate")
            return cached
        if drop:
            record("dropped")
            return None

        answer = self._decide(request.code, attributes)
        reply = request.CreateReply()
        if not answer.ack:
            reply.code = _NAK_FOR[request.code]
        if answer.error_cause is not None:
            reply[attribute_key("Error-Cause")] = [struct.pack("!I", answer.error_cause)]
        encode_attributes(reply, answer.attributes, dictionary=self._dictionary)
        if request.message_authenticator:
            reply.message_authenticator = True
        raw = reply.ReplyPacket()
        with self._changed:
            self._answered[replay_key] = raw
            while len(self._answered) > _REPLAY_CACHE_SIZE:
                self._answered.popitem(last=False)
        record("ack" if answer.ack else "nak", answer.error_cause)
        return raw

    def _decide(self, code: int, attributes: dict[str, list]) -> Answer:
        if self._rule is not None:
            return self._rule(code, attributes)
        with self._changed:
            if self._sessions is None:
                return Answer.accept()
            session_ids = attributes.get("Acct-Session-Id")
            if not session_ids:
                return Answer.refuse(ERROR_CAUSE_MISSING_ATTRIBUTE)
            if session_ids[0] not in self._sessions:
                return Answer.refuse(ERROR_CAUSE_SESSION_NOT_FOUND)
            if code == pyrad_packet.DisconnectRequest:
                self._sessions.discard(session_ids[0])
            return Answer.accept()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m network.radius.nas_simulator",
        description="NAS simulator: answers RFC 5176 CoA/Disconnect requests, prints one JSON line per datagram.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3799, help="UDP port, 0 for any free one (default 3799)")
    parser.add_argument("--secret", required=True)
    parser.add_argument(
        "--known-session",
        action="append",
        dest="known_sessions",
        metavar="ACCT_SESSION_ID",
        help="a live session; given at least once, requests for other sessions get NAK 503",
    )
    parser.add_argument("--drop-first", type=int, default=0, metavar="N", help="leave the first N requests unanswered")
    parser.add_argument("--nak", type=int, metavar="ERROR_CAUSE", help="refuse every request with this Error-Cause")
    args = parser.parse_args(argv)

    def emit(event: Mapping[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    rule = None
    if args.nak is not None:
        cause = args.nak

        def rule(code: int, attributes: dict[str, list]) -> Answer:
            return Answer.refuse(cause)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    simulator = NasSimulator(
        secret=args.secret.encode(),
        host=args.host,
        port=args.port,
        known_sessions=args.known_sessions,
        rule=rule,
        drop_first=args.drop_first,
        on_request=lambda request: emit(request.as_json()),
    )
    try:
        simulator.start()
    except OSError as exc:
        parser.exit(2, f"cannot listen on {args.host}:{args.port}: {exc}\n")
    try:
        emit({"event": "listening", "host": args.host, "port": simulator.port})
        stop.wait()
    finally:
        simulator.stop()
    emit({"event": "stopped", "received": len(simulator.received)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
