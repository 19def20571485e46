"""Host routing: tenant hosts, the public host, unknown hosts, suspended tenants."""

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from compliance.audit import Actor
from compliance.models import AuditEvent
from tenants.services import tenant_reactivate, tenant_suspend
from tests.conftest import MATRIX_OWNER_PASSWORD

pytestmark = [pytest.mark.django_db]
OPERATOR = Actor.system("test operator")


@pytest.mark.behavior
@pytest.mark.data_safety
@pytest.mark.parametrize("host", ["nope.localhost", "testserver", "us-isp.localhost.evil.example", "localhost.evil"])
def test_an_unknown_host_is_404_with_the_error_shape_never_another_sites_data(host_client, host):
    response = host_client(host).get("/api/v1/me/")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "unknown_host", "message": "No ISP is served at this address.", "fields": {}}
    }


@pytest.mark.behavior
def test_an_unknown_host_gets_an_html_404_page_in_a_browser(host_client):
    response = host_client("nope.localhost").get("/admin/", HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert b"No ISP is served at this address." in response.content


@pytest.mark.behavior
@pytest.mark.data_safety
def test_a_suspended_tenant_is_blocked_with_403_and_keeps_every_row(tenant, host_client):
    # given: a tenant with a working owner login
    client = host_client(tenant)
    login = client.post(
        "/api/v1/auth/token/", {"username": f"owner@{tenant.slug}.example", "password": MATRIX_OWNER_PASSWORD}
    )
    assert login.status_code == 200
    token = login.json()["token"]
    with schema_context(tenant.schema_name):
        users_before = get_user_model().objects.count()
    # when
    tenant_suspend(tenant=tenant, reason="unpaid platform fees", actor=OPERATOR)
    # then: API and admin answer 403 with a clear message
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    api = client.get("/api/v1/me/")
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "tenant_suspended"
    admin_page = client.get("/admin/login/", HTTP_ACCEPT="text/html")
    assert admin_page.status_code == 403
    assert b"suspended" in admin_page.content
    # and the data is still there; reactivation restores access with the same token
    with schema_context(tenant.schema_name):
        assert get_user_model().objects.count() == users_before
    tenant_reactivate(tenant=tenant, actor=OPERATOR)
    me = client.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["tenant"] == tenant.slug
    actions = list(
        AuditEvent.objects.filter(object_id=str(tenant.pk), action__startswith="tenant.").values_list(
            "action", flat=True
        )
    )
    assert {"tenant.suspended", "tenant.reactivated"} <= set(actions)


@pytest.mark.behavior
@pytest.mark.data_safety
def test_suspending_twice_or_the_platform_itself_is_refused(tenant, public_schema):
    from django.core.exceptions import ValidationError

    from tenants.models import Tenant

    tenant_suspend(tenant=tenant, reason="first", actor=OPERATOR)
    with pytest.raises(ValidationError):
        tenant_suspend(tenant=tenant, reason="second", actor=OPERATOR)
    with pytest.raises(ValidationError):
        tenant_suspend(tenant=Tenant.objects.get(schema_name="public"), reason="x", actor=OPERATOR)
    with pytest.raises(ValidationError):
        tenant_suspend(
            tenant=Tenant.objects.get(slug="us-isp" if tenant.slug != "us-isp" else "eu-isp"),
            reason="  ",
            actor=OPERATOR,
        )
