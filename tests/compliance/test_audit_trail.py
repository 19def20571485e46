"""The audit trail as evidence: append-only in PostgreSQL, hash-chained per schema (a gap-free seq
given when the writing transaction commits, under a per-schema lock held only for the seal, so
writers never wait for each other while they work), verified by `audit_verify`, which names the
first edited, deleted, reordered or unsealed record; purged only through the audited retention
path; read-only for everyone in the admin and the API, which searches it within the asking tenant.

Tests run in a rolled-back transaction that never commits, so they seal their records with
`seal_pending()` (what COMMIT does) before they look at the chain. Tampering is simulated the only
way it can happen: as a database superuser with the triggers off (`session_replication_role =
replica`), inside the rolled-back test transaction."""

from __future__ import annotations

import datetime
import importlib
import io
import threading
import time
import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from compliance.audit import Actor, audit_many, audit_pii_reveal, audit_record
from compliance.chain import GENESIS, PURGE_ACTION, ChainRow, audit_retention_purge, chain_verify, seal_pending
from compliance.models import AuditEvent
from tenants import roles
from tenants.models import Tenant
from tenants.services import tenant_create
from tests.clients import TenantAdminClient
from tests.factories import StaffUserFactory

pytestmark = [pytest.mark.data_safety]

SYSTEM = Actor.system("audit trail test")
TRIGGERS = {
    "compliance_auditevent_append_only",
    "compliance_auditevent_chain",
    "compliance_auditevent_enqueue",
    "compliance_auditevent_no_truncate",
}
AUDIT_MIGRATION = importlib.import_module("compliance.migrations.0002_audit_chain")


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def us_tenant(db):
    """One matrix tenant (the chain mechanics do not depend on the tenant's profile)."""
    tenant = Tenant.objects.get(slug="us-isp")
    connection.set_tenant(tenant)
    yield tenant
    connection.set_schema_to_public()


def sealed(events: list[AuditEvent]) -> list[AuditEvent]:
    """The events as stored once sealed (what the commit of their transaction does)."""
    seal_pending()
    for event in events:
        event.refresh_from_db()
    return events


def record(n: int, prefix: str = "test.audit") -> list[AuditEvent]:
    return sealed(
        [
            audit_record(actor=SYSTEM, action=f"{prefix}.{i}", object_type="tests.thing", object_id=str(i))
            for i in range(n)
        ]
    )


def triggers_of(schema: str, table: str = "compliance_auditevent") -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND NOT t.tgisinternal",
            [schema, table],
        )
        return {row[0] for row in cursor.fetchall()}


def carries_the_chain(schema: str) -> bool:
    return triggers_of(schema) == TRIGGERS and triggers_of(schema, "compliance_auditqueue") == {
        "compliance_auditqueue_seal"
    }


def tamper(statement: str, params=()) -> None:
    """Run SQL with the triggers off, as a superuser could (until the test transaction rolls back)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(statement, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def verify_command(schema: str) -> tuple[bool, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", tenant=schema, stdout=out, stderr=err)
    except CommandError as exc:
        return False, out.getvalue(), err.getvalue() + str(exc)
    return True, out.getvalue(), err.getvalue()


def stored_chain(schema: str) -> list[tuple[int, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT seq, prev_hash, hash FROM {}.compliance_auditevent ORDER BY seq").format(
                sql.Identifier(schema)
            )
        )
        return cursor.fetchall()


# --- append-only --------------------------------------------------------------------------------


@pytest.mark.behavior
@pytest.mark.parametrize("schema", ["public", "tenant_template", "tenant_us_isp"])
def test_update_delete_and_truncate_are_refused_by_the_database(db, schema):
    # given: an event in the schema
    connection.set_schema(schema)
    written = audit_record(actor=SYSTEM, action="test.immutable", object_type="tests.thing", object_id="1")
    # it is written unsealed, and sealed by its transaction's commit
    assert (written.seq, written.hash) == (None, "")
    (event,) = sealed([written])
    assert event.seq is not None
    assert len(event.hash) == 64
    # when / then: no way of changing it through the ORM or SQL, its chain fields included
    attempts = {
        "queryset update": lambda: AuditEvent.objects.filter(pk=event.pk).update(action="test.forged"),
        "re-seal": lambda: AuditEvent.objects.filter(pk=event.pk).update(seq=event.seq + 1000, hash="0" * 64),
        "instance save": lambda: AuditEvent.objects.get(pk=event.pk).save(),
        "queryset delete": lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
        "instance delete": lambda: AuditEvent.objects.get(pk=event.pk).delete(),
        "truncate": lambda: connection.cursor().execute("TRUNCATE compliance_auditevent"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(IntegrityError, match="append-only") as excinfo, transaction.atomic():
            attempt()
        assert "refused" in str(excinfo.value), what
    # then: the event is as it was written, still chained
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.seq, stored.hash) == ("test.immutable", event.seq, event.hash)
    assert chain_verify(schema=schema).ok
    connection.set_schema_to_public()


@pytest.mark.behavior
def test_the_template_and_a_tenant_created_after_the_migration_carry_the_triggers(public_schema):
    # given: the template (migrated) and the public schema
    assert carries_the_chain(settings.TENANT_BASE_SCHEMA)
    assert carries_the_chain("public")
    # when: a tenant is provisioned by cloning the template (which copies no trigger by itself)
    created = tenant_create(
        slug="chain-new", name="Chain New", currency="EUR", country="FR", admin_email="a@chain.example", actor=SYSTEM
    )
    schema = created.tenant.schema_name
    # then: the clone refuses edits and chains its own events from seq 1
    assert carries_the_chain(schema)
    seal_pending()
    connection.set_tenant(created.tenant)
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.action for e in events] == ["tenant.created", "staff.created"]
    assert [e.seq for e in events] == [1, 2]
    assert events[0].prev_hash == GENESIS
    assert events[1].prev_hash == events[0].hash
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(action="tenant.created").update(reason="forged")
    ok, out, _err = verify_command(schema)
    assert ok
    assert f"{schema}: ok: 2 records" in out
    connection.set_schema_to_public()


# --- the chain ----------------------------------------------------------------------------------


@pytest.mark.behavior
def test_the_migration_chains_the_records_written_before_it_in_their_order(db):
    """Existing databases: records written under 0001 are chained by 0002, in (occurred_at, id) order."""
    from django.db.migrations.executor import MigrationExecutor

    # given: a schema at compliance 0001 with records written out of id order
    scratch = f"audit_backfill_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
    connection.set_schema(scratch)
    MigrationExecutor(connection).migrate([("compliance", "0001_initial")])
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with connection.cursor() as cursor:
        for minutes, action in ((3, "third"), (1, "first"), (2, "second")):
            cursor.execute(
                "INSERT INTO compliance_auditevent (occurred_at, actor_type, actor_id, actor_label, action, "
                "object_type, object_id, changed_fields, reason, request_id) "
                "VALUES (%s, 'system', '', 'old', %s, '', '', '[\"a\"]', '', '')",
                [base + datetime.timedelta(minutes=minutes), action],
            )
    # when
    MigrationExecutor(connection).migrate([("compliance", "0002_audit_chain")])
    # then
    with connection.cursor() as cursor:
        cursor.execute("SELECT action, seq FROM compliance_auditevent ORDER BY seq")
        assert cursor.fetchall() == [("first", 1), ("second", 2), ("third", 3)]
    assert carries_the_chain(scratch)
    sealed([audit_record(actor=SYSTEM, action="after.migration")])
    report = chain_verify(schema=scratch)
    assert report.ok, report.findings
    assert (report.records, report.head_seq) == (4, 4)
    connection.set_schema_to_public()


@pytest.mark.behavior
def test_every_writer_chains_single_inserts_bulk_create_copy_and_forged_chain_values(us_tenant):
    # given: the chain head before the test
    head = AuditEvent.objects.order_by("-seq").first()
    start_seq, start_hash = (head.seq, head.hash) if head else (0, GENESIS)
    staff = [StaffUserFactory(role=roles.SUPPORT) for _ in range(3)]
    # when: events are written by audit_record, bulk_create (pii reveal, audit_many), COPY and an
    # ORM create that tries to choose its own chain values
    singles = [audit_record(actor=SYSTEM, action=f"test.single.{i}") for i in range(25)]
    revealed = audit_pii_reveal(actor=SYSTEM, objects=staff * 10, fields=["email"])
    many = audit_many(actor=SYSTEM, action="test.many", entries=[(user, ["is_active"], "") for user in staff])
    with (
        connection.cursor() as cursor,
        cursor.copy(
            "COPY compliance_auditevent (occurred_at, actor_type, actor_id, actor_label, action, object_type, "
            "object_id, changed_fields, reason, request_id) FROM STDIN"
        ) as copy,
    ):
        for i in range(5):
            copy.write_row((timezone.now(), "system", "", "copy", "test.copied", "tests.thing", str(i), "[]", "", ""))
    forged = AuditEvent.objects.create(actor_type="system", action="test.forged", seq=1, prev_hash="f" * 64, hash="0")
    # then: the database ignored the forged chain values; the records wait for the commit
    assert AuditEvent.objects.filter(seq__isnull=True).count() == 64
    sealed([*singles, forged])
    # and once sealed: 25 + 30 + 3 + 5 + 1 new records, gap-free after the old head, in the order
    # they were written, each linked to the one before
    chain = [row for row in stored_chain(us_tenant.schema_name) if row[0] > start_seq]
    assert revealed == 30
    assert many == 3
    assert [seq for seq, _, _ in chain] == list(range(start_seq + 1, start_seq + 65))
    previous = start_hash
    for _seq, prev_hash, digest in chain:
        assert prev_hash == previous
        previous = digest
    assert [e.seq for e in singles] == list(range(start_seq + 1, start_seq + 26))
    assert singles[3].hash == AuditEvent.objects.get(pk=singles[3].pk).hash
    assert (forged.seq, forged.hash) == (start_seq + 64, chain[-1][2])
    assert forged.prev_hash == chain[-2][2]
    report = chain_verify(schema=us_tenant.schema_name)
    assert report.ok, report.findings
    assert (report.head_seq, report.head_hash) == (forged.seq, forged.hash)
    assert report.records == AuditEvent.objects.count()


@pytest.mark.property
@given(
    texts=st.lists(st.text(max_size=40), min_size=9, max_size=9),
    changed=st.lists(st.text(max_size=12), max_size=4),
    ip=st.one_of(st.none(), st.ip_addresses().map(str)),
    seq=st.integers(1, 2**62),
    micros=st.integers(0, 4_000_000_000_000_000),
)
def test_the_verifier_and_the_database_hash_the_same_canonical_form(django_db_blocker, texts, changed, ip, seq, micros):
    """Python re-implements the trigger's canonical form; they agree on any text (separators,
    digits, '~', non-ASCII), any changed-field list, IPv4/IPv6 or none and any instant."""
    import json

    texts = [t.replace("\x00", "") for t in texts]  # PostgreSQL text holds no NUL
    changed = [c.replace("\x00", "") for c in changed]
    occurred = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(microseconds=micros)
    actor_type, actor_id, actor_label, action, object_type, object_id, reason, request_id, prev = texts
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT public.compliance_audit_digest(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, "
            "%s::inet, %s), %s::jsonb::text, host(%s::inet)",
            [
                seq,
                seq + 7,
                occurred,
                actor_type,
                actor_id,
                actor_label,
                action,
                object_type,
                object_id,
                json.dumps(changed),
                reason,
                request_id,
                ip,
                prev,
                json.dumps(changed),
                ip,
            ],
        )
        database_hash, changed_text, host = cursor.fetchone()
    row = ChainRow(
        seq,
        seq + 7,
        occurred,
        actor_type,
        actor_id,
        actor_label,
        action,
        object_type,
        object_id,
        changed_text,
        reason,
        request_id,
        host,
        prev,
        database_hash,
    )
    assert row.computed_hash() == database_hash
    # moving text from one field into its neighbour changes the canonical form (no ambiguity)
    shifted = ChainRow(
        seq,
        seq + 7,
        occurred,
        actor_type,
        actor_id + actor_label + "|",
        "",
        action,
        object_type,
        object_id,
        changed_text,
        reason,
        request_id,
        host,
        prev,
        database_hash,
    )
    assert shifted.canonical() != row.canonical()


@pytest.mark.behavior
def test_concurrent_writers_never_wait_for_each_other_and_are_chained_in_commit_order(django_db_blocker):
    """Two real connections (threads) write into one schema at the same time: neither waits for
    the other while its transaction is open; each transaction's records are chained when it
    commits, in commit order; many mixed writes stay gap-free.

    Committed data is needed, so this runs in a scratch schema with the audit table, its queue and
    their triggers, dropped at the end (audit rows cannot be deleted, not even by a test)."""
    scratch = f"audit_scratch_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
            cursor.execute(
                sql.SQL("CREATE TABLE {}.compliance_auditevent (LIKE {}.compliance_auditevent INCLUDING ALL)").format(
                    sql.Identifier(scratch), sql.Identifier(settings.TENANT_BASE_SCHEMA)
                )
            )
            cursor.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(scratch)))
            for create, _drop in AUDIT_MIGRATION.TRIGGERS:
                for statement in create if isinstance(create, list) else [create]:
                    cursor.execute(statement)
        try:
            _concurrent_writers(scratch)
        finally:
            connection.set_schema_to_public()
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(scratch)))


def _concurrent_writers(scratch: str) -> None:
    errors: list[BaseException] = []
    written: dict[str, int] = {}
    a_written, b_committed, release_a = threading.Event(), threading.Event(), threading.Event()

    def in_thread(target):
        def run():
            try:
                connection.set_schema(scratch)
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
            finally:
                connection.close()

        return threading.Thread(target=run)

    def writer_a():
        with transaction.atomic():
            written["a"] = AuditEvent.objects.create(actor_type="system", action="test.a").pk
            a_written.set()
            release_a.wait(10)

    def writer_b():
        a_written.wait(10)
        with transaction.atomic():
            written["b"] = AuditEvent.objects.create(actor_type="system", action="test.b").pk
        b_committed.set()

    # given: A has written and keeps its transaction open; B writes too
    threads = [in_thread(writer_a), in_thread(writer_b)]
    for thread in threads:
        thread.start()
    # then: B commits while A is still open (no lock is taken before the commit)
    assert b_committed.wait(10), "the second writer waited for the first"
    release_a.set()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    # and the records are chained in commit order: B first, A after it
    connection.set_schema(scratch)
    a, b = AuditEvent.objects.get(pk=written["a"]), AuditEvent.objects.get(pk=written["b"])
    assert (b.seq, a.seq) == (1, 2)
    assert (b.prev_hash, a.prev_hash) == (GENESIS, b.hash)
    assert a.pk < b.pk  # written first, committed last

    # when: two writers race through many short transactions, single and bulk inserts mixed
    def racer(name: str):
        def run():
            for i in range(15):
                with transaction.atomic():
                    if i % 3 == 0:
                        AuditEvent.objects.bulk_create(
                            [AuditEvent(actor_type="system", action=f"test.{name}.bulk") for _ in range(4)]
                        )
                    else:
                        AuditEvent.objects.create(actor_type="system", action=f"test.{name}.single")
                    time.sleep(0.002 * (i % 4))

        return run

    racers = [in_thread(racer("x")), in_thread(racer("y"))]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join(60)
    assert not errors, errors
    # then: 2 + 2 * (5 * 4 + 10) records, seq 1..62 without a gap, and the chain verifies
    report = chain_verify(schema=scratch)
    assert report.ok, report.findings
    assert (report.records, report.first_seq, report.head_seq) == (62, 1, 62)


# --- tamper detection ---------------------------------------------------------------------------


@pytest.mark.behavior
def test_audit_verify_reports_ok_with_the_record_count(us_tenant):
    record(3)
    count = AuditEvent.objects.count()
    ok, out, _err = verify_command(us_tenant.slug)
    assert ok
    assert f"tenant_us_isp: ok: {count} records" in out
    # --all covers the platform, the template and every tenant
    out = io.StringIO()
    call_command("audit_verify", all=True, stdout=out)
    schemas = {line.split(":")[0] for line in out.getvalue().splitlines()}
    assert {"public", "tenant_template", "tenant_us_isp", "tenant_eu_isp", "tenant_jp_isp"} <= schemas


@pytest.mark.behavior
def test_an_edited_record_is_found_at_its_position(us_tenant):
    events = record(10)
    target = events[4]
    tamper("UPDATE compliance_auditevent SET actor_label = 'someone else' WHERE id = %s", [target.pk])
    report = chain_verify(schema=us_tenant.schema_name)
    assert [(f.kind, f.seq, f.id) for f in report.findings] == [("edited", target.seq, target.pk)]
    ok, _out, err = verify_command(us_tenant.schema_name)
    assert not ok
    assert f"TAMPERED: first edited at seq {target.seq} (id {target.pk})" in err


@pytest.mark.behavior
def test_an_edited_and_rehashed_record_is_found_through_its_successors_link(us_tenant):
    # given: the forger also recomputes the edited record's own hash (with the database's function)
    events = record(10)
    target = events[4]
    tamper(
        "UPDATE compliance_auditevent SET reason = 'nothing happened', hash = public.compliance_audit_digest("
        "seq, id, occurred_at, actor_type, actor_id, actor_label, action, object_type, object_id, changed_fields, "
        "'nothing happened', request_id, source_ip, prev_hash) WHERE id = %s",
        [target.pk],
    )
    report = chain_verify(schema=us_tenant.schema_name)
    assert [(f.kind, f.seq, f.id) for f in report.findings] == [("edited", target.seq, target.pk)]
    assert "re-hashed" in report.findings[0].detail


@pytest.mark.behavior
def test_a_deleted_record_is_found_as_a_gap(us_tenant):
    events = record(10)
    target = events[4]
    tamper("DELETE FROM compliance_auditevent WHERE id = %s", [target.pk])
    report = chain_verify(schema=us_tenant.schema_name)
    assert [(f.kind, f.seq, f.id) for f in report.findings] == [("deleted", target.seq, None)]
    assert f"next present: seq {events[5].seq}, id {events[5].pk}" in report.findings[0].detail
    ok, _out, err = verify_command(us_tenant.schema_name)
    assert not ok
    assert f"TAMPERED: first deleted at seq {target.seq}: records seq {target.seq}..{target.seq}" in err


@pytest.mark.behavior
def test_reordered_records_are_found_at_their_new_positions(us_tenant):
    # given: two neighbours swap places in the chain
    events = record(10)
    first, second = events[4], events[5]
    swap = "UPDATE compliance_auditevent SET seq = %s WHERE id = %s"
    tamper(swap, [-1, first.pk])  # seq is unique: through a free value
    tamper(swap, [first.seq, second.pk])
    tamper(swap, [second.seq, first.pk])
    report = chain_verify(schema=us_tenant.schema_name)
    # then: the record now at the first position (second) and the one now at the second (first)
    assert [(f.kind, f.seq, f.id) for f in report.findings] == [
        ("reordered", first.seq, second.pk),
        ("reordered", second.seq, first.pk),
    ]
    ok, _out, err = verify_command(us_tenant.schema_name)
    assert not ok
    assert f"TAMPERED: first reordered at seq {first.seq} (id {second.pk})" in err


# --- retention ----------------------------------------------------------------------------------


@pytest.mark.behavior
def test_the_retention_purge_is_the_one_audited_way_out_and_the_chain_still_verifies(us_tenant):
    # given: old events, a cutoff, newer events
    record(5, "test.old")
    cutoff = timezone.now()
    newer = record(3, "test.new")
    before = AuditEvent.objects.count()
    operator = Actor(type="user", id="7", label="dpo@isp.example")
    # when
    purged = audit_retention_purge(older_than=cutoff, actor=operator, reason="policy: 7 years")
    seal_pending()  # the purge's checkpoint is chained when the purge commits
    # then: every record before the first newer one is gone; a checkpoint records who, what and the anchor
    assert purged == before - 3
    remaining = list(AuditEvent.objects.order_by("seq"))
    assert [e.action for e in remaining] == ["test.new.0", "test.new.1", "test.new.2", PURGE_ACTION]
    checkpoint = remaining[-1]
    assert (checkpoint.actor_label, checkpoint.object_id) == ("dpo@isp.example", str(newer[0].seq - 1))
    assert f"anchor {newer[0].prev_hash}" in checkpoint.reason
    report = chain_verify(schema=us_tenant.schema_name)
    assert report.ok, report.findings
    assert (report.purged_through, report.records) == (newer[0].seq - 1, 4)
    # a delete without a checkpoint for it stays refused, even with the purge setting forged
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('compliance.audit_purge_through', %s, true)", [str(newer[1].seq)])
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=newer[0].pk).delete()
    # and deleting the first kept records behind the purge's back is found
    tamper("DELETE FROM compliance_auditevent WHERE id = %s", [newer[0].pk])
    first = chain_verify(schema=us_tenant.schema_name).first_finding
    assert (first.kind, first.seq) == ("deleted", 1)


@pytest.mark.behavior
def test_the_retention_purge_refuses_to_erase_a_broken_chain(us_tenant):
    events = record(4)
    tamper("UPDATE compliance_auditevent SET action = 'test.forged' WHERE id = %s", [events[1].pk])
    count = AuditEvent.objects.count()
    with pytest.raises(ValidationError, match="does not verify"):
        audit_retention_purge(older_than=timezone.now(), actor=SYSTEM)
    assert AuditEvent.objects.count() == count


# --- admin --------------------------------------------------------------------------------------


@pytest.mark.behavior
def test_the_admin_shows_the_trail_to_an_auditor_read_only_and_searchable(tenant):
    # given
    event = AuditEvent.objects.create(
        actor_type="user",
        actor_label="alice@isp.example",
        action="test.admin_view",
        object_type="tests.thing",
        object_id="77",
        request_id="req-admin-find-me",
    )
    other = AuditEvent.objects.create(actor_type="system", action="test.admin_other", request_id="req-other")
    sealed([event, other])
    user = StaffUserFactory(role=roles.AUDITOR)
    client = TenantAdminClient(HTTP_HOST=tenant.primary_host)
    client.force_login(user)
    url = "/admin/compliance/auditevent/"
    # when: searching by request id
    found = client.get(url, {"q": "req-admin-find-me"})
    # then: the matching record, and no way to act on it
    assert found.status_code == 200
    shown = [obj.pk for obj in found.context["cl"].result_list]
    assert shown == [event.pk]
    assert other.pk not in shown
    assert found.context["cl"].model_admin.get_actions(found.wsgi_request) == {}
    filtered = client.get(url, {"action__exact": "test.admin_other"})
    assert [obj.pk for obj in filtered.context["cl"].result_list] == [other.pk]
    detail = client.get(f"{url}{event.pk}/change/")
    assert detail.status_code == 200
    assert event.hash in detail.content.decode()
    assert b'name="_save"' not in detail.content
    # and every write is refused
    assert client.get(f"{url}add/").status_code == 403
    assert client.post(f"{url}{event.pk}/change/", {"action": "test.forged"}).status_code == 403
    assert client.post(f"{url}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    connection.set_tenant(tenant)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.hash) == ("test.admin_view", event.hash)


@pytest.mark.behavior
def test_staff_without_the_view_permission_do_not_see_the_trail_in_the_admin(us_tenant):
    user = StaffUserFactory(role=roles.SUPPORT)
    client = TenantAdminClient(HTTP_HOST=us_tenant.primary_host)
    client.force_login(user)
    assert client.get("/admin/compliance/auditevent/").status_code == 403


@pytest.mark.behavior
def test_no_role_may_add_change_or_delete_in_either_admin_site(us_tenant, rf):
    """Not even an owner (whose admin pages also need a second factor) or a platform superuser."""
    from django.contrib import admin

    from tenants.admin import platform_admin

    user_model = get_user_model()
    superuser = user_model(username="root@platform.example", is_staff=True, is_superuser=True, is_active=True)
    users = {role: user_model.objects.get(pk=StaffUserFactory(role=role).pk) for role in roles.STAFF_ROLES}
    for site in (admin.site, platform_admin):
        model_admin = site._registry[AuditEvent]
        for who, user in {**users, "superuser": superuser}.items():
            request = rf.get("/admin/compliance/auditevent/")
            request.user = user
            assert not model_admin.has_add_permission(request), who
            assert not model_admin.has_change_permission(request), who
            assert not model_admin.has_delete_permission(request), who
            assert model_admin.get_actions(request) == {}, who
            assert model_admin.has_view_permission(request) is (who in ("owner", "auditor", "superuser")), who
    for role, user in users.items():
        for action in ("add", "change", "delete"):
            assert not user.has_perm(f"compliance.{action}_auditevent"), (role, action)


# --- API ----------------------------------------------------------------------------------------


@pytest.fixture
def api_events(tenant):
    """Distinct events in the current tenant, written at known instants."""
    made = {}
    made["login"] = AuditEvent.objects.create(
        actor_type="user",
        actor_id="4104199",
        actor_label="alice@isp.example",
        action="test.api.login",
        object_type="tests.user",
        object_id="4104199",
        request_id="req-api-0001",
        source_ip="10.1.2.3",
    )
    made["after_login"] = timezone.now()
    made["plan"] = AuditEvent.objects.create(
        actor_type="token",
        actor_id="4204299",
        actor_label="bob@isp.example",
        action="test.api.changed",
        object_type="tests.plan",
        object_id="9",
        changed_fields=["name", "price"],
        request_id="req-api-0002",
        reason="Price list 2027",
    )
    made["after_plan"] = timezone.now()
    made["customer"] = AuditEvent.objects.create(
        actor_type="user",
        actor_id="4104199",
        actor_label="alice@isp.example",
        action="test.api.changed",
        object_type="tests.customer",
        object_id="9",
        request_id="req-api-0003",
    )
    sealed([made["login"], made["plan"], made["customer"]])
    return made


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.behavior
def test_the_api_filters_and_searches_the_trail(tenant, staff_client, api_events):
    client = staff_client(tenant, roles.AUDITOR)
    login, plan, customer = api_events["login"], api_events["plan"], api_events["customer"]
    url = "/api/v1/audit-events/"
    assert ids(client.get(url, {"action": "test.api.changed"})) == [customer.pk, plan.pk]  # newest first
    assert ids(client.get(url, {"actor": "alice@isp.example"})) == [customer.pk, login.pk]
    assert ids(client.get(url, {"actor": "4204299"})) == [plan.pk]
    assert ids(client.get(url, {"object": "tests.customer:9"})) == [customer.pk]
    assert ids(client.get(url, {"object": "tests.plan"})) == [plan.pk]
    assert ids(client.get(url, {"object_type": "tests.user", "object_id": "4104199"})) == [login.pk]
    assert ids(client.get(url, {"request_id": "req-api-0002"})) == [plan.pk]
    window = {
        "occurred_after": api_events["after_login"].isoformat(),
        "occurred_before": api_events["after_plan"].isoformat(),
    }
    assert ids(client.get(url, {**window, "search": "test.api"})) == [plan.pk]
    assert ids(client.get(url, {"search": "price LIST"})) == [plan.pk]
    assert ids(client.get(url, {"search": "req-api-000"})) == [customer.pk, plan.pk, login.pk]
    assert ids(client.get(url, {"seq_after": plan.seq, "search": "test.api"})) == [customer.pk]
    # the chain fields are part of the output, as stored
    body = client.get(f"{url}{plan.pk}/").json()
    assert (body["seq"], body["prev_hash"], body["hash"]) == (plan.seq, login.hash, plan.hash)
    assert body["changed_fields"] == ["name", "price"]


@pytest.mark.behavior
def test_the_api_never_shows_another_tenants_records(tenant, other_tenant, staff_client, api_events):
    # given: the other tenant has events with the same action and request id
    connection.set_tenant(other_tenant)
    (foreign,) = sealed(
        [
            AuditEvent.objects.create(
                actor_type="user", actor_label="alice@isp.example", action="test.api.changed", request_id="req-api-0002"
            )
        ]
    )
    connection.set_tenant(tenant)
    client = staff_client(tenant, roles.AUDITOR)
    # when
    listed = client.get("/api/v1/audit-events/", {"search": "test.api", "page_size": 200}).json()["results"]
    # then: only this tenant's three records
    assert {row["hash"] for row in listed} == {api_events[k].hash for k in ("login", "plan", "customer")}
    assert foreign.hash not in {row["hash"] for row in listed}
    by_request = client.get("/api/v1/audit-events/", {"request_id": "req-api-0002"}).json()["results"]
    assert [row["hash"] for row in by_request] == [api_events["plan"].hash]


@pytest.mark.behavior
@pytest.mark.parametrize("role", [roles.AUDITOR, roles.OWNER])
def test_the_api_is_read_only_for_every_role(tenant, staff_client, api_events, role):
    client = staff_client(tenant, role)
    plan = api_events["plan"]
    before = AuditEvent.objects.count()
    url = f"/api/v1/audit-events/{plan.pk}/"
    refused = [
        client.post("/api/v1/audit-events/", {"actor_type": "user", "action": "test.forged"}, format="json"),
        client.patch(url, {"action": "test.forged"}, format="json"),
        client.put(url, {"action": "test.forged"}, format="json"),
        client.delete(url),
    ]
    assert all(response.status_code in (403, 405) for response in refused), [r.status_code for r in refused]
    connection.set_tenant(tenant)
    assert AuditEvent.objects.count() == before
    stored = AuditEvent.objects.get(pk=plan.pk)
    assert (stored.action, stored.hash) == ("test.api.changed", plan.hash)


@pytest.mark.behavior
def test_the_daily_check_logs_every_head_outside_the_database_and_flags_a_tampered_chain(us_tenant, caplog):
    import logging

    from compliance.tasks import audit_verify_all

    events = record(4)
    with caplog.at_level(logging.INFO, logger="security"):
        heads = audit_verify_all.apply().get()
    # every schema is checked and its head logged (seq and hash), the tenant's at its newest record
    assert {"public", "tenant_template", "tenant_us_isp", "tenant_eu_isp", "tenant_jp_isp"} <= set(heads)
    assert all(head["ok"] for head in heads.values()), heads
    assert (heads["tenant_us_isp"]["seq"], heads["tenant_us_isp"]["hash"]) == (events[-1].seq, events[-1].hash)
    assert f"audit chain tenant_us_isp ok: {heads['tenant_us_isp']['records']} records, head seq {events[-1].seq}" in (
        caplog.text
    )
    # when a record is edited behind the triggers' back, the next check says where
    tamper("UPDATE compliance_auditevent SET reason = 'rewritten' WHERE id = %s", [events[1].pk])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="security"):
        heads = audit_verify_all.apply().get()
    assert heads["tenant_us_isp"]["ok"] is False
    assert f"edited at seq {events[1].seq} (id {events[1].pk})" in heads["tenant_us_isp"]["finding"]
    assert heads["tenant_eu_isp"]["ok"] is True
    assert "audit chain tenant_us_isp TAMPERED" in caplog.text
    assert connection.schema_name == us_tenant.schema_name  # the caller's schema is back
