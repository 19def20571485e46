"""Key-ring rotation: re-wrap every subject data key with the primary ring key, and check it.

The key ring (`PII_KEYS`) wraps the per-subject data keys in the key store - and nothing else
(field values are sealed with the data keys; blind indexes use `PII_INDEX_KEY`). So rotating a
ring key means re-wrapping the key store's rows, never touching the application database:

1. put the new key in front of `PII_KEYS` everywhere (`k2:...,k1:...`) and restart: new data
   keys are wrapped by k2, old ones still unwrap with k1;
2. `manage.py pii_rotate_keys` (`rotate`): re-wraps, in small transactions, every data key still
   on an older ring key - online, resumable, safe to run twice or concurrently;
3. `manage.py pii_rotate_keys --check` (`check`): how many keys per tenant are still on older
   ring keys, and whether every key unwraps; clean means the old key may leave `PII_KEYS`.

Plain functions; `compliance/management/commands/pii_rotate_keys.py` is the thin command.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .keyring import PIIDecryptionError
from .keystore import DEK_BYTES, KeyStore, RewrapError, _wrap_purpose, get_keystore

MAX_REPORTED_FAILURES = 1000  # a rotation stops collecting (and skipping) damaged keys beyond this


# -- counting -------------------------------------------------------------------------------------
def ring_key_counts(store: KeyStore) -> dict[str, Counter]:
    """Data keys per tenant per ring key id: {"tenant_a": Counter({"k2": 10, "k1": 3}), ...}."""
    counts: dict[str, Counter] = {}
    with store.connection().cursor() as cursor:
        cursor.execute("SELECT tenant, ring_key_id, count(*) FROM subject_keys GROUP BY 1, 2 ORDER BY 1, 2")
        for tenant, ring_key_id, n in cursor.fetchall():
            counts.setdefault(tenant, Counter())[ring_key_id] = n
    return counts


def rotatable_count(store: KeyStore) -> int:
    """Keys wrapped by an older key that is still in the ring (what a rotation can re-wrap)."""
    older = [kid for kid in store.ring.key_ids if kid != store.ring.primary_id]
    if not older:
        return 0
    with store.connection().cursor() as cursor:
        cursor.execute("SELECT count(*) FROM subject_keys WHERE ring_key_id = ANY(%s)", [older])
        return cursor.fetchone()[0]


# -- rotation -------------------------------------------------------------------------------------
@dataclass
class RotationResult:
    primary: str
    pending_at_start: int  # keys on older ring keys of the ring when the run started
    rewrapped: int = 0
    batches: int = 0
    seconds: float = 0.0
    failures: list[RewrapError] = field(default_factory=list)  # on a ring key, but would not unwrap
    not_on_primary: dict[str, int] = field(default_factory=dict)  # per tenant, after the run
    unknown_ring_keys: dict[str, int] = field(default_factory=dict)  # ring key id -> keys, after the run

    @property
    def remaining(self) -> int:
        return sum(self.not_on_primary.values())

    @property
    def complete(self) -> bool:
        return self.remaining == 0


def rotate(
    *,
    store: KeyStore | None = None,
    batch_size: int = 500,
    pause: float = 0.0,
    on_batch: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RotationResult:
    """Re-wrap every data key (all tenants) that is on an older ring key with the primary key.

    Each batch is its own short transaction in the key store (`KeyStore.rewrap_batch`: rows
    locked with SKIP LOCKED, compare-and-set update), so readers and writers keep working, a
    killed run loses nothing and a rerun continues where it stopped. `pause` seconds between
    batches spread the load. `on_batch(n)` is called after each committed batch (progress)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    store = store or get_keystore()
    result = RotationResult(primary=store.ring.primary_id, pending_at_start=rotatable_count(store))
    started = time.perf_counter()
    skipped: set[uuid.UUID] = set()
    while True:
        try:
            done = store.rewrap_batch(batch_size=batch_size, exclude=skipped)
        except RewrapError as exc:
            # The batch rolled back; note the damaged key and redo the batch without it.
            result.failures.append(exc)
            skipped.add(exc.key_id)
            if len(skipped) >= MAX_REPORTED_FAILURES:
                break
            continue
        if done == 0:
            break
        result.rewrapped += done
        result.batches += 1
        if on_batch is not None:
            on_batch(done)
        if pause > 0:
            sleep(pause)
    result.seconds = time.perf_counter() - started
    result.not_on_primary = store.not_on_primary()
    in_ring = set(store.ring.key_ids)
    result.unknown_ring_keys = {
        kid: n for kid, n in sum(ring_key_counts(store).values(), Counter()).items() if kid not in in_ring
    }
    return result


# -- check ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnwrapFailure:
    tenant: str
    key_id: uuid.UUID
    ring_key_id: str
    reason: str


@dataclass
class CheckResult:
    primary: str
    ring_key_ids: tuple[str, ...]
    per_tenant: dict[str, Counter]  # tenant -> Counter(ring key id -> keys)
    checked: int = 0  # keys unwrapped to verify them
    failures: list[UnwrapFailure] = field(default_factory=list)
    failure_count: int = 0  # all failures (the list keeps the first MAX_REPORTED_FAILURES)

    def on_old_keys(self, tenant: str) -> int:
        return sum(n for kid, n in self.per_tenant[tenant].items() if kid != self.primary)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.per_tenant.values())

    @property
    def total_on_old_keys(self) -> int:
        return sum(self.on_old_keys(tenant) for tenant in self.per_tenant)

    @property
    def ring_keys_in_use(self) -> set[str]:
        return {kid for counts in self.per_tenant.values() for kid, n in counts.items() if n}

    @property
    def removable_ring_keys(self) -> list[str]:
        """Ring keys (other than the primary) that no data key needs any more."""
        return [kid for kid in self.ring_key_ids if kid != self.primary and kid not in self.ring_keys_in_use]

    @property
    def clean(self) -> bool:
        return self.total_on_old_keys == 0 and self.failure_count == 0


def check(
    *,
    store: KeyStore | None = None,
    batch_size: int = 1000,
    verify: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> CheckResult:
    """Count the data keys per tenant and ring key; with `verify`, unwrap every key (streamed in
    key-id order, `batch_size` rows per query, no long transaction) and collect the failures."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    store = store or get_keystore()
    ring = store.ring
    result = CheckResult(primary=ring.primary_id, ring_key_ids=ring.key_ids, per_tenant=ring_key_counts(store))
    if not verify:
        return result
    after = uuid.UUID(int=0)
    while True:
        with store.connection().cursor() as cursor:
            cursor.execute(
                "SELECT key_id, tenant, ring_key_id, wrapped FROM subject_keys WHERE key_id > %s "
                "ORDER BY key_id LIMIT %s",
                [after, batch_size],
            )
            rows = cursor.fetchall()
        if not rows:
            break
        for key_id, tenant, ring_key_id, wrapped in rows:
            reason = _unwrap_problem(store, tenant=tenant, key_id=key_id, ring_key_id=ring_key_id, wrapped=wrapped)
            if reason is not None:
                result.failure_count += 1
                if len(result.failures) < MAX_REPORTED_FAILURES:
                    result.failures.append(UnwrapFailure(tenant, key_id, ring_key_id, reason))
        result.checked += len(rows)
        after = rows[-1][0]
        if on_batch is not None:
            on_batch(len(rows))
    return result


def _unwrap_problem(store: KeyStore, *, tenant: str, key_id: uuid.UUID, ring_key_id: str, wrapped) -> str | None:
    """Why this key store row does not yield a data key, or None when it does."""
    blob = bytes(wrapped)
    try:
        blob_kid = store.ring.key_id_of(blob)
        dek = store.ring.decrypt(blob, _wrap_purpose(tenant, key_id))
    except PIIDecryptionError as exc:
        return str(exc)
    if blob_kid != ring_key_id:
        return f"row says ring key {ring_key_id!r} but the key is wrapped by {blob_kid!r}"
    if len(dek) != DEK_BYTES:
        return f"unwraps to {len(dek)} bytes, not a {DEK_BYTES}-byte data key"
    return None
