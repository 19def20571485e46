"""Properties of the pure PII crypto (no database): key ring, subject seal, masking, blind index."""

import base64
import datetime
import os
import string
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import assume, given
from hypothesis import strategies as st

from compliance.pii.fields import HEADER_BYTES, SUBJECT_MAGIC, key_id_of, seal, unseal
from compliance.pii.keyring import NONCE_BYTES, KeyRing, PIIDecryptionError
from compliance.pii.masking import MASK, mask_date, mask_email, mask_phone, mask_text

pytestmark = [pytest.mark.customer_data_protection]

KEY_ID_ALPHABET = string.ascii_letters + string.digits + "_-"
key_ids = st.text(KEY_ID_ALPHABET, min_size=1, max_size=16)
aes_keys = st.binary(min_size=32, max_size=32)
purposes = st.binary(max_size=64)
payloads = st.binary(max_size=512)


@st.composite
def rings(draw, min_keys: int = 1, max_keys: int = 4) -> KeyRing:
    ids = draw(st.lists(key_ids, min_size=min_keys, max_size=max_keys, unique=True))
    return KeyRing(keys=tuple((kid, draw(aes_keys)) for kid in ids), index_key=draw(aes_keys))


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def flip(blob: bytes, bit: int) -> bytes:
    data = bytearray(blob)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


# -- key ring ------------------------------------------------------------------------------------
@pytest.mark.property
@given(ring=rings(), plaintext=payloads, purpose=purposes)
def test_ring_round_trip_for_any_bytes_and_purpose(ring, plaintext, purpose):
    blob = ring.encrypt(plaintext, purpose)
    assert ring.decrypt(blob, purpose) == plaintext
    assert ring.decrypt(memoryview(blob), purpose) == plaintext  # as psycopg hands out bytea


@pytest.mark.property
@given(ring=rings(), plaintext=payloads, purpose=purposes, data=st.data())
def test_ring_any_flipped_bit_is_a_decryption_error(ring, plaintext, purpose, data):
    blob = ring.encrypt(plaintext, purpose)
    header_bits = (3 + len(ring.primary_id)) * 8  # magic, key id length, key id: half the draws
    bit = data.draw(st.integers(0, header_bits - 1) | st.integers(0, len(blob) * 8 - 1), label="bit")
    with pytest.raises(PIIDecryptionError):
        ring.decrypt(flip(blob, bit), purpose)


@pytest.mark.property
@given(ring=rings(), plaintext=payloads, purpose=purposes, other=purposes)
def test_ring_ciphertext_of_one_purpose_does_not_open_under_another(ring, plaintext, purpose, other):
    assume(other != purpose)
    with pytest.raises(PIIDecryptionError, match="authentication"):
        ring.decrypt(ring.encrypt(plaintext, purpose), other)


@pytest.mark.property
@given(ring=rings(min_keys=2), plaintext=payloads, purpose=purposes)
def test_key_id_is_read_from_the_ciphertext_and_any_ring_key_decrypts(ring, plaintext, purpose):
    blob = ring.encrypt(plaintext, purpose)
    assert KeyRing.key_id_of(blob) == ring.primary_id
    # The same keys in another order (an older key now primary) still decrypt: the id picks the key.
    rotated = KeyRing(keys=ring.keys[1:] + ring.keys[:1], index_key=ring.index_key)
    assert rotated.primary_id != ring.primary_id
    assert rotated.decrypt(blob, purpose) == plaintext
    assert KeyRing.key_id_of(rotated.encrypt(plaintext, purpose)) == rotated.primary_id


@pytest.mark.property
@given(ring=rings(), plaintext=payloads, purpose=purposes)
def test_a_key_id_missing_from_the_ring_is_a_clear_error(ring, plaintext, purpose):
    assume("zz-new" not in ring.key_ids)
    blob = ring.encrypt(plaintext, purpose)
    successor = KeyRing(keys=(("zz-new", os.urandom(32)),), index_key=ring.index_key)
    with pytest.raises(PIIDecryptionError, match=rf"key id '{ring.primary_id}' is not in the key ring \(PII_KEYS\)"):
        successor.decrypt(blob, purpose)


@pytest.mark.property
@given(ring=rings(), junk=st.binary(max_size=40), purpose=purposes)
def test_anything_that_is_not_a_ring_ciphertext_is_a_decryption_error(ring, junk, purpose):
    with pytest.raises(PIIDecryptionError):
        ring.decrypt(junk, purpose)


# -- per-subject seal ----------------------------------------------------------------------------
@pytest.mark.property
@given(dek=aes_keys, plaintext=payloads, label=purposes)
def test_seal_round_trip_and_the_subject_key_id_travels_in_the_header(dek, plaintext, label):
    key_id = uuid.uuid4()
    blob = seal(plaintext, key_id=key_id, dek=dek, label=label)
    assert blob[:2] == SUBJECT_MAGIC
    assert key_id_of(blob) == key_id
    assert len(blob) == HEADER_BYTES + NONCE_BYTES + len(plaintext) + 16
    assert unseal(blob, dek=dek, label=label) == plaintext


@pytest.mark.property
@given(dek=aes_keys, plaintext=payloads, label=purposes, other=purposes)
def test_a_sealed_value_is_bound_to_its_label(dek, plaintext, label, other):
    """A value copied into another column (label = "<app.model>.<field>") does not open."""
    assume(other != label)
    blob = seal(plaintext, key_id=uuid.uuid4(), dek=dek, label=label)
    with pytest.raises(PIIDecryptionError):
        unseal(blob, dek=dek, label=other)


@pytest.mark.property
@given(dek=aes_keys, other_dek=aes_keys, plaintext=payloads, label=purposes, data=st.data())
def test_a_sealed_value_opens_only_intact_and_with_its_subjects_key(dek, other_dek, plaintext, label, data):
    blob = seal(plaintext, key_id=uuid.uuid4(), dek=dek, label=label)
    bit = data.draw(st.integers(0, len(blob) * 8 - 1), label="bit")
    with pytest.raises(PIIDecryptionError):
        unseal(flip(blob, bit), dek=dek, label=label)
    with pytest.raises(PIIDecryptionError):
        unseal(blob[: data.draw(st.integers(0, len(blob) - 1), label="cut")], dek=dek, label=label)
    assume(other_dek != dek)
    with pytest.raises(PIIDecryptionError):
        unseal(blob, dek=other_dek, label=label)


# -- masking -------------------------------------------------------------------------------------
WORD = st.text(string.ascii_letters + string.digits, min_size=1, max_size=12)
LOCAL = st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20)
TLD = st.text(string.ascii_lowercase, min_size=2, max_size=6)


@pytest.mark.property
@given(local=LOCAL, hosts=st.lists(WORD, min_size=1, max_size=3), tld=TLD)
def test_mask_email_hides_the_address_but_keeps_first_letters_and_the_tld(local, hosts, tld):
    email = f"{local}@{'.'.join(hosts)}.{tld}"
    masked = mask_email(email)
    assert masked != email
    assert masked == f"{local[0]}{MASK}@{hosts[0][0]}{MASK}.{tld}"
    assert masked.endswith(f".{tld}")


@pytest.mark.property
@given(digits=st.text(string.digits, min_size=6, max_size=15))
def test_mask_phone_keeps_only_the_country_prefix_and_last_two_digits(digits):
    phone = "+" + digits
    masked = mask_phone(phone)
    assert masked != phone
    assert len(masked) == len(phone)
    assert masked[:2] == phone[:2]
    assert masked[-2:] == phone[-2:]
    assert set(masked[2:-2]) == {"*"}


@pytest.mark.property
@given(digits=st.text(string.digits, min_size=1, max_size=4))
def test_mask_phone_of_a_short_number_shows_nothing(digits):
    assert mask_phone("+" + digits) == MASK


@pytest.mark.property
@given(words=st.lists(WORD, min_size=1, max_size=5))
def test_mask_text_keeps_only_the_first_letter_of_each_word(words):
    text = " ".join(words)
    masked = mask_text(text)
    assert masked != text
    assert masked == " ".join(f"{w[0]}{MASK}" for w in words)


@pytest.mark.property
@given(day=st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2100, 12, 31)))
def test_mask_date_reveals_no_part_of_the_date(day):
    masked = mask_date(day)
    assert not any(ch.isdigit() for ch in masked)
    assert mask_date(None) is None


# -- blind index ---------------------------------------------------------------------------------
SCOPE = st.text(string.ascii_lowercase + string.digits + "_.", min_size=1, max_size=60)


@pytest.mark.property
@given(index_key=aes_keys, scope=SCOPE, value=st.text(max_size=80))
def test_blind_index_is_deterministic_and_independent_of_the_encryption_keys(index_key, scope, value):
    a = KeyRing(keys=(("k1", os.urandom(32)),), index_key=index_key)
    b = KeyRing(keys=(("k2", os.urandom(32)),), index_key=index_key)  # rotated ring, same index key
    digest = a.blind_index(scope=scope, value=value)
    assert len(digest) == 32
    assert digest == a.blind_index(scope=scope, value=value) == b.blind_index(scope=scope, value=value)


@pytest.mark.property
@given(index_key=aes_keys, tenant_a=SCOPE, tenant_b=SCOPE, value=st.text(max_size=80))
def test_blind_index_of_one_value_differs_between_tenant_scopes(index_key, tenant_a, tenant_b, value):
    assume(tenant_a != tenant_b)
    ring = KeyRing(keys=(("k1", os.urandom(32)),), index_key=index_key)
    field = "customers.customer.email"
    assert ring.blind_index(scope=f"{tenant_a}.{field}", value=value) != ring.blind_index(
        scope=f"{tenant_b}.{field}", value=value
    )


@pytest.mark.property
@given(key_a=aes_keys, key_b=aes_keys, scope=SCOPE, value=st.text(max_size=80))
def test_blind_index_depends_on_the_index_key(key_a, key_b, scope, value):
    assume(key_a != key_b)
    a = KeyRing(keys=(("k1", key_a),), index_key=key_a)
    b = KeyRing(keys=(("k1", key_a),), index_key=key_b)
    assert a.blind_index(scope=scope, value=value) != b.blind_index(scope=scope, value=value)


# -- PII_KEYS parsing ----------------------------------------------------------------------------
ENCODINGS = (b64, lambda k: base64.b64encode(k).decode(), lambda k: base64.urlsafe_b64encode(k).decode())


@st.composite
def valid_specs(draw):
    """A valid PII_KEYS value (any of the base64 spellings) and the keys it names."""
    ids = draw(st.lists(key_ids, min_size=1, max_size=4, unique=True))
    keys = [(kid, draw(aes_keys)) for kid in ids]
    encode = draw(st.sampled_from(ENCODINGS))
    separator = draw(st.sampled_from([",", ", "]))
    return separator.join(f"{kid}:{encode(key)}" for kid, key in keys), keys


@pytest.mark.property
@given(spec=valid_specs(), index_key=aes_keys)
def test_parse_reads_a_valid_ring_newest_first(spec, index_key):
    text, expected = spec
    ring = KeyRing.parse(text, b64(index_key))
    assert list(ring.keys) == expected
    assert ring.primary_id == expected[0][0]
    assert ring.index_key == index_key


@pytest.mark.property
@given(key=aes_keys, bad=st.text(alphabet="!\"$%&*()[]{}<>?;\\' ", min_size=1, max_size=3), data=st.data())
def test_parse_rejects_bad_base64(key, bad, data):
    material = data.draw(st.sampled_from(ENCODINGS), label="encoding")(key)
    at = data.draw(st.integers(0, len(material)), label="at")
    broken = material[:at] + bad + material[at:]
    assume(broken.strip() != material)  # spaces around the value are trimmed, not an error
    with pytest.raises(ImproperlyConfigured, match="base64"):
        KeyRing.parse(f"k1:{broken}", b64(key))
    with pytest.raises(ImproperlyConfigured, match="PII_INDEX_KEY"):
        KeyRing.parse(f"k1:{material}", broken)


@pytest.mark.property
@given(material=st.binary(max_size=64).filter(lambda b: len(b) != 32), key=aes_keys)
def test_parse_rejects_keys_of_the_wrong_length(material, key):
    with pytest.raises(ImproperlyConfigured, match=r"(32 bytes|base64)"):
        KeyRing.parse(f"k1:{b64(material)}", b64(key))
    with pytest.raises(ImproperlyConfigured, match=r"PII_INDEX_KEY"):
        KeyRing.parse(f"k1:{b64(key)}", b64(material))


@pytest.mark.property
@given(kid=key_ids, a=aes_keys, b=aes_keys)
def test_parse_rejects_a_key_id_named_twice(kid, a, b):
    with pytest.raises(ImproperlyConfigured, match="twice"):
        KeyRing.parse(f"{kid}:{b64(a)},{kid}:{b64(b)}", b64(a))


@pytest.mark.property
@given(
    kid=st.one_of(
        st.just(""),
        st.text(KEY_ID_ALPHABET, min_size=17, max_size=30),
        st.text(min_size=1, max_size=16).filter(lambda s: any(ch not in KEY_ID_ALPHABET for ch in s.strip())),
        key_ids.map(lambda s: s + "\n"),
    ),
    key=aes_keys,
)
def test_parse_rejects_a_bad_key_id(kid, key):
    assume("," not in kid and ":" not in kid)
    with pytest.raises(ImproperlyConfigured):
        KeyRing.parse(f"{kid}:{b64(key)}", b64(key))


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("keys", "index"),
    [("", "x"), ("k1", "x"), ("k1:" + b64(bytes(32)) + ",", b64(bytes(32))), ("k1:" + b64(bytes(32)), "")],
)
def test_parse_rejects_missing_or_incomplete_settings(keys, index):
    with pytest.raises(ImproperlyConfigured):
        KeyRing.parse(keys, index)
