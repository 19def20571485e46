"""FreeRADIUS run from the repo's configuration (network/radius/server.py), against the test
double of the RADIUS SQL contract (tests/network/radius_contract_double.sql) in a scratch database.

The database is reached through a TCP proxy that a test can stop: a database outage without
touching the shared PostgreSQL. Requests are sent with FreeRADIUS's own `radclient`, which can
pick its source address (Packet-Src-IP-Address): on Linux every 127.0.0.0/8 address is local,
so 127.0.0.1 and 127.0.0.12 are two NAS of two tenants.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import psycopg.rows
import pytest
from django.conf import settings
from psycopg import sql

from network.radius.server import (
    BaselineUser,
    FreeRadiusConfigError,
    FreeRadiusNotInstalled,
    FreeRadiusServer,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.network_monitoring,
    pytest.mark.skipif(shutil.which("freeradius") is None, reason="FreeRADIUS not installed (make setup)"),
]

CONTRACT_SQL = Path(__file__).resolve().parent / "radius_contract_double.sql"
US_NAS, US_SECRET = "127.0.0.1", "us-nas-secret"
EU_NAS, EU_SECRET = "127.0.0.12", "eu-nas-secret"
UNKNOWN_NAS = "127.0.0.13"


# -- helpers ------------------------------------------------------------------------------------
class TcpProxy:
    """127.0.0.1:<port> -> target. stop() closes the listener and every open connection, like a
    database that went away; start() listens on the same port again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close() alone does not)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def radclient(
    port: int, kind: str, secret: str, attributes: dict[str, object], *, source: str = US_NAS, timeout: float = 3
) -> tuple[str | None, dict[str, str]]:
    """Send one request with radclient; returns (reply code name or None, reply attributes)."""
    lines = [f"Packet-Src-IP-Address = {source}"] + [f'{name} = "{value}"' for name, value in attributes.items()]
    result = subprocess.run(
        ["radclient", "-x", "-r", "1", "-t", str(timeout), f"127.0.0.1:{port}", kind, secret],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=4 * timeout + 5,
        check=False,
    )
    match = re.search(r"^Received (\S+) Id \d+ .*$", result.stdout, re.MULTILINE)
    if not match:
        return None, {}
    reply = {}
    for line in result.stdout[match.end() :].splitlines()[1:]:
        if not line.startswith("\t"):
            break
        name, _, value = line.strip().partition(" = ")
        reply[name] = value.strip('"')
    return match.group(1), reply


def auth(
    radius: FreeRadiusServer,
    username: str,
    password: str,
    *,
    method: str = "pap",
    source: str = US_NAS,
    secret: str = US_SECRET,
    timeout: float = 3,
) -> tuple[str | None, dict[str, str]]:
    password_attribute = "User-Password" if method == "pap" else "CHAP-Password"
    return radclient(
        radius.auth_port,
        "auth",
        secret,
        {"User-Name": username, password_attribute: password},
        source=source,
        timeout=timeout,
    )


def acct(
    radius: FreeRadiusServer,
    status: str,
    session: str,
    *,
    username: str = "alice",
    source: str = US_NAS,
    secret: str = US_SECRET,
    **extra: object,
) -> str | None:
    attributes = {
        "User-Name": username,
        "Acct-Status-Type": status,
        "Acct-Session-Id": session,
        "NAS-IP-Address": "10.0.0.1",
        "NAS-Port-Id": "eth0/1:100",
        "NAS-Port": 7,
    }
    attributes.update({name.replace("_", "-"): value for name, value in extra.items()})
    code, _ = radclient(radius.acct_port, "acct", secret, attributes, source=source)
    return code


def unique_id(username: str, session: str) -> str:
    """acct_unique (policy.conf): md5 of User-Name, Acct-Session-Id, NAS-IP-Address,
    NAS-Identifier, NAS-Port-Id, NAS-Port joined by commas."""
    return hashlib.md5(f"{username},{session},10.0.0.1,,eth0/1:100,7".encode()).hexdigest()  # noqa: S324


def wait_for(predicate, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def admin_conninfo() -> dict[str, object]:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": int(db.get("PORT") or 5432),
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or None,
    }


@pytest.fixture(scope="module")
def scratch_db(admin_conninfo):
    """A throw-away database with the contract's test double, a role isp_radius (created if
    absent, kept afterwards) and two tenants: us_isp behind 127.0.0.1, eu_isp behind 127.0.0.12."""
    name = f"radius_scratch_{secrets.token_hex(4)}"
    with psycopg.connect(dbname="postgres", autocommit=True, **admin_conninfo) as admin:
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'isp_radius'").fetchone():
            admin.execute("CREATE ROLE isp_radius LOGIN")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(dbname=name, autocommit=True, **admin_conninfo) as conn:
            conn.execute(CONTRACT_SQL.read_text())
            conn.execute(
                "INSERT INTO radius_scratch.nas VALUES (%s, %s, 'us_isp'), (%s, %s, 'eu_isp')",
                (US_NAS, US_SECRET, EU_NAS, EU_SECRET),
            )
            conn.execute(
                """INSERT INTO radius_scratch.subscriber
                       (tenant, username, password, simultaneous_use, suspended, rate_limit, framed_ip)
                   VALUES ('us_isp', 'alice', 'alice-pw', 1, false, '10M/10M', '100.64.0.10'),
                          ('us_isp', 'carol', 'carol-pw', NULL, true, '5M/5M', NULL),
                          ('us_isp', 'dave', 'dave-pw', NULL, false, NULL, NULL),
                          ('us_isp', 'o''brien%', 'quote-pw', NULL, false, NULL, NULL),
                          ('eu_isp', 'bob', 'bob-pw', NULL, false, '20M/20M', NULL)"""
            )
        yield name
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **admin_conninfo) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def scratch(scratch_db, admin_conninfo):
    with psycopg.connect(dbname=scratch_db, autocommit=True, **admin_conninfo) as conn:
        yield conn


@pytest.fixture(scope="module")
def db_proxy(admin_conninfo):
    proxy = TcpProxy((str(admin_conninfo["host"]), int(admin_conninfo["port"])))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def radius(scratch_db, db_proxy, tmp_path_factory):
    server = FreeRadiusServer(
        mode="sql",
        name="test-sql",
        run_dir=tmp_path_factory.mktemp("radius-sql"),
        database={"host": "127.0.0.1", "port": db_proxy.port, "dbname": scratch_db, "user": "isp_radius"},
        replay_attempts=2,  # a record the database rejects is quarantined after ~5 s, not ~1 min
    )
    with server:
        yield server


def calls(scratch, **where: str) -> list[dict]:
    """Rows of radius_scratch.accounting_call matching column = value for every keyword."""
    conditions = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)) for column in where
    )
    query = sql.SQL("SELECT * FROM radius_scratch.accounting_call WHERE {} ORDER BY id").format(
        conditions if where else sql.SQL("true")
    )
    with scratch.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(query, where).fetchall()


# -- authentication -----------------------------------------------------------------------------
@pytest.mark.behavior
@pytest.mark.parametrize("method", ["pap", "chap"])
def test_known_subscriber_is_accepted_with_reply_attributes(radius, method):
    # when
    code, reply = auth(radius, "alice", "alice-pw", method=method)
    # then
    assert code == "Access-Accept"
    assert reply == {"Mikrotik-Rate-Limit": "10M/10M", "Framed-IP-Address": "100.64.0.10"}


@pytest.mark.behavior
@pytest.mark.parametrize("method", ["pap", "chap"])
def test_wrong_password_is_rejected_without_attributes(radius, method):
    code, reply = auth(radius, "alice", "not-the-password", method=method)
    assert (code, reply) == ("Access-Reject", {})


@pytest.mark.behavior
def test_unknown_and_suspended_subscribers_are_rejected(radius):
    assert auth(radius, "nobody", "x")[0] == "Access-Reject"
    assert auth(radius, "carol", "carol-pw") == ("Access-Reject", {})


@pytest.mark.behavior
def test_names_with_quotes_and_percent_signs_arrive_as_sent(radius):
    assert auth(radius, "o'brien%", "quote-pw")[0] == "Access-Accept"
    assert auth(radius, "o''brien%", "quote-pw")[0] == "Access-Reject"


@pytest.mark.behavior
def test_tenant_is_decided_by_the_nas_source_address(radius):
    # given: bob belongs to eu_isp (NAS 127.0.0.12), alice to us_isp (NAS 127.0.0.1)
    # when / then
    assert auth(radius, "bob", "bob-pw", source=EU_NAS, secret=EU_SECRET) == (
        "Access-Accept",
        {"Mikrotik-Rate-Limit": "20M/20M"},
    )
    assert auth(radius, "alice", "alice-pw", source=EU_NAS, secret=EU_SECRET)[0] == "Access-Reject"
    assert auth(radius, "bob", "bob-pw", source=US_NAS)[0] == "Access-Reject"


@pytest.mark.behavior
def test_unknown_nas_gets_no_answer_at_all(radius):
    code, _ = auth(radius, "alice", "alice-pw", source=UNKNOWN_NAS, secret=US_SECRET, timeout=1)
    assert code is None


@pytest.mark.behavior
def test_simultaneous_use_rejects_a_second_session_until_the_first_stops(radius):
    # given: alice (Simultaneous-Use := 1) has an open session
    assert acct(radius, "Start", "simul-1") == "Accounting-Response"
    # when / then
    assert auth(radius, "alice", "alice-pw")[0] == "Access-Reject"
    assert acct(radius, "Stop", "simul-1", Acct_Session_Time=30) == "Accounting-Response"
    assert auth(radius, "alice", "alice-pw")[0] == "Access-Accept"


# -- accounting ---------------------------------------------------------------------------------
@pytest.mark.contract
def test_accounting_calls_the_function_with_the_documented_arguments(radius, scratch):
    # given
    before = int(time.time())
    # when
    assert (
        acct(
            radius,
            "Start",
            "acct-1",
            Framed_IP_Address="100.64.0.10",
            Calling_Station_Id="AA-BB-CC-DD-EE-FF",
            NAS_Port_Type="Ethernet",
        )
        == "Accounting-Response"
    )
    assert (
        acct(
            radius,
            "Interim-Update",
            "acct-1",
            Acct_Session_Time=60,
            Acct_Input_Octets=1000,
            Acct_Input_Gigawords=1,
            Acct_Output_Octets=5000,
            Event_Timestamp=1_700_000_000,
        )
        == "Accounting-Response"
    )
    assert (
        acct(radius, "Stop", "acct-1", Acct_Session_Time=120, Acct_Terminate_Cause="User-Request", Acct_Delay_Time=5)
        == "Accounting-Response"
    )
    after = int(time.time())
    # then
    start, interim, stop = calls(scratch, session_id="acct-1")
    assert {c["unique_id"] for c in (start, interim, stop)} == {unique_id("alice", "acct-1")}
    assert start["args"] == [
        "us_isp",
        "Start",
        unique_id("alice", "acct-1"),
        "acct-1",
        "alice",
        "10.0.0.1",
        "eth0/1:100",
        "Ethernet",
        "100.64.0.10",
        "AA-BB-CC-DD-EE-FF",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        start["event_time"],
    ]
    assert before <= int(start["event_time"]) <= after
    assert interim["args"][11:18] == ["60", "1000", "1", "5000", "", "", "1700000000"]
    assert stop["args"][16] == "User-Request"
    assert before - 5 <= int(stop["event_time"]) <= after - 5  # Event-Timestamp = arrival - Acct-Delay-Time


@pytest.mark.behavior
def test_a_nas_without_nas_ip_address_is_identified_by_its_source_address(radius, scratch):
    # given a NAS that names itself by NAS-Identifier only
    attributes = {
        "User-Name": "frank",
        "Acct-Status-Type": "Start",
        "Acct-Session-Id": "no-nas-ip",
        "NAS-Identifier": "bras-1",
    }
    # when
    code, _ = radclient(radius.acct_port, "acct", US_SECRET, attributes)
    # then
    assert code == "Accounting-Response"
    (call,) = calls(scratch, session_id="no-nas-ip")
    assert call["args"][5] == US_NAS
    assert call["unique_id"] == hashlib.md5(b"frank,no-nas-ip,127.0.0.1,bras-1,,").hexdigest()  # noqa: S324


@pytest.mark.behavior
def test_accounting_of_the_other_tenant_carries_its_tenant(radius, scratch):
    assert acct(radius, "Start", "eu-1", username="bob", source=EU_NAS, secret=EU_SECRET) == "Accounting-Response"
    assert [c["tenant"] for c in calls(scratch, session_id="eu-1")] == ["eu_isp"]


@pytest.mark.data_safety
@pytest.mark.behavior
def test_accounting_during_a_database_outage_is_spooled_and_replayed_exactly_once(radius, scratch, db_proxy):
    # given: a NAS the server knows (its client is cached), and then the database is unreachable
    assert auth(radius, "dave", "dave-pw")[0] == "Access-Accept"
    db_proxy.stop()
    sent = [
        ("Start", "outage-1", {}),
        ("Start", "outage-2", {"Event_Timestamp": 1_700_000_100}),
        ("Interim-Update", "outage-1", {"Acct_Session_Time": 10, "Acct_Input_Octets": 100}),
        ("Stop", "outage-2", {"Acct_Session_Time": 20, "Acct_Delay_Time": 3}),
        ("Stop", "outage-1", {"Acct_Session_Time": 30}),
    ]
    try:
        # when: the NAS sends accounting
        before = int(time.time())
        for status, session, extra in sent:
            assert acct(radius, status, session, username="dave", **extra) == "Accounting-Response"
        after = int(time.time())
        # then: every request was answered and spooled, none stored
        assert radius.spooled_files(), radius.log_tail()
        assert calls(scratch, username="dave") == []
        time.sleep(2)  # the replay keeps failing while the database is away
        assert calls(scratch, username="dave") == []
    finally:
        db_proxy.start()

    # when the database is back, the replay stores everything and empties the spool
    stored = wait_for(lambda: len(calls(scratch, username="dave")) >= len(sent), timeout=45)
    assert stored, radius.log_tail()
    assert wait_for(lambda: not radius.spooled_files(), timeout=15), radius.spooled_files()
    time.sleep(1)  # nothing arrives twice
    rows = calls(scratch, username="dave")
    assert sorted((r["status"], r["session_id"]) for r in rows) == sorted((s, sess) for s, sess, _ in sent)
    assert {r["unique_id"] for r in rows if r["session_id"] == "outage-1"} == {unique_id("dave", "outage-1")}
    # event times are those of the NAS, not of the replay
    by_key = {(r["status"], r["session_id"]): int(r["event_time"]) for r in rows}
    assert by_key[("Start", "outage-2")] == 1_700_000_100
    assert before - 3 <= by_key[("Stop", "outage-2")] <= after - 3
    assert before <= by_key[("Start", "outage-1")] <= after
    assert radius.quarantined_files() == []
    # and the live path works again
    assert acct(radius, "Start", "after-outage", username="dave") == "Accounting-Response"
    assert len(calls(scratch, session_id="after-outage")) == 1


@pytest.mark.behavior
def test_accounting_status_types_outside_the_contract_are_acknowledged_not_stored(radius, scratch):
    assert acct(radius, "Failed", "failed-1") == "Accounting-Response"
    assert calls(scratch, session_id="failed-1") == []


@pytest.mark.behavior
def test_no_answer_to_access_requests_while_the_database_is_down(radius, db_proxy):
    # given: the NAS is known (cached client), then the database goes away
    assert auth(radius, "alice", "alice-pw", method="chap")[0] == "Access-Accept"
    db_proxy.stop()
    try:
        # when / then: silence (the NAS retries or fails over), not an Access-Reject
        assert auth(radius, "alice", "alice-pw", timeout=1)[0] is None
    finally:
        db_proxy.start()
    assert wait_for(lambda: auth(radius, "alice", "alice-pw", method="chap")[0] == "Access-Accept", timeout=10)


@pytest.mark.data_safety
@pytest.mark.behavior
def test_a_record_the_database_rejects_is_quarantined_and_does_not_hold_up_the_spool(radius, scratch, db_proxy):
    # given: the database rejects any record of user "poison" (a trigger on the test double)
    scratch.execute(
        """CREATE FUNCTION radius_scratch.reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.username = 'poison' THEN RAISE EXCEPTION 'rejected'; END IF; RETURN NEW; END $$;
           CREATE TRIGGER reject_poison BEFORE INSERT ON radius_scratch.accounting_call
              FOR EACH ROW EXECUTE FUNCTION radius_scratch.reject_poison()"""
    )
    try:
        # and a spool holding the bad record first, a good one behind it
        assert auth(radius, "dave", "dave-pw")[0] == "Access-Accept"
        db_proxy.stop()
        try:
            assert acct(radius, "Start", "poison-1", username="poison") == "Accounting-Response"
            assert acct(radius, "Start", "behind-poison", username="dave") == "Accounting-Response"
        finally:
            db_proxy.start()
        # when the replay runs, then the good record is stored and the bad one quarantined
        assert wait_for(lambda: calls(scratch, session_id="behind-poison"), timeout=45), radius.log_tail()
        assert wait_for(lambda: not radius.spooled_files(), timeout=15)
        quarantined = "".join(path.read_text() for path in radius.quarantined_files())
        assert 'Acct-Session-Id = "poison-1"' in quarantined
        assert "behind-poison" not in quarantined
        # a bad record sent live is acknowledged too, and ends in the quarantine as well
        assert acct(radius, "Start", "poison-2", username="poison") == "Accounting-Response"
        assert wait_for(
            lambda: "poison-2" in "".join(path.read_text() for path in radius.quarantined_files()), timeout=30
        ), radius.log_tail()
    finally:
        scratch.execute("DROP TRIGGER reject_poison ON radius_scratch.accounting_call")
    assert calls(scratch, username="poison") == []


# -- the server itself --------------------------------------------------------------------------
@pytest.mark.smoke
def test_listens_on_loopback_only(radius):
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) not installed")
    output = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True, check=True).stdout
    mine = [line.split() for line in output.splitlines() if f"pid={radius.pid}," in line]
    local = {fields[4] for fields in mine}
    assert local == {f"127.0.0.1:{radius.auth_port}", f"127.0.0.1:{radius.acct_port}"}


@pytest.mark.smoke
def test_starts_while_the_database_is_down(scratch_db, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    server = FreeRadiusServer(
        mode="sql", run_dir=tmp_path / "run", database={"host": "127.0.0.1", "port": dead_port, "dbname": scratch_db}
    )
    with server:
        assert server.is_running()
        # the NAS cannot be looked up: no answer (rather than a wrong one)
        assert auth(server, "alice", "alice-pw", timeout=1)[0] is None
    assert not server.is_running()


@pytest.mark.behavior
def test_files_mode_baseline_authenticates_from_the_users_file(tmp_path):
    users = [BaselineUser("user0001", "pw-1", {"Mikrotik-Rate-Limit": "10M/10M"}), BaselineUser("o'neil", "p'w")]
    with FreeRadiusServer(
        mode="files", run_dir=tmp_path / "run", static_client_secret="bench-secret", users=users
    ) as server:
        assert auth(server, "user0001", "pw-1", secret="bench-secret") == (
            "Access-Accept",
            {"Mikrotik-Rate-Limit": "10M/10M"},
        )
        assert auth(server, "user0001", "pw-1", method="chap", secret="bench-secret")[0] == "Access-Accept"
        assert auth(server, "o'neil", "p'w", secret="bench-secret")[0] == "Access-Accept"
        assert auth(server, "user0001", "wrong", secret="bench-secret")[0] == "Access-Reject"
        assert "sql" not in (server.run_dir / "mode-files.conf").read_text().split("modules {")[1].split("}")[0]


@pytest.mark.behavior
def test_a_users_file_cannot_define_the_match_anyone_entry(tmp_path):
    with pytest.raises(ValueError, match="DEFAULT"):
        FreeRadiusServer(
            mode="files", run_dir=tmp_path, static_client_secret="s", users=[BaselineUser("DEFAULT", "x")]
        ).render()


@pytest.mark.behavior
def test_a_broken_configuration_is_reported_with_the_log(tmp_path):
    server = FreeRadiusServer(
        mode="files", run_dir=tmp_path / "run", static_client_secret="s", users=[BaselineUser("a", "b")]
    )
    server.render()
    (server.run_dir / "users").write_text("a Cleartext-Password := \n")  # an incomplete users entry
    with pytest.raises(FreeRadiusConfigError, match="users"):
        server.check()


@pytest.mark.behavior
def test_missing_binary_says_how_to_install_it(tmp_path):
    server = FreeRadiusServer(mode="files", run_dir=tmp_path, static_client_secret="s", binary="no-such-freeradius")
    with pytest.raises(FreeRadiusNotInstalled, match="make setup"):
        server.start()
