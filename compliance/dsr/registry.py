"""The personal-data registry: how compliance reaches other apps' data without importing them.

Each app declares, in its own `<app>/personal_data.py`, what it holds about a data subject (a
customer) and what an erasure does to it; `autodiscover()` imports every installed app's
`personal_data` module once (the declarations register themselves on import):

- `Category`: one kind of data (`billing.invoices`): `export(subject) -> rows` (JSON-ready dicts,
  personal data in clear), what an erasure does to it (`erase(ctx) -> rows changed`, or `None`
  when the rows carry no identity of their own), which audit objects belong to the subject
  (`audit_objects(subject) -> (object_type, object_id)` pairs) and which PII fields are revealed;
- `ErasureCheck`: a reason to refuse an erasure (`check(subject) -> reason or None`), optionally
  gated by a boolean field of the tenant's `PrivacyPolicy`;
- `BeforeErasure`: side effects that must happen outside the erasure's transaction (network I/O
  such as a RADIUS Disconnect);
- `OptOut`: what "do not sell or share" changes on the subject (CCPA);
- `Purger`: a retention purge `run(policy=..., now=...) -> rows purged`.

compliance never imports billing or network: they come to it through here."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils.module_loading import autodiscover_modules

MODULE_NAME = "personal_data"

Row = dict[str, Any]


@dataclass(frozen=True)
class ErasureContext:
    """What an eraser gets: the subject (locked), who asked, the pseudonym that replaces the
    identity, and the moment of the erasure."""

    subject: Any
    actor: Any
    pseudonym: str
    now: datetime.datetime
    request_id: int | None = None
    source_ip: str | None = None

    @property
    def label(self) -> str:
        return f"Erased customer #{self.pseudonym}"


@dataclass(frozen=True)
class Category:
    name: str  # "<app>.<category>", also the file name in the export archive
    title: str
    description: str
    export: Callable[[Any], list[Row]]
    erase: Callable[[ErasureContext], int] | None = None
    erasure_effect: str = ""  # what an erasure does to these rows, in words (README, admin)
    pii_fields: tuple[str, ...] = ()  # fields shown in clear by the export (audited as revealed)
    audit_objects: Callable[[Any], Iterable[tuple[str, str]]] | None = None
    erase_order: int = 100  # lower runs first (network before customers, which re-keys the subject)

    @property
    def app_label(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class ErasureCheck:
    name: str
    check: Callable[[Any], str | None]
    policy_flag: str = ""  # a boolean field of PrivacyPolicy that must be on for the check to apply


@dataclass(frozen=True)
class BeforeErasure:
    name: str
    run: Callable[..., Any]  # run(subject=..., actor=...), outside any transaction of the erasure


@dataclass(frozen=True)
class OptOut:
    name: str
    run: Callable[..., Any]  # run(subject=..., actor=..., source_ip=...), inside the transaction
    is_opted_out: Callable[[Any], bool] | None = None


@dataclass(frozen=True)
class Purger:
    name: str
    description: str
    run: Callable[..., int]  # run(policy=..., now=...) -> rows purged, inside a transaction


@dataclass
class Registry:
    categories: dict[str, Category] = field(default_factory=dict)
    checks: dict[str, ErasureCheck] = field(default_factory=dict)
    before_erasure: dict[str, BeforeErasure] = field(default_factory=dict)
    opt_outs: dict[str, OptOut] = field(default_factory=dict)
    purgers: dict[str, Purger] = field(default_factory=dict)

    def add(self, item) -> Any:
        table = {
            Category: self.categories,
            ErasureCheck: self.checks,
            BeforeErasure: self.before_erasure,
            OptOut: self.opt_outs,
            Purger: self.purgers,
        }[type(item)]
        table[item.name] = item  # re-registering the same name replaces it (module reloads)
        return item


_registry = Registry()
_discovered = False
_lock = threading.Lock()


def register(*items):
    """Register declarations (called at import of an app's `personal_data` module)."""
    for item in items:
        _registry.add(item)
    return items[0] if len(items) == 1 else items


def autodiscover() -> None:
    """Import `<app>.personal_data` of every installed app, once per process."""
    global _discovered
    if _discovered:
        return
    with _lock:
        if not _discovered:
            autodiscover_modules(MODULE_NAME)
            _discovered = True


def registry() -> Registry:
    autodiscover()
    return _registry


def categories() -> list[Category]:
    """Every declared category, in a stable order (app, then name)."""
    return sorted(registry().categories.values(), key=lambda c: c.name)


def erasure_order() -> list[Category]:
    return sorted(registry().categories.values(), key=lambda c: (c.erase_order, c.name))


def checks() -> list[ErasureCheck]:
    return sorted(registry().checks.values(), key=lambda c: c.name)


def before_erasure() -> list[BeforeErasure]:
    return sorted(registry().before_erasure.values(), key=lambda c: c.name)


def opt_outs() -> list[OptOut]:
    return sorted(registry().opt_outs.values(), key=lambda c: c.name)


def purgers() -> list[Purger]:
    return sorted(registry().purgers.values(), key=lambda c: c.name)


def model_row(instance, *, exclude: Iterable[str] = (), extra: Row | None = None) -> Row:
    """A model instance as an export row: every concrete field by its attribute name, personal
    data decrypted; never key ids, blind indexes or other binary columns (sealed secrets)."""
    from django.db import models

    from compliance.pii.fields import EncryptedField, SubjectKeyField

    skip = set(exclude)
    row: Row = {}
    for f in instance._meta.concrete_fields:
        if f.name in skip or f.attname in skip or isinstance(f, SubjectKeyField):
            continue
        if isinstance(f, models.BinaryField) and not isinstance(f, EncryptedField):
            continue
        row[f.attname] = getattr(instance, f.attname)
    row.update(extra or {})
    return row
