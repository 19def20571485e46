"""Per-subject data keys, kept OUTSIDE the application database.

Every data subject (a customer) has its own random AES-256 data key (DEK). Its PII is encrypted
with that DEK; the DEK is stored wrapped by the key ring, in the key store: a separate
PostgreSQL database (`PII_KEYSTORE_URL`, by default the application database's name + "_keys"
on the same server). Erasing a subject deletes its DEK row (a tombstone without key material
remains), so the subject's PII is unreadable everywhere - including in every backup of the
application database, which never contains a data key. The key store has its own backups whose
retention must be shorter than the erasure deadline (docs/pii.md).

The key store is written in autocommit: a key created inside a transaction that later rolls back
is an orphan without data (harmless); a key shredded before the erasure's transaction commits
leaves data that already reads as erased.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import uuid
from collections.abc import Collection, Iterable, Iterator

import psycopg
from django.conf import settings
from psycopg import sql

from .keyring import KeyRing, PIIDecryptionError, get_keyring

DEK_BYTES = 32

SCHEMA_DDL = (
    """CREATE TABLE IF NOT EXISTS subject_keys (
        key_id uuid PRIMARY KEY,
        tenant text NOT NULL,
        ring_key_id text NOT NULL,
        wrapped bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        rewrapped_at timestamptz
    )""",
    "CREATE INDEX IF NOT EXISTS subject_keys_ring_key_idx ON subject_keys (ring_key_id)",
    """CREATE TABLE IF NOT EXISTS shredded_keys (
        key_id uuid PRIMARY KEY,
        tenant text NOT NULL,
        shredded_at timestamptz NOT NULL DEFAULT now()
    )""",
)


class KeyStoreError(Exception):
    pass


class SubjectKeyMissing(KeyStoreError):
    """A data key that was never shredded is not in the key store: data integrity alarm."""


def _default_conninfo(dbname_suffix: str = "_keys") -> str:
    db = settings.DATABASES["default"]
    return psycopg.conninfo.make_conninfo(
        host=db.get("HOST") or None,
        port=str(db.get("PORT") or "") or None,
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        dbname=f"{db['NAME']}{dbname_suffix}",
    )


def keystore_conninfo() -> str:
    explicit = getattr(settings, "PII_KEYSTORE_URL", "")
    return explicit or _default_conninfo()


def _wrap_purpose(tenant: str, key_id: uuid.UUID) -> bytes:
    return b"subject-key\x00" + tenant.encode() + b"\x00" + key_id.bytes


class KeyStore:
    def __init__(self, conninfo: str, ring: KeyRing):
        self.conninfo = conninfo
        self.ring = ring
        self._local = threading.local()

    # -- connection -----------------------------------------------------------------------
    def connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or getattr(self._local, "pid", None) != os.getpid():
            conn = psycopg.connect(self.conninfo, autocommit=True)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            conn.close()
        self._local.conn = None

    def ensure_schema(self) -> None:
        with self.connection().cursor() as cursor:
            for statement in SCHEMA_DDL:
                cursor.execute(statement)

    # -- keys -----------------------------------------------------------------------------
    def create(self, *, tenant: str, count: int = 1) -> list[uuid.UUID]:
        """New random data keys for `tenant`, wrapped by the ring's primary key."""
        rows = []
        for _ in range(count):
            key_id = uuid.uuid4()
            wrapped = self.ring.encrypt(os.urandom(DEK_BYTES), _wrap_purpose(tenant, key_id))
            rows.append((key_id, tenant, self.ring.primary_id, wrapped))
        with self.connection().cursor() as cursor:
            cursor.executemany(
                "INSERT INTO subject_keys (key_id, tenant, ring_key_id, wrapped) VALUES (%s, %s, %s, %s)", rows
            )
        return [row[0] for row in rows]

    def fetch(self, *, tenant: str, key_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, bytes | None]:
        """Unwrapped data keys by id; None for a shredded key. Keys of another tenant are not found."""
        wanted = list({uuid.UUID(str(k)) for k in key_ids})
        if not wanted:
            return {}
        found: dict[uuid.UUID, bytes | None] = {}
        with self.connection().cursor() as cursor:
            cursor.execute(
                "SELECT key_id, wrapped FROM subject_keys WHERE tenant = %s AND key_id = ANY(%s)", [tenant, wanted]
            )
            for key_id, wrapped in cursor.fetchall():
                found[key_id] = self.ring.decrypt(bytes(wrapped), _wrap_purpose(tenant, key_id))
            missing = [k for k in wanted if k not in found]
            if missing:
                cursor.execute(
                    "SELECT key_id FROM shredded_keys WHERE tenant = %s AND key_id = ANY(%s)", [tenant, missing]
                )
                for (key_id,) in cursor.fetchall():
                    found[key_id] = None
        lost = [str(k) for k in wanted if k not in found]
        if lost:
            raise SubjectKeyMissing(f"data keys not in the key store for tenant {tenant!r}: {', '.join(lost[:5])}")
        return found

    def shred(self, *, tenant: str, key_id: uuid.UUID) -> bool:
        """Destroy a subject's data key. Returns False if it was already shredded."""
        with self.connection().transaction(), self.connection().cursor() as cursor:
            cursor.execute("DELETE FROM subject_keys WHERE tenant = %s AND key_id = %s", [tenant, key_id])
            deleted = cursor.rowcount == 1
            cursor.execute(
                "INSERT INTO shredded_keys (key_id, tenant) VALUES (%s, %s) ON CONFLICT (key_id) DO NOTHING",
                [key_id, tenant],
            )
        return deleted

    # -- rotation -------------------------------------------------------------------------
    def not_on_primary(self) -> dict[str, int]:
        """Number of data keys per tenant still wrapped by an older ring key."""
        with self.connection().cursor() as cursor:
            cursor.execute(
                "SELECT tenant, count(*) FROM subject_keys WHERE ring_key_id <> %s GROUP BY tenant ORDER BY tenant",
                [self.ring.primary_id],
            )
            return dict(cursor.fetchall())

    def rewrap_batch(self, *, batch_size: int = 500, exclude: Collection[uuid.UUID] = ()) -> int:
        """Re-wrap up to `batch_size` keys with the primary ring key, in one transaction.

        Rows are locked (SKIP LOCKED, so several rotations may run at once) and each update
        checks the row still holds what was read, so an interrupted or repeated rotation never
        loses or double-wraps a key. Returns how many keys were re-wrapped (0 = nothing left that
        this call could take: done, or the rest is locked by another rotation).

        Only keys wrapped by a ring key that is still in the ring are taken: one wrapped by a key
        no longer in PII_KEYS cannot be unwrapped, and taking it would stall every batch
        (`compliance.pii.rotation.check` reports those). A key that is on a ring key but does not
        unwrap (damaged row) raises `RewrapError` naming it, the batch rolls back, and the caller
        may pass its id in `exclude` to go on with the others."""
        primary = self.ring.primary_id
        older = [kid for kid in self.ring.key_ids if kid != primary]
        if not older:
            return 0
        conn = self.connection()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.execute(
                "SELECT key_id, tenant, wrapped FROM subject_keys WHERE ring_key_id = ANY(%s) "
                "AND NOT (key_id = ANY(%s)) ORDER BY key_id LIMIT %s FOR UPDATE SKIP LOCKED",
                [older, [uuid.UUID(str(k)) for k in exclude], batch_size],
            )
            rows = cursor.fetchall()
            updates = []
            for key_id, tenant, wrapped in rows:
                purpose = _wrap_purpose(tenant, key_id)
                try:
                    dek = self.ring.decrypt(bytes(wrapped), purpose)
                except PIIDecryptionError as exc:
                    raise RewrapError(key_id=key_id, tenant=tenant, reason=str(exc)) from None
                updates.append((primary, self.ring.encrypt(dek, purpose), key_id, bytes(wrapped)))
            if not updates:
                return 0
            cursor.executemany(
                "UPDATE subject_keys SET ring_key_id = %s, wrapped = %s, rewrapped_at = now() "
                "WHERE key_id = %s AND wrapped = %s",
                updates,
            )
            return cursor.rowcount


class RewrapError(PIIDecryptionError):
    """A data key on a ring key of the ring did not unwrap during rotation (damaged row)."""

    def __init__(self, *, key_id: uuid.UUID, tenant: str, reason: str):
        super().__init__(f"data key {key_id} of tenant {tenant!r} does not unwrap: {reason}")
        self.key_id, self.tenant, self.reason = key_id, tenant, reason


_store: KeyStore | None = None
_store_lock = threading.Lock()


def get_keystore() -> KeyStore:
    """The process's key store for the current settings (re-created when the settings change)."""
    global _store
    conninfo, ring = keystore_conninfo(), get_keyring()
    with _store_lock:
        if _store is None or _store.conninfo != conninfo or _store.ring is not ring:
            if _store is not None:
                _store.close()
            _store = KeyStore(conninfo, ring)
    return _store


def keystore_database_ensure() -> None:
    """Create the key-store database (if missing) and its tables. Idempotent."""
    if not getattr(settings, "PII_KEYSTORE_URL", ""):
        # The default key store sits beside the application database: create it if missing.
        # An explicit PII_KEYSTORE_URL names a database that its operator provisions.
        target = psycopg.conninfo.conninfo_to_dict(keystore_conninfo())["dbname"]
        with psycopg.connect(_default_conninfo(dbname_suffix=""), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    get_keystore().ensure_schema()


def keystore_database_drop() -> None:
    """Drop the key-store database - tests only: it refuses any database not named test_*,
    because dropping a real key store destroys every subject's personal data for good."""
    target = psycopg.conninfo.conninfo_to_dict(keystore_conninfo())["dbname"]
    if not target.startswith("test_"):
        raise RuntimeError(f"refusing to drop key store {target!r}: only test_* key stores are dropped")
    get_keystore().close()
    with psycopg.connect(_default_conninfo(dbname_suffix=""), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target)))


# -- a short-lived cache of unwrapped keys, per request or task ------------------------------
_scope: contextvars.ContextVar[dict | None] = contextvars.ContextVar("pii_key_scope", default=None)


@contextlib.contextmanager
def key_scope() -> Iterator[dict]:
    """Cache unwrapped data keys for the duration of a request or task (never longer, so an
    erasure is effective for the next request at the latest)."""
    cache: dict = {}
    token = _scope.set(cache)
    try:
        yield cache
    finally:
        _scope.reset(token)


def data_keys(tenant: str, key_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, bytes | None]:
    """Data keys by id, through the current scope's cache when there is one."""
    cache = _scope.get()
    ids = {uuid.UUID(str(k)) for k in key_ids}
    if cache is None:
        return get_keystore().fetch(tenant=tenant, key_ids=ids)
    wanted = [k for k in ids if (tenant, k) not in cache]
    if wanted:
        for key_id, dek in get_keystore().fetch(tenant=tenant, key_ids=wanted).items():
            cache[(tenant, key_id)] = dek
    return {k: cache[(tenant, k)] for k in ids}


def forget_cached_key(tenant: str, key_id: uuid.UUID) -> None:
    cache = _scope.get()
    if cache is not None:
        cache.pop((tenant, key_id), None)


__all__ = [
    "KeyStore",
    "KeyStoreError",
    "PIIDecryptionError",
    "RewrapError",
    "SubjectKeyMissing",
    "data_keys",
    "forget_cached_key",
    "get_keystore",
    "key_scope",
    "keystore_database_drop",
    "keystore_database_ensure",
]
