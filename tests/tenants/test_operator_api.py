"""The platform operators' API on the public host: provision, change, suspend, reactivate."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context, schema_exists
from rest_framework.authtoken.models import Token

from compliance.models import AuditEvent
from tenants import roles
from tenants.models import Tenant

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def operator_client(public_schema, host_client):
    operator = get_user_model().objects.create_superuser("operator", "op@platform.example", "operator-pass-0")
    client = host_client("localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=operator).key}")
    client.user = operator
    return client


@pytest.mark.behavior
@pytest.mark.data_safety
def test_an_operator_provisions_a_tenant_whose_owner_can_then_log_in(operator_client, host_client):
    response = operator_client.post(
        "/api/v1/tenants/",
        {
            "slug": "kiwi-net",
            "name": "Kiwi Net Ltd",
            "currency": "NZD",
            "country": "NZ",
            "admin_email": "boss@kiwi.example",
            "time_zone": "Pacific/Auckland",
            "tax_inclusive": True,
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["tenant"]["host"] == "kiwi-net.localhost"
    assert body["tenant"]["currency_minor_unit"] == 2
    assert schema_exists("tenant_kiwi_net")
    login = host_client("kiwi-net.localhost").post(
        "/api/v1/auth/token/", {"username": "boss@kiwi.example", "password": body["admin_password"]}
    )
    assert login.status_code == 200
    connection.set_schema_to_public()
    event = AuditEvent.objects.get(action="tenant.created", object_id=str(body["tenant"]["id"]))
    assert event.actor_label == "operator"


@pytest.mark.behavior
@pytest.mark.data_safety
def test_invalid_provisioning_input_gets_every_field_error_and_writes_nothing(operator_client):
    count = Tenant.objects.count()
    response = operator_client.post(
        "/api/v1/tenants/",
        {"slug": "Nope!", "name": "", "currency": "ABC", "country": "XX", "admin_email": "x", "extra": 1},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) >= {"slug", "name", "currency", "country", "admin_email", "extra"}
    assert Tenant.objects.count() == count


@pytest.mark.behavior
@pytest.mark.data_safety
def test_an_operator_suspends_and_reactivates_a_tenant(operator_client, host_client):
    refused = operator_client.post("/api/v1/tenants/us-isp/suspend/", {}, format="json")
    assert refused.status_code == 400
    assert "reason" in refused.json()["error"]["fields"]
    suspended = operator_client.post("/api/v1/tenants/us-isp/suspend/", {"reason": "fraud check"}, format="json")
    assert suspended.json()["status"] == "suspended"
    assert host_client("us-isp.localhost").get("/api/v1/me/").status_code == 403
    again = operator_client.post("/api/v1/tenants/us-isp/suspend/", {"reason": "twice"}, format="json")
    assert again.status_code == 400
    reactivated = operator_client.post("/api/v1/tenants/us-isp/reactivate/")
    assert reactivated.json()["status"] == "active"
    assert host_client("us-isp.localhost").get("/api/v1/me/").status_code == 401  # routed again, needs login


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_an_operator_may_not_change_a_tenants_currency(operator_client):
    response = operator_client.patch("/api/v1/tenants/jp-isp/", {"currency": "USD"}, format="json")
    assert response.status_code == 400
    assert Tenant.objects.get(slug="jp-isp").currency == "JPY"
    ok = operator_client.patch("/api/v1/tenants/jp-isp/", {"suspend_after_days": 20}, format="json")
    assert ok.json()["suspend_after_days"] == 20


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_tenant_staff_and_plain_public_users_cannot_use_the_operator_api(public_schema, host_client, staff_client):
    tenant = Tenant.objects.get(slug="eu-isp")
    staff = staff_client(tenant, roles.OWNER)
    key = staff._credentials["HTTP_AUTHORIZATION"]
    public = host_client("localhost")
    public.credentials(HTTP_AUTHORIZATION=key)
    assert public.get("/api/v1/tenants/").status_code == 401
    connection.set_schema_to_public()
    nobody = get_user_model().objects.create_user("nobody", password="nobody-pass-0")
    public.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=nobody).key}")
    listing = public.get("/api/v1/tenants/")
    assert listing.status_code == 403
    assert "results" not in listing.json()
    with schema_context("public"):
        assert not get_user_model().objects.filter(username=staff.user.username).exists()


@pytest.mark.behavior
@pytest.mark.customer_data_protection
def test_login_throttling_counts_per_tenant(tenant, other_tenant, host_client):
    attacked = host_client(tenant)
    statuses = [
        attacked.post("/api/v1/auth/token/", {"username": "x@y.example", "password": "guess"}).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    bystander = host_client(other_tenant).post(
        "/api/v1/auth/token/", {"username": f"owner@{other_tenant.slug}.example", "password": "matrix-owner-password-0"}
    )
    assert bystander.status_code == 200


@pytest.mark.smoke
def test_the_public_host_serves_the_operator_schema_and_admin_login(public_schema, host_client):
    client = host_client("localhost")
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert "/api/v1/tenants/" in paths
    assert "/api/v1/staff/" not in paths
    login_page = client.get("/admin/login/", HTTP_ACCEPT="text/html")
    assert login_page.status_code == 200
    assert b"ISP platform" in login_page.content
