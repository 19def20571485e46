"""What a backup of the application database holds: no personal data in clear, and after an
erasure (crypto-shredding) not even the backup taken before it can be read.

pg_dump sees committed data only, so these tests commit their customers in a matrix tenant's
schema - on a connection of their own (a worker thread), beside the usual rolled-back test
transaction, not with `transactional_db` (which would flush the shared tenant tables) - and delete
everything they created afterwards: rows, audit events, the customer number sequence and their
keys in the key store.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from compliance.audit import Actor
from compliance.pii.fields import ERASED, key_id_of, unseal
from compliance.pii.keyring import PIIDecryptionError
from compliance.pii.keystore import _default_conninfo, _wrap_purpose, get_keystore, keystore_conninfo
from customers.models import Customer, NumberSequence, ServiceAddress
from tenants.models import Tenant
from tests.conftest import MATRIX_OWNER_PASSWORD

pytestmark = [pytest.mark.django_db]

CUSTOMER_PII = ("name", "email", "phone", "national_id", "tax_id", "date_of_birth")
ADDRESS_PII = ("street", "city", "postal_code")


@dataclass
class Person:
    name: str
    email: str
    phone: str
    national_id: str
    tax_id: str
    date_of_birth: datetime.date
    street: str
    city: str
    postal_code: str

    def secrets(self) -> list[str]:
        """Every clear value, and recognisable parts of them."""
        first, last = self.name.split()
        return [
            self.name,
            first,
            last,
            self.email,
            self.email.split("@")[0],
            self.phone,
            self.phone.lstrip("+"),
            self.national_id,
            self.tax_id,
            self.date_of_birth.isoformat(),
            self.street,
            self.city,
            self.postal_code,
        ]


# Distinctive values: letters outside a-f, so they cannot turn up by chance inside hex dumps.
ZORAYA = Person(
    "Zoraya Quillensworth",
    "Zoraya.Quillensworth@pii-dump.example",
    "+447911123456",
    "NIQ-ZX-771094",
    "TXQ-ZW-55810327",
    datetime.date(1977, 8, 14),
    "17 Quorvale Lane",
    "Wyxlehampton",
    "QZ7-WX9",
)
MORTIMER = Person(
    "Mortimer Vexhardtley", "mortimer.vexhardtley@pii-dump.example", "+14155550187", "NIQ-MV-339120",
    "TXQ-MV-90817263", datetime.date(1962, 1, 23), "9 Grimsvold Parade", "Kyzylgrove", "KZ4-VY2",
)  # fmt: skip


class Committed:
    """Customers committed in one matrix tenant, and everything to remove afterwards.

    The writes run in a worker thread, i.e. on a database connection of their own in autocommit,
    while the test's own connection stays in its rolled-back transaction (it still sees the
    committed rows: READ COMMITTED)."""

    def __init__(self, tenant: Tenant):
        self.tenant = tenant
        self.actor = Actor.system(f"test_pii_dump {uuid.uuid4().hex[:8]}")
        self.customers: list[Customer] = []
        self.addresses: list[ServiceAddress] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pii-dump-commit")
        self._sequence = self._in_worker(
            lambda: (
                NumberSequence.objects.filter(name="customer", period="").values_list("last_value", flat=True).first()
            )
        )

    def _in_worker(self, job):
        def run():
            with tenant_context(self.tenant):
                return job()

        return self._worker.submit(run).result()

    def create(self, person: Person) -> Customer:
        return self._in_worker(lambda: self._create(person))

    def _create(self, person: Person) -> Customer:
        """Enter the person through the staff API, as an owner would (token login, POST)."""
        client = APIClient(HTTP_HOST=self.tenant.primary_host)
        login = client.post(
            "/api/v1/auth/token/", {"username": f"owner@{self.tenant.slug}.example", "password": MATRIX_OWNER_PASSWORD}
        )
        assert login.status_code == 200, login.content
        client.credentials(HTTP_AUTHORIZATION=f"Token {login.json()['token']}")
        created = client.post(
            "/api/v1/customers/",
            {
                "name": person.name, "email": person.email, "phone": person.phone,
                "national_id": person.national_id, "tax_id": person.tax_id,
                "date_of_birth": person.date_of_birth.isoformat(),
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        customer = Customer.objects.get(pk=created.json()["id"])
        self.customers.append(customer)
        address = client.post(
            "/api/v1/service-addresses/",
            {"customer": customer.pk, "street": person.street, "city": person.city,
             "postal_code": person.postal_code, "country": "GB"},
            format="json",
        )
        assert address.status_code == 201, address.content
        self.addresses.append(ServiceAddress.objects.get(pk=address.json()["id"]))
        return customer

    def remove_all(self) -> None:
        try:
            self._in_worker(self._remove_rows)
        finally:
            key_ids = [c.data_key_id for c in self.customers]
            with psycopg.connect(keystore_conninfo(), autocommit=True) as conn:
                conn.execute("DELETE FROM subject_keys WHERE key_id = ANY(%s)", [key_ids])
                conn.execute("DELETE FROM shredded_keys WHERE key_id = ANY(%s)", [key_ids])
            self._worker.submit(self._close_connections).result()
            self._worker.shutdown()

    def _remove_rows(self) -> None:
        ServiceAddress.objects.filter(pk__in=[a.pk for a in self.addresses]).delete()
        Customer.objects.filter(pk__in=[c.pk for c in self.customers]).delete()
        # Their audit events stay: the trail is append-only.
        sequence = NumberSequence.objects.filter(name="customer", period="")
        if self._sequence is None:
            sequence.delete()
        else:
            sequence.update(last_value=self._sequence)

    @staticmethod
    def _close_connections() -> None:
        get_keystore().close()
        connection.close()


@pytest.fixture
def committed(tenant, settings):
    """Customers really committed in the matrix tenant (pg_dump sees them); removed afterwards.

    Requesting `tenant` (hence `db`) is what makes pytest-django create the test database: a
    session whose tests use none would leave DATABASES on the development database."""
    db = settings.DATABASES["default"]
    assert db["NAME"] == db["TEST"]["NAME"], f"not the test database: {db['NAME']}"
    run = Committed(tenant)
    try:
        yield run
    finally:
        run.remove_all()


def pg_dump_binary() -> str:
    """The pg_dump of the server's major version (an older pg_dump refuses a newer server)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        major = int(cursor.fetchone()[0]) // 10000
    candidates = [shutil.which("pg_dump"), f"/usr/lib/postgresql/{major}/bin/pg_dump"]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=True).stdout
            if re.search(rf"\b{major}\.\d+", version):
                return candidate
    pytest.fail(f"no pg_dump for PostgreSQL {major} (tried {candidates})")


def pg_dump() -> str:
    """A plain-text dump of the whole application (test) database: every schema, every row."""
    params = psycopg.conninfo.conninfo_to_dict(_default_conninfo(dbname_suffix=""))
    password = params.pop("password", None)
    env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
    result = subprocess.run(  # noqa: S603 - fixed argv
        [pg_dump_binary(), "--format=plain", "--no-owner", "--dbname", psycopg.conninfo.make_conninfo(**params)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def copy_rows(dump: str, schema: str, table: str) -> list[dict[str, str | None]]:
    """The rows of one table's COPY block in a plain dump, as {column: text value or None}."""
    header = re.search(rf"^COPY {re.escape(schema)}\.{re.escape(table)} \((.*?)\) FROM stdin;\n", dump, re.M)
    assert header, f"{schema}.{table} is not in the dump"
    columns = header.group(1).split(", ")
    body = dump[header.end() : dump.index("\n\\.\n", header.end() - 1) + 1]
    rows = []
    for line in body.splitlines():
        values = line.split("\t")
        rows.append({c: None if v == r"\N" else v for c, v in zip(columns, values, strict=True)})
    return rows


def bytea(value: str) -> bytes:
    """A bytea in COPY text format ('\\\\x' + hex) back to bytes."""
    assert value.startswith("\\\\x"), value[:10]
    return bytes.fromhex(value[3:])


def decoded_byteas(dump: str) -> str:
    """Every bytea value in the dump, decoded, as one latin-1 string (clear text stored as bytea shows)."""
    return "\n".join(bytes.fromhex(h).decode("latin-1") for h in re.findall(r"\\\\x([0-9a-f]+)", dump))


@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.data_safety
def test_a_database_dump_holds_no_personal_data_in_clear(committed):
    schema = committed.tenant.schema_name
    customers = [committed.create(person) for person in (ZORAYA, MORTIMER)]

    dump = pg_dump()

    # The dump has the rows...
    rows = copy_rows(dump, schema, "customers_customer")
    assert {str(c.account_number) for c in customers} <= {row["account_number"] for row in rows}
    dumped_addresses = {row["id"] for row in copy_rows(dump, schema, "customers_serviceaddress")}
    assert {str(a.pk) for a in committed.addresses} <= dumped_addresses
    # ...but none of the personal data, in any letter case, as text or inside a bytea.
    haystacks = {"dump": dump.lower(), "bytea values in the dump": decoded_byteas(dump).lower()}
    for secret in ZORAYA.secrets() + MORTIMER.secrets():
        for where, haystack in haystacks.items():
            assert secret.lower() not in haystack, f"{secret!r} found in the {where}"
    bytea_text = haystacks["bytea values in the dump"]
    assert bytes(Customer.objects.get(pk=customers[0].pk).__dict__["name"].blob).decode("latin-1").lower() in bytea_text
    # The dump holds no data key either: those live in the key store, another database.
    assert "subject_keys" not in dump

    # Raw SQL over the tables sees the same ciphertexts.
    for table in ("customers_customer", "customers_serviceaddress"):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            rows = cursor.fetchall()
        text = repr([[bytes(v) if isinstance(v, memoryview) else v for v in row] for row in rows]).lower()
        for secret in ZORAYA.secrets() + MORTIMER.secrets():
            assert secret.lower() not in text, f"{secret!r} in {table}"

    # While the application reads it all in clear.
    fresh = Customer.objects.get(pk=customers[0].pk)
    assert (fresh.name, fresh.email, fresh.date_of_birth) == (ZORAYA.name, ZORAYA.email, ZORAYA.date_of_birth)


@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.data_safety
def test_an_erased_subject_stays_unreadable_in_a_dump_taken_before_the_erasure(committed):
    schema = committed.tenant.schema_name
    erased, kept = committed.create(ZORAYA), committed.create(MORTIMER)
    backup = pg_dump()  # the backup taken BEFORE the erasure

    assert get_keystore().shred(tenant=schema, key_id=erased.data_key_id) is True

    def ciphertexts(customer: Customer) -> dict[bytes, bytes]:
        """The subject's ciphertexts, read from the old dump: {label: blob}."""
        (row,) = [
            r
            for r in copy_rows(backup, schema, "customers_customer")
            if r["account_number"] == str(customer.account_number)
        ]
        (address,) = [
            r for r in copy_rows(backup, schema, "customers_serviceaddress") if r["customer_id"] == str(customer.pk)
        ]
        blobs = {Customer._meta.get_field(f).label: bytea(row[f]) for f in CUSTOMER_PII}
        blobs |= {ServiceAddress._meta.get_field(f).label: bytea(address[f]) for f in ADDRESS_PII}
        return blobs

    erased_blobs, kept_blobs = ciphertexts(erased), ciphertexts(kept)
    with connection.cursor() as cursor:  # the dump holds the very bytes the database held
        cursor.execute("SELECT name FROM customers_customer WHERE id = %s", [erased.pk])
        assert bytes(cursor.fetchone()[0]) == erased_blobs[b"customers.customer.name"]
    assert {key_id_of(blob) for blob in erased_blobs.values()} == {erased.data_key_id}

    # With the live ring and the live key store, the erased subject's key is gone...
    store = get_keystore()
    assert store.fetch(tenant=schema, key_ids=[erased.data_key_id]) == {erased.data_key_id: None}
    # ...and no data key that exists anywhere in the key store opens any of its ciphertexts.
    with psycopg.connect(keystore_conninfo()) as conn:
        rows = conn.execute("SELECT key_id, tenant, wrapped FROM subject_keys").fetchall()
    assert erased.data_key_id not in {key_id for key_id, _, _ in rows}
    tried = 0
    for key_id, tenant, wrapped in rows:
        try:
            dek = store.ring.decrypt(bytes(wrapped), _wrap_purpose(tenant, key_id))
        except PIIDecryptionError:
            continue  # a key of another ring (none expected); it could not help either
        tried += 1
        for label, blob in erased_blobs.items():
            with pytest.raises(PIIDecryptionError):
                unseal(blob, dek=dek, label=label)
    assert tried >= 1  # at least the other subject's key was tried

    # The other subject's data in the same old dump still decrypts with the live keys.
    kept_dek = store.fetch(tenant=schema, key_ids=[kept.data_key_id])[kept.data_key_id]
    opened = {label: unseal(blob, dek=kept_dek, label=label).decode() for label, blob in kept_blobs.items()}
    assert opened[b"customers.customer.name"] == MORTIMER.name
    assert opened[b"customers.customer.date_of_birth"] == MORTIMER.date_of_birth.isoformat()
    assert opened[b"customers.serviceaddress.street"] == MORTIMER.street
    # And the application shows the erased subject as erased, the other in clear.
    assert Customer.objects.get(pk=erased.pk).name == ERASED
    assert Customer.objects.get(pk=kept.pk).email == MORTIMER.email
