"""The PII crypto, exactly: ciphertext formats, error messages, and the encrypted fields' save and
read paths on a real model instance - without a database.

Written for mutation testing (`make mutation`, docs/testing.md): the property tests in
test_pii_crypto.py show that tampering is refused, these pin down what is refused and why, and
the field life cycle that test_pii_fields.py exercises through PostgreSQL. The database is never
touched here: a save is what `Model.save()` would send (each field's `pre_save`), a load is what
a query would return (`from_db_value`, `Model.from_db`), and the subject keys come from a request's
key scope, as the key store would hand them out. The key store itself points at a closed port, so
a test that needed it would fail instead of reading a real one.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import os
import pickle
import re
import string
import uuid

import psycopg
import pytest
from django.core import serializers
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models
from django.forms import CharField, DateField, EmailField

from compliance.pii.fields import (
    ERASED,
    BlindIndexField,
    EncryptedDateField,
    EncryptedEmailField,
    EncryptedFieldLookupError,
    EncryptedTextField,
    Sealed,
    SubjectKeyField,
    key_id_of,
    pii_prefetch,
    seal,
    unseal,
)
from compliance.pii.keyring import KeyRing, PIIDecryptionError, generate_key, get_keyring
from compliance.pii.keystore import RewrapError, _wrap_purpose, forget_cached_key, key_scope
from customers.models import Customer

pytestmark = [pytest.mark.customer_data_protection, pytest.mark.data_safety]

KEY_STORE_NOWHERE = "postgresql://nobody@127.0.0.1:1/test_no_key_store"


@pytest.fixture(autouse=True)
def _no_key_store(settings):
    """Nothing here may reach a key store: it is a closed port, so a lookup fails loudly."""
    settings.PII_KEYSTORE_URL = KEY_STORE_NOWHERE


@contextlib.contextmanager
def subject_keys(keys: dict[uuid.UUID, bytes | None]):
    """Data keys of the current tenant as a request's key scope holds them after asking the key
    store (None: the key was shredded, the subject erased)."""
    with key_scope() as cache:
        cache.update({(connection.schema_name, key_id): dek for key_id, dek in keys.items()})
        yield


def stored_row(instance: models.Model, *, add: bool = True) -> dict:
    """What `save()` would write: every concrete field's `pre_save` value, in field order."""
    return {f.attname: f.pre_save(instance, add) for f in type(instance)._meta.concrete_fields}


def loaded(model: type[models.Model], row: dict) -> models.Model:
    """The instance a query would return for `row`: bytea comes back as memoryview, through the
    fields' `from_db_value`."""
    fields = model._meta.concrete_fields
    values = []
    for field in fields:
        value = row[field.attname]
        if isinstance(field, models.BinaryField) and value is not None:
            value = memoryview(bytes(value))
        if hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        values.append(value)
    return model.from_db("default", [f.attname for f in fields], values)


def new_subject(**personal_data) -> tuple[Customer, uuid.UUID, bytes]:
    key_id, dek = uuid.uuid4(), os.urandom(32)
    customer = Customer(**personal_data)
    customer.data_key_id = key_id
    return customer, key_id, dek


ZELDA = {"name": "Zelda Quartermain", "email": " Zelda.Q@Example.org ", "phone": "+14155550123",
         "date_of_birth": datetime.date(1980, 2, 29)}


PII_COLUMNS = ("data_key_id", "name", "email", "email_index", "phone", "phone_index", "national_id", "tax_id",
               "date_of_birth")


def pii_of(row: dict) -> dict:
    return {column: row[column] for column in PII_COLUMNS}


def index_of(column: str, value: str) -> bytes:
    return get_keyring().blind_index(scope=f"{connection.schema_name}.customers.customer.{column}", value=value)


# -- key ring: format and refusals ---------------------------------------------------------------
GOLDEN_KEY = bytes(range(32))
GOLDEN_PURPOSE = b"subject-key\x00acme\x00" + uuid.UUID("12345678-1234-5678-1234-567812345678").bytes
# Written once with key id "k2025", GOLDEN_KEY and GOLDEN_PURPOSE: b"R1" | 5 | "k2025" | nonce | ct+tag
GOLDEN_RING_BLOB = bytes.fromhex(
    "5231056b323032356465666768696a6b6c6d6e6f3b72a6121c8c38be5c1b2b8dfa010f96a9c05f92875510ec3db58942a4635359"
)


def golden_ring() -> KeyRing:
    return KeyRing(keys=(("k2026", os.urandom(32)), ("k2025", GOLDEN_KEY)), index_key=os.urandom(32))


@pytest.mark.behavior
def test_a_ring_ciphertext_written_before_stays_readable_by_an_older_ring_key():
    """Wrapped data keys are stored for years: the layout (magic, key id, nonce, tag) is a contract."""
    ring = golden_ring()
    assert KeyRing.key_id_of(GOLDEN_RING_BLOB) == "k2025"
    assert ring.decrypt(GOLDEN_RING_BLOB, GOLDEN_PURPOSE) == b"sixteen byte dek"
    assert ring.decrypt(memoryview(GOLDEN_RING_BLOB), GOLDEN_PURPOSE) == b"sixteen byte dek"
    fresh = ring.encrypt(b"sixteen byte dek", GOLDEN_PURPOSE)
    assert fresh[:8] == b"R1\x05k2026"
    assert len(fresh) == 8 + 12 + len(b"sixteen byte dek") + 16


@pytest.mark.behavior
def test_a_ring_ciphertext_that_fails_authentication_says_so():
    ring = golden_ring()
    failed = r"^ciphertext failed authentication \(tampered, or another purpose\)$"
    with pytest.raises(PIIDecryptionError, match=failed):
        ring.decrypt(GOLDEN_RING_BLOB, b"another purpose")
    tampered = GOLDEN_RING_BLOB[:-1] + bytes([GOLDEN_RING_BLOB[-1] ^ 1])
    with pytest.raises(PIIDecryptionError, match=failed):
        ring.decrypt(tampered, GOLDEN_PURPOSE)
    with pytest.raises(PIIDecryptionError, match=r"^key id 'k2025' is not in the key ring \(PII_KEYS\)$"):
        KeyRing(keys=(("k2026", os.urandom(32)),), index_key=os.urandom(32)).decrypt(GOLDEN_RING_BLOB, GOLDEN_PURPOSE)


@pytest.mark.behavior
def test_the_shortest_ring_ciphertext_is_header_nonce_and_tag():
    # b"R1" + 1 + len("k2025") + 12 nonce + 16 tag = 36 bytes: an empty plaintext
    ring = golden_ring()
    shortest = ring.encrypt(b"", b"p")
    assert len(shortest) == 36
    assert KeyRing.key_id_of(shortest) == "k2026"
    assert ring.decrypt(shortest, b"p") == b""
    not_ring = r"^not a key-ring ciphertext$"
    for blob in (shortest[:35], b"", b"R", b"R1", b"R1\x05", b"R1\x00", b"R2" + shortest[2:], b"r1" + shortest[2:]):
        with pytest.raises(PIIDecryptionError, match=not_ring):
            KeyRing.key_id_of(blob)
    with pytest.raises(PIIDecryptionError, match=not_ring):
        KeyRing.key_id_of(b"XX" + GOLDEN_RING_BLOB[2:])
    with pytest.raises(PIIDecryptionError, match=not_ring):
        golden_ring().decrypt(GOLDEN_RING_BLOB[:30], GOLDEN_PURPOSE)


@pytest.mark.behavior
def test_a_key_id_that_is_not_ascii_is_refused():
    blob = b"R1\x02\xff\xfe" + bytes(28)
    with pytest.raises(PIIDecryptionError, match=r"^not a key-ring ciphertext \(malformed key id\)$"):
        KeyRing.key_id_of(blob)


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


KEY_A, KEY_B = bytes(range(32)), bytes(range(1, 33))


@pytest.mark.behavior
@pytest.mark.parametrize(
    ("keys", "index", "message"),
    [
        ("", b64(KEY_A), "PII_KEYS is not set (run `make setup`, or see README: Configuration)."),
        ("  ", b64(KEY_A), "PII_KEYS is not set (run `make setup`, or see README: Configuration)."),
        ("k1", b64(KEY_A), "PII_KEYS entries are '<key id>:<base64 key>', ids of 1-16 [A-Za-z0-9_-]."),
        (f"k 1:{b64(KEY_A)}", b64(KEY_A), "PII_KEYS entries are '<key id>:<base64 key>', ids of 1-16 [A-Za-z0-9_-]."),
        (f"k1:{b64(KEY_A)}:x", b64(KEY_A), "PII_KEYS[k1] is not valid base64."),
        (f"k1:{b64(KEY_A)},k1:{b64(KEY_B)}", b64(KEY_A), "PII_KEYS names key id 'k1' twice."),
        (f"k1:{b64(KEY_A[:16])}", b64(KEY_A), "PII_KEYS[k1] must decode to 32 bytes (AES-256), got 16."),
        (f"k1:{b64(KEY_A)}", "", "PII_INDEX_KEY is not set (run `make setup`, or see README: Configuration)."),
        (f"k1:{b64(KEY_A)}", b64(KEY_A) + "!", "PII_INDEX_KEY is not valid base64."),
        (f"k1:{b64(KEY_A)}", b64(KEY_A[:16]), "PII_INDEX_KEY must decode to 32 bytes (AES-256), got 16."),
    ],
)
def test_pii_keys_settings_errors_name_the_setting_and_the_fix(keys, index, message):
    with pytest.raises(ImproperlyConfigured, match=f"^{re.escape(message)}$"):
        KeyRing.parse(keys, index)


@pytest.mark.behavior
def test_the_key_ring_comes_from_the_settings(settings):
    settings.PII_KEYS = f"new:{b64(KEY_B)}, old:{b64(KEY_A)}"
    settings.PII_INDEX_KEY = b64(KEY_A)
    ring = get_keyring()
    assert ring.keys == (("new", KEY_B), ("old", KEY_A))
    assert ring.index_key == KEY_A
    del settings.PII_KEYS
    with pytest.raises(ImproperlyConfigured, match=r"^PII_KEYS is not set \(run `make setup`"):
        get_keyring()
    settings.PII_KEYS = f"new:{b64(KEY_B)}"
    del settings.PII_INDEX_KEY
    with pytest.raises(ImproperlyConfigured, match=r"^PII_INDEX_KEY is not set \(run `make setup`"):
        get_keyring()


@pytest.mark.behavior
def test_a_generated_key_is_32_random_bytes_in_unpadded_url_safe_base64():
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 43
        assert set(key) <= set(string.ascii_letters + string.digits + "-_")
        assert len(base64.urlsafe_b64decode(key + "=")) == 32
    ring = KeyRing.parse(f"k1:{keys.pop()}", keys.pop())
    assert len(ring.keys[0][1]) == 32


# -- the key store's wrapping of data keys -------------------------------------------------------
@pytest.mark.behavior
def test_a_wrapped_data_key_is_bound_to_its_tenant_and_key_id():
    """Every wrapped key in every key store carries this associated data: the format is fixed."""
    key_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert _wrap_purpose("acme", key_id) == GOLDEN_PURPOSE
    ring, dek = golden_ring(), os.urandom(32)
    wrapped = ring.encrypt(dek, _wrap_purpose("acme", key_id))
    assert ring.decrypt(wrapped, _wrap_purpose("acme", key_id)) == dek
    for tenant, other_id in (("globex", key_id), ("acme", uuid.uuid4()), ("acm", key_id)):
        with pytest.raises(PIIDecryptionError, match="failed authentication"):
            ring.decrypt(wrapped, _wrap_purpose(tenant, other_id))


@pytest.mark.behavior
def test_forgetting_a_cached_key_drops_exactly_that_key_from_the_current_scope():
    a, b = uuid.uuid4(), uuid.uuid4()
    with key_scope() as cache:
        cache.update({("acme", a): b"A" * 32, ("acme", b): b"B" * 32, ("globex", a): b"G" * 32})
        forget_cached_key("acme", a)
        assert cache == {("acme", b): b"B" * 32, ("globex", a): b"G" * 32}
        forget_cached_key("acme", uuid.uuid4())  # not cached: nothing to do
        assert len(cache) == 2
    forget_cached_key("acme", b)  # outside any scope: nothing cached, nothing to do


@pytest.mark.behavior
def test_a_rewrap_error_names_the_key_the_tenant_and_the_reason():
    key_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    error = RewrapError(key_id=key_id, tenant="acme", reason="ciphertext failed authentication")
    assert str(error) == ("data key 12345678-1234-5678-1234-567812345678 of tenant 'acme' does not unwrap: "
                          "ciphertext failed authentication")
    assert (error.key_id, error.tenant, error.reason) == (key_id, "acme", "ciphertext failed authentication")
    assert isinstance(error, PIIDecryptionError)


# -- the per-subject seal ------------------------------------------------------------------------
GOLDEN_DEK = bytes(range(200, 232))
GOLDEN_SUBJECT = uuid.UUID("12345678-1234-5678-1234-567812345678")
# Written once: b"S1" | subject key id (16) | nonce (12) | ciphertext+tag of "Zelda Quartermain"
GOLDEN_SEALED_NAME = bytes.fromhex(
    "53311234567812345678123456781234567832333435363738393a3b3c3db5a855010de3826fed10b03bac1d894489eb45591a6a9214e2"
    "4742d2e42bb2d279"
)


@pytest.mark.behavior
def test_a_value_sealed_before_stays_readable():
    assert key_id_of(GOLDEN_SEALED_NAME) == GOLDEN_SUBJECT
    assert unseal(GOLDEN_SEALED_NAME, dek=GOLDEN_DEK, label=b"customers.customer.name") == b"Zelda Quartermain"
    assert unseal(memoryview(GOLDEN_SEALED_NAME), dek=GOLDEN_DEK, label=b"customers.customer.name") == (
        b"Zelda Quartermain")
    fresh = seal(b"", key_id=GOLDEN_SUBJECT, dek=GOLDEN_DEK, label=b"x")
    assert fresh[:18] == b"S1" + GOLDEN_SUBJECT.bytes
    assert len(fresh) == 18 + 12 + 16
    assert unseal(fresh, dek=GOLDEN_DEK, label=b"x") == b""


@pytest.mark.behavior
def test_a_sealed_value_that_fails_authentication_or_is_not_one_says_so():
    moved = r"^PII ciphertext failed authentication \(tampered or moved\)$"
    with pytest.raises(PIIDecryptionError, match=moved):
        unseal(GOLDEN_SEALED_NAME, dek=GOLDEN_DEK, label=b"customers.customer.email")
    with pytest.raises(PIIDecryptionError, match=moved):
        unseal(GOLDEN_SEALED_NAME, dek=bytes(32), label=b"customers.customer.name")
    not_sealed = r"^not a subject-key ciphertext$"
    for blob in (GOLDEN_SEALED_NAME[:45], b"", b"R1" + GOLDEN_SEALED_NAME[2:], GOLDEN_RING_BLOB):
        with pytest.raises(PIIDecryptionError, match=not_sealed):
            key_id_of(blob)
        with pytest.raises(PIIDecryptionError, match=not_sealed):
            unseal(blob, dek=GOLDEN_DEK, label=b"customers.customer.name")
    assert key_id_of(GOLDEN_SEALED_NAME[:46]) == GOLDEN_SUBJECT  # 18 + 12 + 16: the shortest


# -- the encrypted fields on a model -------------------------------------------------------------
@pytest.mark.behavior
def test_saving_seals_each_value_with_the_subjects_key_bound_to_its_column():
    customer, key_id, dek = new_subject(**ZELDA)
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
    for column, plain in (("name", b"Zelda Quartermain"), ("email", b" Zelda.Q@Example.org "),
                          ("phone", b"+14155550123"), ("date_of_birth", b"1980-02-29")):
        assert key_id_of(row[column]) == key_id
        assert unseal(row[column], dek=dek, label=f"customers.customer.{column}".encode()) == plain
    assert row["national_id"] is None
    assert row["tax_id"] is None
    assert row["data_key_id"] == key_id
    # exact-match indexes of the normalised values, scoped to the tenant schema and the column
    assert row["email_index"] == index_of("email", "zelda.q@example.org")
    assert row["phone_index"] == index_of("phone", "+14155550123")
    assert (customer.email_index, customer.phone_index) == (row["email_index"], row["phone_index"])
    # the saved instance still reads in clear, with no key store at hand
    assert (customer.name, customer.email, customer.date_of_birth) == (
        "Zelda Quartermain", " Zelda.Q@Example.org ", datetime.date(1980, 2, 29))
    # saving it again writes the same ciphertexts: nothing is re-encrypted
    with subject_keys({key_id: dek}):
        assert pii_of(stored_row(customer, add=False)) == pii_of(row)


@pytest.mark.behavior
def test_a_loaded_row_decrypts_with_the_subjects_key_and_saves_back_unchanged():
    customer, key_id, dek = new_subject(name="Ada Lovelace", email="ada@example.net")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
    again = loaded(Customer, row)
    with subject_keys({key_id: dek}):
        # unchanged: the same ciphertexts and indexes go back, nothing is re-encrypted
        assert pii_of(stored_row(again, add=False)) == pii_of(row)
        assert (again.name, again.email, again.phone, again.date_of_birth) == ("Ada Lovelace", "ada@example.net",
                                                                               None, None)
    assert again.name == "Ada Lovelace"  # decrypted once, then read from the instance
    assert Customer.name.field is Customer._meta.get_field("name")


@pytest.mark.behavior
def test_an_unchanged_value_keeps_the_index_stored_with_it():
    """A row whose index column is still empty (written before the index existed) keeps it empty
    until the value changes; an unchanged value is never decrypted to re-index it."""
    customer, key_id, dek = new_subject(name="Ada", email="ada@example.net")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
        assert stored_row(loaded(Customer, {**row, "email_index": None}), add=False)["email_index"] is None
        assert stored_row(loaded(Customer, {**row, "email_index": b"\x07" * 32}), add=False)["email_index"] == (
            b"\x07" * 32)


@pytest.mark.behavior
def test_the_index_of_a_value_not_sealed_yet_comes_from_the_plain_value():
    customer = Customer(email=" Ada@Example.NET ")
    email_index = Customer._meta.get_field("email_index")
    assert email_index.pre_save(customer, True) == index_of("email", "ada@example.net")
    assert customer.email_index == index_of("email", "ada@example.net")


@pytest.mark.behavior
def test_a_changed_value_is_sealed_again_and_re_indexed():
    customer, key_id, dek = new_subject(name="Ada", email="ada@example.net")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
        again = loaded(Customer, row)
        assert again.email == "ada@example.net"
        again.email = "Countess@Example.net"
        assert again.email == "Countess@Example.net"
        changed = stored_row(again, add=False)
    assert changed["name"] == row["name"]
    assert changed["email"] != row["email"]
    assert unseal(changed["email"], dek=dek, label=b"customers.customer.email") == b"Countess@Example.net"
    assert changed["email_index"] == index_of("email", "countess@example.net")


@pytest.mark.behavior
def test_a_value_refreshed_from_the_database_replaces_what_was_decrypted_before():
    customer, key_id, dek = new_subject(name="Ada")
    renamed = seal(b"Ada King", key_id=key_id, dek=dek, label=b"customers.customer.name")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
        again = loaded(Customer, row)
        assert again.name == "Ada"
        again.name = renamed  # bytes assigned to an encrypted field are ciphertext, never plaintext
        assert again.name == "Ada King"
        again.name = Customer._meta.get_field("name").from_db_value(memoryview(row["name"]), None, connection)
        assert again.name == "Ada"


@pytest.mark.behavior
def test_empty_values_are_stored_as_null_without_ciphertext_or_index():
    customer, key_id, dek = new_subject(name="", email=None, phone="")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
    assert [row[c] for c in ("name", "email", "email_index", "phone", "phone_index", "date_of_birth")] == [None] * 6
    again = loaded(Customer, row)
    with subject_keys({key_id: dek}):
        assert stored_row(again, add=False)["email_index"] is None
    assert (again.name, again.email) == (None, None)


@pytest.mark.behavior
def test_personal_data_is_not_written_without_a_subject_key_or_for_an_erased_subject():
    name = Customer._meta.get_field("name")
    nameless = Customer(name="Ada")
    with pytest.raises(ValueError, match="^Customer.data_key_id must be set before saving personal data$"):
        name.pre_save(nameless, True)
    customer, key_id, _ = new_subject(name="Ada")
    with subject_keys({key_id: None}), pytest.raises(
        ValueError, match="^this data subject was erased; personal data cannot be written for it$"
    ):
        name.pre_save(customer, True)


@pytest.mark.behavior
def test_an_erased_subject_reads_as_erased_and_dates_as_none():
    customer, key_id, dek = new_subject(**ZELDA)
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
    erased = loaded(Customer, row)
    with subject_keys({key_id: None}):
        assert (erased.name, erased.email, erased.date_of_birth) == (ERASED, ERASED, None)
    assert ERASED == "[erased]"


@pytest.mark.behavior
def test_a_ciphertext_moved_to_another_column_does_not_open():
    customer, key_id, dek = new_subject(name="Ada", email="ada@example.net")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
    swapped = loaded(Customer, {**row, "name": row["email"]})
    with subject_keys({key_id: dek}), pytest.raises(PIIDecryptionError, match="tampered or moved"):
        _ = swapped.name
    foreign = loaded(Customer, {**row, "name": GOLDEN_RING_BLOB})
    with subject_keys({key_id: dek}), pytest.raises(PIIDecryptionError, match="^not a subject-key ciphertext$"):
        _ = foreign.name


@pytest.mark.behavior
def test_a_ciphertext_copied_from_another_subjects_row_is_refused():
    """Same column, so the label matches and the other subject's key would open it: the row's own
    data_key_id is what refuses it. With that column not loaded (deferred) there is nothing to
    compare, and the value opens with the key it names."""
    zelda, zelda_key, zelda_dek = new_subject(name="Zelda", email="zelda@example.org")
    bruno, bruno_key, bruno_dek = new_subject(name="Bruno", email="bruno@example.net")
    with subject_keys({zelda_key: zelda_dek, bruno_key: bruno_dek}):
        zelda_row, bruno_row = stored_row(zelda), stored_row(bruno)
        copied = loaded(Customer, {**bruno_row, "name": zelda_row["name"]})
        with pytest.raises(PIIDecryptionError) as refused:
            _ = copied.name
        assert str(refused.value) == "Customer.name holds a value sealed for another data subject"
        assert copied.email == "bruno@example.net"
        no_key_column = Customer.from_db("default", ["id", "name"], [None, Sealed(zelda_row["name"])])
        assert no_key_column.name == "Zelda"


@pytest.mark.behavior
def test_a_date_field_takes_dates_and_iso_strings_only():
    customer, key_id, dek = new_subject(date_of_birth="1980-02-29")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
        assert loaded(Customer, row).date_of_birth == datetime.date(1980, 2, 29)
    assert unseal(row["date_of_birth"], dek=dek, label=b"customers.customer.date_of_birth") == b"1980-02-29"
    field = Customer._meta.get_field("date_of_birth")
    for wrong in (datetime.datetime(1980, 2, 29, 12, 0), 19800229):
        with pytest.raises(TypeError, match="^date_of_birth takes a date$"):
            field.encode(wrong)


@pytest.mark.behavior
def test_keys_of_a_list_are_fetched_once_and_kept_on_each_instance():
    first, first_key, first_dek = new_subject(name="Ada")
    second, second_key, second_dek = new_subject(name="Grace")
    with subject_keys({first_key: first_dek, second_key: second_dek}):
        rows = [stored_row(first), stored_row(second)]
    listed = [loaded(Customer, row) for row in rows]
    unsaved = Customer(name="Not saved yet")
    with subject_keys({first_key: first_dek, second_key: second_dek}):
        pii_prefetch([*listed, unsaved])
    # out of the scope, with no key store: the keys came with the prefetch
    assert [c.name for c in listed] == ["Ada", "Grace"]
    assert unsaved.name == "Not saved yet"
    pii_prefetch([])
    pii_prefetch([unsaved])
    # without the prefetch, reading needs the key store (here: a closed port)
    with pytest.raises(psycopg.OperationalError):
        _ = loaded(Customer, rows[0]).name


@pytest.mark.behavior
def test_the_blind_index_of_a_lookup_value_is_normalised_and_empty_values_have_none():
    email_index = Customer._meta.get_field("email_index")
    assert email_index.lookup_value("  ADA@Example.NET ") == index_of("email", "ada@example.net")
    assert email_index.lookup_value(None) is None
    assert email_index.lookup_value("") is None
    assert Customer._meta.get_field("phone_index").lookup_value("+1 415 555 0123") == index_of("phone", "+14155550123")


@pytest.mark.behavior
def test_encrypted_columns_refuse_every_filter_but_isnull():
    with pytest.raises(EncryptedFieldLookupError, match=(
        "^Customer.email is encrypted and cannot be filtered with 'exact'; use its blind index for exact matches$"
    )):
        Customer.objects.filter(email="ada@example.net")
    with pytest.raises(EncryptedFieldLookupError, match="cannot be filtered with 'icontains'"):
        Customer.objects.filter(name__icontains="Ad")
    with pytest.raises(EncryptedFieldLookupError, match="^Customer.name is encrypted$"):
        Customer.objects.filter(name__lower__exact="ada")
    query = str(Customer.objects.filter(phone__isnull=True).query)
    assert '"customers_customer"."phone" IS NULL' in query


@pytest.mark.behavior
def test_a_data_dump_shows_that_a_value_exists_never_the_value():
    customer, key_id, _ = new_subject(name="Zelda Quartermain", email="", phone=None)
    fields = serializers.serialize("python", [customer])[0]["fields"]
    assert (fields["name"], fields["email"], fields["phone"]) == ("<encrypted>", "", None)
    assert "Zelda" not in repr(serializers.serialize("python", [customer]))


@pytest.mark.behavior
def test_a_sealed_value_never_shows_its_bytes():
    sealed = Sealed(memoryview(b"\x01secret"))
    assert repr(sealed) == "<Sealed PII>"
    assert sealed.blob == b"\x01secret"
    assert type(sealed.blob) is bytes
    assert sealed.fresh is False
    assert Sealed(b"x", fresh=True).fresh is True


@pytest.mark.behavior
def test_field_definitions_as_migrations_record_them():
    """Encrypted columns are nullable and optional in forms; key ids and blind indexes are indexed
    and never edited by hand."""
    assert EncryptedTextField().deconstruct()[3] == {"null": True, "blank": True}
    assert EncryptedTextField(null=False, blank=False).deconstruct()[3] == {}
    assert EncryptedTextField().editable is True
    assert EncryptedTextField(editable=False).editable is False
    assert SubjectKeyField(auto_create=True).deconstruct()[3] == {"db_index": True, "editable": False,
                                                                 "auto_create": True}
    assert SubjectKeyField().deconstruct()[3] == {"db_index": True, "editable": False}
    assert SubjectKeyField().auto_create is False
    assert BlindIndexField(source="email", normalizer="compliance.pii.normalize.email").deconstruct()[3] == {
        "max_length": 32, "null": True, "db_index": True, "source": "email",
        "normalizer": "compliance.pii.normalize.email"}
    assert BlindIndexField(source="phone", normalizer="x.y").editable is False
    assert EncryptedTextField(editable=False).deconstruct()[3] == {"null": True, "blank": True}
    # positional arguments reach Django's Field: the verbose name
    assert EncryptedTextField("Full name").verbose_name == "Full name"
    assert SubjectKeyField("Subject key").verbose_name == "Subject key"
    assert BlindIndexField("E-mail index", source="email", normalizer="x.y").verbose_name == "E-mail index"


@pytest.mark.behavior
def test_form_fields_of_encrypted_columns():
    assert type(EncryptedTextField().formfield()) is CharField
    assert EncryptedTextField().formfield().required is False
    assert EncryptedTextField(blank=False).formfield().required is True
    assert type(EncryptedEmailField().formfield()) is EmailField
    assert type(EncryptedDateField().formfield()) is DateField
    assert EncryptedTextField().formfield(help_text="As on the ID card").help_text == "As on the ID card"


@pytest.mark.behavior
def test_ciphertext_goes_to_the_database_as_bytes():
    field = Customer._meta.get_field("name")
    prepared = field.get_db_prep_value(Sealed(b"\x01sealed"), connection)
    assert bytes(prepared.obj) == b"\x01sealed"
    assert field.get_db_prep_value(None, connection) is None
    assert field.from_db_value(None, None, connection) is None
    assert field.to_python(b"x") == b"x"


@pytest.mark.behavior
def test_a_pickled_or_copied_instance_carries_ciphertext_only_and_decrypts_again():
    """A loaded customer caches its unwrapped data key and the values it decrypted; pickling it
    (a cache, a task queue) or copying it must not carry either."""
    customer, key_id, dek = new_subject(name="Zelda Quartermain", email="zelda@example.org")
    with subject_keys({key_id: dek}):
        row = stored_row(customer)
        never_read = pickle.loads(pickle.dumps(loaded(Customer, row)))  # noqa: S301 - nothing cached yet
        assert never_read.email == "zelda@example.org"
        loaded_customer = loaded(Customer, row)
        assert loaded_customer.name == "Zelda Quartermain"  # decrypted: the key and the value are cached
        assert loaded_customer.__dict__["_pii_keys"] == {key_id: dek}
        blob = pickle.dumps(loaded_customer)
        assert dek not in blob
        assert b"Zelda" not in blob
        assert b"zelda@example.org" not in blob
        for again in (pickle.loads(blob), copy.copy(loaded_customer), copy.deepcopy(loaded_customer)):  # noqa: S301
            assert "_pii_keys" not in again.__dict__
            assert "_pii_plain" not in again.__dict__
            assert (again.name, again.email) == ("Zelda Quartermain", "zelda@example.org")
    assert loaded_customer.__dict__["_pii_keys"] == {key_id: dek}  # the original keeps its cache
