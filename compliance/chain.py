"""The audit trail's hash chain: verification and the audited retention purge.

The database writes the chain (migration compliance/0002_audit_chain): a record is written
unsealed (no `seq`, its transaction in `txid`); when the transaction commits, a deferred trigger
takes a per-schema advisory lock and gives each of its records, in id order, the next `seq`, the
previous record's hash as `prev_hash` and `hash` = SHA-256 over the canonical form below. UPDATE
(except that one seal), DELETE and TRUNCATE are refused by triggers. A committed record without
a seal was written with the triggers off: the verifier reports it as `unsealed`. This module
re-implements the canonical form in Python, so the verification does not trust the database
function that wrote the hashes.

Canonical form (version tag `audit-v1`): the fields below, each as `<length>:<text>` (length in
characters; NULL is `~`), joined with `|` after the tag::

    seq | id | occurred_at (UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ) | actor_type | actor_id | actor_label
    | action | object_type | object_id | changed_fields (PostgreSQL's jsonb text) | reason
    | request_id | source_ip (host text) | prev_hash

The first record's `prev_hash` is 64 zeros. After a retention purge the first remaining record's
`prev_hash` is the purged record's hash, named as the anchor by an `audit.purged` checkpoint.

What the chain proves: any edited, deleted (inside the chain) or reordered record is found, with
its position. What it cannot prove alone: that the newest records were not cut off, or that the
whole chain was not recomputed by someone with full database rights. Record the head
(`audit_verify` prints it) outside the database to cover both (docs/compliance.md)."""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from psycopg import sql

from .audit import Actor, audit_record
from .models import AuditEvent

VERSION_TAG = "audit-v1"
GENESIS = "0" * 64
PURGE_ACTION = "audit.purged"
# The same key as the chain trigger's: one audit writer at a time per schema, until commit.
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('compliance_auditevent'), hashtext(%s))"
PURGE_SETTING = "compliance.audit_purge_through"
_ANCHOR = re.compile(r"\banchor ([0-9a-f]{64})\b")

_COLUMNS = (
    "seq, id, occurred_at, actor_type, actor_id, actor_label, action, object_type, object_id, "
    "changed_fields::text, reason, request_id, host(source_ip), prev_hash, hash"
)


def _field(value: str | None) -> str:
    return "~" if value is None else f"{len(value)}:{value}"


def _timestamp(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ChainRow:
    """One stored record as the verifier reads it (changed_fields as PostgreSQL prints the jsonb)."""

    seq: int
    id: int
    occurred_at: datetime.datetime
    actor_type: str
    actor_id: str
    actor_label: str
    action: str
    object_type: str
    object_id: str
    changed_fields: str
    reason: str
    request_id: str
    source_ip: str | None
    prev_hash: str
    hash: str

    def canonical(self) -> str:
        values = (
            str(self.seq),
            str(self.id),
            _timestamp(self.occurred_at),
            self.actor_type,
            self.actor_id,
            self.actor_label,
            self.action,
            self.object_type,
            self.object_id,
            self.changed_fields,
            self.reason,
            self.request_id,
            self.source_ip,
            self.prev_hash,
        )
        return "|".join([VERSION_TAG, *(_field(v) for v in values)])

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Finding:
    """One break in the chain. `seq`/`id` locate the record at fault (`id` is None when the
    record is missing: then `seq` is the first missing position)."""

    kind: str  # "edited", "deleted", "reordered" or "unsealed"
    seq: int
    id: int | None
    detail: str

    def __str__(self) -> str:
        if self.kind == "unsealed":
            return f"unsealed record id {self.id}: {self.detail}"
        where = f"seq {self.seq}" + (f" (id {self.id})" if self.id is not None else "")
        return f"{self.kind} at {where}: {self.detail}"


@dataclass
class ChainReport:
    schema: str
    records: int = 0
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str = GENESIS
    purged_through: int = 0
    findings: list[Finding] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_finding(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def _table(schema: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(AuditEvent._meta.db_table))


def _rows(cursor, schema: str, batch_size: int) -> Iterator[ChainRow]:
    """Every record in seq order, in batches (keyset pagination: constant memory)."""
    after = -1
    query = sql.SQL("SELECT {} FROM {} WHERE seq > %s ORDER BY seq LIMIT %s").format(sql.SQL(_COLUMNS), _table(schema))
    while True:
        cursor.execute(query, [after, batch_size])
        batch = cursor.fetchall()
        for values in batch:
            yield ChainRow(*values)
        if len(batch) < batch_size:
            return
        after = batch[-1][0]


def _holder_of(cursor, schema: str, digest: str) -> tuple[int, int] | None:
    """(seq, id) of the record whose stored hash is `digest` (only looked up on a broken link)."""
    cursor.execute(
        sql.SQL("SELECT seq, id FROM {} WHERE hash = %s ORDER BY seq LIMIT 1").format(_table(schema)), [digest]
    )
    return cursor.fetchone()


def _checkpoint_anchor(cursor, schema: str, through: int) -> str | None:
    """The anchor named by the newest `audit.purged` checkpoint that purged up to `through`."""
    cursor.execute(
        sql.SQL(
            "SELECT reason FROM {} WHERE action = %s AND object_id = %s AND seq > %s ORDER BY seq DESC LIMIT 1"
        ).format(_table(schema)),
        [PURGE_ACTION, str(through), through],
    )
    row = cursor.fetchone()
    match = _ANCHOR.search(row[0]) if row else None
    return match.group(1) if match else None


def seal_pending() -> None:
    """Seal the current transaction's audit records now rather than at its commit (the deferred
    trigger runs at once); records written later in the transaction are sealed at commit again.
    For code that verifies its own writes before committing, and tests (rolled back, never
    committed)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _unsealed(cursor, schema: str, limit: int) -> list[tuple[int, str]]:
    """Records of other, committed transactions that never got their seal (written with the
    chain triggers disabled, or forged); this transaction's own pending records are not counted."""
    cursor.execute(
        sql.SQL(
            "SELECT id, action FROM {} WHERE seq IS NULL AND txid IS DISTINCT FROM txid_current() ORDER BY id LIMIT %s"
        ).format(_table(schema)),
        [limit],
    )
    return cursor.fetchall()


def chain_verify(*, schema: str, batch_size: int = 5000, max_findings: int = 50) -> ChainReport:
    """Recompute the chain of `schema`'s audit trail; report every break (up to `max_findings`).

    Each record yields at most one finding: a gap in seq (records deleted), a record whose
    predecessor link points at a record elsewhere in the chain (reordered), a record whose stored
    hash does not match its content (edited), or a broken link to an intact record's predecessor
    (that predecessor was edited and re-hashed). A link broken only because the previous record
    was already reported is not reported again."""
    report = ChainReport(schema=schema)
    with connection.cursor() as cursor:
        expected_seq: int | None = None
        expected_prev = GENESIS
        previous: ChainRow | None = None
        previous_flagged = False
        for row in _rows(cursor, schema, batch_size):
            if expected_seq is None:  # the first record: seq 1, or just after a checkpointed purge
                report.first_seq = row.seq
                expected_seq = row.seq
                if row.seq > 1:
                    anchor = _checkpoint_anchor(cursor, schema, row.seq - 1)
                    if anchor is None:
                        report.findings.append(
                            Finding(
                                "deleted",
                                1,
                                None,
                                f"records seq 1..{row.seq - 1} are missing and no "
                                f"{PURGE_ACTION} checkpoint accounts for them",
                            )
                        )
                        previous_flagged = True
                        expected_prev = row.prev_hash
                    else:
                        report.purged_through = row.seq - 1
                        expected_prev = anchor
            report.records += 1
            finding = None
            content_ok = row.computed_hash() == row.hash
            link_ok = row.prev_hash == expected_prev
            if row.seq != expected_seq:
                finding = Finding(
                    "deleted",
                    expected_seq,
                    None,
                    f"records seq {expected_seq}..{row.seq - 1} are missing (next present: seq {row.seq}, id {row.id})",
                )
            elif not content_ok or (not link_ok and not previous_flagged):
                holder = None if link_ok else _holder_of(cursor, schema, row.prev_hash)
                if holder is not None and holder[0] != row.seq - 1:
                    finding = Finding(
                        "reordered",
                        row.seq,
                        row.id,
                        f"it was chained after the record now at seq {holder[0]} (id {holder[1]})",
                    )
                elif not content_ok:
                    finding = Finding("edited", row.seq, row.id, "its stored hash does not match its content")
                elif previous is not None:
                    finding = Finding(
                        "edited",
                        previous.seq,
                        previous.id,
                        f"it was rewritten and re-hashed: seq {row.seq} (id {row.id}) was chained to another hash",
                    )
                else:  # the first record after a purge does not continue from the checkpoint's anchor
                    finding = Finding(
                        "edited", row.seq, row.id, "it does not continue from the anchor of the purge checkpoint"
                    )
            if finding is not None:
                report.findings.append(finding)
                if len(report.findings) >= max_findings:
                    report.truncated = True
                    break
            previous_flagged = finding is not None
            previous = row
            expected_seq = row.seq + 1
            expected_prev = row.hash
            report.head_seq, report.head_hash = row.seq, row.hash
        if not report.truncated:
            room = max_findings - len(report.findings)
            for record_id, action in _unsealed(cursor, schema, room + 1):
                if room == 0:
                    report.truncated = True
                    break
                report.findings.append(
                    Finding(
                        "unsealed", 0, record_id, f"{action} was committed outside the chain (triggers off, or forged)"
                    )
                )
                room -= 1
    return report


@transaction.atomic
def audit_retention_purge(*, older_than: datetime.datetime, actor: Actor, reason: str = "") -> int:
    """Delete the current schema's audit records older than `older_than` - the only way any
    audit record is ever deleted - and leave an `audit.purged` checkpoint in the chain.

    Refused while the chain does not verify (a purge must not erase evidence of tampering). The
    checkpoint names the last purged seq (object_id) and its hash (the anchor the first kept
    record continues from), so the shortened chain still verifies end to end. Only a prefix of
    the chain is purged: records up to the first one that is not older than `older_than`."""
    schema = connection.schema_name
    with connection.cursor() as cursor:
        cursor.execute(LOCK_SQL, [schema])  # no audit writer in this schema until we commit
    report = chain_verify(schema=schema)
    if not report.ok:
        raise ValidationError(f"The audit chain of {schema} does not verify ({report.first_finding}); nothing purged.")
    first_kept = (
        AuditEvent.objects.filter(occurred_at__gte=older_than).order_by("seq").values_list("seq", flat=True).first()
    )
    through = report.head_seq if first_kept is None else first_kept - 1
    if through is None or report.first_seq is None or through < report.first_seq:
        return 0
    anchor = AuditEvent.objects.values_list("hash", flat=True).get(seq=through)
    count = through - report.first_seq + 1
    audit_record(
        actor=actor,
        action=PURGE_ACTION,
        object_type=AuditEvent._meta.label_lower,
        object_id=str(through),
        reason=(
            f"retention purge of seq {report.first_seq}..{through} ({count} records before "
            f"{older_than.astimezone(datetime.UTC):%Y-%m-%dT%H:%M:%SZ}); anchor {anchor}"
            + (f"; {reason}" if reason else "")
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, %s, true)", [PURGE_SETTING, str(through)])
        deleted, _ = AuditEvent.objects.filter(seq__lte=through).delete()
        cursor.execute("SELECT set_config(%s, '', true)", [PURGE_SETTING])
    return deleted
