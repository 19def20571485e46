"""Customer journeys, end to end, through the public interfaces only, on every tenant of the matrix.

Journeys 1, 2 and 4 follow the money and RADIUS paths of one subscriber:

Each journey runs once per tenant profile of the matrix (USD with tax added on top, EUR with VAT
included in prices, JPY without a minor unit), in a committed throwaway tenant with a real
FreeRADIUS and a NAS simulator (tests/integration/conftest.py). Only public interfaces act: the
portal and staff REST API on the tenant's host (each step by the role that does it in real life),
RADIUS packets from the NAS's address to FreeRADIUS, CoA/Disconnect packets arriving at the NAS,
and the operator's commands (`run_billing`, `run_dunning`). What the operator configures before
(plans, tax rates, a discount, an IP pool, the OLT's ONUs, the NAS) is made with the services.

What the journeys prove, on every profile:

1. signup -> activation -> provisioning (static IP, PPPoE credentials, ONU) -> PPPoE login
   through FreeRADIUS with the plan's reply -> accounting over the data cap -> billing run ->
   an invoice with a prorated first period, a 20 % welcome discount, the setup fee, overage and
   taxes, to the cent -> the same figures on the customer's PDF -> payment -> nothing left to pay;
2. an unpaid invoice -> reminders at 1 and 7 days (e-mails) -> suspension at 15 days -> the
   Disconnect-Request reaches the NAS -> the next login is rejected (or, where the tenant chose
   it, lands in the walled garden) -> payment -> reactivation -> full service again;
4. a mid-cycle upgrade -> a CoA-Request with the new speed reaches the NAS -> the next invoice
   credits the old plan and charges the new one for the rest of the period, to the cent.

Expected amounts are computed here from the billing rules (shared/specs/billing-rules.md) with
the tests' own half-up rounding (`q6`), never by the billing engine.

Dates: the NAS stamps accounting with Event-Timestamp, so usage lands on the journey's own days
whatever day the suite runs. All journeys of a profile share one tenant, so each journey lives in
its own stretch of the calendar, the later journeys of this file earlier in time (1: March-April
2026, 2: November-December 2025, 4: July-August 2025): a billing or dunning run of one journey
never finds another journey's subscriber billable or overdue.

Journeys 3 (an OLT outage) and 5 (a GDPR export and erasure) follow, played once per tenant of
the matrix (us_isp, eu_isp, jp_isp) through the interfaces staff and operators really use: the
REST API on the tenant's host with a staff token, the `poll_devices` and `audit_verify` management
commands, SNMP to simulated agents (snmpsim, `network.snmp.agents`) and RADIUS packets to the NAS
simulator.

What the operator configures (devices, OLTs and their ONUs, subscriptions bound to ONUs; a customer
with a full history) is set up through the services and the test factories; every step of the
journey after that goes through a public interface, and each assertion is what staff see.

Journey 3 - an OLT stops answering:
- while both OLTs answer, a poll raises nothing;
- OLT A's agent is really stopped (SIGSTOP: its port stays bound, no answer): the next poll marks the
  device down and opens one critical `device_unreachable` alarm; the NOC (network_ops) reads it in
  the API, and its `outage/` lists exactly the live (active or suspended) subscriptions behind OLT
  A's ONUs - not the pending one bound to an ONU of A, not the subscriber behind OLT B, not the
  subscriber on no ONU, nothing for the ONU no one is bound to; the e-mail to the NOC names the
  same account codes and no others;
- a second poll while it is still down refreshes that alarm (no second alarm, no second e-mail);
- the NOC acknowledges it; the OLT answers again, the next poll clears the alarm and says so by
  e-mail; the audit trail (read by an auditor) holds opened -> acknowledged (by the NOC member) ->
  cleared (by fault detection).

Journey 5 - a customer with a full history (profile, service address, active subscription, PPPoE
account, RADIUS sessions - one still open on a NAS -, an invoice and its payment, a portal login;
tests/security/subjects.py) asks for their data, then for erasure, and an owner handles both through
`/api/v1/data-subject-requests/`:
- export: received -> verified -> fulfilled; the archive downloaded through the API holds each piece
  of the person's data in its category (and the manifest counts them), and nothing of another
  customer, nor the PPPoE password;
- erasure: received -> verified -> no blockers -> fulfilled with a pseudonym; the NAS receives the
  Disconnect-Request of the open session; afterwards the API shows none of the person's values
  anywhere it showed them before (profile, address, PPPoE account, sessions, e-mail and phone lookups), the
  portal token is dead, FreeRADIUS no longer knows the login, the earlier export can no longer be
  downloaded, the invoice and the payment keep their amounts, the other customer is untouched;
- the audit trail shows the request's transitions by the owner and the erasure, names no personal
  value, and `audit_verify` finds the tenant's hash chain sound.

Both run inside the test's rolled-back transaction: the poller's threads only talk SNMP and every
write happens on the test's connection (the management commands run in-process), so no data needs
to be committed. Notifications (sent after commit) are run with `django_capture_on_commit_callbacks`,
as a commit would run them; e-mail goes to Django's in-memory outbox (the mail server is outside).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import shutil
import subprocess
import zoneinfo
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

import pytest

from compliance.audit import Actor
from tests.revenue_protection.helpers import D, q6

if TYPE_CHECKING:  # the harness comes in through its fixtures (tests/integration/conftest.py)
    from tests.integration.conftest import Journey, JourneyTenant
import io
import json
import zipfile

from django.core import mail
from django.core.management import call_command
from django.db import connection
from rest_framework.authtoken.models import Token

from compliance.chain import seal_pending
from customers import services as cs
from customers.models import Subscription
from network import services as ns
from network.gpon.service import onu_authorise, onu_autofind
from network.inventory import device_register
from network.models import Device, Onu
from network.radius.nas_simulator import NasSimulator
from network.snmp.agents import SimulatedAgent, if_mib_records
from tests.customers.factories import CustomerFactory, PlanFactory, ServiceAddressFactory
from tests.network_infrastructure.test_gpon_and_provisioning import HW_PORT_0, HW_PORT_1, huawei_records
from tests.security.subjects import PII_A, PII_B, subject_with_history

pytestmark = [pytest.mark.integration, pytest.mark.customer_journey]

PASSWORD = "correct horse battery staple 7"
GB = 10**9
GIGAWORD = 2**32
WELCOME = "Welcome 20% x 3 months"
POOL_NAME, POOL_NETWORK, POOL_GATEWAY = "fiber-static", "100.64.20.0/27", "100.64.20.1"
ONU_SERIALS = ("HWTC1A2B3C4D", "HWTC1A2B3C4E")

# --- the operator's catalogue per profile --------------------------------------------------------
PLANS = {
    "fiber-300": {"name": "Fiber 300", "download_kbps": 300_000, "upload_kbps": 50_000, "included_bytes": 100 * GB},
    "fiber-100": {"name": "Fiber 100", "download_kbps": 100_000, "upload_kbps": 20_000},
    "fiber-1000": {"name": "Fiber 1000", "download_kbps": 1_000_000, "upload_kbps": 200_000},
}
# (monthly price, setup fee, overage per GB); a price is net of tax on US/JP, gross on the EU tenant.
PRICES = {
    "us_isp": {
        "fiber-300": ("59.99", "25.00", "0.50"),
        "fiber-100": ("39.99", "0", "0"),
        "fiber-1000": ("89.99", "0", "0"),
    },
    "eu_isp": {
        "fiber-300": ("44.90", "19.90", "0.40"),
        "fiber-100": ("29.90", "0", "0"),
        "fiber-1000": ("69.90", "0", "0"),
    },
    "jp_isp": {"fiber-300": ("4980", "3300", "55"), "fiber-100": ("3980", "0", "0"), "fiber-1000": ("6980", "0", "0")},
}


@dataclass(frozen=True)
class Rate:
    name: str
    rate: Decimal
    categories: tuple[str, ...]
    region: str = ""
    locality: str = ""


ALL = ("service", "usage", "fee")
TAX_RATES = {
    "us_isp": (
        Rate("Illinois state tax", D("0.0625"), ALL, region="US-IL"),
        Rate("Springfield city tax", D("0.0175"), ("service",), region="US-IL", locality="SPRINGFIELD"),
    ),
    "eu_isp": (Rate("Umsatzsteuer", D("0.19"), ALL),),
    "jp_isp": (Rate("Consumption tax", D("0.10"), ALL),),
}
ADDRESSES = {
    "us_isp": {
        "street": "12 Lincoln Ave",
        "city": "Springfield",
        "postal_code": "62701",
        "region": "US-IL",
        "locality": "SPRINGFIELD",
    },
    "eu_isp": {
        "street": "Domkloster 4",
        "city": "Köln",
        "postal_code": "50667",
        "region": "DE-NW",
        "locality": "KOELN",
    },
    "jp_isp": {
        "street": "1-1 Chiyoda",
        "city": "Tokyo",
        "postal_code": "100-0001",
        "region": "JP-13",
        "locality": "CHIYODA",
    },
}
# How the customer's PDF prints journey 1's due date, 15 April 2026 (the tenant's country conventions).
J1_DUE_PRINTED = {"us_isp": "Apr 15, 2026", "eu_isp": "15.04.2026", "jp_isp": "2026/04/15"}
# Where a suspended subscriber lands (the tenant's RADIUS setting, chosen by network ops).
SUSPENDED_ACCESS = {"us_isp": "reject", "eu_isp": "walled_garden", "jp_isp": "reject"}


def price(profile, code: str) -> Decimal:
    return D(PRICES[profile.key][code][0])


def rate_limit(code: str) -> str:
    """What MikroTik reads: rx/tx from its side, so the subscriber's upload first."""
    return f"{PLANS[code]['upload_kbps']}k/{PLANS[code]['download_kbps']}k"


@dataclass(frozen=True)
class Catalogue:
    plan_ids: dict[str, int]
    welcome_discount_id: int


@pytest.fixture(scope="module")
def catalogue(journey_tenant: JourneyTenant) -> Catalogue:
    """What the operator configured before any journey: plans, taxes, a discount, a static IP pool,
    an OLT with two ONUs found by autofind (written as autofind leaves them)."""
    from billing import catalog
    from customers.services import plan_create
    from network.inventory import device_register, ip_pool_create
    from network.models import Device, Onu, PonPort

    actor = Actor.system("operator set-up")
    profile = journey_tenant.profile
    with journey_tenant.committed():
        plan_ids = {}
        for code, spec in PLANS.items():
            monthly, setup_fee, overage = (D(v) for v in PRICES[profile.key][code])
            plan = plan_create(
                actor=actor, code=code, monthly_price=monthly, setup_fee=setup_fee, overage_rate_per_gb=overage, **spec
            )
            plan_ids[code] = plan.pk
        for rate in TAX_RATES[profile.key]:
            catalog.tax_rate_create(
                actor=actor,
                name=rate.name,
                rate=rate.rate,
                country=profile.country,
                region=rate.region,
                locality=rate.locality,
                categories=list(rate.categories),
            )
        welcome = catalog.discount_create(actor=actor, name=WELCOME, kind="percent", value=D("20"), periods=3)
        ip_pool_create(name=POOL_NAME, network=POOL_NETWORK, gateway=POOL_GATEWAY, actor=actor)
        olt = device_register(
            name="olt-1",
            kind=Device.Kind.OLT,
            vendor="huawei",
            management_ip="192.0.2.10",
            community="olt-ro",
            actor=actor,
        )
        port = PonPort.objects.create(olt=olt, index=4194312192, name="GPON 0/1/0")
        for index, serial in enumerate(ONU_SERIALS):
            Onu.objects.create(olt=olt, pon_port=port, serial=serial, onu_index=index)
    return Catalogue(plan_ids=plan_ids, welcome_discount_id=welcome.pk)


# --- expected money, from the billing rules ------------------------------------------------------
def prorated(amount: Decimal, days: int, period_days: int) -> Decimal:
    """A recurring line for `days` of a `period_days` period (rules 3-4): rounded once."""
    return q6(Fraction(amount) * days / period_days)


def percent_off(running: Decimal, percent: int) -> Decimal:
    """The (negative) line of a percent discount on the running amount (rule 5)."""
    return -q6(Fraction(running) * percent / 100)


def credit_for(billed: Decimal, credited_days: int, billable_days: int) -> Decimal:
    """Give back what was charged for the days no longer billed at that plan (rule 3)."""
    return -q6(Fraction(billed) * credited_days / billable_days)


@dataclass(frozen=True)
class Taxable:
    """One taxable amount (rule 6): a charge with its discounts, or any other line on its own."""

    category: str
    lines: tuple[tuple[str, Decimal], ...]  # (kind, amount) as stated on the invoice

    @property
    def amount(self) -> Decimal:
        return sum((amount for _, amount in self.lines), Decimal(0))


def taxes_of(profile, taxable: Taxable) -> dict[str, Decimal]:
    rates = [r for r in TAX_RATES[profile.key] if taxable.category in r.categories]
    if not rates:
        return {}
    if not profile.tax_inclusive:
        return {r.name: q6(Fraction(taxable.amount) * Fraction(r.rate)) for r in rates}
    together = sum((Fraction(r.rate) for r in rates), Fraction(0))
    tax = taxable.amount - q6(Fraction(taxable.amount) / (1 + together))
    parts = {r.name: q6(Fraction(tax) * Fraction(r.rate) / together) for r in rates[:-1]}
    parts[rates[-1].name] = tax - sum(parts.values(), Decimal(0))
    return parts


@dataclass(frozen=True)
class Expected:
    lines: list[tuple[str, Decimal]]
    taxes_by_rate: dict[str, Decimal]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    amount_due: Decimal


def expected_invoice(profile, *taxables: Taxable) -> Expected:
    """Rules 6-7: taxes per taxable amount; subtotal of nets, exact sums; amount due rounded to
    the currency's minor unit, half-up."""
    by_rate: dict[str, Decimal] = {}
    subtotal = Decimal(0)
    for taxable in taxables:
        taxes = taxes_of(profile, taxable)
        for name, amount in taxes.items():
            by_rate[name] = by_rate.get(name, Decimal(0)) + amount
        subtotal += taxable.amount - (sum(taxes.values(), Decimal(0)) if profile.tax_inclusive else 0)
    tax_total = sum(by_rate.values(), Decimal(0))
    total = subtotal + tax_total
    due = total.quantize(Decimal(1).scaleb(-profile.minor_unit), rounding=ROUND_HALF_UP)
    lines = [line for taxable in taxables for line in taxable.lines]
    return Expected(lines, by_rate, subtotal, tax_total, total, due)


def api_amount(value: Decimal, profile) -> str:
    """An amount as a payment in the tenant's currency is entered: its minor unit, no more."""
    return str(value.quantize(Decimal(1).scaleb(-profile.minor_unit)))


def printed(amount: Decimal, profile) -> str:
    """How the PDF prints an amount: $1,234.56 / 1.234,56 € / ¥1,235 (no-break spaces as spaces)."""
    rounded = amount.quantize(Decimal(1).scaleb(-profile.minor_unit), rounding=ROUND_HALF_UP)
    sign, digits = ("-" if rounded < 0 else ""), f"{abs(rounded):,.{profile.minor_unit}f}"
    if profile.currency == "EUR":
        return f"{sign}{digits.replace(',', '_').replace('.', ',').replace('_', '.')} €"
    return f"{sign}{'$' if profile.currency == 'USD' else '¥'}{digits}"


def local_time(profile, day: datetime.date, hour: int = 12) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, hour, tzinfo=zoneinfo.ZoneInfo(profile.time_zone))


# --- steps: the subscriber, staff and the operator --------------------------------------------
@dataclass
class Subscriber:
    email: str
    subscription_id: int
    customer_id: int | None = None
    pppoe_username: str = ""
    pppoe_password: str = ""
    ip_address: str = ""


def customer_signs_up(j: Journey, *, name: str, email: str, plan_code: str) -> Subscriber:
    body = {
        "name": name,
        "email": email,
        "password": PASSWORD,
        "plan_code": plan_code,
        "address": {"country": j.profile.country, **ADDRESSES[j.profile.key]},
    }
    response = j.anonymous().post("/api/v1/portal/signup/", body, format="json")
    assert response.status_code == 201, response.content
    signup = response.json()
    assert re.fullmatch(r"C\d{6}", signup["account_code"]), signup
    # the customer, logged in on the portal, sees the subscription waiting for approval
    mine = j.portal(email, PASSWORD).get("/api/v1/portal/subscriptions/").json()["results"]
    assert [(s["id"], s["plan"], s["status"]) for s in mine] == [(signup["subscription"]["id"], plan_code, "pending")]
    return Subscriber(email=email, subscription_id=signup["subscription"]["id"])


def support_activates(j: Journey, sub: Subscriber, *, on: datetime.date) -> None:
    response = j.staff("support").post(
        f"/api/v1/subscriptions/{sub.subscription_id}/activate/", {"activated_on": on.isoformat()}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["activated_on"]) == ("active", on.isoformat())
    sub.customer_id = body["customer"]


def network_ops_provisions(j: Journey, sub: Subscriber, *, username: str, onu_serial: str | None = None) -> None:
    """The activate workflow: an address from the static pool, PPPoE credentials, the ONU bound."""
    ops = j.staff("network_ops")
    params = {"pool": POOL_NAME, "username": username, **({"onu_serial": onu_serial} if onu_serial else {})}
    response = ops.post(
        "/api/v1/provisioning-jobs/",
        {"subscription": sub.subscription_id, "action": "activate", "params": params},
        format="json",
    )
    assert response.status_code == 201, response.content
    job = response.json()
    steps = ["allocate_ip", "radius_credentials", *(["bind_onu"] if onu_serial else []), "mark_active"]
    assert (job["state"], job["steps_done"], job["error"]) == ("done", steps, ""), job
    assert len(job["pppoe_password"]) >= 8, "the password is shown once, in this response"
    [account] = ops.get("/api/v1/pppoe-accounts/", {"subscription": sub.subscription_id}).json()["results"]
    assert account["username"] == username
    address = ipaddress.ip_address(account["static_ip"])
    assert address in ipaddress.ip_network(POOL_NETWORK)
    assert str(address) != POOL_GATEWAY
    if onu_serial:
        [onu] = ops.get("/api/v1/onus/", {"subscription": sub.subscription_id}).json()["results"]
        assert onu["serial"] == onu_serial
        assert onu["authorised_at"] is not None
        assert onu["state"] != "discovered", onu
    sub.pppoe_username, sub.pppoe_password, sub.ip_address = username, job["pppoe_password"], str(address)


def pppoe_login_is_accepted(j: Journey, sub: Subscriber, *, plan_code: str) -> None:
    """FreeRADIUS accepts the credentials with the plan's speed and the subscriber's static IP."""
    result = j.pppoe_login(sub.pppoe_username, sub.pppoe_password)
    assert result.code_name == "Access-Accept", (result, j.radius_log())
    reply = {name: values[0] for name, values in result.attributes.items()}
    assert reply["Framed-IP-Address"] == sub.ip_address
    assert reply["Mikrotik-Rate-Limit"] == rate_limit(plan_code)
    assert int(reply["WISPr-Bandwidth-Max-Down"]) == PLANS[plan_code]["download_kbps"] * 1000
    assert int(reply["WISPr-Bandwidth-Max-Up"]) == PLANS[plan_code]["upload_kbps"] * 1000


def session(sub: Subscriber, session_id: str, at: datetime.datetime, **counters) -> dict:
    """The attributes a NAS sends about one PPPoE session."""
    return {
        "User-Name": sub.pppoe_username,
        "Acct-Session-Id": session_id,
        "NAS-Port-Id": "pppoe-1",
        "Framed-IP-Address": sub.ip_address,
        "Event-Timestamp": at,
        **counters,
    }


def nas_reports(j: Journey, status: str, attributes: dict) -> None:
    assert j.nas_accounting(status, attributes), f"FreeRADIUS did not store {status}: {j.radius_log()}"


def nas_session_ends(j: Journey, sub: Subscriber, session_id: str, at: datetime.datetime, cause: str) -> None:
    """The NAS closes the session (after a Disconnect, or the subscriber hangs up)."""
    nas_reports(j, "Stop", session(sub, session_id, at, **{"Acct-Session-Time": 60, "Acct-Terminate-Cause": cause}))


def operator_runs_billing(j: Journey, period: str, issue_date: datetime.date) -> None:
    output = j.manage(
        "run_billing",
        "--tenant",
        j.tenant.slug,
        "--period",
        period,
        "--issue-date",
        issue_date.isoformat(),
        "--no-progress",
    )
    assert f" {period}: " in output, output
    assert "failed:" not in output, output


def operator_runs_dunning(j: Journey, day: datetime.date) -> None:
    output = j.manage("run_dunning", "--tenant", j.tenant.slug, "--date", day.isoformat())
    assert f"dunning on {day.isoformat()}" in output, output
    assert "FAILED" not in output, output


def invoices_of(j: Journey, sub: Subscriber) -> list[dict]:
    """The customer's invoices as billing staff read them (detail: lines and taxes), oldest first."""
    staff = j.staff("billing_admin")
    listed = staff.get("/api/v1/invoices/", {"customer": sub.customer_id, "ordering": "issue_date"}).json()["results"]
    return [staff.get(f"/api/v1/invoices/{invoice['id']}/").json() for invoice in listed]


def assert_invoice(invoice: dict, expected: Expected, *, issue_date: datetime.date, terms_days: int = 14) -> None:
    """The invoice says, to the last stored place, what the billing rules say."""
    assert [(line["kind"], D(line["amount"])) for line in invoice["lines"]] == expected.lines
    assert {tax["name"]: D(tax["amount"]) for tax in invoice["taxes_by_rate"]} == expected.taxes_by_rate
    got = [D(invoice[f]) for f in ("subtotal", "tax_total", "total", "amount_due", "rounding_adjustment")]
    want = [expected.subtotal, expected.tax_total, expected.total, expected.amount_due]
    assert got == [*want, expected.amount_due - expected.total], invoice
    assert re.fullmatch(rf"INV-{issue_date.year}-\d{{6}}", invoice["number"]), invoice["number"]
    assert invoice["issue_date"] == issue_date.isoformat()
    assert invoice["due_date"] == (issue_date + datetime.timedelta(days=terms_days)).isoformat()


def billing_admin_records_payment(
    j: Journey, sub: Subscriber, invoice: dict, *, received_on: datetime.date, **how
) -> dict:
    body = {
        "customer": sub.customer_id,
        "amount": api_amount(D(invoice["amount_due"]), j.profile),
        "received_on": received_on.isoformat(),
        **(how or {"method": "manual", "reference": "bank transfer"}),
    }
    response = j.staff("billing_admin").post("/api/v1/payments/", body, format="json")
    assert response.status_code == 201, response.content
    payment = response.json()
    assert [(a["invoice"], D(a["amount"])) for a in payment["allocations"]] == [
        (invoice["id"], D(invoice["amount_due"]))
    ]
    return payment


def nothing_left_to_pay(j: Journey, sub: Subscriber) -> None:
    """Staff and the customer both see a settled account: no open amount, no credit left over."""
    balance = j.staff("support").get(f"/api/v1/customers/{sub.customer_id}/balance/").json()
    assert (D(balance["open_amount"]), D(balance["overdue_amount"]), D(balance["credit"])) == (0, 0, 0), balance
    assert balance["open_invoices"] == 0
    portal = j.portal(sub.email, PASSWORD).get("/api/v1/portal/balance/").json()
    assert (D(portal["open_amount"]), D(portal["credit"]), portal["currency"]) == (0, 0, j.profile.currency)


def audited(j: Journey, object_ref: str) -> list[str]:
    """The audit trail of one object, oldest first, as an auditor reads it."""
    events = j.staff("auditor").get("/api/v1/audit-events/", {"object": object_ref, "ordering": "seq"})
    return [event["action"] for event in events.json()["results"]]


def coa_requests(j: Journey, sub: Subscriber, reason: str) -> list[dict]:
    listed = j.staff("network_ops").get(
        "/api/v1/coa-requests/", {"subscription": sub.subscription_id, "reason": reason}
    )
    return listed.json()["results"]


def subscription_status(j: Journey, sub: Subscriber) -> str:
    return j.staff("support").get(f"/api/v1/subscriptions/{sub.subscription_id}/").json()["status"]


def pdf_text(data: bytes, tmp_path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is missing: scripts/setup.sh installs it", pytrace=False)
    source = tmp_path / "invoice.pdf"
    source.write_bytes(data)
    text = subprocess.run(["pdftotext", "-layout", str(source), "-"], capture_output=True, check=True).stdout.decode()
    return " ".join(text.replace("\u00a0", " ").replace("\u202f", " ").split())


# --- journey 1: signup to a paid first invoice ------------------------------------------------------
J1_ACTIVATED = datetime.date(2026, 3, 10)  # March has 31 days: 22 billable from the 10th
J1_USED_ON = datetime.date(2026, 3, 20)
J1_ISSUED = datetime.date(2026, 4, 1)
J1_PAID = datetime.date(2026, 4, 10)
# Counters the NAS reports (gigawords: past the 32-bit wrap): upload 17.68 GB, download 115.97 GB.
J1_IN = {"Acct-Input-Gigawords": 4, "Acct-Input-Octets": 500_000_000}
J1_OUT = {"Acct-Output-Gigawords": 27, "Acct-Output-Octets": 1_234_567}
J1_BYTES = 4 * GIGAWORD + 500_000_000 + 27 * GIGAWORD + 1_234_567


def j1_expected_first_invoice(profile) -> tuple[Expected, Decimal]:
    monthly, setup_fee, overage = (D(v) for v in PRICES[profile.key]["fiber-300"])
    march = prorated(monthly, 22, 31)  # [10 Mar, 1 Apr) of 31 days
    over_gb = Fraction(J1_BYTES - PLANS["fiber-300"]["included_bytes"], GB)  # March usage, in arrears
    expected = expected_invoice(
        profile,
        Taxable("service", (("charge", march), ("discount", percent_off(march, 20)))),  # welcome period 1
        Taxable("service", (("charge", monthly), ("discount", percent_off(monthly, 20)))),  # April, period 2
        Taxable("fee", (("fee", setup_fee),)),
        Taxable("usage", (("usage", q6(over_gb * Fraction(overage))),)),
    )
    return expected, Decimal(over_gb.numerator) / over_gb.denominator


def j1_usage_goes_over_the_cap(j: Journey, sub: Subscriber) -> None:
    """A session of March 20th: Start, an interim, Stop - 133.6 GB on a 100 GB plan."""
    at = local_time(j.profile, J1_USED_ON)
    sid = "j1-0001"
    nas_reports(j, "Start", session(sub, sid, at))
    nas_reports(
        j,
        "Interim-Update",
        session(
            sub,
            sid,
            at + datetime.timedelta(hours=2),
            **{
                "Acct-Session-Time": 7200,
                "Acct-Input-Gigawords": 1,
                "Acct-Input-Octets": 0,
                "Acct-Output-Gigawords": 9,
                "Acct-Output-Octets": 0,
            },
        ),
    )
    nas_reports(
        j,
        "Stop",
        session(
            sub,
            sid,
            at + datetime.timedelta(hours=6),
            **{"Acct-Session-Time": 21600, **J1_IN, **J1_OUT, "Acct-Terminate-Cause": "User-Request"},
        ),
    )
    # network staff see the closed session with the 64-bit counters
    [seen] = (
        j.staff("network_ops").get("/api/v1/radius-sessions/", {"subscription": sub.subscription_id}).json()["results"]
    )
    assert (seen["acct_session_id"], seen["session_time"], seen["terminate_cause"]) == (sid, 21600, "User-Request")
    assert (seen["input_octets"] + seen["output_octets"], seen["framed_ip_address"]) == (J1_BYTES, sub.ip_address)


def j1_the_pdf_shows_the_same_figures(
    j: Journey, sub: Subscriber, invoice: dict, expected: Expected, over_gb: Decimal, tmp_path
) -> None:
    """The customer's own copy: every line, tax and total as the rules say, printed the tenant's way."""
    response = j.portal(sub.email, PASSWORD).get(f"/api/v1/portal/invoices/{invoice['id']}/pdf/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content, tmp_path)
    profile = j.profile
    for fragment in (
        j.tenant.name,
        invoice["number"],
        J1_DUE_PRINTED[profile.key],
        "Prorated: 22 of 31 days",
        WELCOME,
        "Data above the allowance",
        f"{over_gb.quantize(Decimal('0.001'), rounding=ROUND_HALF_UP)} GB".replace(
            ".", "," if profile.country == "DE" else "."
        ),
        *(printed(amount, profile) for _, amount in expected.lines),
        *(rate.name for rate in TAX_RATES[profile.key]),
        *(printed(amount, profile) for amount in expected.taxes_by_rate.values()),
        printed(expected.subtotal, profile),
        printed(expected.amount_due, profile),
    ):
        assert fragment in text, f"{fragment!r} not on the PDF:\n{text}"


@pytest.mark.network_monitoring  # every money journey goes through FreeRADIUS and the NAS
@pytest.mark.revenue_critical  # and every one moves or computes money
@pytest.mark.behavior
def test_journey_1_signup_to_provisioned_login_usage_invoice_pdf_and_payment(journey, catalogue, tmp_path):
    j, profile = journey, journey.profile
    # a customer signs up on the portal; support approves; billing grants the welcome discount
    sub = customer_signs_up(j, name="Ada Lovelace", email="ada@example.net", plan_code="fiber-300")
    support_activates(j, sub, on=J1_ACTIVATED)
    grant = j.staff("billing_admin").post(
        "/api/v1/discount-assignments/",
        {"discount": catalogue.welcome_discount_id, "customer": sub.customer_id},
        format="json",
    )
    assert grant.status_code == 201, grant.content
    # network ops provision the line: static IP, PPPoE credentials, the ONU on the OLT
    network_ops_provisions(j, sub, username=f"ada@{profile.slug}", onu_serial=ONU_SERIALS[0])
    # the CPE dials in through the NAS: FreeRADIUS answers with the plan and the static address
    pppoe_login_is_accepted(j, sub, plan_code="fiber-300")
    # the NAS accounts for March: well over the 100 GB included
    j1_usage_goes_over_the_cap(j, sub)

    # the operator bills April: March catch-up (prorated) + April in advance + setup fee + March overage
    operator_runs_billing(j, "2026-04", J1_ISSUED)
    [invoice] = invoices_of(j, sub)
    expected, over_gb = j1_expected_first_invoice(profile)
    assert_invoice(invoice, expected, issue_date=J1_ISSUED)
    march, _, april, _, fee, usage = invoice["lines"]
    assert (march["fraction"], march["billable_days"], march["service_start"], march["service_end"]) == (
        "22/31",
        22,
        "2026-03-10",
        "2026-04-01",
    )
    assert (april["fraction"], april["service_start"], april["service_end"]) == ("1/1", "2026-04-01", "2026-05-01")
    assert (fee["category"], usage["category"], D(usage["quantity"])) == ("fee", "usage", over_gb)
    assert (invoice["status"], D(invoice["balance_due"])) == ("issued", expected.amount_due)

    # the customer opens the invoice PDF on the portal: the same figures, printed the tenant's way
    j1_the_pdf_shows_the_same_figures(j, sub, invoice, expected, over_gb, tmp_path)

    # the payment arrives through the gateway: the invoice is paid, nothing is left to pay
    payment = billing_admin_records_payment(
        j, sub, invoice, received_on=J1_PAID, method="gateway", gateway_reference=f"gw-{j.tenant.slug}-1"
    )
    [paid] = invoices_of(j, sub)
    assert (paid["status"], D(paid["amount_paid"]), D(paid["balance_due"])) == ("paid", expected.amount_due, 0)
    nothing_left_to_pay(j, sub)
    [listed] = j.portal(sub.email, PASSWORD).get("/api/v1/portal/invoices/").json()["results"]
    assert (listed["number"], listed["status"], D(listed["balance_due"])) == (invoice["number"], "paid", 0)
    # every money and state change is on the audit trail
    trail = audited(j, f"customers.subscription:{sub.subscription_id}")
    assert [a for a in trail if a.startswith("subscription.")] == ["subscription.created", "subscription.activated"]
    assert audited(j, f"billing.invoice:{invoice['id']}") == ["invoice.issued", "invoice.payment_allocated"]
    assert audited(j, f"billing.payment:{payment['id']}") == ["payment.recorded"]


# --- journey 2: unpaid invoice, dunning, suspension, payment, reactivation -----------------------
J2_ACTIVATED = datetime.date(2025, 11, 1)
J2_ISSUED = datetime.date(2025, 11, 1)  # due 15 November
J2_REMINDER_1, J2_REMINDER_7, J2_SUSPENDED = (datetime.date(2025, 11, d) for d in (16, 22, 30))
J2_PAID = datetime.date(2025, 12, 2)


def given_an_online_subscriber(
    j: Journey, *, name: str, email: str, plan_code: str, since: datetime.date
) -> tuple[Subscriber, str]:
    """Signed up, activated from `since`, provisioned (no ONU: any access line), logged in; the
    NAS reports the session from the next day. Returns the subscriber and the open session's id."""
    local_part = email.split("@")[0]
    sub = customer_signs_up(j, name=name, email=email, plan_code=plan_code)
    support_activates(j, sub, on=since)
    network_ops_provisions(j, sub, username=f"{local_part}@{j.profile.slug}")
    pppoe_login_is_accepted(j, sub, plan_code=plan_code)
    online = f"{local_part}-0001"
    nas_reports(j, "Start", session(sub, online, local_time(j.profile, since + datetime.timedelta(days=1))))
    return sub, online


def dunning_mails(mailoutbox, sub: Subscriber) -> list[str]:
    return [message.subject for message in mailoutbox if message.to == [sub.email]]


def j2_reminders_then_suspension(j: Journey, sub: Subscriber, invoice: dict, expected: Expected, mailoutbox) -> None:
    """1 and 7 days overdue: e-mails only, the service runs on. 15 days: suspended, told."""
    number, profile = invoice["number"], j.profile
    packets = j.nas_mark()
    operator_runs_dunning(j, J2_REMINDER_1)
    operator_runs_dunning(j, J2_REMINDER_1)  # a second run the same day sends nothing again
    operator_runs_dunning(j, J2_REMINDER_7)
    assert dunning_mails(mailoutbox, sub) == [
        f"Payment reminder: invoice {number} is overdue",
        f"Second reminder: invoice {number} is 7 days overdue",
    ]
    owed = f"Amount outstanding: {expected.amount_due:.{profile.minor_unit}f} {profile.currency}."
    assert all(owed in m.body for m in mailoutbox if m.to == [sub.email]), owed
    assert subscription_status(j, sub) == "active"
    assert j.nas_requests(since=packets) == [], "reminders do not touch the network"
    operator_runs_dunning(j, J2_SUSPENDED)
    assert subscription_status(j, sub) == "suspended"
    assert dunning_mails(mailoutbox, sub)[2:] == [f"Service suspended: invoice {number} is unpaid"]


def nas_is_told_to_disconnect(j: Journey, sub: Subscriber, session_id: str, *, since: int, reason: str) -> None:
    """Exactly one Disconnect-Request for the session reached the NAS, was acknowledged and recorded."""
    received = j.nas_requests(since=since, expect=1)
    assert len(received) == 1, f"the NAS should get one Disconnect-Request, got {received}"
    [packet] = received
    assert (packet.code_name, packet.verdict) == ("Disconnect-Request", "ack")
    assert packet.attributes["User-Name"] == [sub.pppoe_username]
    assert packet.attributes["Acct-Session-Id"] == [session_id]
    assert [(r["kind"], r["outcome"]) for r in coa_requests(j, sub, reason)] == [("disconnect", "ack")]


def j2_suspended_login(j: Journey, sub: Subscriber) -> str | None:
    """The subscriber dials in again: refused, or (tenant's choice) held in the walled garden.
    Returns the walled-garden session the NAS opens, if any."""
    retry = j.pppoe_login(sub.pppoe_username, sub.pppoe_password)
    if SUSPENDED_ACCESS[j.profile.key] == "reject":
        assert retry.code_name == "Access-Reject", (retry, j.radius_log())
        return None
    assert retry.code_name == "Access-Accept", (retry, j.radius_log())
    assert retry.attributes["Framed-Pool"] == ["walled-garden"]
    assert retry.attributes["Mikrotik-Rate-Limit"] == ["256k/256k"]
    assert "Framed-IP-Address" not in retry.attributes, "never the subscriber's own address"
    assert "settle your account" in retry.attributes["Reply-Message"][0]
    nas_reports(j, "Start", session(sub, "garden-0001", local_time(j.profile, J2_SUSPENDED, 14)))
    return "garden-0001"


def j2_payment_reactivates(j: Journey, sub: Subscriber, invoice: dict, garden_session: str | None) -> dict:
    packets = j.nas_mark()
    payment = billing_admin_records_payment(j, sub, invoice, received_on=J2_PAID)
    assert subscription_status(j, sub) == "active"
    history = j.staff("support").get(f"/api/v1/subscriptions/{sub.subscription_id}/history/").json()
    assert [(c["from_status"], c["to_status"], c["effective_on"]) for c in history["status_changes"]] == [
        ("pending", "active", J2_ACTIVATED.isoformat()),
        ("active", "suspended", J2_SUSPENDED.isoformat()),
        ("suspended", "active", J2_PAID.isoformat()),
    ]
    if garden_session is None:
        assert j.nas_requests(since=packets) == [], "no session was open: nothing to tell the NAS"
    else:  # the walled-garden session is dropped: the subscriber reconnects with full service
        nas_is_told_to_disconnect(j, sub, garden_session, since=packets, reason="reactivated")
        nas_session_ends(j, sub, garden_session, local_time(j.profile, J2_PAID), "Admin-Reset")
    return payment


@pytest.mark.network_monitoring  # every money journey goes through FreeRADIUS and the NAS
@pytest.mark.revenue_critical  # and every one moves or computes money
@pytest.mark.behavior
def test_journey_2_unpaid_invoice_to_suspension_disconnect_payment_and_reactivation(journey, catalogue, mailoutbox):
    j, profile = journey, journey.profile
    # given an online subscriber; network ops chose where suspended subscribers land
    settings = j.staff("network_ops").patch(
        "/api/v1/radius-settings/", {"suspended_access": SUSPENDED_ACCESS[profile.key]}, format="json"
    )
    assert settings.status_code == 200, settings.content
    sub, online = given_an_online_subscriber(
        j, name="Grace Hopper", email="grace@example.net", plan_code="fiber-100", since=J2_ACTIVATED
    )

    # the November invoice is issued, and never paid
    operator_runs_billing(j, "2025-11", J2_ISSUED)
    [invoice] = invoices_of(j, sub)
    expected = expected_invoice(profile, Taxable("service", (("charge", price(profile, "fiber-100")),)))
    assert_invoice(invoice, expected, issue_date=J2_ISSUED)

    # dunning: two reminders, then the suspension, which reaches the NAS as a Disconnect-Request
    packets = j.nas_mark()
    j2_reminders_then_suspension(j, sub, invoice, expected, mailoutbox)
    nas_is_told_to_disconnect(j, sub, online, since=packets, reason="suspended")
    nas_session_ends(j, sub, online, local_time(profile, J2_SUSPENDED, 13), "Admin-Reset")
    garden_session = j2_suspended_login(j, sub)

    # the customer pays: the invoice is settled, the subscription and full service come back
    payment = j2_payment_reactivates(j, sub, invoice, garden_session)
    pppoe_login_is_accepted(j, sub, plan_code="fiber-100")
    nothing_left_to_pay(j, sub)

    # the trail: reminders, suspension, the Disconnect, the payment, the reactivation
    assert audited(j, f"billing.invoice:{invoice['id']}") == [
        "invoice.issued",
        "invoice.dunning_reminder_1",
        "invoice.dunning_reminder_7",
        "invoice.dunning_suspended",
        "invoice.payment_allocated",
        "invoice.dunning_reactivated",
    ]
    trail = audited(j, f"customers.subscription:{sub.subscription_id}")
    assert [a for a in trail if a.startswith(("subscription.", "radius."))] == [
        "subscription.created",
        "subscription.activated",
        "subscription.suspended",
        "radius.disconnect.ack",
        "subscription.reactivated",
        *(["radius.disconnect.ack"] if garden_session else []),
    ]
    assert audited(j, f"billing.payment:{payment['id']}") == ["payment.recorded"]


# --- journey 4: mid-cycle upgrade, CoA, prorated credit and charge ------------------------------------
J4_ACTIVATED = datetime.date(2025, 7, 1)
J4_UPGRADED = datetime.date(2025, 7, 17)  # 15 of July's 31 days left: [17 Jul, 1 Aug)
J4_JULY, J4_AUGUST = datetime.date(2025, 7, 1), datetime.date(2025, 8, 1)


def j4_support_upgrades(j: Journey, sub: Subscriber, catalogue: Catalogue, session_id: str) -> None:
    """Fiber 100 -> Fiber 1000 from July 17th; the open session gets the new speed at once (CoA)."""
    packets = j.nas_mark()
    response = j.staff("support").post(
        f"/api/v1/subscriptions/{sub.subscription_id}/change-plan/",
        {"plan": catalogue.plan_ids["fiber-1000"], "effective_on": J4_UPGRADED.isoformat()},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["plan"] == catalogue.plan_ids["fiber-1000"]
    history = j.staff("support").get(f"/api/v1/subscriptions/{sub.subscription_id}/history/").json()
    assert [(c["from_plan_code"], c["to_plan_code"], c["effective_on"]) for c in history["plan_changes"]] == [
        (None, "fiber-100", J4_ACTIVATED.isoformat()),
        ("fiber-100", "fiber-1000", J4_UPGRADED.isoformat()),
    ]
    received = j.nas_requests(since=packets, expect=1)
    assert len(received) == 1, f"the NAS should get one CoA-Request, got {received}"
    [coa] = received
    assert (coa.code_name, coa.verdict) == ("CoA-Request", "ack")
    assert coa.attributes["Acct-Session-Id"] == [session_id]
    assert coa.attributes["Mikrotik-Rate-Limit"] == [rate_limit("fiber-1000")]
    assert coa.attributes["WISPr-Bandwidth-Max-Down"] == [PLANS["fiber-1000"]["download_kbps"] * 1000]
    assert coa.attributes["WISPr-Bandwidth-Max-Up"] == [PLANS["fiber-1000"]["upload_kbps"] * 1000]
    assert [(r["kind"], r["outcome"]) for r in coa_requests(j, sub, "plan_change")] == [("coa", "ack")]


def j4_expected_august(profile) -> Expected:
    basic, premium = price(profile, "fiber-100"), price(profile, "fiber-1000")
    return expected_invoice(
        profile,
        Taxable("service", (("credit", credit_for(basic, 15, 31)),)),  # July's line billed 31 days
        Taxable("service", (("charge", prorated(premium, 15, 31)),)),
        Taxable("service", (("charge", premium),)),  # August in advance
    )


@pytest.mark.network_monitoring  # every money journey goes through FreeRADIUS and the NAS
@pytest.mark.revenue_critical  # and every one moves or computes money
@pytest.mark.behavior
def test_journey_4_mid_cycle_upgrade_sends_coa_and_the_next_invoice_credits_and_charges(journey, catalogue):
    j, profile = journey, journey.profile
    # given an online subscriber on Fiber 100 since July 1st, July billed in advance
    sub, online = given_an_online_subscriber(
        j, name="Katherine Johnson", email="katherine@example.net", plan_code="fiber-100", since=J4_ACTIVATED
    )
    operator_runs_billing(j, "2025-07", J4_JULY)
    [july] = invoices_of(j, sub)
    basic = price(profile, "fiber-100")
    assert_invoice(july, expected_invoice(profile, Taxable("service", (("charge", basic),))), issue_date=J4_JULY)

    # support upgrades mid-cycle: the NAS gets a CoA with the new speed; so does the next login
    j4_support_upgrades(j, sub, catalogue, online)
    nas_session_ends(j, sub, online, local_time(profile, J4_UPGRADED, 18), "User-Request")
    pppoe_login_is_accepted(j, sub, plan_code="fiber-1000")

    # the August invoice credits July's rest at the old price and charges it at the new one
    operator_runs_billing(j, "2025-08", J4_AUGUST)
    july_again, august = invoices_of(j, sub)
    assert july_again == july, "an issued invoice never changes"
    expected = j4_expected_august(profile)
    assert_invoice(august, expected, issue_date=J4_AUGUST)
    credit, rest_of_july, _ = august["lines"]
    assert (credit["credits_line"], credit["billable_days"]) == (july["lines"][0]["id"], 15)
    assert (credit["service_start"], credit["service_end"]) == ("2025-07-17", "2025-08-01")
    assert (rest_of_july["plan"], rest_of_july["fraction"], rest_of_july["service_start"]) == (
        catalogue.plan_ids["fiber-1000"],
        "15/31",
        "2025-07-17",
    )
    # the customer sees both invoices; the trail has the change and the CoA
    listed = j.portal(sub.email, PASSWORD).get("/api/v1/portal/invoices/").json()["results"]
    assert [(i["number"], D(i["amount_due"])) for i in listed] == [
        (august["number"], expected.amount_due),
        (july["number"], D(july["amount_due"])),
    ]
    trail = audited(j, f"customers.subscription:{sub.subscription_id}")
    assert [a for a in trail if a in ("subscription.plan_changed", "radius.coa.ack")] == [
        "subscription.plan_changed",
        "radius.coa.ack",
    ]


# ======================================================================================
# Journeys 3 (an OLT outage) and 5 (GDPR export and erasure): in the matrix tenants, inside
# the test transaction (nothing needs committing: see the module docstring).
# ======================================================================================

ACTOR = Actor.system("journey set-up")
NOC_EMAIL = "noc@isp.example"


def _json(response) -> dict:
    assert response.status_code in (200, 201), (response.status_code, response.content[:500])
    return response.json()


# =====================================================================================================
# Journey 3: an OLT stops answering -> alarm -> affected subscribers -> recovery clears the alarm
# =====================================================================================================

OLT_COMMUNITY = "olt-journey-ro"
OLT_UPTIME_CS = 45 * 86_400 * 100  # 45 days: no reboot is seen while the journey runs
UPLINK_SPEED = 10_000_000_000
# Huawei-like ONT tables (serials as 8 octets, Rx/Tx in 0.01 dBm): every ONT online, good light, so
# the only fault in the journey is the OLT itself.
OLT_A_ONTS = [
    {"port": HW_PORT_0, "ont": 0, "serial": b"HWTC\xa0\x00\x00\x01", "rx": -2050, "tx": 220},
    {"port": HW_PORT_0, "ont": 1, "serial": b"HWTC\xa0\x00\x00\x02", "rx": -2110, "tx": 215},
    {"port": HW_PORT_1, "ont": 0, "serial": b"HWTC\xa0\x00\x00\x03", "rx": -1990, "tx": 230},  # never bound
    {"port": HW_PORT_1, "ont": 1, "serial": b"HWTC\xa0\x00\x00\x04", "rx": -2200, "tx": 210},  # not yet live
]
OLT_B_ONTS = [{"port": HW_PORT_0, "ont": 0, "serial": b"HWTC\xb0\x00\x00\x01", "rx": -2000, "tx": 225}]


def _olt_records(onts: list[dict]) -> dict:
    """An OLT as the poller and the GPON walk see it: IF-MIB with its uplink, the PON ports and ONT tables."""
    uplink = [{"if_index": 1, "name": "uplink0", "alias": "to core", "speed_bps": UPLINK_SPEED}]
    return {
        **huawei_records(onts),
        **if_mib_records(uplink, sys_uptime_cs=OLT_UPTIME_CS, sys_descr="Simulated GPON OLT (Huawei-like)"),
    }


@pytest.fixture(scope="module")
def olt_agents():
    """Two OLTs on loopback, started once for the module (each test resets and resumes them)."""
    with (
        SimulatedAgent("journey-olt-a", _olt_records(OLT_A_ONTS), community=OLT_COMMUNITY, host="127.0.53.1") as a,
        SimulatedAgent("journey-olt-b", _olt_records(OLT_B_ONTS), community=OLT_COMMUNITY, host="127.0.53.2") as b,
    ):
        yield {"a": a, "b": b}


@pytest.fixture
def olts_answering(olt_agents):
    for agent, onts in ((olt_agents["a"], OLT_A_ONTS), (olt_agents["b"], OLT_B_ONTS)):
        agent.resume()
        agent.replace(_olt_records(onts))
    yield olt_agents
    for agent in olt_agents.values():
        agent.resume()


@dataclass
class FiberNetwork:
    olt_a: Device
    olt_b: Device
    behind_a: list[Subscription]  # live subscriptions on OLT A's ONUs: the ones an outage of A hits
    pending_on_a: Subscription  # bound to an ONU of A but not active yet: no service to lose
    behind_b: Subscription
    no_onu: Subscription

    def not_hit(self) -> list[Subscription]:
        return [self.pending_on_a, self.behind_b, self.no_onu]


def _subscription(plan, *, live: bool = True, suspended: bool = False) -> Subscription:
    customer = CustomerFactory()
    subscription = cs.subscription_create(
        customer=customer, plan=plan, service_address=ServiceAddressFactory(customer=customer), actor=ACTOR
    )
    if not live:
        return subscription
    subscription = cs.subscription_activate(
        subscription=subscription, activated_on=datetime.date(2026, 10, 1), actor=ACTOR
    )
    if suspended:
        subscription = cs.subscription_suspend(
            subscription=subscription, effective_on=datetime.date(2026, 11, 20), actor=ACTOR, reason="unpaid"
        )
    return subscription


def _register_olt(name: str, agent: SimulatedAgent) -> Device:
    return device_register(
        name=name,
        kind=Device.Kind.OLT,
        vendor="huawei",
        management_ip=agent.host,
        snmp_port=agent.port,
        community=agent.community,
        actor=ACTOR,
    )


def _fiber_network(agents) -> FiberNetwork:
    """What the operator configured: two OLTs, their ONUs found by autofind, subscribers bound to
    them (one of A's suspended: still a live service; one of A's pending: not yet), one subscriber on
    no ONU at all, and one ONU of A found but never bound."""
    fiber, business = PlanFactory(code="gpon-500"), PlanFactory(code="gpon-1000")
    olt_a, olt_b = _register_olt("olt-north", agents["a"]), _register_olt("olt-south", agents["b"])
    onu_autofind(olt_a, actor=ACTOR)
    onu_autofind(olt_b, actor=ACTOR)
    behind_a = [_subscription(fiber), _subscription(business, suspended=True)]
    pending_on_a, behind_b = _subscription(fiber, live=False), _subscription(fiber)
    for serial, subscription in (
        ("HWTCA0000001", behind_a[0]),
        ("HWTCA0000002", behind_a[1]),
        ("HWTCA0000004", pending_on_a),
        ("HWTCB0000001", behind_b),
    ):
        onu_authorise(onu=Onu.objects.get(serial=serial), subscription=subscription, actor=ACTOR)
    return FiberNetwork(olt_a, olt_b, behind_a, pending_on_a, behind_b, no_onu=_subscription(fiber))


@dataclass
class Noc:
    """The people and tools of the outage journey."""

    tenant: object
    staff: object  # a network_ops member's API client
    auditor: object  # an auditor's API client
    capture_on_commit: object  # pytest-django's django_capture_on_commit_callbacks


def _operator_polls(noc: Noc) -> str:
    """One `poll_devices` run for the tenant, as cron or an operator runs it; the notifications it
    leaves for after the commit are sent, as a commit would. Returns what the command printed."""
    out = io.StringIO()
    with noc.capture_on_commit(execute=True):
        call_command(
            "poll_devices", "--tenant", noc.tenant.slug, "--timeout", "1", "--retries", "1", "--no-progress", stdout=out
        )
    return out.getvalue()


def _open_alarms(noc: Noc) -> list[dict]:
    return _json(noc.staff.get("/api/v1/alarms/?state=open"))["results"]


def _device_status(noc: Noc, device: Device) -> str:
    return _json(noc.staff.get(f"/api/v1/devices/{device.pk}/"))["status"]


def _alarm_emails() -> list[tuple[str, str]]:
    return [(m.subject, m.body) for m in mail.outbox if NOC_EMAIL in m.to]


def _step_a_healthy_poll_raises_nothing(noc: Noc, net: FiberNetwork) -> None:
    printed = _operator_polls(noc)
    assert "2 devices" in printed
    assert "2 up, 0 down" in printed
    assert _open_alarms(noc) == []
    assert (_device_status(noc, net.olt_a), _device_status(noc, net.olt_b)) == ("up", "up")


def _step_the_silent_olt_gets_one_critical_alarm(noc: Noc, net: FiberNetwork) -> dict:
    printed = _operator_polls(noc)
    assert "1 up, 1 down" in printed
    assert "olt-north" in printed  # the command names the device that did not answer
    [alarm] = _open_alarms(noc)
    assert (alarm["kind"], alarm["severity"], alarm["device"]) == ("device_unreachable", "critical", net.olt_a.pk)
    assert "olt-north" in alarm["summary"]
    assert alarm["details"]["affected_subscriptions"] == 2
    assert (_device_status(noc, net.olt_a), _device_status(noc, net.olt_b)) == ("down", "up")
    return alarm


def _step_the_noc_lists_exactly_the_subscribers_behind_it(noc: Noc, net: FiberNetwork, alarm: dict) -> None:
    outage = _json(noc.staff.get(f"/api/v1/alarms/{alarm['id']}/outage/"))
    expected = [
        (s.pk, s.customer.account_code, s.plan.code, s.status, f"onu {serial}")
        for s, serial in zip(net.behind_a, ("HWTCA0000001", "HWTCA0000002"), strict=True)
    ]
    listed = [
        (r["subscription_id"], r["account_code"], r["plan_code"], r["status"], r["via"])
        for r in outage["subscriptions"]
    ]
    assert listed == expected
    assert (outage["count"], outage["by_status"]) == (2, {"active": 1, "suspended": 1})
    assert outage["by_plan"] == {"gpon-1000": 1, "gpon-500": 1}
    # the NOC's mailbox got one message naming the same accounts, and no one else's
    [(subject, body)] = _alarm_emails()
    assert subject == f"[{noc.tenant.name}] [CRITICAL] OPEN: {alarm['summary']}"
    assert "Affected subscriptions: 2" in body
    assert all(s.customer.account_code in body for s in net.behind_a)
    assert not any(s.customer.account_code in body for s in net.not_hit())


def _step_still_down_is_the_same_alarm(noc: Noc, alarm: dict) -> None:
    _operator_polls(noc)
    [again] = _open_alarms(noc)
    assert (again["id"], again["occurrences"]) == (alarm["id"], 2)
    assert len(_alarm_emails()) == 1  # no second e-mail for the same outage


def _step_the_noc_acknowledges(noc: Noc, alarm: dict, note: str) -> None:
    acked = _json(noc.staff.post(f"/api/v1/alarms/{alarm['id']}/acknowledge/", {"note": note}, format="json"))
    assert (acked["state"], acked["acknowledged_by"]) == ("open", noc.staff.user.username)
    assert acked["acknowledged_at"] is not None


def _step_recovery_clears_the_alarm(noc: Noc, net: FiberNetwork, alarm: dict) -> None:
    printed = _operator_polls(noc)
    assert "2 up, 0 down" in printed
    assert _open_alarms(noc) == []
    cleared = _json(noc.staff.get(f"/api/v1/alarms/{alarm['id']}/"))
    assert (cleared["state"], cleared["occurrences"]) == ("cleared", 2)
    assert cleared["cleared_at"] is not None
    assert _device_status(noc, net.olt_a) == "up"
    assert [subject for subject, _ in _alarm_emails()] == [
        f"[{noc.tenant.name}] [CRITICAL] OPEN: {alarm['summary']}",
        f"[{noc.tenant.name}] [CRITICAL] CLEARED: {alarm['summary']}",
    ]
    assert _json(noc.staff.get(f"/api/v1/alarms/?device={net.olt_b.pk}"))["count"] == 0  # OLT B: never an alarm


def _audit_story(auditor, obj: str) -> list[dict]:
    """The audit events about one object (`app.model:id`), oldest first, as an auditor reads them."""
    return _json(auditor.get(f"/api/v1/audit-events/?object={obj}&ordering=id&page_size=200"))["results"]


@pytest.mark.behavior
@pytest.mark.network_monitoring
def test_journey_3_olt_outage_raises_one_alarm_lists_exactly_its_subscribers_and_recovery_clears_it(
    tenant, olts_answering, staff_client, settings, django_capture_on_commit_callbacks
):
    # given: two OLTs with subscribers, the NOC's mailbox configured, a NOC engineer and an auditor
    settings.NETWORK_ALARM_EMAILS = NOC_EMAIL
    net = _fiber_network(olts_answering)
    noc = Noc(
        tenant, staff_client(tenant, "network_ops"), staff_client(tenant, "auditor"), django_capture_on_commit_callbacks
    )
    _step_a_healthy_poll_raises_nothing(noc, net)

    # when: OLT A stops answering
    olts_answering["a"].pause()
    # then: one critical alarm, and the NOC sees exactly who is hit
    alarm = _step_the_silent_olt_gets_one_critical_alarm(noc, net)
    _step_the_noc_lists_exactly_the_subscribers_behind_it(noc, net, alarm)
    _step_still_down_is_the_same_alarm(noc, alarm)
    _step_the_noc_acknowledges(noc, alarm, note="truck to the POP")

    # when: OLT A answers again
    olts_answering["a"].resume()
    # then: the next poll clears the alarm
    _step_recovery_clears_the_alarm(noc, net, alarm)
    # and the audit trail, read by an auditor, tells who did what
    trail = _audit_story(noc.auditor, f"network.alarm:{alarm['id']}")
    assert [(e["action"], e["actor_type"], e["actor_label"], e["reason"]) for e in trail] == [
        ("alarm.opened", "system", "fault detection", f"device_unreachable:device:{net.olt_a.pk} (critical)"),
        ("alarm.acknowledged", "token", noc.staff.user.username, "truck to the POP"),
        ("alarm.cleared", "system", "fault detection", ""),
    ]


# =====================================================================================================
# Journey 5: GDPR export and erasure of a customer with a full history
# =====================================================================================================

NAS_SECRET = "journey-nas-secret-5"
PPPOE_PASSWORD = "zq-pppoe-pass-1"  # what subject_with_history(tag="zq") sets; never exported
# Where each personal value must be in the export archive.
EXPORT_CATEGORIES = {
    "customers.profile.json": ("name", "email", "phone", "national_id", "tax_id", "date_of_birth"),
    "customers.addresses.json": ("street", "city", "postal_code"),
    "billing.payments.json": ("payment_reference",),
    "network.pppoe_accounts.json": ("pppoe_username",),
    "network.radius_sessions.json": ("pppoe_username", "framed_ip", "calling_station_id"),
}
# Values the staff API never shows, even to an owner: the payment reference ("<encrypted>") and the
# calling-station id (not a field of the sessions API). The export and the erasure still cover them.
NOT_IN_STAFF_API = {"payment_reference", "calling_station_id"}
INVOICE_KEPT = (
    "number",
    "status",
    "total",
    "subtotal",
    "tax_total",
    "amount_due",
    "amount_paid",
    "balance_due",
    "lines",
)


@pytest.fixture
def nas():
    """The NAS the subject's sessions run on (127.0.0.1), simulated: it records every packet."""
    with NasSimulator(secret=NAS_SECRET.encode(), host="127.0.0.1") as simulator:
        yield simulator


def _what_staff_see(owner, subject) -> dict[str, dict]:
    """Everything the staff API shows about the subject, as an owner (who sees personal data in clear)."""
    c, s = subject.customer.pk, subject.subscription.pk
    requests = {
        "profile": (f"/api/v1/customers/{c}/", {}),
        "by_email": ("/api/v1/customers/", {"email": subject.pii["email"]}),
        "by_phone": ("/api/v1/customers/", {"phone": subject.pii["phone"]}),
        "addresses": ("/api/v1/service-addresses/", {"customer": c}),
        "subscriptions": ("/api/v1/subscriptions/", {"customer": c}),
        "invoice": (f"/api/v1/invoices/{subject.invoice.pk}/", {}),
        "payments": ("/api/v1/payments/", {"customer": c}),
        "pppoe_accounts": ("/api/v1/pppoe-accounts/", {"subscription": s}),
        "radius_sessions": ("/api/v1/radius-sessions/", {"subscription": s}),
    }
    return {name: _json(owner.get(path, params)) for name, (path, params) in requests.items()}


def _values_shown(view: dict, pii: dict[str, str]) -> set[str]:
    text = json.dumps(view)
    return {field for field, value in pii.items() if value in text}


def _radius_knows(username: str) -> bool:
    """Whether FreeRADIUS would find the login: the function its `authorize` query calls."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM radius.authorize_check(%s, %s)", [connection.schema_name, username])
        return cursor.fetchone()[0] > 0


def _dsr_received_and_verified(owner, customer_id: int, kind: str) -> dict:
    created = _json(
        owner.post("/api/v1/data-subject-requests/", {"customer": customer_id, "kind": kind}, format="json")
    )
    assert (created["kind"], created["status"]) == (kind, "received")
    assert created["due_at"] > created["received_at"]
    verified = _json(
        owner.post(
            f"/api/v1/data-subject-requests/{created['id']}/verify/",
            {"method": "photo id checked at the shop"},
            format="json",
        )
    )
    assert verified["status"] == "verified"
    return verified


def _fulfil(owner, request_id: int) -> dict:
    return _json(owner.post(f"/api/v1/data-subject-requests/{request_id}/fulfil/", {}, format="json"))


def _download_archive(owner, request_id: int) -> dict[str, str]:
    response = owner.get(f"/api/v1/data-subject-requests/{request_id}/archive/")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def _step_export_is_downloaded_and_holds_each_category(owner, subject, other) -> dict:
    """received -> verified -> fulfilled; the archive downloaded through the API holds each of the
    person's values in its category, the manifest counts right, and nothing of anyone else."""
    export = _fulfil(owner, _dsr_received_and_verified(owner, subject.customer.pk, "export")["id"])
    assert (export["status"], export["archive_available"]) == ("fulfilled", True)
    files = _download_archive(owner, export["id"])
    for filename, fields in EXPORT_CATEGORIES.items():
        missing = [f for f in fields if subject.pii[f] not in files[filename]]
        assert not missing, f"{filename} lacks {missing}"
    profile = json.loads(files["customers.profile.json"])
    assert [(p["account_code"], p["name"], p["email"]) for p in profile] == [
        (subject.customer.account_code, subject.pii["name"], subject.pii["email"])
    ]
    assert [s["id"] for s in json.loads(files["customers.subscriptions.json"])] == [subject.subscription.pk]
    invoices = json.loads(files["billing.invoices.json"])
    assert [(i["number"], Decimal(i["total"])) for i in invoices] == [(subject.invoice.number, subject.invoice.total)]
    payments = json.loads(files["billing.payments.json"])
    assert [Decimal(p["amount"]) for p in payments] == [subject.payment.amount]
    sessions = json.loads(files["network.radius_sessions.json"])
    assert sorted(s["acct_session_id"] for s in sessions) == ["zq-s1", "zq-s2"]
    actions = {row["action"] for row in json.loads(files["audit_records.json"])}
    assert {"customer.created", "subscription.activated", "pppoe.created", "payment.recorded"} <= actions
    manifest = json.loads(files["manifest.json"])
    assert manifest["subject"] == {"account_code": subject.customer.account_code}
    assert set(manifest["files"]) == set(files) - {"manifest.json", "README.txt"}
    for filename, entry in manifest["files"].items():
        assert entry["records"] == len(json.loads(files[filename])), filename
    everything = "\n".join(files.values())
    assert not [f for f, value in other.pii.items() if value in everything], "another customer's data exported"
    assert PPPOE_PASSWORD not in everything
    return export


def _step_erasure_is_fulfilled_and_the_session_ended_at_the_nas(owner, subject, nas) -> dict:
    """received -> verified -> nothing blocks it -> fulfilled with a pseudonym; the NAS got the
    Disconnect-Request of the session still open."""
    erasure = _dsr_received_and_verified(owner, subject.customer.pk, "erasure")
    blockers = _json(owner.get(f"/api/v1/data-subject-requests/{erasure['id']}/erasure-blockers/"))
    assert blockers == {"blockers": []}
    erasure = _fulfil(owner, erasure["id"])
    assert erasure["status"] == "fulfilled", erasure["refusal_reason"]
    assert len(erasure["pseudonym"]) == 8
    assert nas.wait_for(1)
    assert ("Disconnect-Request", "zq-s2") in [(r.code_name, r.session_id) for r in nas.received]
    return erasure


def _step_the_api_shows_nothing_of_the_person(owner, subject, erasure: dict, before: dict) -> None:
    after = _what_staff_see(owner, subject)
    assert _values_shown(after, subject.pii) == set()
    profile = after["profile"]
    assert profile["name"] == f"Erased customer #{erasure['pseudonym']}"
    assert (profile["email"], profile["phone"], profile["national_id"], profile["date_of_birth"]) == (None,) * 4
    assert (profile["status"], profile["marketing_consent"], profile["do_not_sell"]) == ("closed", False, True)
    assert after["by_email"]["count"] == after["by_phone"]["count"] == 0
    assert after["pppoe_accounts"]["count"] == 0
    assert [(r["username"], r["framed_ip_address"]) for r in after["radius_sessions"]["results"]] == [("", None)] * 2
    assert all(r["stop_time"] for r in after["radius_sessions"]["results"])
    assert [r["status"] for r in after["subscriptions"]["results"]] == ["terminated"]
    [address] = after["addresses"]["results"]
    assert (address["street"], address["city"], address["country"], address["region"]) == (None, None, "US", "US-IL")
    # the invoice and the payment stay, amounts unchanged (legal retention); the payer's reference is gone
    assert {k: after["invoice"][k] for k in INVOICE_KEPT} == {k: before["invoice"][k] for k in INVOICE_KEPT}
    assert [(p["amount"], p["reference"]) for p in before["payments"]["results"]] == [
        (str(subject.payment.amount.quantize(Decimal("0.000001"))), "<encrypted>")
    ]
    assert [(p["amount"], p["reference"]) for p in after["payments"]["results"]] == [
        (before["payments"]["results"][0]["amount"], None)
    ]


def _step_the_audit_trail_tells_it_without_values_and_verifies(auditor, owner, tenant, subject, requests) -> None:
    for request in requests:
        story = [
            (e["action"], e["actor_label"])
            for e in _audit_story(auditor, f"compliance.datasubjectrequest:{request['id']}")
        ]
        expected = ["dsr.received", "dsr.verified", "dsr.fulfilled"] + (
            ["dsr.archive_downloaded"] if request["kind"] == "export" else []
        )
        assert story == [(action, owner.user.username) for action in expected]
    erased = _audit_story(auditor, f"customers.customer:{subject.customer.pk}")
    assert [e["action"] for e in erased].count("customer.erased") == 1
    trail, url = [], "/api/v1/audit-events/?page_size=200"
    while url:
        page = _json(auditor.get(url))
        trail += page["results"]
        url = page["next"]
    text = json.dumps(trail)
    assert not [f for f, value in subject.pii.items() if value in text], "a personal value in the audit trail"
    seal_pending()  # this transaction's records are sealed now, as its commit would seal them
    out = io.StringIO()
    call_command("audit_verify", "--tenant", tenant.slug, stdout=out)
    assert out.getvalue().startswith(f"{tenant.schema_name}: ok: ")


@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.data_safety
def test_journey_5_gdpr_export_then_erasure_of_a_customer_with_a_full_history(tenant, host_client, staff_client, nas):
    # given: the NAS their sessions run on, two customers with a full history, an owner and an auditor
    ns.nas_register(name="bras-journey", ip_address="127.0.0.1", secret=NAS_SECRET, actor=ACTOR, coa_port=nas.port)
    subject = subject_with_history(tag="zq", pii=PII_A, paid=True)
    other = subject_with_history(tag="bo", pii=PII_B, paid=True)
    owner, auditor = staff_client(tenant, "owner"), staff_client(tenant, "auditor")
    portal = host_client(tenant)  # the person's own portal session (their API token)
    portal.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=subject.customer.portal_user).key}")
    assert _json(portal.get("/api/v1/portal/me/"))["name"] == subject.pii["name"]
    before = _what_staff_see(owner, subject)
    # the staff API shows their values (so that "none after" means something) and finds them by e-mail/phone
    assert _values_shown(before, subject.pii) == set(subject.pii) - NOT_IN_STAFF_API
    assert before["by_email"]["count"] == before["by_phone"]["count"] == 1
    assert _radius_knows(subject.pii["pppoe_username"])

    # when: they ask for their data
    export = _step_export_is_downloaded_and_holds_each_category(owner, subject, other)
    # and then to be erased
    erasure = _step_erasure_is_fulfilled_and_the_session_ended_at_the_nas(owner, subject, nas)

    # then: staff see nothing of them any more; the money stays
    _step_the_api_shows_nothing_of_the_person(owner, subject, erasure, before)
    # their portal token is dead, FreeRADIUS no longer knows their login, the earlier export is gone
    assert portal.get("/api/v1/portal/me/").status_code == 401
    assert not _radius_knows(subject.pii["pppoe_username"])
    gone = owner.get(f"/api/v1/data-subject-requests/{export['id']}/archive/")
    assert gone.status_code == 400
    assert "erased" in gone.json()["error"]["fields"]["archive"][0]
    assert _json(owner.get(f"/api/v1/data-subject-requests/{export['id']}/"))["archive_available"] is False
    # the other customer is untouched
    assert _values_shown(_what_staff_see(owner, other), other.pii) == set(other.pii) - NOT_IN_STAFF_API
    assert _radius_knows(other.pii["pppoe_username"])
    # and the audit trail tells it all, by the owner, with no personal value, and verifies
    _step_the_audit_trail_tells_it_without_values_and_verifies(auditor, owner, tenant, subject, [export, erasure])
