"""Key-ring rotation (`manage.py pii_rotate_keys`): online, resumable, nothing lost or double-wrapped.

Every test here runs against its own key-store database (`<test db>_keys_rot`, created and
dropped by the `rotation_keystore` fixture): a rotation re-wraps every key in the store, of every
tenant, and `--check` judges the whole store, so the session's key store (with the data keys of
every other test, wrapped by the session's ring) must not take part.
"""

import base64
import datetime
import io
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from psycopg import sql

from compliance.audit import Actor
from compliance.pii.keyring import PIIDecryptionError
from compliance.pii.keystore import _default_conninfo, get_keystore
from compliance.pii.rotation import check, rotate
from customers.models import Customer, ServiceAddress
from customers.services import customer_by_email, customer_create, service_address_create

pytestmark = [pytest.mark.django_db]
STAFF = Actor.system("test")


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


K1, K2 = new_key(), new_key()
RING_1 = f"k1:{K1}"
RING_21 = f"k2:{K2},k1:{K1}"
RING_2 = f"k2:{K2}"


@pytest.fixture
def rotation_keystore(settings):
    """A fresh, empty key-store database of its own; PII_KEYSTORE_URL points at it."""
    name = f"{settings.DATABASES['default']['NAME']}_keys_rot"
    assert name.startswith("test_"), "the rotation tests run only against a test database"
    server = _default_conninfo(dbname_suffix="")

    def drop():
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    drop()
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(server)
    params["dbname"] = name
    settings.PII_KEYSTORE_URL = psycopg.conninfo.make_conninfo(**params)
    settings.PII_KEYS = RING_1
    get_keystore().ensure_schema()
    try:
        yield settings.PII_KEYSTORE_URL
    finally:
        get_keystore().close()
        drop()


def run_check() -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("pii_rotate_keys", "--check", "--no-progress", stdout=out, stderr=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def ring_key_ids(conninfo: str, tenant: str) -> dict[uuid.UUID, str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT key_id, ring_key_id FROM subject_keys WHERE tenant = %s", [tenant]).fetchall()
    return dict(rows)


PEOPLE = [
    ("Rosalind Vantreight", "rosalind@rot.example", "+14155550101", "NID-ROT-1", "1971-03-04", "1 Rot Way"),
    ("Bartholomew Quince", "bart@rot.example", "+447911123456", "NID-ROT-2", "1985-11-30", "2 Rot Way"),
    ("Chiyo Watanabe", "chiyo@rot.example", "+81312345678", "NID-ROT-3", "1990-07-15", "3 Rot Way"),
]


def read_back(pks: list[int]) -> list[tuple]:
    rows = []
    for pk in pks:
        customer = Customer.objects.get(pk=pk)
        address = ServiceAddress.objects.get(customer=customer)
        rows.append(
            (
                customer.name,
                customer.email,
                customer.phone,
                customer.national_id,
                customer.date_of_birth.isoformat(),
                address.street,
            )
        )
    return rows


@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.data_safety
def test_rotation_moves_every_key_to_the_new_ring_key_and_the_old_key_can_then_go(tenant, settings, rotation_keystore):
    # Written under the ring [k1].
    assert get_keystore().ring.key_ids == ("k1",)
    pks = []
    for name, email, phone, national_id, born, street in PEOPLE:
        customer = customer_create(
            actor=STAFF,
            name=name,
            email=email,
            phone=phone,
            national_id=national_id,
            date_of_birth=datetime.date.fromisoformat(born),
        )
        service_address_create(
            customer=customer, street=street, city="Rotham", postal_code="R0T", country="US", actor=STAFF
        )
        pks.append(customer.pk)
    assert read_back(pks) == [tuple(p) for p in PEOPLE]
    assert set(ring_key_ids(rotation_keystore, connection.schema_name).values()) == {"k1"}

    # Too early: k1 removed before rotating. The data key does not unwrap, with a clear error.
    settings.PII_KEYS = RING_2
    with pytest.raises(PIIDecryptionError, match=r"key id 'k1' is not in the key ring \(PII_KEYS\)"):
        _ = Customer.objects.get(pk=pks[0]).name
    code, report = run_check()
    assert code == 1
    assert "3 failed" in report
    assert "not in the key ring" in report

    # The new key goes in front; the key store follows the settings (re-created on a ring change).
    before = get_keystore()
    settings.PII_KEYS = RING_21
    store = get_keystore()
    assert store is not before
    assert store.ring.key_ids == ("k2", "k1")
    assert read_back(pks) == [tuple(p) for p in PEOPLE]  # both keys decrypt meanwhile
    code, report = run_check()
    assert code == 1
    assert f"{connection.schema_name}" in report
    assert "3 on older ring keys" in report

    # New subjects get keys wrapped by k2 right away; rotation moves the old ones.
    extra = customer_create(actor=STAFF, name="Newcomer", email="new@rot.example")
    assert ring_key_ids(rotation_keystore, connection.schema_name)[extra.data_key_id] == "k2"
    out = io.StringIO()
    call_command("pii_rotate_keys", "--batch-size", "2", stdout=out, stderr=io.StringIO())
    assert "re-wrapped 3 key(s) in 2 batch(es)" in out.getvalue()
    assert set(ring_key_ids(rotation_keystore, connection.schema_name).values()) == {"k2"}

    # The old key goes: everything still decrypts; exact lookups (blind index key unchanged) still work.
    settings.PII_KEYS = RING_2
    assert read_back(pks) == [tuple(p) for p in PEOPLE]
    assert Customer.objects.get(pk=extra.pk).name == "Newcomer"
    assert customer_by_email("BART@rot.example").pk == pks[1]
    code, report = run_check()
    assert code == 0, report
    assert "clean: every data key is on 'k2' and unwraps" in report
    assert f"{connection.schema_name}" in report


@pytest.mark.behavior
@pytest.mark.data_safety
def test_check_names_the_ring_keys_that_may_be_removed(settings, rotation_keystore):
    get_keystore().create(tenant="tenant_check_demo", count=3)
    settings.PII_KEYS = RING_21
    result = check()
    assert not result.clean
    assert result.removable_ring_keys == []
    assert result.on_old_keys("tenant_check_demo") == 3
    rotate(batch_size=10)
    result = check(batch_size=2)
    assert result.clean
    assert result.checked == 3
    assert result.removable_ring_keys == ["k1"]


@pytest.mark.behavior
@pytest.mark.data_safety
def test_rotation_is_online_and_skips_keys_another_rotation_holds(settings, rotation_keystore):
    tenant = "tenant_online_demo"
    ids = get_keystore().create(tenant=tenant, count=12)
    deks = get_keystore().fetch(tenant=tenant, key_ids=ids)
    settings.PII_KEYS = RING_21
    store = get_keystore()
    locked = sorted(ids)[:4]
    with psycopg.connect(rotation_keystore) as other, other.transaction():
        # Another rotation (or an erasure) holds four rows.
        other.execute("SELECT 1 FROM subject_keys WHERE key_id = ANY(%s) FOR UPDATE", [locked])
        result = rotate(batch_size=5)
        assert result.rewrapped == 8
        assert result.not_on_primary == {tenant: 4}
        assert not result.complete
        # Meanwhile readers and writers are not blocked, locked rows included.
        assert store.fetch(tenant=tenant, key_ids=ids) == deks
        (new_id,) = store.create(tenant=tenant)
    result = rotate(batch_size=5)
    assert result.rewrapped == 4
    assert result.complete
    assert set(ring_key_ids(rotation_keystore, tenant).values()) == {"k2"}
    settings.PII_KEYS = RING_2
    assert get_keystore().fetch(tenant=tenant, key_ids=ids) == deks
    assert get_keystore().fetch(tenant=tenant, key_ids=[new_id])[new_id] is not None


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_damaged_key_or_one_on_a_removed_ring_key_is_reported_and_the_rest_rotates(settings, rotation_keystore):
    tenant = "tenant_damage_demo"
    store = get_keystore()
    ids = store.create(tenant=tenant, count=6)
    settings.PII_KEYS = f"k0:{new_key()}"
    (orphan,) = get_keystore().create(tenant=tenant)  # wrapped by a ring key that will not be in PII_KEYS
    damaged = sorted(ids)[2]
    with psycopg.connect(rotation_keystore, autocommit=True) as conn:
        conn.execute(
            "UPDATE subject_keys SET wrapped = set_byte(wrapped, 19, get_byte(wrapped, 19) # 255) WHERE key_id = %s",
            [damaged],
        )
    settings.PII_KEYS = RING_21
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("pii_rotate_keys", "--batch-size", "4", "--no-progress", stdout=out, stderr=err)
    assert exit_info.value.code == 1
    assert "re-wrapped 5 key(s)" in out.getvalue()
    assert f"NOT re-wrapped: data key {damaged}" in err.getvalue()
    assert "1 key(s) are wrapped by ring key 'k0', which is not in PII_KEYS" in err.getvalue()
    wrapped_by = ring_key_ids(rotation_keystore, tenant)
    assert wrapped_by[damaged] == "k1"
    assert wrapped_by[orphan] == "k0"
    assert sorted(wrapped_by.values()).count("k2") == 5
    result = check()
    assert {f.key_id for f in result.failures} == {damaged, orphan}
    assert not result.clean


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_killed_rotation_resumes_and_loses_or_double_wraps_nothing(settings, rotation_keystore):
    """SIGKILL a real `manage.py pii_rotate_keys` after its first batch; the rerun completes."""
    tenant = f"tenant_kill_{uuid.uuid4().hex[:8]}"
    total = 40
    try:
        ids = get_keystore().create(tenant=tenant, count=total)
        settings.PII_KEYS = RING_21
        deks_before = get_keystore().fetch(tenant=tenant, key_ids=ids)
        assert len(deks_before) == total
        assert all(len(dek) == 32 for dek in deks_before.values())

        test_db = settings.DATABASES["default"]["NAME"]
        database_url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + test_db).geturl()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "isp.settings.test",
            "DATABASE_URL": database_url,
            "PII_KEYS": RING_21,
            "PII_INDEX_KEY": settings.PII_INDEX_KEY,
            "PII_KEYSTORE_URL": rotation_keystore,
        }
        manage = [sys.executable, str(django_settings.BASE_DIR / "manage.py"), "pii_rotate_keys"]

        def on_k2() -> int:
            return sum(1 for kid in ring_key_ids(rotation_keystore, tenant).values() if kid == "k2")

        first = subprocess.Popen(
            [*manage, "--batch-size", "5", "--pause", "0.3"],
            env=env,
            cwd=django_settings.BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while on_k2() < 5:
                assert first.poll() is None, first.communicate()
                assert time.monotonic() < deadline, "the first batch never committed"
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.communicate()
        assert first.returncode == -signal.SIGKILL
        done_before_kill = on_k2()
        assert 5 <= done_before_kill < total  # killed half-way

        second = subprocess.run(  # noqa: S603 - fixed argv
            [*manage, "--batch-size", "7"], env=env, cwd=django_settings.BASE_DIR, capture_output=True, text=True
        )
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"{total - done_before_kill} data key(s) on older ring keys" in second.stdout
        assert f"re-wrapped {total - done_before_kill} key(s)" in second.stdout

        wrapped_by = ring_key_ids(rotation_keystore, tenant)
        assert len(wrapped_by) == total  # nothing lost
        assert set(wrapped_by.values()) == {"k2"}
        settings.PII_KEYS = RING_2  # k1 gone: every key still unwraps, to the very same data key
        assert get_keystore().fetch(tenant=tenant, key_ids=ids) == deks_before
        assert check().clean
    finally:
        with psycopg.connect(rotation_keystore, autocommit=True) as conn:
            conn.execute("DELETE FROM subject_keys WHERE tenant = %s", [tenant])
            conn.execute("DELETE FROM shredded_keys WHERE tenant = %s", [tenant])
