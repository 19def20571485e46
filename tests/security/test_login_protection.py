"""Login protection and security events (issue 7, incidents): failed-login lockout on the admin
login and the API token endpoint, the staff second factor in the tenant admin, foreign tokens,
and personal data kept out of logs and error reports."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import RequestFactory, override_settings
from django.views.debug import get_exception_reporter_class
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from compliance.models import AuditEvent
from isp.security import events
from isp.security.logging import PII_FIELD_NAMES, PIIScrubFilter
from tenants import roles
from tests.conftest import TENANT_PROFILES, HostClient
from tests.factories import StaffUserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.customer_data_protection]

PASSWORD = "staff-password-0"  # StaffUserFactory's
LIMIT = 3


@pytest.fixture
def us_tenant(db):
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug=TENANT_PROFILES["us_isp"].slug)
    connection.set_tenant(tenant)
    yield tenant
    connection.set_schema_to_public()


@pytest.fixture
def low_limit():
    with override_settings(AXES_FAILURE_LIMIT=LIMIT):
        yield


def audit(tenant, action: str) -> list[AuditEvent]:
    connection.set_tenant(tenant)
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def admin_login(client: HostClient, username: str, password: str):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


# --- lockout ---------------------------------------------------------------------------------------------
@pytest.mark.contract
def test_the_production_lockout_counts_failures_per_username_and_address():
    assert settings.AXES_ENABLED
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_FAILURE_LIMIT == 10
    assert settings.AXES_COOLOFF_TIME == 0.5  # hours
    assert settings.AUTHENTICATION_BACKENDS[0] == "isp.security.lockout.LockoutBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"


@pytest.mark.behavior
def test_the_admin_login_locks_out_after_repeated_failures_and_records_it(us_tenant, low_limit, caplog):
    # given
    user = StaffUserFactory(role=roles.SUPPORT)
    client = HostClient(us_tenant.primary_host)
    # when
    failures = [admin_login(client, user.username, "wrong-password").status_code for _ in range(LIMIT)]
    with caplog.at_level(logging.INFO, logger="security"):
        with_the_right_password = admin_login(client, user.username, PASSWORD)
    # then: the limit-th failure already answers the lockout page; the right password is refused too
    assert failures[: LIMIT - 1] == [200] * (LIMIT - 1)  # the login form again, with an error
    assert failures[-1] == 429
    assert with_the_right_password.status_code == 429
    assert b"Too many failed logins" in with_the_right_password.content
    assert "_auth_user_id" not in client.session
    locked = audit(us_tenant, events.LOCKED_OUT)
    assert len(locked) == 1  # the lockout, not every refused attempt
    assert (locked[0].object_type, locked[0].object_id) == ("auth.user", str(user.pk))
    assert locked[0].source_ip == "127.0.0.1"
    assert user.username not in locked[0].reason
    assert any("refused during lockout" in r.getMessage() for r in caplog.records)


@pytest.mark.behavior
def test_the_api_token_login_locks_out_one_username_from_one_address_only(us_tenant, low_limit, caplog):
    # given
    user = StaffUserFactory(role=roles.OWNER)
    attacker = HostClient(us_tenant.primary_host)
    elsewhere = HostClient(us_tenant.primary_host, REMOTE_ADDR="198.51.100.7")
    # when
    with caplog.at_level(logging.WARNING, logger="security"):
        failures = [
            attacker.post("/api/v1/auth/token/", {"username": user.username, "password": "guess"}).status_code
            for _ in range(LIMIT)
        ]
    locked = attacker.post("/api/v1/auth/token/", {"username": user.username, "password": PASSWORD})
    from_another_address = elsewhere.post("/api/v1/auth/token/", {"username": user.username, "password": PASSWORD})
    # then
    assert failures == [401] * LIMIT
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "locked_out"
    assert "token" not in locked.json()
    assert from_another_address.status_code == 200
    assert len(audit(us_tenant, events.LOCKED_OUT)) == 1
    assert [r for r in caplog.records if r.name == "security" and events.LOCKED_OUT in r.getMessage()]


@pytest.mark.behavior
def test_a_lockout_on_one_tenant_does_not_lock_the_same_username_on_another(
    low_limit, host_client, tenant, other_tenant
):
    other = other_tenant
    username = "shared-name@isp.example"
    for schema_tenant in (tenant, other):
        connection.set_tenant(schema_tenant)
        StaffUserFactory(username=username, role=roles.SUPPORT)
    attacked = host_client(tenant)
    for _ in range(LIMIT + 1):
        attacked.post("/api/v1/auth/token/", {"username": username, "password": "guess"})
    assert attacked.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}).status_code == 429
    elsewhere = host_client(other).post("/api/v1/auth/token/", {"username": username, "password": PASSWORD})
    assert elsewhere.status_code == 200


# --- second factor in the admin ---------------------------------------------------------------------------
@pytest.mark.contract
def test_owner_and_billing_admin_must_use_a_second_factor_in_the_admin():
    assert roles.TWO_FACTOR_REQUIRED == (roles.OWNER, roles.BILLING_ADMIN)


@pytest.mark.behavior
@pytest.mark.parametrize("role", [roles.OWNER, roles.BILLING_ADMIN])
def test_an_owner_without_a_device_is_sent_to_enrolment_and_gets_in_after_confirming_it(us_tenant, role):
    # given: signed in with the password only
    user = StaffUserFactory(role=role)
    client = HostClient(us_tenant.primary_host)
    assert admin_login(client, user.username, PASSWORD).status_code == 302
    # when
    index = client.get("/admin/")
    elsewhere_in_the_admin = client.get("/admin/customers/customer/")
    page = client.get(index["Location"])
    connection.set_tenant(us_tenant)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    confirmed = client.post(index["Location"], {"token": code_for(device), "next": "/admin/"})
    # then
    assert index.status_code == 302
    assert index["Location"].startswith("/admin/2fa/setup/")
    assert elsewhere_in_the_admin.status_code == 302  # every admin page, not only the index
    assert page.status_code == 200
    secret = page.context["secret"]
    assert secret.encode() in page.content
    assert page.context["uri"].startswith("otpauth://totp/")
    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    connection.set_tenant(us_tenant)
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert [e.object_id for e in audit(us_tenant, events.OTP_ENROLLED)] == [str(user.pk)]


@pytest.mark.behavior
def test_an_enrolled_owner_must_verify_a_code_at_each_login_and_a_wrong_code_is_recorded(us_tenant):
    # given
    user = StaffUserFactory(role=roles.OWNER)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = HostClient(us_tenant.primary_host)
    admin_login(client, user.username, PASSWORD)
    # when
    sent_to = client.get("/admin/billing/invoice/")["Location"]
    wrong = client.post(sent_to, {"token": "000000" if code_for(device) != "000000" else "111111"})
    still_out = client.get("/admin/").status_code
    connection.set_tenant(us_tenant)
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    right = client.post(sent_to, {"token": code_for(device), "next": "/admin/billing/invoice/"})
    # then
    assert sent_to.startswith("/admin/2fa/verify/?next=/admin/billing/invoice/")
    assert wrong.status_code == 200
    assert b"not valid" in wrong.content
    assert still_out == 302
    assert right.status_code == 302
    assert right["Location"] == "/admin/billing/invoice/"
    assert client.get("/admin/").status_code == 200
    assert [e.object_id for e in audit(us_tenant, events.OTP_FAILED)] == [str(user.pk)]


@pytest.mark.behavior
def test_the_second_factor_is_optional_for_support_and_the_next_url_stays_on_the_host(us_tenant):
    user = StaffUserFactory(role=roles.SUPPORT)
    client = HostClient(us_tenant.primary_host)
    admin_login(client, user.username, PASSWORD)
    assert client.get("/admin/").status_code == 200
    # an owner's verify page ignores a `next` that leaves the host
    owner = StaffUserFactory(role=roles.OWNER)
    TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    owner_client = HostClient(us_tenant.primary_host)
    admin_login(owner_client, owner.username, PASSWORD)
    page = owner_client.get("/admin/2fa/verify/?next=https://evil.example/")
    assert page.context["next"] == "/admin/"


@pytest.mark.behavior
def test_a_password_only_admin_session_of_an_owner_does_not_reach_the_api(us_tenant):
    user = StaffUserFactory(role=roles.OWNER)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = HostClient(us_tenant.primary_host)
    admin_login(client, user.username, PASSWORD)
    before = client.get("/api/v1/me/")
    client.post("/admin/2fa/verify/", {"token": code_for(device)})
    after = client.get("/api/v1/me/")
    assert before.status_code in (401, 403)
    assert after.status_code == 200
    assert after.json()["username"] == user.username


@pytest.mark.behavior
def test_logout_works_before_the_second_factor(us_tenant):
    user = StaffUserFactory(role=roles.OWNER)
    client = HostClient(us_tenant.primary_host)
    admin_login(client, user.username, PASSWORD)
    assert client.post("/admin/logout/").status_code == 200
    assert "_auth_user_id" not in client.session


# --- a token of one tenant used on another ------------------------------------------------------------------
@pytest.mark.behavior
def test_a_token_of_one_tenant_on_another_tenants_host_is_refused_logged_and_audited_on_both(
    tenant, other_tenant, host_client, caplog
):
    # given
    connection.set_tenant(tenant)
    owner = StaffUserFactory(role=roles.OWNER)
    key = Token.objects.create(user=owner).key
    foreign = host_client(other_tenant)
    foreign.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    # when
    with caplog.at_level(logging.WARNING, logger="security"):
        response = foreign.get("/api/v1/me/")
    # then
    assert response.status_code == 401
    attacked = audit(other_tenant, events.FOREIGN_CREDENTIAL)
    assert len(attacked) == 1
    assert tenant.slug not in attacked[0].reason
    assert attacked[0].source_ip == "127.0.0.1"
    home = audit(tenant, events.CREDENTIAL_USED_ELSEWHERE)
    assert [(e.object_type, e.object_id) for e in home] == [("auth.user", str(owner.pk))]
    logged = [r.getMessage() for r in caplog.records if r.name == "security"]
    assert any(events.FOREIGN_CREDENTIAL in m for m in logged)
    assert any(tenant.schema_name in m and other_tenant.schema_name in m for m in logged)
    assert not any(key in m for m in logged)


@pytest.mark.behavior
def test_an_unknown_token_is_refused_without_a_security_event(tenant, host_client):
    client = host_client(tenant)
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get("/api/v1/me/").status_code == 401
    assert audit(tenant, events.FOREIGN_CREDENTIAL) == []


# --- personal data out of logs and error reports -----------------------------------------------------------
def _configured_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    return list({id(h): h for logger in loggers for h in logger.handlers}.values())


@pytest.mark.contract
def test_every_configured_log_handler_masks_personal_data():
    declared = settings.LOGGING["handlers"]
    assert {"console", "mail_admins"} <= set(declared)
    assert all("pii" in handler.get("filters", []) for handler in declared.values()), declared
    # the handlers the settings configured (dictConfig names them); handlers that other tests or
    # libraries attach at run time (pytest's capture, a subprocess's log pipe) are not ours
    live = [h for h in _configured_handlers() if h.name in declared and type(h).__name__ != "NullHandler"]
    assert {h.name for h in live} >= {"console", "mail_admins"}
    unfiltered = [h for h in live if not any(isinstance(f, PIIScrubFilter) for f in h.filters)]
    assert not unfiltered, unfiltered


@pytest.mark.contract
def test_the_log_filter_knows_every_personal_data_field_of_a_customer():
    from customers.api.pii import CUSTOMER_PII

    assert set(CUSTOMER_PII) <= set(PII_FIELD_NAMES)


@pytest.mark.behavior
def test_logging_a_customers_email_phone_and_iban_writes_them_masked(us_tenant):
    from tests.customers.factories import CustomerFactory

    customer = CustomerFactory(name="Grace Hopper", email="grace.hopper@navy.example", phone="+14155550199")
    console = next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler))
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        logging.getLogger("customers").warning(
            "bounce for %s (phone %s, iban %s) payload=%s",
            customer.email,
            customer.phone,
            "DE89 3704 0044 0532 0130 00",
            {"name": customer.name, "plan": "fiber-1"},
        )
        try:
            raise ValueError(f"cannot mail {customer.email}")
        except ValueError:
            logging.getLogger("customers").exception("mail failed")
    finally:
        console.setStream(previous)
    written = stream.getvalue()
    assert "g***@n***.example" in written
    assert "+1********99" in written
    assert "'plan': 'fiber-1'" in written
    for clear in ("grace.hopper@navy.example", "+14155550199", "5550199", "3704 0044", "Grace Hopper"):
        assert clear not in written, clear


def _raise_with_locals(email: str, phone: str):
    national_id = "AB-" + str(123456)  # noqa: F841 - a local the error report must hide
    raise RuntimeError("boom")


@pytest.mark.behavior
def test_error_reports_hide_personal_data_in_request_settings_and_local_variables():
    password = "pw-" + str(123456)  # built at run time: the report also shows the source lines
    request = RequestFactory().post(
        "/api/v1/customers/?email=ada@example.com",
        {"email": "ada@example.com", "phone": "+442071838750", "plan": "fiber-1", "password": password},
    )
    try:
        _raise_with_locals("ada@example.com", "+442071838750")
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
    text, html = reporter.get_traceback_text(), reporter.get_traceback_html()
    for report in (text, html):
        assert "ada@example.com" not in report
        assert "+442071838750" not in report
        assert "AB-123456" not in report
        assert "pw-123456" not in report
        assert settings.PII_KEYS.split(":", 1)[1] not in report
        assert "fiber-1" in report  # not personal data: still there to debug with


@pytest.mark.behavior
@override_settings(ADMINS=[("ops", "ops@isp.example")])
def test_the_500_mail_is_scrubbed_subject_body_and_exception_message():
    request = RequestFactory().get("/api/v1/customers/", {"email": "ada@example.com"})
    try:
        raise ValueError("no mailbox for ada@example.com")
    except ValueError:
        logging.getLogger("django.request").error(
            "Internal Server Error: %s for ada@example.com",
            request.path,
            exc_info=sys.exc_info(),
            extra={"status_code": 500, "request": request},
        )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    bodies = [message.subject, message.body, *(alt[0] for alt in getattr(message, "alternatives", []))]
    assert all("ada@example.com" not in body for body in bodies)
    assert re.search(r"a\*\*\*@e\*\*\*\.com", message.body)


@pytest.mark.behavior
def test_a_portal_customer_still_logs_in_by_email_behind_the_lockout_backend(us_tenant):
    from customers.models import Customer
    from tests.customers.factories import CustomerFactory

    customer = CustomerFactory(email="lin.portal@example.net")
    portal_user = get_user_model().objects.create_user(username="portal-lin", password="portal-password-0")
    Customer.objects.filter(pk=customer.pk).update(portal_user=portal_user)
    client = HostClient(us_tenant.primary_host)
    credentials = {"username": "lin.portal@example.net", "password": "portal-password-0"}
    response = client.post("/api/v1/auth/token/", credentials)
    assert response.status_code == 200


@pytest.mark.behavior
def test_the_demo_owner_gets_one_confirmed_device_whose_printed_secret_gives_valid_codes(us_tenant):
    """`make demo` prints the demo owner's TOTP secret (demo_seed), so the admin's second step works."""
    import base64

    from isp.security.otp import demo_device, provisioning

    owner = StaffUserFactory(role=roles.OWNER)
    first, again = provisioning(demo_device(owner)), provisioning(demo_device(owner))
    device = TOTPDevice.objects.get(user=owner)
    code = f"{totp(base64.b32decode(first['secret'])):06d}"
    assert first == again
    assert device.confirmed
    assert device.verify_token(code)
