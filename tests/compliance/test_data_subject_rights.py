"""Data-subject rights (issue 7): the request workflow, the export archive, erasure by
crypto-shredding and pseudonymisation, refusals, deadlines, CCPA opt-out and retention.

Two customers get a full history through the production services (profile, address, active
subscription, PPPoE account, RADIUS sessions written by `radius.accounting` as FreeRADIUS would,
an invoice, a payment, a portal login); the export must hold every personal value of one and none
of the other, and after an erasure a text search over every column of every table of the tenant
schema and of the `radius` schema finds none of the erased customer's values - while it still
finds the other customer's, so the search itself is shown to work."""

from __future__ import annotations

import ast
import datetime
import io
import json
import zipfile
from decimal import ROUND_DOWN, Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from billing.accounts import account_standing
from billing.domain.money import minor_unit
from billing.models import Invoice, InvoiceLine, Payment, PaymentAllocation
from billing.payments import payment_record
from billing.pdf import invoice_html
from compliance.dsr import registry, services
from compliance.dsr.retention import retention_purge
from compliance.dsr.third_party import third_party_export
from compliance.models import AuditEvent, DataSubjectRequest, PrivacyPolicy
from compliance.pii.fields import key_id_of
from compliance.pii.keystore import get_keystore
from customers import services as cs
from customers.models import Customer, ServiceAddress, Subscription
from network import services as ns
from network.models import CoaRequest, PppoeAccount, RadiusSession
from network.radius.nas_simulator import NasSimulator
from tests.clients import TenantAdminClient
from tests.code_safety import REPO
from tests.factories import StaffUserFactory
from tests.security.subjects import (
    ACTOR,
    CLEAR_AT_REST,
    PII_A,
    PII_B,
    accounting,
    archive_files,
    subject_with_history,
    verified,
    where_found,
)

pytestmark = [pytest.mark.customer_data_protection]

K = DataSubjectRequest.Kind
S = DataSubjectRequest.Status
PPPOE_PASSWORD_A = "Zq-pppoe-secret-7731"
INVOICE_MONEY = (
    "pk", "number", "status", "currency", "subtotal", "tax_total", "total", "amount_due", "rounding_adjustment",
    "credit_applied", "amount_paid",
)
LINE_MONEY = ("pk", "kind", "quantity", "unit_price", "amount", "net_amount", "tax_amount")


@pytest.fixture
def two_subjects(tenant):
    return (
        subject_with_history(tag="zq", pii=PII_A, paid=True),
        subject_with_history(tag="bo", pii=PII_B, paid=True),
    )


# --- export ------------------------------------------------------------------------------------------


@pytest.mark.behavior
def test_export_holds_every_personal_value_of_the_subject_and_none_of_another_customer(two_subjects):
    # given
    a, b = two_subjects
    request = verified(a.customer, K.EXPORT)
    # when
    request = services.dsr_fulfil(request=request, actor=ACTOR)
    files = archive_files(request)
    # then
    assert request.status == S.FULFILLED
    everything = "\n".join(files.values())
    missing = [field for field, value in a.pii.items() if value not in everything]
    assert not missing, f"not in the export: {missing}"
    leaked = [field for field, value in b.pii.items() if value in everything]
    assert not leaked, f"another customer's data in the export: {leaked}"
    assert PPPOE_PASSWORD_A not in everything
    assert "zq-pppoe-pass-1" not in everything
    for category in registry.categories():
        assert f"{category.name}.json" in files
        json.loads(files[f"{category.name}.json"])
    assert a.customer.account_code in files["README.txt"]
    invoices = json.loads(files["billing.invoices.json"])
    assert [i["number"] for i in invoices] == [a.invoice.number]
    sessions = json.loads(files["network.radius_sessions.json"])
    assert {s["acct_session_id"] for s in sessions} == {"zq-s1", "zq-s2"}
    actions = {row["action"] for row in json.loads(files["audit_records.json"])}
    assert {"customer.created", "pppoe.created", "payment.recorded"} <= actions


@pytest.mark.behavior
def test_building_and_downloading_an_export_is_audited_as_a_reveal(two_subjects):
    a, _ = two_subjects
    request = verified(a.customer, K.EXPORT)
    before = AuditEvent.objects.filter(action="pii.revealed", object_id=str(a.customer.pk)).count()
    request = services.dsr_fulfil(request=request, actor=ACTOR)
    services.dsr_archive(request=request, actor=ACTOR)
    reveals = AuditEvent.objects.filter(
        action="pii.revealed", object_type="customers.customer", object_id=str(a.customer.pk)
    )
    assert reveals.count() == before + 2
    assert "customers.profile.email" in reveals.first().changed_fields
    assert AuditEvent.objects.filter(action="dsr.archive_downloaded", object_id=str(request.pk)).exists()


@pytest.mark.contract
def test_the_export_archive_is_sealed_with_the_subjects_key_and_never_stored_in_clear(two_subjects):
    a, _ = two_subjects
    request = services.dsr_fulfil(request=verified(a.customer, K.EXPORT), actor=ACTOR)
    raw = DataSubjectRequest.objects.filter(pk=request.pk).values_list("archive", flat=True).get()
    assert key_id_of(raw.blob) == a.customer.data_key_id
    assert request.archive_expires_at > timezone.now() + datetime.timedelta(days=29)


# --- erasure -----------------------------------------------------------------------------------------


@pytest.mark.data_safety
@pytest.mark.behavior
def test_after_erasure_no_clear_personal_data_of_the_subject_remains_anywhere(two_subjects):
    # given: every value is somewhere in the database before (the clear-at-rest ones in clear)
    a, b = two_subjects
    for field in CLEAR_AT_REST:
        assert where_found(a.pii[field]), field
    export = services.dsr_fulfil(request=verified(a.customer, K.EXPORT), actor=ACTOR)
    old_key = a.customer.data_key_id
    old_name_blob = Customer.objects.filter(pk=a.customer.pk).values_list("name", flat=True).get().blob
    invoice_before = Invoice.objects.filter(pk=a.invoice.pk).values().get()
    payment_amount = a.payment.amount
    # when
    request = services.dsr_fulfil(request=verified(a.customer, K.ERASURE), actor=ACTOR)
    # then: fulfilled, nothing of the subject in clear in any table of the tenant or radius schemas
    assert request.status == S.FULFILLED, request.refusal_reason
    leftovers = {field: where_found(value) for field, value in a.pii.items()}
    assert not any(leftovers.values()), leftovers
    # ...while the other customer's clear values are still found (the scan works)
    for field in CLEAR_AT_REST:
        assert where_found(b.pii[field]), field
    # crypto-shredding: the old data key is gone; old ciphertexts (backups) no longer open
    assert get_keystore().fetch(tenant=connection.schema_name, key_ids=[old_key]) == {old_key: None}
    assert key_id_of(old_name_blob) == old_key
    erased = Customer.objects.get(pk=a.customer.pk)
    assert erased.name == f"Erased customer #{request.pseudonym}"
    assert (erased.email, erased.phone, erased.national_id, erased.date_of_birth) == (None, None, None, None)
    assert erased.email_index is None
    assert erased.phone_index is None
    assert erased.do_not_sell
    assert not erased.marketing_consent
    address = ServiceAddress.objects.get(customer=erased)
    assert (address.street, address.city, address.postal_code, address.country) == (None, None, None, "US")
    # the invoice and the payment stay, amounts unchanged, without identity
    assert Invoice.objects.filter(pk=a.invoice.pk).values().get() == invoice_before
    assert Payment.objects.get(pk=a.payment.pk).amount == payment_amount
    # credentials revoked, sessions ended and anonymised
    assert not PppoeAccount.objects.filter(subscription__customer=erased).exists()
    sessions = RadiusSession.objects.filter(subscription__customer=erased)
    assert sessions.count() == 2
    assert not sessions.filter(stop_time__isnull=True).exists()
    assert set(sessions.values_list("username", "calling_station_id", "framed_ip_address")) == {("", "", None)}
    user = get_user_model().objects.get(pk=a.customer.portal_user_id)
    assert not user.is_active
    assert not user.has_usable_password()
    assert not Token.objects.filter(user=user).exists()
    assert Subscription.objects.get(pk=a.subscription.pk).status == "terminated"
    # the export archive made before is gone too
    export.refresh_from_db()
    assert export.archive is None
    assert export.archive_sha256 == ""
    # the invoice as printed names the pseudonym, not the person
    html = invoice_html(Invoice.objects.get(pk=a.invoice.pk))
    assert f"Erased customer #{request.pseudonym}" in html
    assert PII_A["name"] not in html
    assert PII_A["street"] not in html
    # the other customer is untouched
    other = Customer.objects.get(pk=b.customer.pk)
    assert other.name == PII_B["name"]
    assert other.email == PII_B["email"]
    assert PppoeAccount.objects.filter(username=PII_B["pppoe_username"]).exists()


@pytest.mark.data_safety
@pytest.mark.behavior
def test_erasure_disconnects_the_open_session_at_its_nas(two_subjects):
    a, _ = two_subjects
    request = verified(a.customer, K.ERASURE)
    with NasSimulator(secret=b"nas-secret-dsr", host="127.0.0.1") as nas_sim:
        ns.nas_register(
            name="bras-dsr", ip_address="127.0.0.1", secret="nas-secret-dsr", actor=ACTOR, coa_port=nas_sim.port
        )
        services.dsr_fulfil(request=request, actor=ACTOR)
        assert nas_sim.wait_for(1)
        received = [(r.code_name, r.session_id) for r in nas_sim.received]
    assert ("Disconnect-Request", "zq-s2") in received
    coa = CoaRequest.objects.get(subscription=a.subscription)
    assert coa.outcome == "ack"
    assert "User-Name" not in coa.attributes


@pytest.mark.data_safety
@pytest.mark.behavior
def test_late_accounting_from_a_nas_after_erasure_writes_no_identifier_back(two_subjects):
    # given: an erased subject whose NAS did not act on the Disconnect
    a, _ = two_subjects
    services.dsr_fulfil(request=verified(a.customer, K.ERASURE), actor=ACTOR)
    session = RadiusSession.objects.get(acct_session_id="zq-s2")
    assert (session.username, session.framed_ip_address, session.calling_station_id) == ("", None, "")
    # when: the NAS still sends an Interim-Update for the open session, with the user and address
    accounting(
        "Interim-Update",
        user=a.pii["pppoe_username"],
        session="zq-s2",
        framed_ip=a.pii["framed_ip"],
        calling=a.pii["calling_station_id"],
        when=timezone.now(),
        octets=5000,
        secs=600,
    )
    # then: the anonymised session keeps no identifier; the subject's values are nowhere
    session.refresh_from_db()
    assert (session.username, session.framed_ip_address, session.calling_station_id) == ("", None, "")
    for field in CLEAR_AT_REST:
        assert not where_found(a.pii[field]), field


@pytest.mark.data_safety
@pytest.mark.payment_flow
@pytest.mark.business_logic_protection
@pytest.mark.behavior
def test_erasure_is_refused_while_the_customer_owes_money_when_the_policy_says_so(tenant):
    # given: an unpaid invoice, the default policy (refuse with an unpaid balance)
    debtor = subject_with_history(tag="zq", pii=PII_A, paid=False)
    request = verified(debtor.customer, K.ERASURE)
    # when
    request = services.dsr_fulfil(request=request, actor=ACTOR)
    # then: refused, with the reason, and nothing was erased
    assert request.status == S.REFUSED
    assert "unpaid balance of 40" in request.refusal_reason
    assert debtor.invoice.number in request.refusal_reason
    customer = Customer.objects.get(pk=debtor.customer.pk)
    assert customer.name == PII_A["name"]
    assert PppoeAccount.objects.filter(username=PII_A["pppoe_username"]).exists()
    assert AuditEvent.objects.filter(action="dsr.refused", object_id=str(request.pk)).exists()
    # with the policy off, the same debt does not stop a new request
    services.privacy_policy_update(changes={"refuse_erasure_with_unpaid_balance": False}, actor=ACTOR)
    again = services.dsr_fulfil(request=verified(customer, K.ERASURE), actor=ACTOR)
    assert again.status == S.FULFILLED
    assert Invoice.objects.get(pk=debtor.invoice.pk).balance_due == Decimal("40")


@pytest.mark.revenue_critical
@pytest.mark.billing_core
@pytest.mark.behavior
def test_erasure_leaves_every_amount_of_the_account_to_the_cent(two_subjects):
    """Erasure removes who the money came from, never the money: the invoice with its lines, the
    payment with its allocations, the credit ledger and the account's standing are the same after."""
    # given: the subject also holds a credit (an overpayment of 7.35, or 7 yen) besides the paid invoice
    a, _ = two_subjects
    overpaid = Decimal("7.35").quantize(Decimal(1).scaleb(-minor_unit(connection.tenant.currency)), ROUND_DOWN)
    payment_record(
        customer=a.customer,
        amount=overpaid,
        received_on=datetime.date(2026, 11, 12),
        method=Payment.Method.MANUAL,
        reference="overpayment",
        actor=ACTOR,
    )

    def money():
        standing = account_standing(a.customer.pk)
        return {
            "invoices": list(Invoice.objects.filter(customer=a.customer).order_by("pk").values(*INVOICE_MONEY)),
            "lines": list(InvoiceLine.objects.filter(invoice__customer=a.customer).order_by("pk").values(*LINE_MONEY)),
            "payments": list(Payment.objects.filter(customer=a.customer).order_by("pk").values("pk", "amount")),
            "allocations": list(
                PaymentAllocation.objects.filter(payment__customer=a.customer).order_by("pk").values(
                    "invoice_id", "amount"
                )
            ),
            "ledger": [(m.amount, m.reason, m.invoice_id, m.payment_id) for m in standing.movements],
            "standing": (standing.credit, standing.open_amount, standing.overdue_amount, standing.open_invoices),
        }

    before = money()
    assert before["standing"] == (overpaid, Decimal("0"), Decimal("0"), 0)
    assert [p["amount"] for p in before["payments"]] == [Decimal("40"), overpaid]
    # when
    request = services.dsr_fulfil(request=verified(a.customer, K.ERASURE), actor=ACTOR)
    # then
    assert request.status == S.FULFILLED, request.refusal_reason
    assert money() == before


@pytest.mark.data_safety
@pytest.mark.behavior
def test_erasure_is_refused_under_a_legal_hold_and_allowed_once_released(two_subjects):
    a, _ = two_subjects
    hold = services.legal_hold_place(customer=a.customer, reason="court order 2026/118", actor=ACTOR)
    refused = services.dsr_fulfil(request=verified(a.customer, K.ERASURE), actor=ACTOR)
    assert refused.status == S.REFUSED
    assert "legal hold" in refused.refusal_reason
    assert Customer.objects.get(pk=a.customer.pk).email == PII_A["email"]
    services.legal_hold_release(hold=hold, actor=ACTOR)
    done = services.dsr_fulfil(request=verified(a.customer, K.ERASURE), actor=ACTOR)
    assert done.status == S.FULFILLED


# --- workflow, deadlines, audit ----------------------------------------------------------------------


@pytest.mark.behavior
def test_deadline_is_the_response_period_and_overdue_lists_only_open_late_requests(tenant):
    customer = subject_with_history(tag="zq", pii=PII_A, paid=True).customer
    now = timezone.now()
    late = services.dsr_create(
        customer=customer, kind=K.EXPORT, received_at=now - datetime.timedelta(days=31), actor=ACTOR
    )
    late_but_closed = services.dsr_refuse(
        request=services.dsr_create(
            customer=customer, kind=K.ERASURE, received_at=now - datetime.timedelta(days=40), actor=ACTOR
        ),
        reason="not the account holder",
        actor=ACTOR,
    )
    in_time = services.dsr_create(
        customer=customer, kind=K.EXPORT, received_at=now - datetime.timedelta(days=2), actor=ACTOR
    )
    assert late.due_at == late.received_at + datetime.timedelta(days=30)
    assert set(DataSubjectRequest.objects.overdue(now)) == {late}
    assert late.is_overdue
    assert not in_time.is_overdue
    assert not late_but_closed.is_overdue
    services.privacy_policy_update(changes={"response_days": 10}, actor=ACTOR)
    shorter = services.dsr_create(customer=customer, kind=K.EXPORT, actor=ACTOR)
    assert shorter.due_at - shorter.received_at == datetime.timedelta(days=10)


@pytest.mark.contract
def test_staff_api_lists_overdue_requests_owners_act_and_auditors_only_read(tenant, staff_client):
    customer = subject_with_history(tag="zq", pii=PII_A, paid=True).customer
    late = services.dsr_create(
        customer=customer, kind=K.EXPORT, received_at=timezone.now() - datetime.timedelta(days=45), actor=ACTOR
    )
    services.dsr_create(customer=customer, kind=K.DO_NOT_SELL, actor=ACTOR)
    owner = staff_client(tenant, "owner")
    listed = owner.get("/api/v1/data-subject-requests/?overdue=true")
    assert listed.status_code == 200, listed.content
    assert [(r["id"], r["overdue"]) for r in listed.json()["results"]] == [(late.pk, True)]
    created = owner.post("/api/v1/data-subject-requests/", {"customer": customer.pk, "kind": "export"}, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert owner.post(f"/api/v1/data-subject-requests/{pk}/fulfil/", {}, format="json").status_code == 400
    verified = owner.post(f"/api/v1/data-subject-requests/{pk}/verify/", {"method": "e-mail link"}, format="json")
    assert verified.json()["status"] == "verified"
    fulfilled = owner.post(f"/api/v1/data-subject-requests/{pk}/fulfil/", {}, format="json")
    assert fulfilled.json()["status"] == "fulfilled"
    assert fulfilled.json()["archive_available"]
    archive = owner.get(f"/api/v1/data-subject-requests/{pk}/archive/")
    assert archive.status_code == 200
    assert archive["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(archive.content)).read("README.txt")
    auditor = staff_client(tenant, "auditor")
    assert auditor.get("/api/v1/data-subject-requests/").status_code == 200
    assert (
        auditor.post(f"/api/v1/data-subject-requests/{late.pk}/refuse/", {"reason": "x"}, format="json").status_code
        == 403
    )
    assert auditor.get(f"/api/v1/data-subject-requests/{pk}/archive/").status_code == 403
    support = staff_client(tenant, "support")
    assert support.get("/api/v1/data-subject-requests/").status_code == 403


@pytest.mark.behavior
def test_every_transition_is_audited_and_illegal_moves_are_refused(tenant):
    customer = subject_with_history(tag="zq", pii=PII_A, paid=True).customer
    request = services.dsr_create(customer=customer, kind=K.DO_NOT_SELL, actor=ACTOR)
    with pytest.raises(ValidationError):
        services.dsr_fulfil(request=request, actor=ACTOR)  # not verified yet
    request = services.dsr_verify(request=request, method="signed letter", actor=ACTOR)
    request = services.dsr_fulfil(request=request, actor=ACTOR)
    with pytest.raises(ValidationError):
        services.dsr_refuse(request=request, reason="too late", actor=ACTOR)
    actions = list(
        AuditEvent.objects.filter(object_type="compliance.datasubjectrequest", object_id=str(request.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["dsr.received", "dsr.verified", "dsr.fulfilled"]
    assert Customer.objects.get(pk=customer.pk).do_not_sell
    # a transition that fails leaves neither the change nor its audit record
    other = services.dsr_create(customer=customer, kind=K.EXPORT, actor=ACTOR)

    def refuse_then_fail():
        with transaction.atomic():
            services.dsr_refuse(request=other, reason="duplicate", actor=ACTOR)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        refuse_then_fail()
    assert DataSubjectRequest.objects.get(pk=other.pk).status == S.RECEIVED
    assert not AuditEvent.objects.filter(action="dsr.refused", object_id=str(other.pk)).exists()


# --- CCPA, retention, the boundary -------------------------------------------------------------------


@pytest.mark.behavior
def test_third_party_export_leaves_out_customers_who_opted_out_of_sale(two_subjects):
    a, b = two_subjects
    cs.customer_update(customer=b.customer, changes={"do_not_sell": True}, actor=ACTOR)
    shared = third_party_export(
        recipient="Partner Analytics Ltd",
        subjects=Customer.objects.filter(pk__in=[a.customer.pk, b.customer.pk]),
        categories=["customers.profile", "customers.subscriptions"],
        actor=ACTOR,
        purpose="coverage study",
    )
    assert list(shared) == [a.customer.account_code]
    assert shared[a.customer.account_code]["customers.profile"][0]["email"] == PII_A["email"]
    event = AuditEvent.objects.get(action="pii.third_party_export")
    assert event.object_id == "Partner Analytics Ltd"
    assert "left out 1" in event.reason
    with pytest.raises(ValueError):
        third_party_export(recipient="x", subjects=[], categories=["billing.nope"], actor=ACTOR)


@pytest.mark.data_safety
@pytest.mark.behavior
def test_retention_purges_old_closed_sessions_and_expired_archives_only(two_subjects):
    a, _ = two_subjects
    export = services.dsr_fulfil(request=verified(a.customer, K.EXPORT), actor=ACTOR)
    sessions = RadiusSession.objects.filter(subscription=a.subscription)
    closed = sessions.get(stop_time__isnull=False)
    # now: 400 days on - the closed session is past 365 days, the open one is kept, the archive expired
    later = timezone.now() + datetime.timedelta(days=400)
    result = retention_purge(now=later)
    assert result["network.radius_sessions"] >= 1
    assert result["compliance.export_archives"] == 1
    assert not RadiusSession.objects.filter(pk=closed.pk).exists()
    assert sessions.filter(stop_time__isnull=True).count() == 1
    export.refresh_from_db()
    assert export.archive is None
    assert AuditEvent.objects.filter(action="retention.purged", object_id="network.radius_sessions").exists()
    # idempotent
    assert retention_purge(now=later) == {"compliance.export_archives": 0, "network.radius_sessions": 0}
    assert PrivacyPolicy.current().radius_session_retention_days == 365


@pytest.mark.contract
def test_every_app_with_personal_data_declares_it_and_compliance_never_imports_billing_or_network():
    names = {c.name for c in registry.categories()}
    assert {"customers.profile", "billing.invoices", "billing.payments", "network.radius_sessions"} <= names
    assert {c.app_label for c in registry.categories()} == {"customers", "billing", "network"}
    offenders = []
    for path in sorted((REPO / "compliance").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            offenders += [
                f"{path.relative_to(REPO)}: {m}" for m in modules if m.split(".")[0] in {"billing", "network"}
            ]
    assert not offenders, offenders


@pytest.mark.behavior
def test_admin_lists_overdue_requests_and_fulfils_through_the_service(tenant):
    customer = subject_with_history(tag="zq", pii=PII_A, paid=True).customer
    late = services.dsr_create(
        customer=customer, kind=K.DO_NOT_SELL, received_at=timezone.now() - datetime.timedelta(days=35), actor=ACTOR
    )
    services.dsr_create(customer=customer, kind=K.EXPORT, actor=ACTOR)
    owner = StaffUserFactory(role="owner")
    client = TenantAdminClient(HTTP_HOST=tenant.primary_host)
    client.force_login(owner)
    page = client.get("/admin/compliance/datasubjectrequest/?overdue=yes")
    assert page.status_code == 200
    assert list(page.context["cl"].queryset) == [late]
    changed = client.post(
        f"/admin/compliance/datasubjectrequest/{late.pk}/change/",
        {"verification_method": "signed letter", "refusal_reason": ""},
    )
    assert changed.status_code == 302
    client.post(
        "/admin/compliance/datasubjectrequest/",
        {"action": "fulfil_selected", "_selected_action": [late.pk]},
    )
    late.refresh_from_db()
    assert late.status == S.FULFILLED
    assert Customer.objects.get(pk=customer.pk).do_not_sell
    actions = set(
        AuditEvent.objects.filter(object_type="compliance.datasubjectrequest", object_id=str(late.pk)).values_list(
            "action", flat=True
        )
    )
    assert actions == {"dsr.received", "dsr.verified", "dsr.fulfilled"}


@pytest.mark.contract
def test_retention_purge_runs_as_a_command_and_as_a_registered_celery_task(tenant):
    from django.core.management import call_command

    from isp.celery import app

    assert "compliance.retention_purge_all_tenants" in app.tasks
    out = io.StringIO()
    call_command("retention_purge", "--tenant", tenant.slug, stdout=out)
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    assert report == {tenant.slug: {"compliance.export_archives": 0, "network.radius_sessions": 0}}
