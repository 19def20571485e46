"""The key ring: AES-256-GCM master keys from settings, newest first.

`PII_KEYS="k2:<base64 32 bytes>,k1:<base64 32 bytes>"` - the first key encrypts, every key
decrypts. The key id travels inside every ciphertext, so keys rotate online: add a new key in
front, run `pii_rotate_keys`, then drop the old key once `pii_rotate_keys --check` is clean.

`PII_INDEX_KEY="<base64 32 bytes>"` keys the HMAC blind indexes (exact-match lookups).

Ciphertext layout (ring format): b"R1" | len(kid) (1 byte) | kid | nonce (12) | ciphertext+tag.
The header and a purpose label are authenticated as associated data, so a ciphertext cannot be
moved to another purpose (column) or have its key id swapped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

RING_MAGIC = b"R1"
NONCE_BYTES = 12
KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")  # fullmatch ("$" would let "k1\n" through)


class PIIDecryptionError(Exception):
    """A ciphertext could not be decrypted: unknown key id, tampered data or wrong purpose."""


def _decode_key(raw: str, name: str) -> bytes:
    raw = raw.strip()
    try:
        # validate=True: a character outside the alphabet (a stray quote, a space) is an error,
        # not silently dropped. Both the URL-safe ("-_") and the standard ("+/") alphabet decode.
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{name} is not valid base64.") from None
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} must decode to 32 bytes (AES-256), got {len(key)}.")
    return key


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[tuple[str, bytes], ...]  # (key id, key), newest first
    index_key: bytes

    @classmethod
    def parse(cls, keys_spec: str, index_spec: str) -> KeyRing:
        if not keys_spec.strip():
            raise ImproperlyConfigured("PII_KEYS is not set (run `make setup`, or see README: Configuration).")
        keys: list[tuple[str, bytes]] = []
        for item in keys_spec.split(","):
            kid, sep, material = item.strip().partition(":")
            if not sep or not KEY_ID_RE.fullmatch(kid):
                raise ImproperlyConfigured("PII_KEYS entries are '<key id>:<base64 key>', ids of 1-16 [A-Za-z0-9_-].")
            if kid in dict(keys):
                raise ImproperlyConfigured(f"PII_KEYS names key id {kid!r} twice.")
            keys.append((kid, _decode_key(material, f"PII_KEYS[{kid}]")))
        if not index_spec.strip():
            raise ImproperlyConfigured("PII_INDEX_KEY is not set (run `make setup`, or see README: Configuration).")
        return cls(keys=tuple(keys), index_key=_decode_key(index_spec, "PII_INDEX_KEY"))

    @property
    def primary_id(self) -> str:
        return self.keys[0][0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(kid for kid, _ in self.keys)

    def _key(self, kid: str) -> bytes:
        for candidate, key in self.keys:
            if candidate == kid:
                return key
        raise PIIDecryptionError(f"key id {kid!r} is not in the key ring (PII_KEYS)")

    def encrypt(self, plaintext: bytes, purpose: bytes) -> bytes:
        kid, key = self.keys[0]
        header = RING_MAGIC + bytes([len(kid)]) + kid.encode()
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header + purpose)

    def decrypt(self, blob: bytes, purpose: bytes) -> bytes:
        blob = bytes(blob)
        kid = self.key_id_of(blob)
        header_len = 3 + len(kid)
        header, nonce, body = (
            blob[:header_len],
            blob[header_len : header_len + NONCE_BYTES],
            blob[header_len + NONCE_BYTES :],
        )
        try:
            return AESGCM(self._key(kid)).decrypt(nonce, body, header + purpose)
        except InvalidTag:
            raise PIIDecryptionError("ciphertext failed authentication (tampered, or another purpose)") from None

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        blob = bytes(blob)
        if len(blob) < 3 or blob[:2] != RING_MAGIC or len(blob) < 3 + blob[2] + NONCE_BYTES + 16:
            raise PIIDecryptionError("not a key-ring ciphertext")
        try:
            return blob[3 : 3 + blob[2]].decode("ascii")
        except UnicodeDecodeError:
            raise PIIDecryptionError("not a key-ring ciphertext (malformed key id)") from None

    def blind_index(self, *, scope: str, value: str) -> bytes:
        """Keyed HMAC of a normalised value; `scope` separates tenants and fields."""
        return hmac.new(self.index_key, f"{scope}\x00{value}".encode(), hashlib.sha256).digest()


@lru_cache(maxsize=1)
def _ring_for(keys_spec: str, index_spec: str) -> KeyRing:
    return KeyRing.parse(keys_spec, index_spec)


def get_keyring() -> KeyRing:
    return _ring_for(getattr(settings, "PII_KEYS", ""), getattr(settings, "PII_INDEX_KEY", ""))


def generate_key() -> str:
    """A new random key, base64 - for `PII_KEYS` or `PII_INDEX_KEY`."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
