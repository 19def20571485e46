"""How customers' personal data is shown to staff, in the API and in the admin.

- `clear`: staff with `customers.reveal_pii` (owner, billing_admin). Every response or page that
  shows personal data in clear records one `pii.revealed` audit event per object shown (field
  names only), in the same transaction as the read.
- `masked`: every other staff role. Masking decrypts, but shows nothing that identifies a person,
  so it is not a reveal.
- `omitted`: asked for with `?include_pii=false`. Personal data is neither loaded nor decrypted.

The data subject sees their own data in clear through the portal; that is not a staff reveal.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Iterable, Sequence

from django.db import models

from compliance.audit import Actor, audit_pii_reveal
from compliance.pii.fields import pii_prefetch
from compliance.pii.masking import mask_date, mask_email, mask_phone, mask_text

REVEAL_PERMISSION = "customers.reveal_pii"


class PIIMode(enum.StrEnum):
    CLEAR = "clear"
    MASKED = "masked"
    OMITTED = "omitted"


Masker = Callable[[object], object]

# Field -> how it is masked. The keys are also the field names recorded in `pii.revealed`.
CUSTOMER_PII: dict[str, Masker] = {
    "name": mask_text,
    "email": mask_email,
    "phone": mask_phone,
    "national_id": mask_text,
    "tax_id": mask_text,
    "date_of_birth": mask_date,
}
ADDRESS_PII: dict[str, Masker] = {"street": mask_text, "city": mask_text, "postal_code": mask_text}


def can_reveal(user) -> bool:
    return bool(user and user.is_active and user.has_perm(REVEAL_PERMISSION))


def pii_mode_for(user, *, include_pii: bool = True) -> PIIMode:
    if not include_pii:
        return PIIMode.OMITTED
    return PIIMode.CLEAR if can_reveal(user) else PIIMode.MASKED


def shown_value(value, *, mode: PIIMode, masker: Masker):
    """A decrypted value as `mode` shows it (dates in clear as ISO strings)."""
    if mode is PIIMode.MASKED:
        return masker(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def prepare(objects: Iterable[models.Model], mode: PIIMode) -> list[models.Model]:
    """Fetch the data keys of a page of objects in one key-store query (none when omitted)."""
    objects = list(objects)
    if mode is not PIIMode.OMITTED:
        pii_prefetch(objects)
    return objects


def record_reveal(
    *, mode: PIIMode, actor: Actor, objects: Sequence[models.Model], fields: Iterable[str], source_ip: str | None
) -> int:
    """Audit the objects shown in clear. Call inside the transaction of the read."""
    if mode is not PIIMode.CLEAR or not objects:
        return 0
    return audit_pii_reveal(actor=actor, objects=objects, fields=fields, source_ip=source_ip)
