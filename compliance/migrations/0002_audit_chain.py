"""The audit trail becomes append-only and hash-chained per schema (docs/compliance.md, "Audit trail").

Runs in the public schema and in every tenant schema (compliance is a shared and a tenant app).
The functions live once in `public` (CREATE OR REPLACE, serialised by an advisory lock so that
parallel tenant migrations do not race); each schema gets its own triggers on its own table.
Tenants cloned from the template get the triggers through `tenants.template.clone_triggers`.

Records are chained when their transaction commits, not when they are written: an INSERT only
marks the transaction (a row in `compliance_auditqueue`, once), and a deferred constraint trigger
on that queue seals the transaction's records at COMMIT - under a per-schema advisory lock held
from then until the commit ends. Writers therefore never wait for each other while they work,
only for the few microseconds per record of sealing (measured: docs/compliance.md).

The canonical form hashed here is re-implemented, independently, by `compliance.chain`; the two
must change together (bump the `audit-v1` tag if they ever do)."""

from django.db import migrations, models

FUNCTIONS = [
    "SELECT pg_advisory_xact_lock(hashtext('compliance_audit_functions'))",
    # One field of the canonical form: "<length in characters>:<text>", or "~" for NULL.
    r"""
CREATE OR REPLACE FUNCTION public.compliance_audit_field(v text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE WHEN v IS NULL THEN '~' ELSE char_length(v)::text || ':' || v END
$fn$
""",
    r"""
CREATE OR REPLACE FUNCTION public.compliance_audit_digest(
    p_seq bigint, p_id bigint, p_occurred_at timestamptz, p_actor_type text, p_actor_id text,
    p_actor_label text, p_action text, p_object_type text, p_object_id text, p_changed_fields jsonb,
    p_reason text, p_request_id text, p_source_ip inet, p_prev_hash text
) RETURNS text
-- No SET clause: a SQL function without one is inlined into its caller's expression (7 us a call
-- instead of 37 us, measured); it names public.* explicitly and pg_catalog is searched first.
LANGUAGE sql STABLE AS $fn$
    SELECT encode(sha256(convert_to(
        'audit-v1'
        || '|' || public.compliance_audit_field(p_seq::text)
        || '|' || public.compliance_audit_field(p_id::text)
        || '|' || public.compliance_audit_field(
                      to_char(p_occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || '|' || public.compliance_audit_field(p_actor_type)
        || '|' || public.compliance_audit_field(p_actor_id)
        || '|' || public.compliance_audit_field(p_actor_label)
        || '|' || public.compliance_audit_field(p_action)
        || '|' || public.compliance_audit_field(p_object_type)
        || '|' || public.compliance_audit_field(p_object_id)
        || '|' || public.compliance_audit_field(p_changed_fields::text)
        || '|' || public.compliance_audit_field(p_reason)
        || '|' || public.compliance_audit_field(p_request_id)
        || '|' || public.compliance_audit_field(host(p_source_ip))
        || '|' || public.compliance_audit_field(p_prev_hash),
    'UTF8')), 'hex')
$fn$
""",
    # BEFORE INSERT, every row, every writer (ORM, bulk_create, COPY, raw SQL): whatever the
    # writer sends, the record starts unsealed and belongs to the writing transaction.
    r"""
CREATE OR REPLACE FUNCTION public.compliance_audit_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    NEW.seq := NULL;
    NEW.prev_hash := '';
    NEW.hash := '';
    NEW.txid := txid_current();
    NEW.occurred_at := COALESCE(NEW.occurred_at, statement_timestamp());
    NEW.changed_fields := COALESCE(NEW.changed_fields, '[]'::jsonb);
    RETURN NEW;
END
$fn$
""",
    # AFTER INSERT, each statement: queue the transaction for sealing at commit, once per schema it
    # writes audit records in (again after a seal inside the transaction, e.g. SET CONSTRAINTS ALL
    # IMMEDIATE). The transaction-local setting remembers "<txid>|<schema>|<schema>|...".
    r"""
CREATE OR REPLACE FUNCTION public.compliance_audit_enqueue() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    queued text := current_setting('compliance.audit_queued', true);
    mark text := txid_current()::text;
BEGIN
    IF queued IS NULL OR split_part(queued, '|', 1) <> mark THEN
        queued := mark || '|';
    END IF;
    IF position('|' || TG_TABLE_SCHEMA || '|' IN queued) = 0 THEN
        PERFORM set_config('compliance.audit_queued', queued || TG_TABLE_SCHEMA || '|', true);
        EXECUTE format('INSERT INTO %I.compliance_auditqueue (txid) VALUES ($1) ON CONFLICT DO NOTHING',
                       TG_TABLE_SCHEMA) USING txid_current();
    END IF;
    RETURN NULL;
END
$fn$
""",
    # Deferred to COMMIT (constraint trigger on the queue): one writer at a time per schema from
    # here until the commit ends; this transaction's records get the next seqs, in id order,
    # written with one UPDATE (one per record cost twice as much: 357 ms for 2,000 records).
    r"""
CREATE OR REPLACE FUNCTION public.compliance_audit_seal() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    r record;
    last_seq bigint;
    last_hash text;
    prev text;
    ids bigint[] := '{}';
    seqs bigint[] := '{}';
    prevs text[] := '{}';
    hashes text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('compliance_auditevent'), hashtext(TG_TABLE_SCHEMA));
    EXECUTE format('SELECT seq, hash FROM %I.compliance_auditevent WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1',
                   TG_TABLE_SCHEMA) INTO last_seq, last_hash;
    last_seq := COALESCE(last_seq, 0);
    last_hash := COALESCE(last_hash, repeat('0', 64));
    FOR r IN EXECUTE format('SELECT * FROM %I.compliance_auditevent WHERE seq IS NULL AND txid = $1 ORDER BY id',
                            TG_TABLE_SCHEMA) USING NEW.txid LOOP
        last_seq := last_seq + 1;
        prev := last_hash;
        last_hash := public.compliance_audit_digest(
            last_seq, r.id, r.occurred_at, r.actor_type, r.actor_id, r.actor_label, r.action, r.object_type,
            r.object_id, r.changed_fields, r.reason, r.request_id, r.source_ip, prev);
        ids := ids || r.id;
        seqs := seqs || last_seq;
        prevs := prevs || prev;
        hashes := hashes || last_hash;
    END LOOP;
    PERFORM set_config('compliance.audit_sealing', txid_current()::text, true);
    EXECUTE format('UPDATE %I.compliance_auditevent AS e SET seq = v.seq, prev_hash = v.prev, hash = v.h '
                   'FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS v(id, seq, prev, h) '
                   'WHERE e.id = v.id', TG_TABLE_SCHEMA) USING ids, seqs, prevs, hashes;
    PERFORM set_config('compliance.audit_sealing', '', true);
    PERFORM set_config('compliance.audit_queued',
                       replace(current_setting('compliance.audit_queued', true), '|' || TG_TABLE_SCHEMA || '|', '|'),
                       true);
    EXECUTE format('DELETE FROM %I.compliance_auditqueue WHERE txid = $1', TG_TABLE_SCHEMA) USING NEW.txid;
    RETURN NULL;
END
$fn$
""",
    # BEFORE UPDATE OR DELETE (rows) and BEFORE TRUNCATE (statement): refused. The one exception
    # is the retention purge (compliance.chain.audit_retention_purge): it sets
    # compliance.audit_purge_through for its transaction, after appending the `audit.purged`
    # checkpoint that names that seq; only rows up to it may go, and only with that checkpoint.
    r"""
CREATE OR REPLACE FUNCTION public.compliance_audit_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    through text := nullif(current_setting('compliance.audit_purge_through', true), '');
    checkpointed boolean := false;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND OLD.txid = txid_current()
       AND current_setting('compliance.audit_sealing', true) = txid_current()::text
       AND (NEW.id, NEW.occurred_at, NEW.actor_type, NEW.actor_id, NEW.actor_label, NEW.action, NEW.object_type,
            NEW.object_id, NEW.changed_fields, NEW.reason, NEW.request_id, NEW.source_ip, NEW.txid)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.occurred_at, OLD.actor_type, OLD.actor_id, OLD.actor_label, OLD.action, OLD.object_type,
            OLD.object_id, OLD.changed_fields, OLD.reason, OLD.request_id, OLD.source_ip, OLD.txid) THEN
        RETURN NEW;  -- the seal at commit (compliance_audit_seal): the chain fields, once
    END IF;
    IF TG_OP = 'DELETE' AND through IS NOT NULL THEN
        IF OLD.seq <= through::bigint THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE action = %L AND object_id = %L AND (seq > %s OR (seq IS NULL AND txid = txid_current())))',
                           TG_TABLE_SCHEMA, TG_TABLE_NAME, 'audit.purged', through, through::bigint)
                INTO checkpointed;
            IF checkpointed THEN
                RETURN OLD;
            END IF;
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit trail %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Audit events are never changed or deleted; old ones leave only through the '
                     'audited retention purge (docs/compliance.md, "Audit trail").';
END
$fn$
""",
]

# Rows written before this migration, chained in the order they were written.
BACKFILL = r"""
DO $do$
DECLARE
    r record;
    n bigint := 0;
    prev text := repeat('0', 64);
BEGIN
    FOR r IN SELECT * FROM compliance_auditevent ORDER BY occurred_at, id LOOP
        n := n + 1;
        UPDATE compliance_auditevent
           SET seq = n,
               prev_hash = prev,
               hash = public.compliance_audit_digest(
                   n, r.id, r.occurred_at, r.actor_type, r.actor_id, r.actor_label, r.action, r.object_type,
                   r.object_id, r.changed_fields, r.reason, r.request_id, r.source_ip, prev)
         WHERE id = r.id
        RETURNING hash INTO prev;
    END LOOP;
END
$do$
"""

TRIGGERS = [
    (
        "CREATE OR REPLACE TRIGGER compliance_auditevent_chain BEFORE INSERT ON compliance_auditevent "
        "FOR EACH ROW EXECUTE FUNCTION public.compliance_audit_chain()",
        "DROP TRIGGER IF EXISTS compliance_auditevent_chain ON compliance_auditevent",
    ),
    (
        "CREATE OR REPLACE TRIGGER compliance_auditevent_enqueue AFTER INSERT ON compliance_auditevent "
        "FOR EACH STATEMENT EXECUTE FUNCTION public.compliance_audit_enqueue()",
        "DROP TRIGGER IF EXISTS compliance_auditevent_enqueue ON compliance_auditevent",
    ),
    (
        # The transactions waiting for their seal (a row while they run, none after they commit).
        "CREATE TABLE IF NOT EXISTS compliance_auditqueue (txid bigint PRIMARY KEY)",
        "DROP TABLE IF EXISTS compliance_auditqueue",
    ),
    (
        # A constraint trigger cannot be CREATE OR REPLACEd: dropped first, so the migration reruns.
        [
            "DROP TRIGGER IF EXISTS compliance_auditqueue_seal ON compliance_auditqueue",
            "CREATE CONSTRAINT TRIGGER compliance_auditqueue_seal AFTER INSERT ON compliance_auditqueue "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.compliance_audit_seal()",
        ],
        "DROP TRIGGER IF EXISTS compliance_auditqueue_seal ON compliance_auditqueue",
    ),
    (
        "CREATE OR REPLACE TRIGGER compliance_auditevent_append_only BEFORE UPDATE OR DELETE ON compliance_auditevent "
        "FOR EACH ROW EXECUTE FUNCTION public.compliance_audit_refuse()",
        "DROP TRIGGER IF EXISTS compliance_auditevent_append_only ON compliance_auditevent",
    ),
    (
        "CREATE OR REPLACE TRIGGER compliance_auditevent_no_truncate BEFORE TRUNCATE ON compliance_auditevent "
        "FOR EACH STATEMENT EXECUTE FUNCTION public.compliance_audit_refuse()",
        "DROP TRIGGER IF EXISTS compliance_auditevent_no_truncate ON compliance_auditevent",
    ),
]


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [
        migrations.AddField("auditevent", "seq", models.BigIntegerField(null=True, editable=False)),
        migrations.AddField("auditevent", "prev_hash", models.CharField(max_length=64, null=True, editable=False)),
        migrations.AddField("auditevent", "hash", models.CharField(max_length=64, null=True, editable=False)),
        migrations.AddField(
            "auditevent",
            "txid",
            models.BigIntegerField(
                null=True, editable=False, help_text="The writing transaction (set by the database)."
            ),
        ),
        # The functions are shared by every schema: never dropped by one schema's rollback.
        migrations.RunSQL(FUNCTIONS, migrations.RunSQL.noop),
        migrations.RunSQL([BACKFILL], migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="auditevent",
            name="seq",
            field=models.BigIntegerField(
                null=True,
                unique=True,
                editable=False,
                help_text="Gap-free position in this schema's chain, from 1; set when the writing transaction commits.",
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                fields=["txid"], name="audit_unsealed_idx", condition=models.Q(seq__isnull=True)
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="prev_hash",
            field=models.CharField(
                max_length=64, editable=False, db_default="", help_text="The previous record's hash."
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="hash",
            field=models.CharField(
                max_length=64,
                editable=False,
                db_default="",
                help_text="SHA-256 (hex) over this record's fields and prev_hash.",
            ),
        ),
        *(migrations.RunSQL(create, drop) for create, drop in TRIGGERS),
        migrations.AlterModelOptions(name="auditevent", options={"ordering": ["-seq"]}),
    ]
