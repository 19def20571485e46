"""RADIUS transport over real UDP on loopback: the shipped dictionary, Access-Request (PAP, CHAP)
and Accounting-Request against a small pyrad server defined here, RFC 5176 CoA/Disconnect against
the NAS simulator (ACK, NAK with Error-Cause, retransmission after dropped packets, silence), the
load generator and the radius_probe command. No database: nothing here requests a db fixture."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from pyrad.packet import AcctPacket, AuthPacket, CoAPacket

from network.radius.client import account, authenticate, build_access_request, build_accounting_request
from network.radius.coa import error_cause_name, send_coa, send_disconnect
from network.radius.dictionary import (
    DICTIONARY_DIR,
    decode_attributes,
    encode_attributes,
    load_dictionary,
)
from network.radius.loadgen import run_acct_load, run_auth_load
from network.radius.nas_simulator import Answer, NasSimulator

pytestmark = [pytest.mark.network_monitoring, pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = b"loopback-secret"
USERS = {"alice": "correct horse", "bob": "b0b-pässwörd"}  # non-ASCII: the password travels as UTF-8
ACCEPT_ATTRIBUTES = {"Reply-Message": "welcome", "Mikrotik-Rate-Limit": "10M/50M", "Acct-Interim-Interval": 300}


# --- a small RADIUS server (auth + accounting) ------------------------------------------------
class RadiusServer:
    """Checks PAP and CHAP against USERS, acknowledges Accounting-Requests with a valid
    authenticator, and records what it got. One thread, one socket, like a NAS-facing port."""

    def __init__(self, *, secret: bytes = SECRET, users: dict[str, str] = USERS, check_signature: bool = True):
        self.secret = secret
        self.users = users
        self.check_signature = check_signature
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # load tests burst hundreds
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RadiusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in (self.sock, self._wake_r, self._wake_w):
            sock.close()

    def _serve(self) -> None:
        dictionary = load_dictionary()
        while True:
            readable, _, _ = select.select([self.sock, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            data, source = self.sock.recvfrom(4096)
            reply = self._answer(data, source, dictionary)
            if reply is not None:
                self.sock.sendto(reply, source)

    def _answer(self, data: bytes, source, dictionary) -> bytes | None:
        if data[0] == pyrad_packet.AccessRequest:
            request = AuthPacket(packet=data, secret=self.secret, dict=dictionary)
            signed = request.message_authenticator and request.verify_message_authenticator()
            if self.check_signature and not signed:
                return None
            username = request["User-Name"][0]
            password = self.users.get(username)
            if "CHAP-Password" in request:
                method = "chap"
                ok = password is not None and request.VerifyChapPasswd(password.encode())
            else:
                method = "pap"
                ok = password is not None and request.PwDecrypt(request["User-Password"][0]) == password
            self._record(request, source, method=method)
            reply = request.CreateReply()
            if ok:
                encode_attributes(reply, ACCEPT_ATTRIBUTES)
            else:
                reply.code = pyrad_packet.AccessReject
                encode_attributes(reply, {"Reply-Message": "bad credentials"})
            return reply.ReplyPacket()
        if data[0] == pyrad_packet.AccountingRequest:
            request = AcctPacket(packet=data, secret=self.secret, dict=dictionary)
            if not request.VerifyAcctRequest():
                return None  # RFC 2866: an unauthenticated Accounting-Request is silently discarded
            self._record(request, source)
            return request.CreateReply().ReplyPacket()
        return None

    def _record(self, request, source, **extra) -> None:
        with self._lock:
            self.requests.append(
                {"code": request.code, "id": request.id, "source": source, "attributes": decode_attributes(request)}
                | extra
            )


class BlackHole:
    """A bound UDP port that never answers; it counts the datagrams that reach it."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def datagrams(self) -> list[bytes]:
        self.sock.setblocking(False)
        got = []
        while True:
            try:
                got.append(self.sock.recv(4096))
            except BlockingIOError:
                return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def radius_server():
    with RadiusServer() as server:
        yield server


@pytest.fixture
def black_hole():
    hole = BlackHole()
    yield hole
    hole.close()


def raw_attributes(datagram: bytes) -> list[tuple[int, bytes]]:
    """(type, value) pairs of a RADIUS datagram, parsed by hand (RFC 2865 section 5)."""
    length = struct.unpack("!H", datagram[2:4])[0]
    found, offset = [], 20
    while offset < length:
        kind, size = datagram[offset], datagram[offset + 1]
        found.append((kind, datagram[offset + 2 : offset + size]))
        offset += size
    return found


# --- the dictionary ---------------------------------------------------------------------------
@pytest.mark.contract
def test_the_dictionary_includes_every_shipped_file_and_skips_nothing():
    top = (DICTIONARY_DIR / "dictionary").read_text()
    included = {line.split()[1] for line in top.splitlines() if line.startswith("$INCLUDE")}
    shipped = {path.name for path in DICTIONARY_DIR.iterdir() if path.name != "dictionary"}
    assert included == shipped
    assert {"dictionary.rfc2865", "dictionary.rfc5176", "dictionary.mikrotik", "dictionary.wispr"} <= included

    dictionary = load_dictionary()
    assert dictionary.skipped_attributes == set()
    keys = {
        "User-Password": 2,
        "CHAP-Password": 3,
        "CHAP-Challenge": 60,
        "Acct-Input-Gigawords": 52,
        "Acct-Output-Gigawords": 53,
        "Event-Timestamp": 55,
        "Message-Authenticator": 80,
        "Error-Cause": 101,
        "Mikrotik-Recv-Limit": (14988, 1),
        "Mikrotik-Xmit-Limit": (14988, 2),
        "Mikrotik-Group": (14988, 3),
        "Mikrotik-Rate-Limit": (14988, 8),
        "Mikrotik-Realm": (14988, 9),
        "Mikrotik-Recv-Limit-Gigawords": (14988, 14),
        "Mikrotik-Xmit-Limit-Gigawords": (14988, 15),
        "Mikrotik-Address-List": (14988, 19),
        "WISPr-Bandwidth-Max-Up": (14122, 7),
        "WISPr-Bandwidth-Max-Down": (14122, 8),
    }
    assert {name: dictionary.attrindex.GetForward(name) for name in keys} == keys
    assert dictionary["Event-Timestamp"].type == "date"
    assert dictionary["User-Password"].encrypt == 1
    assert [error_cause_name(n) for n in (201, 402, 407, 503, 508)] == [
        "Residual-Context-Removed",
        "Missing-Attribute",
        "Invalid-Attribute-Value",
        "Session-Context-Not-Found",
        "Multiple-Session-Selection-Unsupported",
    ]


@pytest.mark.contract
def test_vendor_attributes_and_64_bit_counters_travel_as_rfc_2865_vendor_specific_octets():
    # given
    request = CoAPacket(secret=SECRET, dict=load_dictionary(), id=7)
    encode_attributes(
        request,
        {
            "Acct-Session-Id": "81a00003",
            "Mikrotik-Rate-Limit": "10M/50M",
            "WISPr-Bandwidth-Max-Up": 2_000_000,
            "WISPr-Bandwidth-Max-Down": 10_000_000,
            "Acct-Input-Gigawords": 3,
            "Event-Timestamp": 1_767_225_600,
        },
    )

    # when
    datagram = request.RequestPacket()

    # then: type 26, length, vendor id, vendor type, vendor length, value (RFC 2865 section 5.26)
    attributes = raw_attributes(datagram)
    assert (26, struct.pack("!IBB", 14988, 8, 9) + b"10M/50M") in attributes
    assert (26, struct.pack("!IBBI", 14122, 7, 6, 2_000_000)) in attributes
    assert (26, struct.pack("!IBBI", 14122, 8, 6, 10_000_000)) in attributes
    assert (52, struct.pack("!I", 3)) in attributes
    assert (55, struct.pack("!I", 1_767_225_600)) in attributes
    # and it decodes back under the same names
    decoded = decode_attributes(CoAPacket(packet=datagram, secret=SECRET, dict=load_dictionary()))
    assert decoded["Mikrotik-Rate-Limit"] == ["10M/50M"]
    assert decoded["WISPr-Bandwidth-Max-Down"] == [10_000_000]
    assert decoded["Event-Timestamp"] == [1_767_225_600]


@pytest.mark.property
@given(
    rate=st.text(alphabet="0123456789kKMG/ ", min_size=1, max_size=60),
    gigawords=st.integers(0, 2**32 - 1),
    octets=st.integers(0, 2**32 - 1),
    address=st.ip_addresses(v=4).map(str),
    session=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40),
)
def test_attributes_decode_to_what_was_encoded(rate, gigawords, octets, address, session):
    attributes = {
        "Acct-Session-Id": session,
        "Mikrotik-Rate-Limit": rate,
        "Acct-Input-Gigawords": gigawords,
        "Acct-Input-Octets": octets,
        "Framed-IP-Address": address,
        "Class": rate.encode(),
    }
    request = AcctPacket(secret=SECRET, dict=load_dictionary(), id=1)
    encode_attributes(request, attributes)
    received = AcctPacket(packet=request.RequestPacket(), secret=SECRET, dict=load_dictionary())
    assert received.VerifyAcctRequest()
    assert decode_attributes(received) == {name: [value] for name, value in attributes.items()}


@pytest.mark.contract
@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"Mikrotik-Rate-Limt": "1M/1M"}, "unknown RADIUS attribute 'Mikrotik-Rate-Limt'"),
        ({"Acct-Input-Gigawords": 1.5}, "Acct-Input-Gigawords (integer): expected an int"),
        ({"Acct-Input-Gigawords": True}, "Acct-Input-Gigawords (integer): expected an int"),
        ({"Acct-Input-Gigawords": 2**32}, "out of range"),
        ({"Acct-Status-Type": "Strat"}, "one of its value names (Start, Stop"),
        ({"Class": "65"}, "Class (octets): expected bytes, got str"),  # pyrad would send b"A"
        ({"Framed-IP-Address": "10.0.0.256"}, "Framed-IP-Address (ipaddr)"),
        ({"User-Password": "secret"}, "set by the RADIUS transport itself"),
    ],
)
def test_unknown_attributes_and_values_of_the_wrong_type_are_refused(attributes, message):
    with pytest.raises(ValueError) as raised:
        encode_attributes(AcctPacket(secret=SECRET, dict=load_dictionary()), attributes)
    assert message in str(raised.value)


# --- Access-Request ---------------------------------------------------------------------------
@pytest.mark.contract
def test_chap_password_is_the_md5_of_ident_password_and_challenge():
    # given
    request = build_access_request(secret=SECRET, username="alice", password="correct horse", method="chap")

    # when: the datagram as it leaves, parsed by hand
    attributes = dict(raw_attributes(request.RequestPacket()))

    # then (RFC 2865 section 5.3, RFC 1994 section 4.1)
    chap, challenge = attributes[3], attributes[60]
    assert (len(chap), len(challenge)) == (17, 16)
    assert chap[1:] == hashlib.md5(chap[:1] + b"correct horse" + challenge).digest()  # noqa: S324 - RFC 1994
    assert 2 not in attributes  # no User-Password next to CHAP
    assert attributes[80] != bytes(16)  # a computed Message-Authenticator


@pytest.mark.contract
def test_pap_hides_the_password_with_the_secret_and_request_authenticator():
    request = build_access_request(secret=SECRET, username="bob", password=USERS["bob"])
    datagram = request.RequestPacket()
    hidden = dict(raw_attributes(datagram))[2]
    # RFC 2865 section 5.2: c(1) = p(1) xor MD5(secret + Request Authenticator), padded to 16 octets
    plain = USERS["bob"].encode().ljust(16, b"\0")
    pad = hashlib.md5(SECRET + datagram[4:20]).digest()  # noqa: S324 - RFC 2865
    expected = bytes(a ^ b for a, b in zip(plain, pad, strict=True))
    assert hidden == expected


@pytest.mark.behavior
@pytest.mark.parametrize("method", ["pap", "chap"])
def test_the_right_password_is_accepted_with_the_reply_attributes(radius_server, method):
    result = authenticate(
        server="127.0.0.1", port=radius_server.port, secret=SECRET, username="bob", password=USERS["bob"], method=method
    )

    assert (result.accepted, result.code, result.error, result.attempts) == (True, 2, None, 1)
    assert result.attributes == {
        "Reply-Message": ["welcome"],
        "Mikrotik-Rate-Limit": ["10M/50M"],
        "Acct-Interim-Interval": [300],
    }
    assert result.latency_ms > 0
    assert radius_server.requests[0]["method"] == method


@pytest.mark.behavior
@pytest.mark.parametrize("method", ["pap", "chap"])
def test_a_wrong_password_is_rejected(radius_server, method):
    result = authenticate(
        server="127.0.0.1", port=radius_server.port, secret=SECRET, username="alice", password="wrong", method=method
    )

    assert (result.accepted, result.code_name, result.error) == (False, "Access-Reject", None)
    assert result.attributes == {"Reply-Message": ["bad credentials"]}


@pytest.mark.behavior
def test_requests_leave_from_the_given_loopback_address_so_the_server_sees_that_nas(radius_server):
    # when: two NASes on one machine
    authenticate(
        server="127.0.0.1",
        port=radius_server.port,
        secret=SECRET,
        username="alice",
        password=USERS["alice"],
        source_ip="127.0.0.12",
        nas_ip="127.0.0.12",
    )
    authenticate(
        server="127.0.0.1",
        port=radius_server.port,
        secret=SECRET,
        username="alice",
        password=USERS["alice"],
        source_ip="127.0.0.13",
        nas_ip="127.0.0.13",
    )

    # then
    seen = [(r["source"][0], r["attributes"]["NAS-IP-Address"]) for r in radius_server.requests]
    assert seen == [("127.0.0.12", ["127.0.0.12"]), ("127.0.0.13", ["127.0.0.13"])]


@pytest.mark.behavior
def test_a_silent_server_is_a_timeout_after_identical_retransmissions(black_hole):
    started = time.perf_counter()
    result = authenticate(
        server="127.0.0.1", port=black_hole.port, secret=SECRET, username="alice", password="x", timeout=0.15, retries=2
    )
    elapsed = time.perf_counter() - started

    assert (result.accepted, result.code, result.latency_ms, result.attempts) == (False, None, None, 3)
    assert result.error.startswith(f"no answer from 127.0.0.1:{black_hole.port} within 0.")
    assert elapsed >= 0.45
    sent = black_hole.datagrams()
    assert len(sent) == 3
    assert len(set(sent)) == 1  # same Identifier and Request Authenticator each time


@pytest.mark.behavior
def test_an_answer_signed_with_another_secret_is_ignored():
    # given: a server with another secret that answers anyway (it skips its own signature check)
    with RadiusServer(secret=b"someone-else", check_signature=False) as server:
        # when
        result = authenticate(
            server="127.0.0.1",
            port=server.port,
            secret=SECRET,
            username="alice",
            password=USERS["alice"],
            timeout=0.2,
            retries=0,
        )
    # then: its answer arrived but fails the Response Authenticator check, so there is no answer
    assert len(server.requests) == 1
    assert (result.code, result.attempts, result.error is not None) == (None, 1, True)


@pytest.mark.contract
def test_invalid_client_arguments_are_refused_before_anything_is_sent():
    common = {"server": "127.0.0.1", "port": 1812, "secret": SECRET, "username": "a", "password": "b"}
    with pytest.raises(ValueError, match="method must be 'pap' or 'chap'"):
        authenticate(**common, method="mschap")
    with pytest.raises(ValueError, match="port must be 1-65535"):
        authenticate(**common | {"port": 0})
    with pytest.raises(ValueError, match="source address must be an IP address"):
        authenticate(**common, source_ip="localhost")
    with pytest.raises(ValueError, match="secret must be non-empty bytes"):
        authenticate(**common | {"secret": "text"})
    with pytest.raises(ValueError, match="NAS-IP-Address come from the arguments"):
        authenticate(**common, extra={"NAS-IP-Address": "10.0.0.1"})


# --- Accounting-Request -----------------------------------------------------------------------
@pytest.mark.behavior
def test_an_accounting_start_is_acknowledged_and_arrives_whole(radius_server):
    answered = account(
        server="127.0.0.1",
        port=radius_server.port,
        secret=SECRET,
        status="Start",
        attributes={"User-Name": "alice", "Acct-Session-Id": "81a00003", "Framed-IP-Address": "100.64.0.7"},
        source_ip="127.0.0.12",
    )

    assert answered is True
    [request] = radius_server.requests
    assert request["source"][0] == "127.0.0.12"
    assert request["attributes"] == {
        "Acct-Status-Type": ["Start"],
        "User-Name": ["alice"],
        "Acct-Session-Id": ["81a00003"],
        "Framed-IP-Address": ["100.64.0.7"],
    }


@pytest.mark.behavior
def test_accounting_with_the_wrong_secret_gets_no_response(radius_server):
    answered = account(
        server="127.0.0.1",
        port=radius_server.port,
        secret=b"wrong",
        status="Interim-Update",
        attributes={"Acct-Session-Id": "81a00003"},
        timeout=0.2,
        retries=0,
    )
    assert answered is False
    assert radius_server.requests == []


@pytest.mark.contract
def test_accounting_status_comes_from_the_argument_only():
    with pytest.raises(ValueError, match="status must be one of Start, Interim-Update, Stop"):
        build_accounting_request(secret=SECRET, status="Alive", attributes={})
    with pytest.raises(ValueError, match="Acct-Status-Type comes from status"):
        build_accounting_request(secret=SECRET, status="Stop", attributes={"Acct-Status-Type": "Start"})


# --- RFC 5176: CoA and Disconnect -------------------------------------------------------------
@pytest.mark.behavior
def test_a_coa_request_is_acknowledged_and_the_nas_sees_the_new_rate_limit():
    with NasSimulator(secret=SECRET) as nas:
        result = send_coa(
            nas_ip="127.0.0.1",
            port=nas.port,
            secret=SECRET,
            attributes={"Acct-Session-Id": "81a00003", "Mikrotik-Rate-Limit": "20M/100M"},
            source_ip="127.0.0.5",
        )
        [seen] = nas.received

    assert (result.outcome, result.attempts, result.error_cause) == ("ack", 1, None)
    assert result.detail.startswith(f"CoA-ACK from 127.0.0.1:{nas.port} after 1 attempt(s)")
    assert (seen.code_name, seen.verdict, seen.source[0]) == ("CoA-Request", "ack", "127.0.0.5")
    assert seen.attributes == {"Acct-Session-Id": ["81a00003"], "Mikrotik-Rate-Limit": ["20M/100M"]}


@pytest.mark.behavior
def test_a_disconnect_for_an_unknown_session_is_refused_at_once_with_error_cause_503():
    with NasSimulator(secret=SECRET, known_sessions={"81a00003"}) as nas:
        result = send_disconnect(
            nas_ip="127.0.0.1", port=nas.port, secret=SECRET, attributes={"Acct-Session-Id": "deadbeef"}, retries=3
        )
        received = nas.received

    assert (result.outcome, result.attempts, result.error_cause) == ("nak", 1, 503)
    assert result.error_cause_name == "Session-Context-Not-Found"
    assert result.detail.startswith(f"Disconnect-NAK from 127.0.0.1:{nas.port} after 1 attempt(s) in ")
    assert result.detail.endswith(" ms, Error-Cause 503 (Session-Context-Not-Found)")
    assert [r.verdict for r in received] == ["nak"]  # a NAK is final: nothing was sent again


@pytest.mark.behavior
def test_a_disconnect_ends_the_session_so_a_second_one_is_refused():
    with NasSimulator(secret=SECRET, known_sessions={"81a00003", "81a00004"}) as nas:
        first = send_disconnect(
            nas_ip="127.0.0.1",
            port=nas.port,
            secret=SECRET,
            attributes={"Acct-Session-Id": "81a00003", "User-Name": "alice"},
        )
        second = send_disconnect(
            nas_ip="127.0.0.1",
            port=nas.port,
            secret=SECRET,
            attributes={"Acct-Session-Id": "81a00003", "User-Name": "alice"},
        )
        missing = send_disconnect(nas_ip="127.0.0.1", port=nas.port, secret=SECRET, attributes={"User-Name": "alice"})
        sessions = nas.sessions

    assert (first.outcome, second.outcome, second.error_cause) == ("ack", "nak", 503)
    assert (missing.outcome, missing.error_cause) == ("nak", 402)  # Missing-Attribute
    assert sessions == {"81a00004"}


@pytest.mark.behavior
def test_dropped_requests_are_retransmitted_unchanged_until_the_nas_answers():
    with NasSimulator(secret=SECRET, drop_first=2) as nas:
        result = send_coa(
            nas_ip="127.0.0.1",
            port=nas.port,
            secret=SECRET,
            attributes={"Acct-Session-Id": "81a00003", "Mikrotik-Rate-Limit": "1M/1M"},
            timeout=0.1,
            retries=3,
            backoff=0.05,
        )
        received = nas.received

    assert (result.outcome, result.attempts) == ("ack", 3)
    # waited 0.1 + 0.05 after the first attempt, 0.1 + 0.1 after the second
    assert result.latency_ms >= 350
    assert [r.verdict for r in received] == ["dropped", "dropped", "ack"]
    assert len({(r.identifier, r.source) for r in received}) == 1


@pytest.mark.behavior
def test_a_retransmission_of_an_answered_request_gets_the_same_answer_again():
    with NasSimulator(secret=SECRET, known_sessions={"81a00003"}) as nas:
        request = CoAPacket(code=pyrad_packet.DisconnectRequest, secret=SECRET, dict=load_dictionary(), id=9)
        encode_attributes(request, {"Acct-Session-Id": "81a00003"})
        datagram = request.RequestPacket()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(datagram, ("127.0.0.1", nas.port))
            first = sock.recv(4096)
            sock.sendto(datagram, ("127.0.0.1", nas.port))
            again = sock.recv(4096)
        verdicts = [r.verdict for r in nas.received]

    # the session was ended by the first one; deciding again would have said NAK 503
    assert first[0] == pyrad_packet.DisconnectACK
    assert again == first
    assert verdicts == ["ack", "duplicate"]


@pytest.mark.behavior
def test_nobody_listening_is_a_timeout_after_every_retry(black_hole):
    started = time.perf_counter()
    result = send_disconnect(
        nas_ip="127.0.0.1",
        port=black_hole.port,
        secret=SECRET,
        attributes={"Acct-Session-Id": "81a00003"},
        timeout=0.1,
        retries=2,
        backoff=0.05,
    )
    elapsed = time.perf_counter() - started

    assert (result.outcome, result.attempts, result.latency_ms, result.error_cause) == ("timeout", 3, None, None)
    assert result.detail.startswith(f"no answer to Disconnect-Request from 127.0.0.1:{black_hole.port} after 3")
    assert elapsed >= 0.3 + 0.05 + 0.1
    assert len(black_hole.datagrams()) == 3


@pytest.mark.behavior
def test_the_nas_discards_a_request_signed_with_another_secret():
    with NasSimulator(secret=b"the-nas-secret") as nas:
        result = send_coa(
            nas_ip="127.0.0.1",
            port=nas.port,
            secret=SECRET,
            attributes={"Acct-Session-Id": "81a00003"},
            timeout=0.1,
            retries=1,
            backoff=0,
        )
        verdicts = [r.verdict for r in nas.received]

    assert (result.outcome, result.attempts) == ("timeout", 2)
    assert verdicts == ["bad-authenticator", "bad-authenticator"]


@pytest.mark.behavior
def test_a_custom_rule_answers_and_an_unexpected_answer_code_is_an_error():
    def refuse_rate_changes(code, attributes):
        return Answer.refuse(401) if "Mikrotik-Rate-Limit" in attributes else Answer.accept()

    with NasSimulator(secret=SECRET, rule=refuse_rate_changes) as nas:
        refused = send_coa(
            nas_ip="127.0.0.1",
            port=nas.port,
            secret=SECRET,
            attributes={"Acct-Session-Id": "1", "Mikrotik-Rate-Limit": "1M/1M"},
        )
        accepted = send_coa(
            nas_ip="127.0.0.1",
            port=nas.port,
            secret=SECRET,
            attributes={"Acct-Session-Id": "1", "Mikrotik-Address-List": "suspended"},
        )
    assert (refused.outcome, refused.error_cause_name) == ("nak", "Unsupported-Attribute")
    assert accepted.outcome == "ack"


@pytest.mark.behavior
def test_a_source_address_that_is_not_local_is_an_error_outcome_not_an_exception():
    result = send_disconnect(
        nas_ip="127.0.0.1", port=3799, secret=SECRET, attributes={"Acct-Session-Id": "1"}, source_ip="192.0.2.1"
    )
    assert (result.outcome, result.attempts, result.latency_ms) == ("error", 0, None)
    assert result.detail == (
        "Disconnect-Request to 127.0.0.1:3799 not sent: [Errno 99] Cannot assign requested address"
    )


@pytest.mark.smoke
def test_the_simulator_runs_from_the_command_line_and_prints_json_lines():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "network.radius.nas_simulator",
            "--port",
            "0",
            "--secret",
            SECRET.decode(),
            "--known-session",
            "81a00003",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        listening = json.loads(process.stdout.readline())
        result = send_disconnect(
            nas_ip="127.0.0.1", port=listening["port"], secret=SECRET, attributes={"Acct-Session-Id": "81a00003"}
        )
        request = json.loads(process.stdout.readline())
    finally:
        process.terminate()
        stopped = json.loads(process.stdout.readline())
        process.wait(timeout=5)

    assert listening["event"] == "listening"
    assert result.outcome == "ack"
    assert (request["code_name"], request["verdict"]) == ("Disconnect-Request", "ack")
    assert request["attributes"] == {"Acct-Session-Id": ["81a00003"]}
    assert stopped == {"event": "stopped", "received": 1}
    assert process.returncode == 0


# --- load generator ---------------------------------------------------------------------------
@pytest.mark.behavior
def test_auth_load_beyond_255_in_flight_uses_several_sockets_and_counts_every_answer(radius_server):
    credentials = [("alice", USERS["alice"])] * 500 + [("bob", "wrong")] * 100

    result = asyncio.run(
        run_auth_load(
            server="127.0.0.1",
            port=radius_server.port,
            secret=SECRET,
            credentials=credentials,
            in_flight=300,
            timeout=2.0,
            retries=2,
        )
    )

    assert result.sockets == 2  # 300 outstanding need two 8-bit Identifier spaces
    assert (result.sent, result.accepted, result.rejected, result.timeouts, result.errors) == (600, 500, 100, 0, 0)
    assert len(result.latencies_ms) == 600
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.per_second > 0
    assert len({r["source"] for r in radius_server.requests}) == 2


@pytest.mark.behavior
def test_chap_load_from_a_nas_address(radius_server):
    result = asyncio.run(
        run_auth_load(
            server="127.0.0.1",
            port=radius_server.port,
            secret=SECRET,
            credentials=[("bob", USERS["bob"])],
            requests=40,
            in_flight=8,
            method="chap",
            source_ip="127.0.0.12",
        )
    )
    assert (result.accepted, result.rejected, result.timeouts, result.errors) == (40, 0, 0, 0)
    assert {(r["method"], r["source"][0]) for r in radius_server.requests} == {("chap", "127.0.0.12")}


@pytest.mark.behavior
def test_acct_load_sends_start_then_interim_updates_per_session(radius_server):
    result = asyncio.run(
        run_acct_load(
            server="127.0.0.1",
            port=radius_server.port,
            secret=SECRET,
            usernames=[f"user{i}" for i in range(30)],
            interim_updates=2,
            in_flight=10,
        )
    )

    assert (result.sent, result.accepted, result.timeouts, result.errors) == (90, 90, 0, 0)
    by_session: dict[str, list] = {}
    for request in radius_server.requests:
        by_session.setdefault(request["attributes"]["Acct-Session-Id"][0], []).append(request["attributes"])
    assert len(by_session) == 30
    for updates in by_session.values():
        assert [u["Acct-Status-Type"][0] for u in updates] == ["Start", "Interim-Update", "Interim-Update"]
        second = updates[2]
        total_in = second["Acct-Input-Gigawords"][0] * 2**32 + second["Acct-Input-Octets"][0]
        assert total_in == 2 * (3 * 2**32 + 123_456_789)  # the counters passed 2^32: gigawords carry it


@pytest.mark.behavior
def test_load_against_silence_counts_timeouts(black_hole):
    result = asyncio.run(
        run_auth_load(
            server="127.0.0.1",
            port=black_hole.port,
            secret=SECRET,
            credentials=[("alice", "x")] * 4,
            in_flight=4,
            timeout=0.1,
            retries=1,
        )
    )
    assert (result.sent, result.timeouts, result.accepted, result.latencies_ms) == (4, 4, 0, [])
    assert (result.p50_ms, result.per_second) == (None, 0)
    assert len(black_hole.datagrams()) == 8  # each request sent twice


@pytest.mark.smoke
def test_the_load_generator_runs_from_the_command_line(radius_server):
    # given
    argv = ["--port", str(radius_server.port), "--secret", SECRET.decode(), "--in-flight", "4"]
    credentials = ["--user", "alice", "--password", USERS["alice"], "--requests", "20"]

    # when
    completed = subprocess.run(
        [sys.executable, "-m", "network.radius.loadgen", "auth", *argv, *credentials],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert (summary["kind"], summary["sent"], summary["accepted"], summary["timeouts"]) == ("auth", 20, 20, 0)
    assert summary["p50_ms"] <= summary["p99_ms"]


# --- manage.py radius_probe -------------------------------------------------------------------
def probe(port: int, *options: str, password: str = USERS["alice"]) -> None:
    call_command(
        "radius_probe",
        *("--server", "127.0.0.1", "--port", str(port), "--secret", SECRET.decode()),
        *("--user", "alice", "--password", password, *options),
    )


@pytest.mark.behavior
def test_the_probe_prints_the_answer_and_its_attributes(radius_server, capsys):
    probe(radius_server.port, "--chap", "--source-ip", "127.0.0.12")
    out = capsys.readouterr().out

    assert out.startswith(f"Access-Accept from 127.0.0.1:{radius_server.port} (CHAP, sent from 127.0.0.12) in ")
    assert "  Mikrotik-Rate-Limit = '10M/50M'" in out
    assert radius_server.requests[0]["attributes"]["NAS-IP-Address"] == ["127.0.0.12"]


@pytest.mark.behavior
def test_the_probe_summarises_several_requests(radius_server, capsys):
    probe(radius_server.port, "--count", "5")
    out = capsys.readouterr().out

    assert f"5 Access-Requests to 127.0.0.1:{radius_server.port} (PAP): 5 Access-Accept" in out
    assert re.search(r"^latency p50 \d+\.\d\d ms, max \d+\.\d\d ms$", out, re.MULTILINE)
    assert len(radius_server.requests) == 5


@pytest.mark.contract
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--server", "radius.example"], "--server must be an IP address, got 'radius.example'"),
        (["--port", "70000"], "--port must be 1-65535, got 70000"),
        (["--source-ip", "127.0.0.300"], "--source-ip must be an IP address"),
        (["--source-ip", "::1"], "not the same IP version"),
        (["--count", "0"], "--count must be 1-100000"),
        (["--secret", ""], "--secret (or --nas with --tenant) is required"),
    ],
)
def test_the_probe_refuses_bad_input_clearly(arguments, message):
    defaults = {"--server": "127.0.0.1", "--port": "1812", "--secret": "s", "--user": "u", "--password": "p"}
    given_args = dict(zip(arguments[::2], arguments[1::2], strict=True))
    argv = [part for flag, value in (defaults | given_args).items() for part in (flag, value)]
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("radius_probe", *argv)


@pytest.mark.behavior
def test_the_probe_fails_when_nothing_answers(black_hole):
    with pytest.raises(CommandError) as raised:
        probe(black_hole.port, "--timeout", "0.1", "--retries", "1")
    assert str(raised.value) == f"no answer from 127.0.0.1:{black_hole.port} within 0.2s"


@pytest.mark.behavior
def test_the_probe_fails_when_the_answer_is_not_the_expected_one(radius_server):
    with pytest.raises(CommandError, match="1 of 1 answers were not Access-Accept"):
        probe(radius_server.port, "--expect", "accept", password="wrong")


@pytest.mark.contract
def test_the_radius_package_is_pure_transport_without_django():
    for name in ("__init__.py", "client.py", "coa.py", "dictionary.py", "loadgen.py", "nas_simulator.py"):
        source = (REPO_ROOT / "network" / "radius" / name).read_text()
        assert not re.search(r"^\s*(import|from) django\b", source, re.MULTILINE), name
