"""Re-wrap the subject data keys with the primary ring key, or check that none is left behind:

    python manage.py pii_rotate_keys [--batch-size 500] [--pause 0]
    python manage.py pii_rotate_keys --check [--batch-size 1000]

Rotation procedure (docs/pii.md): put the new key first in PII_KEYS everywhere, run this
command, then `--check`; when it exits 0 the old key may be removed from PII_KEYS.
The logic lives in compliance/pii/rotation.py.
"""

import sys

import psycopg
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from compliance.pii import rotation
from compliance.pii.keystore import get_keystore, keystore_conninfo

MAX_LISTED = 20


class Command(BaseCommand):
    help = (
        "Re-wrap every subject data key (all tenants) that is on an older key-ring key with the primary key, "
        "in small transactions (online, resumable). --check: keys per tenant still on older ring keys and keys "
        "that do not unwrap; exit 1 unless clean."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size", type=int, default=None, help="keys per transaction (default 500; 1000 for --check)"
        )
        parser.add_argument("--pause", type=float, default=0.0, help="seconds to sleep between batches (default 0)")
        parser.add_argument(
            "--check",
            action="store_true",
            help="report only; exit 1 unless every key is on the primary ring key and unwraps",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        batch_size = options["batch_size"] or (1000 if options["check"] else 500)
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if options["pause"] < 0:
            raise CommandError("--pause cannot be negative")
        store = get_keystore()
        host = keystore_conninfo_summary()
        self.stdout.write(f"key store: {host}; ring: {', '.join(store.ring.key_ids)} (primary {store.ring.primary_id})")
        if options["check"]:
            clean = self._check(store, batch_size, progress=not options["no_progress"])
        else:
            clean = self._rotate(store, batch_size, options["pause"], progress=not options["no_progress"])
        if not clean:
            sys.exit(1)

    # -- rotation ------------------------------------------------------------------------------
    def _rotate(self, store, batch_size: int, pause: float, *, progress: bool) -> bool:
        pending = rotation.rotatable_count(store)
        self.stdout.write(f"{pending} data key(s) on older ring keys to re-wrap with {store.ring.primary_id!r}")
        bar = tqdm(total=pending, unit="key", desc="re-wrapping", file=sys.stderr, disable=not progress)
        try:
            result = rotation.rotate(store=store, batch_size=batch_size, pause=pause, on_batch=bar.update)
        finally:
            bar.close()
        rate = result.rewrapped / result.seconds if result.seconds else 0.0
        self.stdout.write(
            f"re-wrapped {result.rewrapped} key(s) in {result.batches} batch(es), {result.seconds:.1f} s "
            f"({rate:.0f} keys/s)"
        )
        for failure in result.failures[:MAX_LISTED]:
            self.stderr.write(f"NOT re-wrapped: {failure}")
        if len(result.failures) > MAX_LISTED:
            self.stderr.write(f"... and {len(result.failures) - MAX_LISTED} more")
        for kid, n in sorted(result.unknown_ring_keys.items()):
            self.stderr.write(
                f"{n} key(s) are wrapped by ring key {kid!r}, which is not in PII_KEYS: they cannot be read or "
                "re-wrapped until that key is put back in PII_KEYS"
            )
        if result.complete:
            self.stdout.write(
                f"done: every data key is on {result.primary!r}; confirm with `pii_rotate_keys --check` "
                "before removing the old key from PII_KEYS"
            )
            return True
        for tenant, n in sorted(result.not_on_primary.items()):
            self.stdout.write(f"  still on older ring keys: {tenant}: {n}")
        self.stderr.write(
            f"incomplete: {result.remaining} key(s) not on {result.primary!r} (damaged, wrapped by a key not in "
            "PII_KEYS, locked by another running rotation, or written meanwhile by a process on the old PII_KEYS); "
            "rerun, and see `pii_rotate_keys --check`"
        )
        return False

    # -- check ---------------------------------------------------------------------------------
    def _check(self, store, batch_size: int, *, progress: bool) -> bool:
        counts = rotation.ring_key_counts(store)
        total = sum(sum(c.values()) for c in counts.values())
        bar = tqdm(total=total, unit="key", desc="unwrapping", file=sys.stderr, disable=not progress)
        try:
            result = rotation.check(store=store, batch_size=batch_size, on_batch=bar.update)
        finally:
            bar.close()
        self.stdout.write(f"{'tenant':<32} {'keys':>9} {'on old ring keys':>17}  by ring key")
        for tenant in sorted(result.per_tenant):
            by_key = ", ".join(f"{kid}: {n}" for kid, n in sorted(result.per_tenant[tenant].items()))
            self.stdout.write(
                f"{tenant:<32} {sum(result.per_tenant[tenant].values()):>9} {result.on_old_keys(tenant):>17}  {by_key}"
            )
        self.stdout.write(
            f"total: {result.total} key(s), {result.total_on_old_keys} on older ring keys; "
            f"{result.checked} checked by unwrapping, {result.failure_count} failed"
        )
        for failure in result.failures[:MAX_LISTED]:
            self.stderr.write(
                f"does not unwrap: tenant {failure.tenant} key {failure.key_id} (ring key {failure.ring_key_id}): "
                f"{failure.reason}"
            )
        if result.failure_count > MAX_LISTED:
            self.stderr.write(f"... and {result.failure_count - MAX_LISTED} more")
        if result.clean:
            removable = ", ".join(result.removable_ring_keys) or "none"
            self.stdout.write(
                f"clean: every data key is on {result.primary!r} and unwraps; "
                f"ring keys that may be removed from PII_KEYS: {removable}"
            )
            return True
        self.stdout.write(
            "NOT clean: keep every ring key in PII_KEYS"
            + (" and run `pii_rotate_keys`" if result.total_on_old_keys else "")
        )
        return False


def keystore_conninfo_summary() -> str:
    """host/dbname of the key store, never the password."""
    params = psycopg.conninfo.conninfo_to_dict(keystore_conninfo())
    return f"{params.get('host') or 'local'}:{params.get('port') or 5432}/{params.get('dbname')}"
