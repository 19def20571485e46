"""Staff roles, the declared-permission check, and the tenant API's behaviour per role."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from compliance.models import AuditEvent
from isp.api.permissions import AUTHENTICATED, DeclaredRolePermission
from tenants import roles
from tenants.models import Tenant

pytestmark = [pytest.mark.django_db]


def perms_of(role: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename")
    }


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_role_permissions_follow_the_declared_rules(tenant):
    owner, billing, network, support, auditor = (perms_of(r) for r in roles.STAFF_ROLES)
    # owners may do everything that exists, except what nobody may do
    assert {"auth.add_user", "auth.change_user", "tenants.change_tenant", "compliance.view_auditevent"} <= owner
    assert "compliance.change_auditevent" not in owner
    assert "compliance.delete_auditevent" not in owner
    assert "auth.change_permission" not in owner
    # auditors only read
    assert auditor
    assert all(p.split(".", 1)[1].startswith("view_") for p in auditor)
    assert "compliance.view_auditevent" in auditor
    # nobody but the owner manages staff or changes the tenant's settings
    for other in (billing, network, support, auditor):
        assert not other & {"auth.add_user", "auth.change_user", "tenants.change_tenant"}
    assert "tenants.view_tenant" in billing & network & support & auditor


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_roles_sync_is_idempotent_and_repairs_a_tampered_role(tenant):
    before = {role: perms_of(role) for role in roles.STAFF_ROLES}
    support = Group.objects.get(name=roles.SUPPORT)
    support.permissions.add(Permission.objects.get(codename="add_user"))
    Group.objects.get(name=roles.AUDITOR).delete()
    roles.roles_sync()
    roles.roles_sync()
    assert {role: perms_of(role) for role in roles.STAFF_ROLES} == before


@pytest.mark.contract
@pytest.mark.customer_data_protection
def test_a_view_without_declared_rules_serves_nobody_not_even_an_owner(tenant):
    from tests.factories import StaffUserFactory

    class Forgetful(APIView):
        def get(self, request):
            return None

    class Declared(APIView):
        required_permissions = {"get": AUTHENTICATED}

    request = APIRequestFactory().get("/x/")
    request.user = StaffUserFactory(role=roles.OWNER)
    assert DeclaredRolePermission().has_permission(request, Forgetful()) is False
    assert DeclaredRolePermission().has_permission(request, Declared()) is True
    request.method = "POST"
    assert DeclaredRolePermission().has_permission(request, Declared()) is False


@pytest.mark.behavior
@pytest.mark.customer_data_protection
@pytest.mark.parametrize(
    ("role", "can_read_settings", "can_change_settings", "can_list_staff", "can_read_audit"),
    [
        (roles.OWNER, True, True, True, True),
        (roles.BILLING_ADMIN, True, False, False, False),
        (roles.NETWORK_OPS, True, False, False, False),
        (roles.SUPPORT, True, False, False, False),
        (roles.AUDITOR, True, False, True, True),
    ],
)
def test_each_role_gets_exactly_its_endpoints(
    tenant, staff_client, role, can_read_settings, can_change_settings, can_list_staff, can_read_audit
):
    client = staff_client(tenant, role)
    assert (client.get("/api/v1/tenant/").status_code == 200) is can_read_settings
    patch = client.patch("/api/v1/tenant/", {"payment_terms_days": 30}, format="json")
    assert (patch.status_code == 200) is can_change_settings
    if not can_change_settings:
        assert patch.status_code == 403
        assert patch.json()["error"]["code"] == "permission_denied"
        assert Tenant.objects.get(pk=tenant.pk).payment_terms_days == tenant.payment_terms_days
    assert (client.get("/api/v1/staff/").status_code == 200) is can_list_staff
    assert (client.get("/api/v1/audit-events/").status_code == 200) is can_read_audit
    created = client.post("/api/v1/staff/", {"username": "new@x.example", "email": "new@x.example", "role": "support"})
    assert (created.status_code == 201) is (role == roles.OWNER)


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_an_owner_changes_tenant_settings_and_the_change_is_audited_without_values(tenant, staff_client):
    client = staff_client(tenant, roles.OWNER)
    response = client.patch("/api/v1/tenant/", {"payment_terms_days": 30, "billing_day": 15}, format="json")
    assert response.status_code == 200
    assert (response.json()["payment_terms_days"], response.json()["billing_day"]) == (30, 15)
    tenant.refresh_from_db()
    assert (tenant.payment_terms_days, tenant.billing_day) == (30, 15)
    connection.set_tenant(tenant)
    event = AuditEvent.objects.get(action="tenant.settings_changed")
    assert event.changed_fields == ["billing_day", "payment_terms_days"]
    assert event.actor_label == client.user.username
    assert event.actor_type == AuditEvent.ActorType.TOKEN
    assert event.request_id == response["X-Request-ID"]


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_an_owner_cannot_change_currency_or_country_of_their_tenant(tenant, staff_client):
    client = staff_client(tenant, roles.OWNER)
    response = client.patch("/api/v1/tenant/", {"currency": "GBP", "country": "GB"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"currency", "country"}
    tenant.refresh_from_db()
    assert tenant.currency != "GBP"
    assert tenant.country != "GB"


@pytest.mark.behavior
@pytest.mark.business_logic_protection
def test_staff_management_by_the_owner_and_the_last_owner_guard(tenant, staff_client):
    owner_client = staff_client(tenant, roles.OWNER)
    created = owner_client.post(
        "/api/v1/staff/", {"username": "ops@x.example", "email": "ops@x.example", "role": "network_ops"}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["staff"]["roles"] == ["network_ops"]
    connection.set_tenant(tenant)
    new_user = get_user_model().objects.get(username="ops@x.example")
    assert new_user.check_password(body["password"])
    promoted = owner_client.post(f"/api/v1/staff/{new_user.pk}/role/", {"role": "billing_admin"})
    assert promoted.json()["roles"] == ["billing_admin"]
    connection.set_tenant(tenant)
    assert AuditEvent.objects.filter(action="staff.role_changed", object_id=str(new_user.pk)).count() == 1
    # demoting every owner but one works; the last one is refused
    owners = Group.objects.get(name=roles.OWNER).user_set.all()
    for user in owners.exclude(pk=owner_client.user.pk):
        assert owner_client.post(f"/api/v1/staff/{user.pk}/role/", {"role": "support"}).status_code == 200
    refused = owner_client.post(f"/api/v1/staff/{owner_client.user.pk}/role/", {"role": "support"})
    assert refused.status_code == 400
    assert "last owner" in refused.json()["error"]["fields"]["role"][0]
    connection.set_tenant(tenant)
    assert Group.objects.get(name=roles.OWNER).user_set.filter(pk=owner_client.user.pk).exists()


@pytest.mark.contract
def test_api_errors_have_one_stable_shape(tenant, staff_client, host_client):
    anonymous = host_client(tenant).get("/api/v1/me/")
    assert anonymous.status_code == 401
    assert set(anonymous.json()["error"]) == {"code", "message", "fields"}
    owner = staff_client(tenant, roles.OWNER)
    invalid = owner.patch("/api/v1/tenant/", {"billing_day": 31, "time_zone": "Nowhere/Land"}, format="json")
    assert invalid.status_code == 400
    error = invalid.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"billing_day", "time_zone"}
    missing = owner.get("/api/v1/staff/999999/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    no_route = owner.get("/api/v1/no-such-thing/")
    assert no_route.status_code == 404
    assert no_route.json()["error"]["code"] == "not_found"
    wrong_method = owner.delete("/api/v1/tenant/")
    assert wrong_method.status_code in (403, 405)
    assert "error" in wrong_method.json()
    garbage = owner.post("/api/v1/staff/", "{not json", content_type="application/json")
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == "invalid" or garbage.json()["error"]["code"] == "parse_error"


@pytest.mark.contract
@pytest.mark.customer_data_protection
def test_wrong_password_gets_401_and_the_same_message_as_an_unknown_user(tenant, host_client):
    client = host_client(tenant)
    wrong = client.post("/api/v1/auth/token/", {"username": f"owner@{tenant.slug}.example", "password": "nope"})
    unknown = client.post("/api/v1/auth/token/", {"username": "ghost@nowhere.example", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


@pytest.mark.smoke
def test_openapi_schema_and_swagger_ui_are_served_on_a_tenant_host(tenant, host_client):
    client = host_client(tenant)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/v1/me/", "/api/v1/tenant/", "/api/v1/staff/", "/api/v1/auth/token/"} <= set(paths)
    assert "/api/v1/tenants/" not in paths  # the operator API is not on tenant hosts
    docs = client.get("/api/docs/", HTTP_ACCEPT="text/html")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
