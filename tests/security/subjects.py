"""A customer with a full history, built through the production services, for the security
suites: profile, service address, active subscription, PPPoE account, RADIUS sessions written by
`radius.accounting` as FreeRADIUS would, an issued invoice, a payment, a portal login. And the
tools to look for their values: the data-subject request helpers and a scan of every table.

Used by tests/compliance/test_data_subject_rights.py and tests/security/test_security_compliance.py."""

from __future__ import annotations

import datetime
import io
import zipfile
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from psycopg import sql
from rest_framework.authtoken.models import Token

from billing.models import Invoice, Payment
from billing.payments import payment_record
from compliance.audit import Actor
from compliance.dsr import services
from compliance.models import DataSubjectRequest
from customers import services as cs
from customers.models import Customer, Subscription
from network import services as ns
from tests.billing.factories import issued_invoice
from tests.customers.factories import PlanFactory

ACTOR = Actor.system("dsr tests")


@dataclass
class Subject:
    customer: Customer
    subscription: Subscription
    invoice: Invoice
    payment: Payment | None
    pii: dict[str, str]  # every personal value entered, as it is stored (normalised)


def accounting(status, *, user, session, framed_ip, calling, when, octets=0, secs=0):
    """One accounting record through radius.accounting, as FreeRADIUS sends it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT radius.accounting(%s, %s, %s, %s, %s, %s, '', 'Virtual', %s, %s, '', %s, %s, '0', %s, '0', %s, %s)",
            [
                connection.schema_name,
                status,
                f"u-{session}",
                session,
                user,
                "127.0.0.1",
                framed_ip,
                calling,
                str(secs),
                str(octets),
                str(octets),
                "User-Request" if status == "Stop" else "",
                str(int(when.timestamp())),
            ],
        )


def subject_with_history(*, tag: str, pii: dict[str, str], paid: bool) -> Subject:
    customer = cs.customer_create(
        actor=ACTOR,
        name=pii["name"],
        email=pii["email"],
        phone=pii["phone"],
        national_id=pii["national_id"],
        tax_id=pii["tax_id"],
        date_of_birth=datetime.date.fromisoformat(pii["date_of_birth"]),
        marketing_consent=True,
    )
    address = cs.service_address_create(
        customer=customer,
        street=pii["street"],
        city=pii["city"],
        postal_code=pii["postal_code"],
        country="US",
        region="US-IL",
        actor=ACTOR,
    )
    subscription = cs.subscription_create(customer=customer, plan=PlanFactory(), service_address=address, actor=ACTOR)
    subscription = cs.subscription_activate(
        subscription=subscription, activated_on=datetime.date(2026, 10, 1), actor=ACTOR
    )
    ns.pppoe_account_create(
        subscription=subscription, actor=ACTOR, username=pii["pppoe_username"], password=f"{tag}-pppoe-pass-1"
    )
    started = timezone.now() - datetime.timedelta(days=3)
    for n, status in enumerate(("Start", "Stop")):
        accounting(
            status,
            user=pii["pppoe_username"],
            session=f"{tag}-s1",
            framed_ip=pii["framed_ip"],
            calling=pii["calling_station_id"],
            when=started + datetime.timedelta(hours=n),
            octets=1000 * n,
            secs=3600 * n,
        )
    accounting(
        "Start",
        user=pii["pppoe_username"],
        session=f"{tag}-s2",
        framed_ip=pii["framed_ip"],
        calling=pii["calling_station_id"],
        when=timezone.now() - datetime.timedelta(minutes=5),
    )
    user = get_user_model().objects.create_user(username=f"portal-{tag}", password="portal-password-9")
    Token.objects.create(user=user)
    customer.portal_user = user
    customer.save(update_fields=["portal_user", "updated_at"])
    invoice = issued_invoice(customer, due_date=datetime.date(2026, 11, 15), amount_due=Decimal("40"))
    payment = None
    if paid:
        payment = payment_record(
            customer=customer,
            amount=Decimal("40"),
            received_on=datetime.date(2026, 11, 10),
            method=Payment.Method.MANUAL,
            reference=pii["payment_reference"],
            actor=ACTOR,
        )
    return Subject(customer, subscription, invoice, payment, pii)


PII_A = {
    "name": "Zelda Quixote-Marchetti",
    "email": "zelda.qm.7731@mailbox-example.org",
    "phone": "+14155550177",
    "national_id": "NID-ZQ-884412",
    "tax_id": "TAXZQ55217731",
    "date_of_birth": "1937-04-19",
    "street": "77 Quixote Lane",
    "city": "Marchettiville",
    "postal_code": "ZQ9 7731",
    "pppoe_username": "zelda-qm-pppoe",
    "framed_ip": "100.77.31.7",
    "calling_station_id": "02:5A:51:77:31:01",
    "payment_reference": "Transfer from Zelda Quixote-Marchetti",
}
PII_B = {
    "name": "Bartholomew Ostrander-Lyle",
    "email": "b.ostrander.4410@postbox-example.net",
    "phone": "+14155550188",
    "national_id": "NID-BO-551903",
    "tax_id": "TAXBO90814410",
    "date_of_birth": "1941-09-23",
    "street": "4410 Ostrander Court",
    "city": "Lylesburg",
    "postal_code": "BO4 4410",
    "pppoe_username": "bart-ol-pppoe",
    "framed_ip": "100.44.10.9",
    "calling_station_id": "02:B0:44:10:99:02",
    "payment_reference": "Transfer from Bartholomew Ostrander-Lyle",
}
# What is stored in clear on purpose (network and accounting identifiers) - the scan must see them.
CLEAR_AT_REST = ("pppoe_username", "framed_ip", "calling_station_id")


def verified(customer, kind) -> DataSubjectRequest:
    request = services.dsr_create(customer=customer, kind=kind, actor=ACTOR)
    return services.dsr_verify(request=request, method="photo id checked at the shop", actor=ACTOR)


def archive_files(request) -> dict[str, str]:
    data = services.dsr_archive(request=request, actor=ACTOR)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def tables(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            [schema],
        )
        return sorted(row[0] for row in cursor.fetchall())


def where_found(value: str) -> list[str]:
    """Every table of the tenant schema and of `radius` with a row whose text contains `value`."""
    found = []
    with connection.cursor() as cursor:
        for schema in (connection.schema_name, "radius"):
            for table in tables(schema):
                query = sql.SQL("SELECT count(*) FROM {}.{} AS t WHERE t::text ILIKE %s").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
                cursor.execute(query, [f"%{value}%"])
                if cursor.fetchone()[0]:
                    found.append(f"{schema}.{table}")
    return found
