"""The security and compliance suite: what the pieces of issue 7 prove together, on data that is
really committed - as a backup, an auditor or someone holding a dump of the database sees it.

Each piece has its own file in this folder, with the same gate markers:
- ../compliance/test_audit_trail.py: append-only table, hash chain sealed at commit, `audit_verify`, tamper
  detection (edited, deleted, reordered, unsealed), the audited retention purge, read-only admin/API;
- ../compliance/test_data_subject_rights.py: the request workflow and deadline, export archive, erasure by
  crypto-shredding and pseudonymisation, refusals (legal hold, unpaid balance), CCPA, retention;
- test_tenant_isolation.py, test_task_and_command_isolation.py: isolation in depth (every endpoint
  with another tenant's host, token or ids; row-level security and tenant roles; tasks, commands);
- test_rbac_matrix.py: every endpoint x every role against the declared table;
- test_login_protection.py: lockout, staff two-factor login, security events, PII-free logs;
- test_code_safety.py (`ai_safety`): the project's source read with ast and bandit.

This file adds the end-to-end checks across them. A throwaway tenant (committed, so pg_dump sees
it; removed at the end with its schema, role, rows and keys) gets two customers with a full
history through the production services; one of them is then erased, committed too:
- no personal data in clear in a dump of the whole database, before or after;
- after the erasure, nothing of the erased person in a new dump, and their data key gone;
- the whole story is in the tenant's audit trail, which names fields and never values, verifies,
  and shows where it is tampered with;
- a key-ring rotation keeps every value of a customer with a full history readable and exportable.
The cost of encryption and of the reveal audit on a 10,000-customer list is a benchmark
(`python manage.py bench_pii`), not a test."""

from __future__ import annotations

import ast
import datetime
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from compliance.chain import chain_verify
from compliance.dsr import services
from compliance.models import AuditEvent, DataSubjectRequest
from compliance.pii.fields import key_id_of
from compliance.pii.keystore import get_keystore
from compliance.pii.rotation import check, rotate
from customers.models import Customer
from tests.code_safety import REPO
from tests.customers.test_pii_dump import copy_rows, decoded_byteas, pg_dump
from tests.customers.test_pii_rotation import RING_2, RING_21, rotation_keystore  # noqa: F401 - fixture
from tests.security.subjects import ACTOR, CLEAR_AT_REST, PII_A, PII_B, archive_files, subject_with_history, verified

pytestmark = [pytest.mark.customer_data_protection, pytest.mark.data_safety]

K = DataSubjectRequest.Kind
KEPT, ERASED = PII_A, PII_B


@dataclass
class Story:
    tenant: object
    kept: Customer
    erased_pk: int
    erased_key: object  # the erased customer's data key id before the erasure
    erased_name_blob: bytes  # their name's ciphertext before the erasure
    dump_before: str  # the whole database, before the erasure
    dump_after: str  # and after it
    erasure: DataSubjectRequest


@pytest.fixture(scope="module")
def story(django_db_setup, django_db_blocker):
    """Built and erased on a connection of its own (a worker thread, autocommit): committed."""
    from network.bench_support import throwaway_tenant

    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="security-suite")
    stack = ExitStack()

    def build() -> Story:
        tenant, _actor = stack.enter_context(throwaway_tenant("sec-suite", say=lambda _line: None))
        with tenant_context(tenant):
            kept = subject_with_history(tag="zq", pii=KEPT, paid=True).customer
            doomed = subject_with_history(tag="bo", pii=ERASED, paid=True).customer
            name_blob = bytes(Customer.objects.filter(pk=doomed.pk).values_list("name", flat=True).get().blob)
            before = pg_dump()
            erasure = services.dsr_fulfil(request=verified(doomed, K.ERASURE), actor=ACTOR)
            after = pg_dump()
        return Story(tenant, kept, doomed.pk, doomed.data_key_id, name_blob, before, after, erasure)

    def close() -> None:
        try:
            stack.close()  # the tenant: schema, role, rows, RADIUS rows, data keys
        finally:
            connection.close()

    with django_db_blocker.unblock():
        built = worker.submit(build).result()
    try:
        yield built  # the tests read it in their own rolled-back transactions (`db`)
    finally:
        with django_db_blocker.unblock():
            worker.submit(close).result()
        worker.shutdown()


def _encrypted_values(pii: dict[str, str]) -> dict[str, str]:
    """The values kept encrypted at rest (the rest are network identifiers FreeRADIUS needs)."""
    return {field: value for field, value in pii.items() if field not in CLEAR_AT_REST}


def _found_in(dump: str, value: str) -> list[str]:
    """Where `value` shows in a plain dump: as text, or inside a bytea (any letter case)."""
    places = {"text": dump.lower(), "bytea": decoded_byteas(dump).lower()}
    return [where for where, haystack in places.items() if value.lower() in haystack]


@pytest.mark.behavior
def test_a_dump_of_the_whole_database_holds_no_personal_data_in_clear(story):
    # given the dump taken while both customers had their full history (rows, invoices, sessions)
    dump = story.dump_before
    schema = story.tenant.schema_name
    assert f"COPY {schema}.customers_customer " in dump
    assert f"COPY {schema}.billing_invoice " in dump
    # with their payments, whose references name the payer: sealed with the customer's key
    payments = copy_rows(dump, schema, "billing_payment")
    assert len(payments) == 2
    assert all(row["reference"].startswith("\\\\x") for row in payments)
    # then none of their encrypted personal data is in it, in any schema, as text or in a bytea
    for pii in (KEPT, ERASED):
        leaks = {field: _found_in(dump, value) for field, value in _encrypted_values(pii).items()}
        assert not any(leaks.values()), leaks
    # while the network identifiers FreeRADIUS needs are there in clear (so the search sees rows)
    for pii in (KEPT, ERASED):
        for field in ("pppoe_username", "framed_ip", "calling_station_id"):
            assert _found_in(dump, pii[field]), field
    # and no data key is in it: they live in the key store, another database
    assert "subject_keys" not in dump


@pytest.mark.behavior
def test_after_an_erasure_a_new_dump_holds_nothing_of_the_person_and_the_old_one_cannot_be_opened(story):
    # the erasure was fulfilled
    assert story.erasure.status == DataSubjectRequest.Status.FULFILLED, story.erasure.refusal_reason
    # then nothing the erased person entered or used is in a dump taken after it, in any schema
    leftovers = {field: _found_in(story.dump_after, value) for field, value in ERASED.items()}
    assert not any(leftovers.values()), leftovers
    # while the other customer's clear network identifiers are still there (the search works)
    for field in ("pppoe_username", "framed_ip", "calling_station_id"):
        assert _found_in(story.dump_after, KEPT[field]), field
    # and the backup taken before the erasure holds only ciphertext under a key that no longer exists
    assert key_id_of(story.erased_name_blob) == story.erased_key
    fetched = get_keystore().fetch(tenant=story.tenant.schema_name, key_ids=[story.erased_key])
    assert fetched == {story.erased_key: None}


@pytest.mark.behavior
def test_the_whole_story_is_in_the_audit_trail_which_names_no_values_and_shows_tampering(story, db):
    connection.set_tenant(story.tenant)
    try:
        # then the committed chain verifies, from the tenant's creation to the erasure
        report = chain_verify(schema=story.tenant.schema_name)
        assert report.ok, report.findings
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        expected = {"customer.created", "subscription.activated", "pppoe.created", "payment.recorded"}
        assert expected | {"dsr.received", "dsr.verified", "dsr.fulfilled"} <= actions
        assert AuditEvent.objects.filter(seq__isnull=True).count() == 0  # every record sealed
        # and no record carries a personal value: fields are named, never quoted
        trail = " ".join(
            " ".join([e.actor_label, e.reason, e.object_id, " ".join(e.changed_fields)]).lower()
            for e in AuditEvent.objects.all()
        )
        for pii in (KEPT, ERASED):
            for field, value in _encrypted_values(pii).items():
                assert value.lower() not in trail, field
        # when someone with the triggers off rewrites a record of the story
        target = AuditEvent.objects.filter(action="dsr.fulfilled").order_by("seq").last()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("UPDATE compliance_auditevent SET reason = 'nothing happened' WHERE id = %s", [target.pk])
            cursor.execute("SET LOCAL session_replication_role = origin")
        # then the verification names that record
        first = chain_verify(schema=story.tenant.schema_name).first_finding
        assert (first.kind, first.seq, first.id) == ("edited", target.seq, target.pk)
    finally:
        connection.set_schema_to_public()


@pytest.mark.behavior
@pytest.mark.usefixtures("rotation_keystore")  # a key store of its own: the rotation re-wraps every key in it
def test_key_rotation_keeps_every_value_of_a_customer_with_a_full_history(tenant, settings):
    # given a customer with a full history, their data key wrapped by ring key k1
    subject = subject_with_history(tag="zq", pii=KEPT, paid=True)
    # when the ring gets k2 as its primary key and the rotation re-wraps every data key
    settings.PII_KEYS = RING_21
    result = rotate(batch_size=50)
    assert result.complete
    # and k1 is removed from the ring
    settings.PII_KEYS = RING_2
    assert check().clean
    # then every value reads back as entered, with only k2
    customer = Customer.objects.get(pk=subject.customer.pk)
    assert (customer.name, customer.email, customer.phone) == (KEPT["name"], KEPT["email"], KEPT["phone"])
    assert (customer.national_id, customer.tax_id) == (KEPT["national_id"], KEPT["tax_id"])
    assert customer.date_of_birth == datetime.date.fromisoformat(KEPT["date_of_birth"])
    # and the export, which decrypts everything the tenant holds about them, holds every value
    export = services.dsr_fulfil(request=verified(customer, K.EXPORT), actor=ACTOR)
    everything = "\n".join(archive_files(export).values())
    missing = [field for field, value in KEPT.items() if value not in everything]
    assert not missing, missing


SUITE = {
    "compliance/test_audit_trail.py": {"data_safety"},
    "compliance/test_data_subject_rights.py": {"customer_data_protection", "data_safety", "revenue_critical"},
    "compliance/test_compliance_code_safety.py": {"ai_safety"},
    "security/test_tenant_isolation.py": {"data_safety"},
    "security/test_task_and_command_isolation.py": {"data_safety"},
    "security/test_rbac_matrix.py": {"customer_data_protection"},
    "security/test_login_protection.py": {"customer_data_protection"},
    "security/test_code_safety.py": {"ai_safety"},
}


def _markers(path) -> set[str]:
    """Every `pytest.mark.<name>` used in a test file (module marks and decorators)."""
    tree = ast.parse(path.read_text())
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "pytest"
    }


@pytest.mark.contract
@pytest.mark.ai_safety
def test_every_part_of_the_security_suite_is_there_with_its_gate_markers():
    """A part of the suite deleted, renamed or stripped of its gate marker would stop blocking
    deployments without anyone noticing; this test notices."""
    for name, gates in SUITE.items():
        path = REPO / "tests" / name
        assert path.exists(), f"tests/{name} is missing"
        found = _markers(path)
        assert gates <= found, f"tests/{name} lost its gate marker(s) {sorted(gates - found)}"
        assert {"behavior", "contract", "property", "smoke"} & found, f"tests/{name} has no kind marker"
