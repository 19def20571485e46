"""The RADIUS dictionary the project ships, and attributes by name in and out of pyrad packets.

`load_dictionary()` reads `dictionaries/dictionary` (FreeRADIUS format, the files are ours: pyrad
cannot parse the complete FreeRADIUS tree). `encode_attributes` / `decode_attributes` move
``{"Attribute-Name": value or [values]}`` mappings into and out of packets with strict types,
because pyrad's own encoding guesses: it turns the str ``"65"`` into the single octet ``A`` for an
octets attribute, un-hexes bytes starting with ``0x`` and truncates a float given for an integer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import struct
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pyrad import tools
from pyrad.dictionary import Attribute, Dictionary
from pyrad.packet import Packet

DICTIONARY_DIR = Path(__file__).resolve().parent / "dictionaries"
DICTIONARY_FILE = DICTIONARY_DIR / "dictionary"

# Attributes the transport sets itself; a caller passing them is a bug (a User-Password given
# as a plain attribute would travel unencrypted).
TRANSPORT_ATTRIBUTES = frozenset({"User-Password", "CHAP-Password", "CHAP-Challenge", "Message-Authenticator"})

PACKET_CODE_NAMES: dict[int, str] = {
    1: "Access-Request",
    2: "Access-Accept",
    3: "Access-Reject",
    4: "Accounting-Request",
    5: "Accounting-Response",
    11: "Access-Challenge",
    12: "Status-Server",
    13: "Status-Client",
    40: "Disconnect-Request",
    41: "Disconnect-ACK",
    42: "Disconnect-NAK",
    43: "CoA-Request",
    44: "CoA-ACK",
    45: "CoA-NAK",
}

_INTEGER_TYPES = {"integer", "signed", "short", "byte", "integer64"}
_MESSAGE_AUTHENTICATOR = 80


@cache
def load_dictionary() -> Dictionary:
    """The project's dictionary, parsed once per process. Treat it as read-only: it is shared."""
    return Dictionary(str(DICTIONARY_FILE))


def packet_code_name(code: int | None) -> str:
    if code is None:
        return "no answer"
    return PACKET_CODE_NAMES.get(code, f"code {code}")


def attribute_key(name: str, dictionary: Dictionary | None = None) -> int | tuple[int, int]:
    """The key pyrad stores an attribute under: its code, or (vendor id, code) for a vendor attribute."""
    dictionary = dictionary or load_dictionary()
    if name not in dictionary:
        raise ValueError(f"unknown RADIUS attribute {name!r} (not in {DICTIONARY_DIR})")
    return dictionary.attrindex.GetForward(name)


def encode_value(attribute: Attribute, value: Any) -> bytes:
    """One value of `attribute` as it travels, refusing values whose meaning would be a guess."""
    name = attribute.name
    if isinstance(value, str) and attribute.values.HasForward(value):
        return attribute.values.GetForward(value)
    kind = attribute.type
    try:
        if kind in _INTEGER_TYPES:
            if isinstance(value, bool) or not isinstance(value, int):
                names = ", ".join(attribute.values.forward) or "none"
                raise TypeError(f"expected an int or one of its value names ({names}), got {value!r}")
            return tools.EncodeAttr(kind, value)
        if kind == "date":
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    raise TypeError("a naive datetime has no defined instant; give an aware one")
                value = int(value.timestamp())
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"expected seconds since the epoch (int) or an aware datetime, got {value!r}")
            return tools.EncodeAttr(kind, value)
        if kind == "octets":
            if not isinstance(value, bytes | bytearray):
                raise TypeError(f"expected bytes, got {type(value).__name__}")
            if len(value) > 253:
                raise ValueError(f"{len(value)} octets, at most 253 fit into an attribute")
            return bytes(value)
        if kind == "string":
            if not isinstance(value, str | bytes):
                raise TypeError(f"expected str, got {type(value).__name__}")
            return tools.EncodeAttr(kind, value)
        if kind == "ipaddr":
            if isinstance(value, ipaddress.IPv4Address):
                value = str(value)
            if not isinstance(value, str):
                raise TypeError(f"expected an IPv4 address, got {value!r}")
            return tools.EncodeAttr(kind, value)
        return tools.EncodeAttr(kind, value)
    except (TypeError, ValueError, struct.error) as exc:
        raise ValueError(f"RADIUS attribute {name} ({kind}): {exc}") from None


def encode_attributes(packet: Packet, attributes: Mapping[str, Any], *, dictionary: Dictionary | None = None) -> None:
    """Append ``{"Name": value or [values]}`` to `packet`, in order. Raises ValueError for an unknown
    name, a value of the wrong type, or an attribute the transport sets itself."""
    dictionary = dictionary or load_dictionary()
    for name, value in attributes.items():
        if name in TRANSPORT_ATTRIBUTES:
            raise ValueError(f"{name} is set by the RADIUS transport itself, not passed as an attribute")
        key = attribute_key(name, dictionary)
        values = value if isinstance(value, list | tuple) else [value]
        encoded = [encode_value(dictionary[name], v) for v in values]
        # stored raw under the packet key, so that pyrad does not encode a second time
        OrderedDict.setdefault(packet, key, []).extend(encoded)


def _unknown_name(key: int | tuple[int, int]) -> str:
    # FreeRADIUS's names for attributes it has no dictionary entry for
    if isinstance(key, tuple):
        return f"Attr-26.{key[0]}.{key[1]}"
    return f"Attr-{key}"


def decode_attributes(packet: Packet, *, dictionary: Dictionary | None = None) -> dict[str, list]:
    """The attributes of a packet as ``{"Name": [values]}``: integers with a value name as the name,
    undecodable values as raw bytes. The Message-Authenticator is transport and left out."""
    dictionary = dictionary or load_dictionary()
    decoded: dict[str, list] = {}
    for key in OrderedDict.keys(packet):
        if key == _MESSAGE_AUTHENTICATOR:
            continue
        raw_values = OrderedDict.__getitem__(packet, key)
        if not dictionary.attrindex.HasBackward(key):
            decoded.setdefault(_unknown_name(key), []).extend(raw_values)
            continue
        attribute = dictionary[dictionary.attrindex.GetBackward(key)]
        decoded.setdefault(attribute.name, []).extend(_decode_value(attribute, raw) for raw in raw_values)
    return decoded


def _decode_value(attribute: Attribute, raw: bytes) -> Any:
    if attribute.values.HasBackward(raw):
        return attribute.values.GetBackward(raw)
    try:
        return tools.DecodeAttr(attribute.type, raw)
    except (ValueError, struct.error):
        return raw


def integer_attribute(packet: Packet, name: str, *, dictionary: Dictionary | None = None) -> int | None:
    """The first value of an integer attribute as a number (not its value name), or None."""
    raw_values = OrderedDict.get(packet, attribute_key(name, dictionary))
    if not raw_values or len(raw_values[0]) != 4:
        return None
    return struct.unpack("!I", raw_values[0])[0]


def jsonable(attributes: Mapping[str, Iterable[Any]]) -> dict[str, list]:
    """Decoded attributes made JSON-safe: bytes as ``0x``-prefixed hex, as FreeRADIUS prints octets."""
    return {
        name: [f"0x{value.hex()}" if isinstance(value, bytes) else value for value in values]
        for name, values in attributes.items()
    }
