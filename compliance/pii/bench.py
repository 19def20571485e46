"""Benchmark of the PII encryption: raw crypto, and listing customers with and without PII.

Not a test: it measures. `python manage.py bench_pii` is the thin command around `bench_pii`.

In one run it measures
  (a) encrypt+decrypt per second of a typical field value with a subject data key (`seal` +
      `unseal`, what every PII field read and write costs) and of the key ring (wrap + unwrap of
      a 32-byte data key, what every key-store fetch and rotation costs);
  (b) on a throwaway tenant (`tenant_create`, slug `bench-pii-<random>`) with N customers - built
      on a fast path that stores exactly what `customer_create` stores: data keys made in batches
      (`KeyStore.create(count=...)`), values sealed directly, `bulk_create` - the listing of ALL
      customers page by page through the staff API (`GET /api/v1/customers/?page_size=...`, Django
      test client on the tenant's host, token auth) as the tenant's owner: with personal data
      (decrypted, in clear, each shown customer audited as `pii.revealed`) and with
      `?include_pii=false`; plus, when the API is there, as a `support` member (masked:
      decrypted but not audited). Without a customers API the ORM + DRF serialisation path is
      measured instead (same pagination, key prefetch per page, reveal audit), and said so;
  (c) the cost of the reveal audit: `pii.revealed` events written, and `audit_pii_reveal` alone
      in rows per second.
Everything the run creates (schema, tenant and domain rows, public audit events, the tenant's
keys in the key store) is removed at the end, also when the run fails half-way.
"""

from __future__ import annotations

import datetime
import os
import random
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client
from django_tenants.utils import schema_context
from psycopg import sql

from compliance.audit import Actor, audit_pii_reveal
from compliance.models import AuditEvent

from .fields import Sealed, pii_prefetch, seal, unseal
from .keyring import get_keyring
from .keystore import _wrap_purpose, get_keystore, key_scope

CUSTOMER_PII = ("name", "email", "phone", "national_id", "tax_id", "date_of_birth")
TYPICAL_VALUE = b"ava.nguyen.1042@example.com"  # a typical field value: an e-mail address, 27 bytes
KEY_BATCH = 1000
MICRO_SECONDS = 1.0
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits

FIRST = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Liam"]
LAST = ["Nguyen", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Kowalski", "Haddad"]


def person(i: int) -> dict:
    """The personal data of bench customer number i (deterministic, so a sample can be checked)."""
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    return {
        "name": f"{first} {last}",
        "email": f"{first}.{last}.{i}@example.com".lower(),
        "phone": f"+1202555{i % 10000:04d}",
        "national_id": f"NID-{i:09d}",
        "tax_id": f"TAX-{i * 7919 % 10**9:09d}",
        "date_of_birth": datetime.date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
    }


@dataclass
class PIIBenchResult:
    encrypt_decrypt_per_s: float
    wrap_unwrap_per_s: float
    customers: int
    page_size: int
    build_s: float
    list_path: str  # "api" or "orm" (fallback: no customers API)
    list_with_pii_s: float
    list_without_pii_s: float
    list_masked_s: float | None
    reveal_events: int  # pii.revealed events written by the listing with personal data
    reveal_audit_rows_per_s: float
    notes: list[str] = field(default_factory=list)
    cleanup_problems: list[str] = field(default_factory=list)

    @property
    def list_with_pii_per_s(self) -> float:
        return self.customers / self.list_with_pii_s

    @property
    def list_without_pii_per_s(self) -> float:
        return self.customers / self.list_without_pii_s

    @property
    def list_masked_per_s(self) -> float | None:
        return self.customers / self.list_masked_s if self.list_masked_s else None

    @property
    def ratio(self) -> float:
        """Throughput with personal data over throughput without (1.0 = PII costs nothing)."""
        return self.list_with_pii_per_s / self.list_without_pii_per_s

    @property
    def reveal_audit_share(self) -> float:
        """Estimated share of the with-PII listing time spent writing the reveal audit."""
        return (self.reveal_events / self.reveal_audit_rows_per_s) / self.list_with_pii_s

    def as_json_dict(self) -> dict:
        masked = self.list_masked_per_s
        return {
            "bench": "pii",
            "encrypt_decrypt_per_s": round(self.encrypt_decrypt_per_s),
            "wrap_unwrap_per_s": round(self.wrap_unwrap_per_s),
            "customers": self.customers,
            "list_with_pii_per_s": round(self.list_with_pii_per_s, 1),
            "list_without_pii_per_s": round(self.list_without_pii_per_s, 1),
            "ratio": round(self.ratio, 3),
            "page_size": self.page_size,
            "list_path": self.list_path,
            "list_masked_per_s": round(masked, 1) if masked else None,
            "reveal_events": self.reveal_events,
            "reveal_audit_rows_per_s": round(self.reveal_audit_rows_per_s),
        }


# -- (a) raw crypto ---------------------------------------------------------------------------
def _rate(op: Callable[[], None], min_seconds: float) -> float:
    """Operations per second of `op`, run in chunks until `min_seconds` have passed."""
    for _ in range(100):  # warm-up
        op()
    done, chunk = 0, 500
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < min_seconds:
        for _ in range(chunk):
            op()
        done += chunk
    return done / elapsed


def bench_crypto(min_seconds: float = MICRO_SECONDS) -> tuple[float, float]:
    """(seal+unseal per second of a typical value, ring wrap+unwrap per second of a data key)."""
    dek, key_id, label = os.urandom(32), uuid.uuid4(), b"customers.customer.email"

    def seal_unseal():
        blob = seal(TYPICAL_VALUE, key_id=key_id, dek=dek, label=label)
        assert unseal(blob, dek=dek, label=label) == TYPICAL_VALUE

    ring = get_keyring()
    purpose = _wrap_purpose("tenant_bench", key_id)

    def wrap_unwrap():
        wrapped = ring.encrypt(dek, purpose)
        assert ring.decrypt(wrapped, purpose) == dek

    return _rate(seal_unseal, min_seconds), _rate(wrap_unwrap, min_seconds)


# -- (b) the throwaway tenant -----------------------------------------------------------------
def build_customers(*, schema: str, count: int, say: Callable[[str], None]) -> None:
    """N customers in the current (tenant) schema, stored exactly as `customer_create` stores them."""
    from customers.models import Customer, NumberSequence

    fields = {name: Customer._meta.get_field(name) for name in CUSTOMER_PII}
    index_fields = {"email": Customer._meta.get_field("email_index"), "phone": Customer._meta.get_field("phone_index")}
    store = get_keystore()
    for start in range(1, count + 1, KEY_BATCH):
        numbers = range(start, min(start + KEY_BATCH, count + 1))
        key_ids = store.create(tenant=schema, count=len(numbers))
        deks = store.fetch(tenant=schema, key_ids=key_ids)
        rows = []
        for number, key_id in zip(numbers, key_ids, strict=True):
            values = person(number)
            sealed = {
                name: Sealed(seal(f.encode(values[name]), key_id=key_id, dek=deks[key_id], label=f.label))
                for name, f in fields.items()
            }
            indexes = {f.attname: f.lookup_value(values[source]) for source, f in index_fields.items()}
            rows.append(Customer(account_number=number, data_key_id=key_id, **sealed, **indexes))
        Customer.objects.bulk_create(rows, batch_size=KEY_BATCH)
        say(f"  built {numbers[-1]:>7} / {count}")
    with transaction.atomic():
        NumberSequence.objects.update_or_create(name="customer", period="", defaults={"last_value": count})


def verify_sample(count: int, sample: int = 50) -> None:
    """Random customers read back through the ORM decrypt to what was built."""
    from customers.models import Customer

    numbers = random.sample(range(1, count + 1), min(sample, count))
    customers = list(Customer.objects.filter(account_number__in=numbers))
    pii_prefetch(customers)
    assert len(customers) == len(numbers), "bench customers missing"
    for customer in customers:
        expected = person(customer.account_number)
        got = {name: getattr(customer, name) for name in CUSTOMER_PII}
        assert got == expected, f"customer {customer.account_number} does not decrypt to what was stored"
    index = Customer._meta.get_field("email_index").lookup_value(person(numbers[0])["email"].upper())
    assert Customer.objects.get(email_index=index).account_number == numbers[0], "blind index lookup failed"


# -- (b) listing --------------------------------------------------------------------------------
def _api_pages(client: Client, *, page_size: int, extra: dict, expect: int) -> tuple[float, int, str]:
    """List every customer page by page; (seconds, customers seen, text of the first page)."""
    seen, first_page, page = 0, "", 1
    started = time.perf_counter()
    while True:
        response = client.get("/api/v1/customers/", {"page_size": page_size, "page": page, **extra})
        if response.status_code != 200:
            raise RuntimeError(f"GET /api/v1/customers/ page {page}: HTTP {response.status_code}")
        body = response.json()
        seen += len(body["results"])
        if page == 1:
            first_page = response.content.decode()
        if not body.get("next"):
            break
        page += 1
    elapsed = time.perf_counter() - started
    if seen != expect:
        raise RuntimeError(f"the API listed {seen} customers, expected {expect}")
    return elapsed, seen, first_page


def _api_client(host: str, user) -> Client:
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Token {token.key}")


def _orm_pages(*, host: str, page_size: int, with_pii: bool, actor: Actor, expect: int) -> tuple[float, int]:
    """The fallback: what a list endpoint does, without HTTP - paginate, prefetch keys, serialise,
    audit the reveal, render JSON."""
    from rest_framework import serializers
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from customers.models import Customer
    from isp.api.pagination import StandardPagination

    class Out(serializers.Serializer):
        id = serializers.IntegerField()
        account_number = serializers.IntegerField()
        account_code = serializers.CharField()
        kind = serializers.CharField()
        status = serializers.CharField()
        created_at = serializers.DateTimeField()

    class OutPII(Out):
        name = serializers.CharField()
        email = serializers.CharField()
        phone = serializers.CharField(allow_null=True)
        national_id = serializers.CharField(allow_null=True)
        tax_id = serializers.CharField(allow_null=True)
        date_of_birth = serializers.DateField(allow_null=True)

    factory, renderer = APIRequestFactory(), JSONRenderer()
    seen, page_number = 0, 1
    started = time.perf_counter()
    while True:
        with key_scope(), transaction.atomic():
            request = Request(
                factory.get("/api/v1/customers/", {"page_size": page_size, "page": page_number}, HTTP_HOST=host)
            )
            paginator = StandardPagination()
            queryset = Customer.objects.order_by("account_number")
            if not with_pii:
                queryset = queryset.defer(*CUSTOMER_PII)
            page = paginator.paginate_queryset(queryset, request)
            if with_pii:
                pii_prefetch(page)
                data = OutPII(page, many=True).data
                audit_pii_reveal(actor=actor, objects=page, fields=CUSTOMER_PII)
            else:
                data = Out(page, many=True).data
            renderer.render(paginator.get_paginated_response(data).data)
        seen += len(page)
        if not paginator.page.has_next():
            break
        page_number += 1
    if seen != expect:
        raise RuntimeError(f"listed {seen} customers, expected {expect}")
    return time.perf_counter() - started, seen


def bench_audit(*, objects: list, page_size: int, actor: Actor) -> float:
    """`audit_pii_reveal` alone: rows per second, in page-sized transactions."""
    started = time.perf_counter()
    for start in range(0, len(objects), page_size):
        with transaction.atomic():
            audit_pii_reveal(actor=actor, objects=objects[start : start + page_size], fields=CUSTOMER_PII)
    return len(objects) / (time.perf_counter() - started)


def _reveal_count() -> int:
    return AuditEvent.objects.filter(action="pii.revealed").count()


# -- the run ------------------------------------------------------------------------------------
def bench_pii(
    *, customers: int = 10_000, page_size: int = 100, log: Callable[[str], None] | None = None
) -> PIIBenchResult:
    """Measure; build, list and remove a throwaway tenant. Run outside any transaction."""
    from customers.models import Customer
    from tenants import roles
    from tenants.models import schema_name_for_slug
    from tenants.services import staff_user_create, tenant_create

    if customers < 1:
        raise ValueError("customers must be at least 1")
    if not 1 <= page_size <= 200:
        raise ValueError("page_size is between 1 and 200 (the API's maximum)")
    say = log or (lambda _line: None)
    token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(6))
    slug = f"bench-pii-{token}"
    schema = schema_name_for_slug(slug)
    actor = Actor.system(f"bench_pii run {token}")
    notes: list[str] = []

    say(f"(a) crypto, {MICRO_SECONDS:g} s each: seal+unseal of a {len(TYPICAL_VALUE)}-byte value; ring wrap+unwrap")
    encrypt_decrypt, wrap_unwrap = bench_crypto()
    say(f"  seal+unseal (subject data key): {encrypt_decrypt:,.0f}/s")
    say(f"  wrap+unwrap (key ring):         {wrap_unwrap:,.0f}/s")

    connection.set_schema_to_public()
    try:
        say(f"(b) tenant {slug}: {customers} customers")
        started = time.perf_counter()
        provisioned = tenant_create(
            slug=slug,
            name=f"Bench PII {token}",
            currency="USD",
            country="US",
            admin_email=f"owner@{slug}.example",
            actor=actor,
        )
        tenant = provisioned.tenant
        with schema_context(schema):
            build_customers(schema=schema, count=customers, say=say)
            verify_sample(customers)
            build_s = time.perf_counter() - started
            say(f"  built and verified in {build_s:.1f} s")

            owner = get_user_model().objects.get(username=provisioned.admin_username)
            client = _api_client(tenant.primary_host, owner)
            probe = client.get("/api/v1/customers/", {"page_size": 1})
            masked_s = None
            events_before = _reveal_count()
            if probe.status_code == 200:
                list_path = "api"
                say(f"  listing through the staff API, page_size={page_size}, as the owner")
                client.get("/api/v1/customers/", {"page_size": page_size, "include_pii": "false"})  # warm-up
                with_s, _, first_with = _api_pages(client, page_size=page_size, extra={}, expect=customers)
                without_s, _, first_without = _api_pages(
                    client, page_size=page_size, extra={"include_pii": "false"}, expect=customers
                )
                first_email = person(1)["email"]
                if first_email not in first_with:
                    notes.append("the owner's listing did not show personal data in clear")
                if first_email in first_without or person(1)["name"] in first_without:
                    notes.append("?include_pii=false did not omit personal data")
                support, _ = staff_user_create(
                    username=f"support@{slug}.example", email=f"support@{slug}.example", role=roles.SUPPORT, actor=actor
                )
                events_mid = _reveal_count()
                masked_s, _, first_masked = _api_pages(
                    _api_client(tenant.primary_host, support), page_size=page_size, extra={}, expect=customers
                )
                if first_email in first_masked:
                    notes.append("the support role's listing showed an e-mail address in clear")
                if _reveal_count() != events_mid:
                    notes.append("the masked listing wrote pii.revealed events")
                reveal_events = events_mid - events_before
            else:
                list_path = "orm"
                notes.append(
                    f"no customers API (GET /api/v1/customers/ answered HTTP {probe.status_code}): measured the "
                    "ORM + DRF serialisation path (pagination, key prefetch, reveal audit, JSON) without HTTP"
                )
                say(f"  {notes[-1]}")
                _orm_pages(
                    host=tenant.primary_host, page_size=page_size, with_pii=False, actor=actor, expect=customers
                )  # warm-up
                with_s, _ = _orm_pages(
                    host=tenant.primary_host, page_size=page_size, with_pii=True, actor=actor, expect=customers
                )
                without_s, _ = _orm_pages(
                    host=tenant.primary_host, page_size=page_size, with_pii=False, actor=actor, expect=customers
                )
                reveal_events = _reveal_count() - events_before
            say(f"  with PII (clear, audited): {with_s:.2f} s = {customers / with_s:,.0f} customers/s")
            say(f"  include_pii=false:         {without_s:.2f} s = {customers / without_s:,.0f} customers/s")
            if masked_s:
                say(f"  masked (support role):     {masked_s:.2f} s = {customers / masked_s:,.0f} customers/s")

            say("(c) reveal audit")
            audit_rate = bench_audit(
                objects=list(Customer.objects.only("pk").order_by("pk")), page_size=page_size, actor=actor
            )
        result = PIIBenchResult(
            encrypt_decrypt_per_s=encrypt_decrypt,
            wrap_unwrap_per_s=wrap_unwrap,
            customers=customers,
            page_size=page_size,
            build_s=build_s,
            list_path=list_path,
            list_with_pii_s=with_s,
            list_without_pii_s=without_s,
            list_masked_s=masked_s,
            reveal_events=reveal_events,
            reveal_audit_rows_per_s=audit_rate,
            notes=notes,
        )
        say(
            f"  {reveal_events} pii.revealed event(s) written by the listing with PII; audit_pii_reveal alone: "
            f"{audit_rate:,.0f} rows/s, about {result.reveal_audit_share:.0%} of the with-PII listing time"
        )
    finally:
        problems = bench_tenant_cleanup(schema=schema, slug=slug, actor=actor, say=say)
    result.cleanup_problems = problems
    return result


def bench_tenant_cleanup(*, schema: str, slug: str, actor: Actor, say: Callable[[str], None]) -> list[str]:
    """Remove a benchmark's throwaway tenant: schema, database role, tenant/domain rows and its data keys. Its
    public audit events stay: the audit trail is append-only (docs/compliance.md). Tries every
    step and reports what could not be removed."""
    from tenants.models import Domain, Tenant

    problems: list[str] = []
    connection.set_schema_to_public()
    steps = []
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        steps.append(f"schema {schema} dropped")
    except Exception as exc:  # noqa: BLE001 - cleanup reports and goes on
        problems.append(f"schema {schema}: {type(exc).__name__}: {exc}")
    try:
        from tenants.isolation import tenant_db_role_drop

        if tenant_db_role_drop(schema):
            steps.append("its database role dropped")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"role: {type(exc).__name__}: {exc}")
    try:
        with transaction.atomic():
            Domain.objects.filter(tenant__slug=slug).delete()
            tenants, _ = Tenant.objects.filter(slug=slug).delete()
        steps.append(f"{tenants} tenant row(s) deleted")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"rows: {type(exc).__name__}: {exc}")
    try:
        with get_keystore().connection().cursor() as cursor:
            cursor.execute("DELETE FROM subject_keys WHERE tenant = %s", [schema])
            keys = cursor.rowcount
            cursor.execute("DELETE FROM shredded_keys WHERE tenant = %s", [schema])
        steps.append(f"{keys} data key(s) deleted from the key store")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"key store: {type(exc).__name__}: {exc}")
    say("cleanup: " + "; ".join(steps) + (f"; {len(problems)} problem(s)" if problems else ""))
    return problems
