"""Tenant isolation over the matrix: a user, token, session or object id of one tenant is
useless on another tenant's host, and SQL in one tenant's schema sees only its own rows."""

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from compliance.models import AuditEvent
from tenants import roles
from tests.conftest import MATRIX_OWNER_PASSWORD
from tests.factories import StaffUserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.data_safety, pytest.mark.customer_data_protection]


@pytest.mark.behavior
def test_a_user_of_one_tenant_cannot_log_in_on_another(tenant, other_tenant, host_client):
    credentials = {"username": f"owner@{tenant.slug}.example", "password": MATRIX_OWNER_PASSWORD}
    assert host_client(tenant).post("/api/v1/auth/token/", credentials).status_code == 200
    refused = host_client(other_tenant).post("/api/v1/auth/token/", credentials)
    assert refused.status_code == 401
    assert "token" not in refused.json()


@pytest.mark.behavior
def test_a_token_of_one_tenant_is_rejected_on_another(tenant, other_tenant, staff_client, host_client):
    own = staff_client(tenant, roles.OWNER)
    assert own.get("/api/v1/me/").json()["tenant"] == tenant.slug
    token = own._credentials["HTTP_AUTHORIZATION"]
    foreign = host_client(other_tenant)
    foreign.credentials(HTTP_AUTHORIZATION=token)
    for path in ("/api/v1/me/", "/api/v1/tenant/", "/api/v1/staff/", "/api/v1/audit-events/"):
        response = foreign.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.behavior
def test_a_session_of_one_tenant_is_not_a_session_on_another(tenant, other_tenant, host_client):
    client = host_client(tenant)
    connection.set_tenant(tenant)
    user = StaffUserFactory(role=roles.OWNER)
    client.force_login(user)
    assert client.get("/api/v1/me/").status_code == 200
    # the same cookie jar, another tenant's host
    client.defaults["HTTP_HOST"] = other_tenant.primary_host
    assert client.get("/api/v1/me/").status_code in (401, 403)
    assert client.get("/admin/", HTTP_ACCEPT="text/html").status_code == 302  # to the login page


@pytest.mark.behavior
def test_an_object_id_of_one_tenant_finds_nothing_on_another(tenant, other_tenant, staff_client):
    # given: a staff member and audit events that exist only in `tenant`
    connection.set_tenant(tenant)
    lonely = StaffUserFactory(username=f"only-in-{tenant.slug}@isp.example", role=roles.SUPPORT)
    own_events = dict(AuditEvent.objects.values_list("pk", "action"))
    # when: the other tenant's owner asks for those ids
    owner_elsewhere = staff_client(other_tenant, roles.OWNER)
    by_id = owner_elsewhere.get(f"/api/v1/staff/{lonely.pk}/")
    # then: a 404, or the other tenant's own row with that id - never the first tenant's
    assert by_id.status_code in (200, 404)
    if by_id.status_code == 200:
        assert by_id.json()["username"] != lonely.username
    listing = owner_elsewhere.get("/api/v1/staff/", {"page_size": 200}).json()["results"]
    assert lonely.username not in {row["username"] for row in listing}
    connection.set_tenant(other_tenant)
    foreign_ids = set(AuditEvent.objects.values_list("pk", flat=True))
    for event_id in own_events:
        response = owner_elsewhere.get(f"/api/v1/audit-events/{event_id}/")
        assert response.status_code == (200 if event_id in foreign_ids else 404)
    assert owner_elsewhere.get(f"/api/v1/audit-events/{max(own_events) + 10_000}/").status_code == 404


@pytest.mark.behavior
def test_raw_sql_in_a_tenant_schema_reads_only_that_tenants_rows(tenant, other_tenant):
    connection.set_tenant(tenant)
    StaffUserFactory(username=f"sql-probe-{tenant.slug}@isp.example")
    with connection.cursor() as cursor:
        cursor.execute("SELECT username FROM auth_user")
        visible = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT count(*) FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id")
    assert f"sql-probe-{tenant.slug}@isp.example" in visible
    assert f"owner@{tenant.slug}.example" in visible
    assert f"owner@{other_tenant.slug}.example" not in visible
    connection.set_tenant(other_tenant)
    with connection.cursor() as cursor:
        cursor.execute("SELECT username FROM auth_user")
        assert f"sql-probe-{tenant.slug}@isp.example" not in {row[0] for row in cursor.fetchall()}


@pytest.mark.behavior
def test_tokens_are_stored_in_the_tenant_schema_not_the_public_one(tenant, staff_client):
    client = staff_client(tenant, roles.SUPPORT)
    key = client._credentials["HTTP_AUTHORIZATION"].split()[1]
    connection.set_tenant(tenant)
    assert Token.objects.filter(key=key).exists()
    connection.set_schema_to_public()
    assert not Token.objects.filter(key=key).exists()
