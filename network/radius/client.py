"""RADIUS client: one Access-Request or Accounting-Request, sent over UDP and answered (or not).

pyrad builds, encrypts and verifies the packets; this module owns the socket, so that it can
bind a source address: the RADIUS server recognises the NAS - and so the tenant - by the source
IP of the request, and on Linux every 127.0.0.0/8 address is local, so one machine can play many
NASes (``source_ip="127.0.0.12"``).

Retries: ``retries`` counts retransmissions after the first send, as ``pyrad.client_async``
does (``pyrad.client.Client`` counts sends in total). A retransmission is the very same datagram
- same Identifier, same Request Authenticator (RFC 5080 section 2.2.1) - so a server that
answered the first one recognises the duplicate, and a late answer to any attempt is accepted.
Accounting retransmissions therefore keep their Acct-Delay-Time: changing it would make a new
request with a new Identifier (RFC 2866 section 5.2).

Errors: invalid arguments raise ValueError before anything is sent; a request that cannot be
sent at all (e.g. a source address that is not on this host) raises OSError; a server that does
not answer is a result (``AuthResult.error``, ``account() -> False``), not an exception.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import select
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pyrad import packet as pyrad_packet
from pyrad.packet import AcctPacket, AuthPacket, Packet

from network.radius.dictionary import (
    attribute_key,
    decode_attributes,
    encode_attributes,
    load_dictionary,
    packet_code_name,
)

AuthMethod = Literal["pap", "chap"]
AcctStatus = Literal["Start", "Interim-Update", "Stop", "Accounting-On", "Accounting-Off"]
ACCT_STATUSES: tuple[str, ...] = ("Start", "Interim-Update", "Stop", "Accounting-On", "Accounting-Off")

MAX_DATAGRAM = 4096  # RFC 2865 section 3: a RADIUS packet is at most 4096 octets


@dataclass(frozen=True)
class AuthResult:
    """The outcome of one Access-Request."""

    accepted: bool
    code: int | None  # Access-Accept 2, Access-Reject 3, Access-Challenge 11; None without an answer
    attributes: dict[str, list] = field(default_factory=dict)  # of the reply
    latency_ms: float | None = None  # from the first send to the valid answer
    error: str | None = None  # why there is no Access-Accept or Access-Reject to report
    attempts: int = 0

    @property
    def code_name(self) -> str:
        return packet_code_name(self.code)


@dataclass(frozen=True)
class Exchange:
    """One request on the wire: the verified reply (None if none came), how often it was sent."""

    reply: Packet | None
    attempts: int
    latency_ms: float | None
    waited_s: float


@dataclass(frozen=True)
class Endpoint:
    """A validated UDP destination: the address family and the sockaddr to send to."""

    family: socket.AddressFamily
    sockaddr: tuple

    @property
    def label(self) -> str:
        host, port = self.sockaddr[:2]
        return f"[{host}]:{port}" if self.family == socket.AF_INET6 else f"{host}:{port}"


def resolve_endpoint(host: str, port: int, *, source_ip: str | None = None) -> Endpoint:
    """Check `port` and `source_ip` and resolve `host` once; ValueError for anything invalid."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be 1-65535, got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"cannot resolve RADIUS peer {host!r}: {exc}") from None
    if source_ip is not None:
        try:
            source = ipaddress.ip_address(source_ip)
        except ValueError:
            raise ValueError(f"source address must be an IP address, got {source_ip!r}") from None
        wanted = socket.AF_INET6 if source.version == 6 else socket.AF_INET
        infos = [info for info in infos if info[0] == wanted]
        if not infos:
            raise ValueError(f"source address {source_ip} is IPv{source.version}, {host} has no such address")
    family, _, _, _, sockaddr = infos[0]
    return Endpoint(family=family, sockaddr=sockaddr)


def validate_timing(timeout: float, retries: int) -> None:
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")


def validate_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes) or not secret:
        raise ValueError("the RADIUS secret must be non-empty bytes")


def new_identifier() -> int:
    return secrets.randbelow(256)


def exchange(
    request: Packet,
    *,
    server: str,
    port: int,
    timeout: float,
    retries: int,
    source_ip: str | None = None,
    backoff: float = 0.0,
) -> Exchange:
    """Send `request` and wait for a reply that pyrad verifies against it (Identifier, Response
    Authenticator, Message-Authenticator if present); anything else that arrives is ignored.

    After attempt n goes unanswered for `timeout` seconds, the next one follows after a further
    ``backoff * 2**(n-1)`` seconds, during which a late answer is still taken.
    """
    validate_timing(timeout, retries)
    if backoff < 0:
        raise ValueError(f"backoff must be >= 0, got {backoff!r}")
    endpoint = resolve_endpoint(server, port, source_ip=source_ip)
    raw = request.RequestPacket()  # encoded once: every attempt sends the same octets
    with socket.socket(endpoint.family, socket.SOCK_DGRAM) as sock:
        if source_ip is not None:
            sock.bind((source_ip, 0))
        started = time.perf_counter()
        attempts = 0
        for attempt in range(1, retries + 2):
            attempts = attempt
            sock.sendto(raw, endpoint.sockaddr)
            deadline = time.perf_counter() + timeout + (backoff * 2 ** (attempt - 1) if attempt <= retries else 0)
            reply = _await_reply(sock, request, endpoint, deadline)
            if reply is not None:
                now = time.perf_counter()
                return Exchange(reply, attempts, (now - started) * 1000, now - started)
        return Exchange(None, attempts, None, time.perf_counter() - started)


def _await_reply(sock: socket.socket, request: Packet, endpoint: Endpoint, deadline: float) -> Packet | None:
    while (remaining := deadline - time.perf_counter()) > 0:
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            return None
        try:
            data, source = sock.recvfrom(MAX_DATAGRAM)
        except OSError:  # e.g. an ICMP error queued on the socket: keep waiting for a real answer
            continue
        if source[:2] != endpoint.sockaddr[:2]:
            continue  # not from the peer the request went to
        try:
            reply = request.CreateReply(packet=data)
        except pyrad_packet.PacketError:
            continue
        if request.VerifyReply(reply, data):
            reply.request_authenticator = request.authenticator
            return reply
    return None


def chap_password(ident: int, password: bytes, challenge: bytes) -> bytes:
    """CHAP-Password (RFC 2865 section 5.3): the CHAP ident, then MD5(ident + password + challenge)
    (the CHAP response of RFC 1994 section 4.1)."""
    ident_octet = bytes([ident])
    return ident_octet + hashlib.md5(ident_octet + password + challenge).digest()  # noqa: S324 - RFC 1994


def build_access_request(
    *,
    secret: bytes,
    username: str,
    password: str,
    method: AuthMethod = "pap",
    nas_ip: str | None = "127.0.0.1",
    extra: Mapping[str, Any] | None = None,
    identifier: int | None = None,
) -> AuthPacket:
    """An Access-Request for PAP (User-Password hidden with the secret, RFC 2865 section 5.2) or
    CHAP (CHAP-Password over a random 16-octet CHAP-Challenge), signed with a
    Message-Authenticator (BlastRADIUS, CVE-2024-3596)."""
    validate_secret(secret)
    if method not in ("pap", "chap"):
        raise ValueError(f"method must be 'pap' or 'chap', got {method!r}")
    extra = dict(extra or {})
    clashes = sorted({"User-Name", *(["NAS-IP-Address"] if nas_ip is not None else [])} & extra.keys())
    if clashes:
        raise ValueError(f"{', '.join(clashes)} come from the arguments, not from extra")
    dictionary = load_dictionary()
    request = AuthPacket(
        secret=secret,
        dict=dictionary,
        id=new_identifier() if identifier is None else identifier,
        authenticator=secrets.token_bytes(16),  # pyrad's CreateAuthenticator draws 16 times from the OS
        message_authenticator=True,
    )
    encode_attributes(request, {"User-Name": username}, dictionary=dictionary)
    secret_octets = password.encode("utf-8")
    if method == "pap":
        # raw key: pyrad would encode the str again
        request[attribute_key("User-Password")] = [request.PwCrypt(secret_octets)]
    else:
        challenge = secrets.token_bytes(16)
        request[attribute_key("CHAP-Password")] = [chap_password(secrets.randbelow(256), secret_octets, challenge)]
        request[attribute_key("CHAP-Challenge")] = [challenge]
    attributes: dict[str, Any] = {}
    if nas_ip is not None:
        attributes["NAS-IP-Address"] = nas_ip
    attributes.update(extra)
    encode_attributes(request, attributes, dictionary=dictionary)
    return request


def build_accounting_request(
    *, secret: bytes, status: AcctStatus, attributes: Mapping[str, Any], identifier: int | None = None
) -> AcctPacket:
    """An Accounting-Request; Acct-Status-Type comes from `status`, first (RFC 2866 section 5.1)."""
    validate_secret(secret)
    if status not in ACCT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(ACCT_STATUSES)}, got {status!r}")
    if "Acct-Status-Type" in attributes:
        raise ValueError("Acct-Status-Type comes from status, not from attributes")
    dictionary = load_dictionary()
    request = AcctPacket(secret=secret, dict=dictionary, id=new_identifier() if identifier is None else identifier)
    encode_attributes(request, {"Acct-Status-Type": status, **attributes}, dictionary=dictionary)
    return request


def authenticate(
    *,
    server: str,
    port: int,
    secret: bytes,
    username: str,
    password: str,
    method: AuthMethod = "pap",
    nas_ip: str | None = "127.0.0.1",
    source_ip: str | None = None,
    timeout: float = 2.0,
    retries: int = 1,
    extra: Mapping[str, Any] | None = None,
) -> AuthResult:
    """Send one Access-Request and report the answer. `extra` adds attributes by name, e.g.
    ``{"NAS-Port-Type": "Ethernet", "Calling-Station-Id": "00-11-22-33-44-55"}``."""
    request = build_access_request(
        secret=secret, username=username, password=password, method=method, nas_ip=nas_ip, extra=extra
    )
    done = exchange(request, server=server, port=port, timeout=timeout, retries=retries, source_ip=source_ip)
    peer = resolve_endpoint(server, port).label
    if done.reply is None:
        return AuthResult(
            accepted=False,
            code=None,
            attempts=done.attempts,
            error=f"no answer from {peer} within {done.waited_s:.1f}s ({done.attempts} attempt(s), {timeout:g}s each)",
        )
    code = done.reply.code
    error = None
    if code == pyrad_packet.AccessChallenge:
        error = f"{peer} answered Access-Challenge: multi-round authentication is not supported here"
    elif code not in (pyrad_packet.AccessAccept, pyrad_packet.AccessReject):
        error = f"{peer} answered with {packet_code_name(code)}, not a reply to an Access-Request"
    return AuthResult(
        accepted=code == pyrad_packet.AccessAccept,
        code=code,
        attributes=decode_attributes(done.reply),
        latency_ms=done.latency_ms,
        error=error,
        attempts=done.attempts,
    )


def account(
    *,
    server: str,
    port: int,
    secret: bytes,
    status: AcctStatus,
    attributes: Mapping[str, Any],
    source_ip: str | None = None,
    timeout: float = 2.0,
    retries: int = 1,
) -> bool:
    """Send one Accounting-Request; True if the server acknowledged it with an Accounting-Response
    (the only answer RFC 2866 has: a server that cannot store the record stays silent)."""
    request = build_accounting_request(secret=secret, status=status, attributes=attributes)
    done = exchange(request, server=server, port=port, timeout=timeout, retries=retries, source_ip=source_ip)
    return done.reply is not None and done.reply.code == pyrad_packet.AccountingResponse
