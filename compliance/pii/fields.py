"""Model fields for personal data, encrypted with the data subject's own key.

    class Customer(models.Model):
        data_key_id = SubjectKeyField(auto_create=True)   # before the PII fields
        email = EncryptedEmailField()
        email_index = BlindIndexField(source="email", normalizer="compliance.pii.normalize.email")

- The column holds AES-256-GCM ciphertext (bytea): b"S1" | data key id (16) | nonce (12) |
  ciphertext+tag; the header and "<app.model>.<field>" are authenticated, so a value cannot be
  copied into another column; a value whose key id is not its row's `data_key_id` (copied from
  another subject's row) is refused with PIIDecryptionError.
- Reading the attribute decrypts lazily with the subject's data key (from the key store, outside
  the application database). When that key has been destroyed (erasure), text reads as
  `ERASED` and dates as None.
- Filtering on an encrypted field raises `EncryptedFieldLookupError` (a scan could not work);
  exact matches go through the blind-index column (`BlindIndexField.lookup_value`).
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django import forms
from django.db import connection, models
from django.db.models.query_utils import DeferredAttribute
from django.utils.module_loading import import_string

from .keyring import NONCE_BYTES, PIIDecryptionError, get_keyring
from .keystore import data_keys, get_keystore

SUBJECT_MAGIC = b"S1"
HEADER_BYTES = len(SUBJECT_MAGIC) + 16
ERASED = "[erased]"


class EncryptedFieldLookupError(Exception):
    """A query tried to filter on an encrypted column."""


class Sealed:
    """A ciphertext as stored; `fresh` when it was sealed by the current save."""

    __slots__ = ("blob", "fresh")

    def __init__(self, blob: bytes, fresh: bool = False):
        self.blob = bytes(blob)
        self.fresh = fresh

    def __repr__(self) -> str:
        return "<Sealed PII>"


def key_id_of(blob: bytes) -> uuid.UUID:
    if len(blob) < HEADER_BYTES + NONCE_BYTES + 16 or blob[:2] != SUBJECT_MAGIC:
        raise PIIDecryptionError("not a subject-key ciphertext")
    return uuid.UUID(bytes=bytes(blob[2:HEADER_BYTES]))


def seal(plaintext: bytes, *, key_id: uuid.UUID, dek: bytes, label: bytes) -> bytes:
    header = SUBJECT_MAGIC + key_id.bytes
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + AESGCM(dek).encrypt(nonce, plaintext, header + label)


def unseal(blob: bytes, *, dek: bytes, label: bytes) -> bytes:
    blob = bytes(blob)
    key_id_of(blob)  # a truncated or foreign blob is a PIIDecryptionError, not a ValueError from AESGCM
    header, nonce, body = (
        blob[:HEADER_BYTES],
        blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES],
        blob[HEADER_BYTES + NONCE_BYTES :],
    )
    try:
        return AESGCM(dek).decrypt(nonce, body, header + label)
    except InvalidTag:
        raise PIIDecryptionError("PII ciphertext failed authentication (tampered or moved)") from None


def _instance_keys(instance) -> dict:
    return instance.__dict__.setdefault("_pii_keys", {})


def subject_key(instance, key_id: uuid.UUID) -> bytes | None:
    """The data key for one instance (cached on it); None when the key was destroyed."""
    cached = _instance_keys(instance)
    if key_id not in cached:
        cached.update(data_keys(connection.schema_name, [key_id]))
    return cached[key_id]


def pii_prefetch(instances: Iterable[models.Model], key_field: str = "data_key_id") -> None:
    """Fetch the data keys of many instances in one key-store query (for lists)."""
    instances = list(instances)
    ids = {getattr(obj, key_field) for obj in instances} - {None}
    if not ids:
        return
    keys = data_keys(connection.schema_name, ids)
    for obj in instances:
        key_id = getattr(obj, key_field)
        if key_id is not None:
            _instance_keys(obj)[key_id] = keys[key_id]


class SubjectKeyField(models.UUIDField):
    """The id of the data subject's key in the key store. With `auto_create`, a key is made for
    a new row that has none; otherwise the service must copy the owning subject's key id."""

    def __init__(self, *args, auto_create: bool = False, **kwargs):
        self.auto_create = auto_create
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.auto_create:
            kwargs["auto_create"] = True
        return name, path, args, kwargs

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if value is None and self.auto_create:
            value = get_keystore().create(tenant=connection.schema_name)[0]
            setattr(model_instance, self.attname, value)
        return value


class PIIDescriptor(DeferredAttribute):
    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        raw = super().__get__(instance, cls)
        if not isinstance(raw, Sealed):
            return raw
        plain = instance.__dict__.setdefault("_pii_plain", {})
        if self.field.attname not in plain:
            plain[self.field.attname] = self.field.open(instance, raw.blob)
        return plain[self.field.attname]

    def __set__(self, instance, value):
        instance.__dict__.get("_pii_plain", {}).pop(self.field.attname, None)
        if isinstance(value, memoryview | bytes):
            value = Sealed(value)
        instance.__dict__[self.field.attname] = value


# What an instance caches in its __dict__ while it is used: unwrapped data keys and decrypted values.
INSTANCE_CACHES = ("_pii_keys", "_pii_plain")


def _getstate_without_clear_caches(self):
    """Model.__getstate__ minus the unwrapped data keys and decrypted values: a pickled (or copied)
    instance carries its ciphertext only and decrypts again, through the key store, when read."""
    state = models.Model.__getstate__(self)
    for name in INSTANCE_CACHES:
        state.pop(name, None)
    return state


class EncryptedField(models.BinaryField):
    """Base of the PII field family. Subclasses say how a value becomes bytes and back."""

    descriptor_class = PIIDescriptor
    key_field = "data_key_id"
    erased_value: object = ERASED
    form_class: type[forms.Field] = forms.CharField

    def contribute_to_class(self, cls, name, *args, **kwargs):
        super().contribute_to_class(cls, name, *args, **kwargs)
        if cls.__getstate__ is models.Model.__getstate__:
            cls.__getstate__ = _getstate_without_clear_caches

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)
        self.editable = kwargs.get("editable", True)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("editable", None)
        return name, path, args, kwargs

    # -- value encoding (overridden by subclasses) ------------------------------------------
    def encode(self, value) -> bytes:
        return str(value).encode()

    def decode(self, data: bytes):
        return data.decode()

    # -- crypto -----------------------------------------------------------------------------
    @property
    def label(self) -> bytes:
        return f"{self.model._meta.label_lower}.{self.name}".encode()

    def open(self, instance, blob: bytes):
        key_id = key_id_of(blob)
        owner = instance.__dict__.get(self.key_field)  # not loaded (deferred): nothing to compare
        if owner is not None and owner != key_id:
            # The label binds a value to its column; this binds it to its row's subject: a value
            # copied from another subject's row is refused, not read as if it were this one's.
            raise PIIDecryptionError(
                f"{self.model.__name__}.{self.name} holds a value sealed for another data subject"
            )
        dek = subject_key(instance, key_id)
        if dek is None:
            return self.erased_value
        return self.decode(unseal(blob, dek=dek, label=self.label))

    def pre_save(self, model_instance, add):
        raw = model_instance.__dict__.get(self.attname)
        if isinstance(raw, Sealed):
            return raw.blob
        if raw is None or raw == "":
            return None
        key_id = getattr(model_instance, self.key_field)
        if key_id is None:
            raise ValueError(f"{self.model.__name__}.{self.key_field} must be set before saving personal data")
        dek = subject_key(model_instance, key_id)
        if dek is None:
            raise ValueError("this data subject was erased; personal data cannot be written for it")
        blob = seal(self.encode(raw), key_id=key_id, dek=dek, label=self.label)
        model_instance.__dict__[self.attname] = Sealed(blob, fresh=True)
        model_instance.__dict__.setdefault("_pii_plain", {})[self.attname] = raw
        return blob

    def from_db_value(self, value, expression, connection):
        return None if value is None else Sealed(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        if isinstance(value, Sealed):
            value = value.blob
        return super().get_db_prep_value(value, connection, prepared)

    def to_python(self, value):
        return value

    def value_to_string(self, obj):
        return "" if getattr(obj, self.attname) in (None, "") else "<encrypted>"

    def get_lookup(self, lookup_name):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise EncryptedFieldLookupError(
            f"{self.model.__name__}.{self.name} is encrypted and cannot be filtered with '{lookup_name}'; "
            "use its blind index for exact matches"
        )

    def get_transform(self, lookup_name):
        raise EncryptedFieldLookupError(f"{self.model.__name__}.{self.name} is encrypted")

    def formfield(self, **kwargs):
        return self.form_class(required=not self.blank, **kwargs)


class EncryptedTextField(EncryptedField):
    pass


class EncryptedEmailField(EncryptedField):
    form_class = forms.EmailField


class EncryptedPhoneField(EncryptedField):
    pass


class EncryptedDateField(EncryptedField):
    erased_value = None
    form_class = forms.DateField

    def encode(self, value) -> bytes:
        if isinstance(value, str):
            value = datetime.date.fromisoformat(value)
        if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
            raise TypeError(f"{self.name} takes a date")
        return value.isoformat().encode()

    def decode(self, data: bytes):
        return datetime.date.fromisoformat(data.decode())


class BlindIndexField(models.BinaryField):
    """Keyed HMAC of the normalised value of an encrypted field, for exact-match lookups.

    The HMAC scope includes the tenant's schema and the field, so equal values in two tenants or
    two columns have unrelated indexes."""

    def __init__(self, *args, source: str, normalizer: str, **kwargs):
        self.source = source
        self.normalizer = normalizer
        kwargs.setdefault("null", True)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("db_index", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.update(source=self.source, normalizer=self.normalizer)
        return name, path, args, kwargs

    def lookup_value(self, value) -> bytes | None:
        """The index of `value` in the current tenant: `filter(email_index=field.lookup_value(x))`."""
        if value is None or value == "":
            return None
        normalized = import_string(self.normalizer)(value)
        scope = f"{connection.schema_name}.{self.model._meta.label_lower}.{self.source}"
        return get_keyring().blind_index(scope=scope, value=normalized)

    def pre_save(self, model_instance, add):
        raw = model_instance.__dict__.get(self.source)
        if isinstance(raw, Sealed) and not raw.fresh:
            current = getattr(model_instance, self.attname)
            return bytes(current) if current is not None else None
        value = model_instance.__dict__.get("_pii_plain", {}).get(self.source) if isinstance(raw, Sealed) else raw
        digest = self.lookup_value(value)
        setattr(model_instance, self.attname, digest)
        return digest
