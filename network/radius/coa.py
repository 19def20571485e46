"""RFC 5176 Dynamic Authorization sender: Disconnect-Request and CoA-Request to a NAS.

Pure transport - no Django, no database. The caller decides what to send and audits the
`CoaResult`, which is returned for every outcome: the NAS acknowledged (``ack``), refused
(``nak``, usually with an Error-Cause), never answered (``timeout``) or the request could not be
sent or got a nonsensical answer (``error``). Invalid arguments (an unknown attribute, a value of
the wrong type, an empty secret) raise ValueError before anything is sent: that is a bug in the
caller, not an outcome to audit.

Retries only follow silence: a NAK is the NAS's final word. A retransmission is the same
datagram (same Identifier and Request Authenticator) so that the NAS can detect the duplicate
(RFC 5080 section 2.2.1); after the n-th unanswered attempt the sender waits
``backoff * 2**(n-1)`` seconds more, still listening for a late answer, before the next one.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pyrad import packet as pyrad_packet
from pyrad.packet import CoAPacket

from network.radius.client import exchange, new_identifier, resolve_endpoint, validate_secret
from network.radius.dictionary import (
    decode_attributes,
    encode_attributes,
    integer_attribute,
    load_dictionary,
    packet_code_name,
)

CoaOutcome = Literal["ack", "nak", "timeout", "error"]
DEFAULT_COA_PORT = 3799  # RFC 5176 section 3

# request code -> (ACK code, NAK code)
_ANSWERS = {
    pyrad_packet.DisconnectRequest: (pyrad_packet.DisconnectACK, pyrad_packet.DisconnectNAK),
    pyrad_packet.CoARequest: (pyrad_packet.CoAACK, pyrad_packet.CoANAK),
}


@dataclass(frozen=True)
class CoaResult:
    outcome: CoaOutcome
    attempts: int  # datagrams sent
    error_cause: int | None  # Error-Cause (RFC 5176 section 3.6) of the answer, if it had one
    latency_ms: float | None  # first send to the answer; None without one
    detail: str  # one line for the audit trail and the operator
    reply_attributes: dict[str, list] = field(default_factory=dict)

    @property
    def acknowledged(self) -> bool:
        return self.outcome == "ack"

    @property
    def error_cause_name(self) -> str | None:
        return error_cause_name(self.error_cause)


def error_cause_name(cause: int | None) -> str | None:
    """``503 -> "Session-Context-Not-Found"``; None for None, ``"Error-Cause-<n>"`` for an unknown one."""
    if cause is None:
        return None
    values = load_dictionary()["Error-Cause"].values
    raw = struct.pack("!I", cause)
    return values.GetBackward(raw) if values.HasBackward(raw) else f"Error-Cause-{cause}"


def send_disconnect(
    *,
    nas_ip: str,
    port: int = DEFAULT_COA_PORT,
    secret: bytes,
    attributes: Mapping[str, Any],
    timeout: float = 2.0,
    retries: int = 3,
    backoff: float = 0.5,
    source_ip: str | None = None,
) -> CoaResult:
    """Ask the NAS to end a session. `attributes` identify it, e.g.
    ``{"Acct-Session-Id": "81a00003", "User-Name": "alice", "Framed-IP-Address": "100.64.0.7"}``."""
    return _send(
        pyrad_packet.DisconnectRequest,
        nas_ip=nas_ip,
        port=port,
        secret=secret,
        attributes=attributes,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        source_ip=source_ip,
    )


def send_coa(
    *,
    nas_ip: str,
    port: int = DEFAULT_COA_PORT,
    secret: bytes,
    attributes: Mapping[str, Any],
    timeout: float = 2.0,
    retries: int = 3,
    backoff: float = 0.5,
    source_ip: str | None = None,
) -> CoaResult:
    """Change a live session: the session identification plus the new authorization, e.g.
    ``{"Acct-Session-Id": "81a00003", "Mikrotik-Rate-Limit": "10M/50M"}``."""
    return _send(
        pyrad_packet.CoARequest,
        nas_ip=nas_ip,
        port=port,
        secret=secret,
        attributes=attributes,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        source_ip=source_ip,
    )


def _send(
    code: int,
    *,
    nas_ip: str,
    port: int,
    secret: bytes,
    attributes: Mapping[str, Any],
    timeout: float,
    retries: int,
    backoff: float,
    source_ip: str | None,
) -> CoaResult:
    validate_secret(secret)
    if not attributes:
        raise ValueError(f"a {packet_code_name(code)} needs attributes that identify the session")
    peer = resolve_endpoint(nas_ip, port, source_ip=source_ip).label
    dictionary = load_dictionary()
    request = CoAPacket(code=code, secret=secret, dict=dictionary, id=new_identifier())
    encode_attributes(request, attributes, dictionary=dictionary)
    name = packet_code_name(code)
    try:
        done = exchange(
            request, server=nas_ip, port=port, timeout=timeout, retries=retries, source_ip=source_ip, backoff=backoff
        )
    except OSError as exc:
        return CoaResult("error", 0, None, None, f"{name} to {peer} not sent: {exc}")
    if done.reply is None:
        return CoaResult(
            "timeout",
            done.attempts,
            None,
            None,
            f"no answer to {name} from {peer} after {done.attempts} attempt(s) in {done.waited_s:.1f}s",
        )
    reply = done.reply
    cause = integer_attribute(reply, "Error-Cause", dictionary=dictionary)
    reply_attributes = decode_attributes(reply, dictionary=dictionary)
    ack, nak = _ANSWERS[code]
    said = f"{packet_code_name(reply.code)} from {peer} after {done.attempts} attempt(s) in {done.latency_ms:.1f} ms"
    if cause is not None:
        said += f", Error-Cause {cause} ({error_cause_name(cause)})"
    if reply.code == ack:
        outcome: CoaOutcome = "ack"
    elif reply.code == nak:
        outcome = "nak"
    else:
        outcome = "error"
        said = f"unexpected answer to {name}: {said}"
    return CoaResult(outcome, done.attempts, cause, done.latency_ms, said, reply_attributes)
