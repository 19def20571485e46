"""Writes on tenants: provisioning (cloned from the template schema), settings, suspension."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_context, schema_exists

from compliance.audit import Actor, audit_record

from . import roles
from .isolation import tenant_db_role_ensure
from .models import Domain, Tenant, schema_name_for_slug
from .template import clone_align_names, clone_triggers, template_schema_ensure_current

# Settings a tenant's owner may change from the tenant's own API.
OWNER_EDITABLE_FIELDS = frozenset(
    {
        "name", "time_zone", "billing_day", "payment_terms_days", "suspend_after_days", "tax_inclusive",
        "bill_during_suspension",
    }
)
# Settings a platform operator may change. Currency is fixed once a tenant exists (invoices depend on it).
OPERATOR_EDITABLE_FIELDS = OWNER_EDITABLE_FIELDS | {"country"}


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    admin_username: str
    admin_password: str  # one-time: shown once to the operator, stored only as a hash


def tenant_create(
    *,
    slug: str,
    name: str,
    currency: str,
    country: str,
    admin_email: str,
    actor: Actor,
    time_zone: str = "UTC",
    billing_day: int | None = None,
    payment_terms_days: int | None = None,
    suspend_after_days: int | None = None,
    tax_inclusive: bool = False,
    admin_password: str | None = None,
    source_ip: str | None = None,
) -> ProvisionedTenant:
    """Create a tenant, its domain, its schema (cloned) and its first owner - all or nothing."""
    slug = (slug or "").strip().lower()
    admin_email = (admin_email or "").strip().lower()
    tenant = Tenant(
        slug=slug,
        schema_name=schema_name_for_slug(slug),
        name=(name or "").strip(),
        currency=(currency or "").strip().upper(),
        country=(country or "").strip().upper(),
        time_zone=time_zone,
        tax_inclusive=tax_inclusive,
    )
    for field, value in (
        ("billing_day", billing_day),
        ("payment_terms_days", payment_terms_days),
        ("suspend_after_days", suspend_after_days),
    ):
        if value is not None:
            setattr(tenant, field, value)
    errors: dict[str, list[str]] = {}
    try:
        tenant.full_clean(exclude=["schema_name"])  # derived from the slug, which is checked
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        validate_email(admin_email)
    except ValidationError:
        errors["admin_email"] = ["Enter a valid e-mail address."]
    if errors:
        raise ValidationError(errors)
    if schema_exists(tenant.schema_name):
        raise ValidationError({"slug": [f"A schema for {slug!r} already exists."]})

    # Outside the transaction: may need to migrate the template (DDL with its own transactions).
    template_schema_ensure_current()
    password = admin_password or secrets.token_urlsafe(12)

    with transaction.atomic():
        tenant.save()
        Domain.objects.create(domain=tenant.primary_host, tenant=tenant, is_primary=True)
        CloneSchema().clone_schema(settings.TENANT_BASE_SCHEMA, tenant.schema_name, "DATA", set_connection=False)
        clone_align_names(settings.TENANT_BASE_SCHEMA, tenant.schema_name)
        clone_triggers(settings.TENANT_BASE_SCHEMA, tenant.schema_name)
        tenant_db_role_ensure(tenant.schema_name)  # its restricted database role (tenants.isolation)
        audit_record(actor=actor, action="tenant.created", target=tenant, source_ip=source_ip)
        with schema_context(tenant.schema_name):
            roles.roles_sync()
            owner = _staff_user_create(username=admin_email, email=admin_email, password=password, role=roles.OWNER)
            audit_record(actor=actor, action="tenant.created", target=tenant, source_ip=source_ip)
            audit_record(
                actor=actor, action="staff.created", target=owner, changed_fields=["groups"], source_ip=source_ip
            )
    return ProvisionedTenant(tenant=tenant, admin_username=admin_email, admin_password=password)


def _staff_user_create(*, username: str, email: str, password: str, role: str):
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise ValidationError({"username": "A user with this username already exists."})
    user = user_model.objects.create_user(username=username, email=email, password=password, is_staff=True)
    user.groups.set([Group.objects.get(name=role)])
    return user


@transaction.atomic
def staff_user_create(
    *, username: str, email: str, role: str, actor: Actor, password: str | None = None, source_ip: str | None = None
):
    """Add a staff member with one role to the current tenant. Returns (user, one-time password)."""
    if role not in roles.STAFF_ROLES:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(roles.STAFF_ROLES)}."})
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid e-mail address."}) from None
    password = password or secrets.token_urlsafe(12)
    user = _staff_user_create(username=username.strip(), email=email, password=password, role=role)
    audit_record(actor=actor, action="staff.created", target=user, changed_fields=["groups"], source_ip=source_ip)
    return user, password


@transaction.atomic
def staff_user_set_role(*, user, role: str, actor: Actor, source_ip: str | None = None):
    """Replace a staff member's role. The last owner cannot be demoted (the tenant would be locked out)."""
    if role not in roles.STAFF_ROLES:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(roles.STAFF_ROLES)}."})
    user = get_user_model().objects.select_for_update().get(pk=user.pk)
    owners = Group.objects.get(name=roles.OWNER)
    if role != roles.OWNER and user.groups.filter(pk=owners.pk).exists():
        other_owners = owners.user_set.filter(is_active=True).exclude(pk=user.pk)
        if not other_owners.exists():
            raise ValidationError({"role": "This is the last owner; make someone else owner first."})
    user.groups.set([Group.objects.get(name=role)])
    audit_record(actor=actor, action="staff.role_changed", target=user, changed_fields=["groups"], source_ip=source_ip)
    return user


def _tenant_update(*, tenant: Tenant, changes: dict, allowed: frozenset[str], actor: Actor, source_ip) -> Tenant:
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "This setting cannot be changed here."))
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    changed = [field for field, value in changes.items() if getattr(tenant, field) != value]
    for field in changed:
        setattr(tenant, field, changes[field])
    tenant.full_clean()
    if changed:
        tenant.save(update_fields=changed)
        audit_record(
            actor=actor, action="tenant.settings_changed", target=tenant, changed_fields=changed, source_ip=source_ip
        )
    return tenant


@transaction.atomic
def tenant_update_settings(*, tenant: Tenant, changes: dict, actor: Actor, source_ip: str | None = None) -> Tenant:
    """A tenant's owner changes the tenant's own settings (audited in the tenant's schema)."""
    return _tenant_update(
        tenant=tenant, changes=changes, allowed=OWNER_EDITABLE_FIELDS, actor=actor, source_ip=source_ip
    )


@transaction.atomic
def tenant_update_by_operator(*, tenant: Tenant, changes: dict, actor: Actor, source_ip: str | None = None) -> Tenant:
    return _tenant_update(
        tenant=tenant, changes=changes, allowed=OPERATOR_EDITABLE_FIELDS, actor=actor, source_ip=source_ip
    )


def _tenant_set_status(*, tenant: Tenant, status: str, reason: str, actor: Actor, source_ip, action: str) -> Tenant:
    if tenant.is_public:
        raise ValidationError("The platform (public) tenant cannot be suspended.")
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status == status:
        raise ValidationError({"status": f"The tenant is already {status}."})
    tenant.status = status
    tenant.status_reason = reason
    tenant.status_changed_at = timezone.now()
    tenant.save(update_fields=["status", "status_reason", "status_changed_at"])
    audit_record(
        actor=actor,
        action=action,
        target=tenant,
        changed_fields=["status", "status_reason"],
        reason=reason,
        source_ip=source_ip,
    )
    return tenant


@transaction.atomic
def tenant_suspend(*, tenant: Tenant, reason: str, actor: Actor, source_ip: str | None = None) -> Tenant:
    """Block the tenant's hosts (403) while keeping every row of its data."""
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why the tenant is suspended."})
    return _tenant_set_status(
        tenant=tenant,
        status=Tenant.Status.SUSPENDED,
        reason=reason.strip(),
        actor=actor,
        source_ip=source_ip,
        action="tenant.suspended",
    )


@transaction.atomic
def tenant_reactivate(*, tenant: Tenant, actor: Actor, source_ip: str | None = None) -> Tenant:
    return _tenant_set_status(
        tenant=tenant,
        status=Tenant.Status.ACTIVE,
        reason="",
        actor=actor,
        source_ip=source_ip,
        action="tenant.reactivated",
    )


def public_tenant_ensure() -> Tenant:
    """The platform's own row (schema `public`) and its domain, the base domain. Idempotent."""
    with transaction.atomic():
        tenant, _ = Tenant.objects.get_or_create(
            schema_name=settings.PUBLIC_SCHEMA_NAME,
            defaults={"slug": "public", "name": "Platform", "currency": "USD", "country": "US"},
        )
        Domain.objects.get_or_create(domain=settings.ISP_BASE_DOMAIN, defaults={"tenant": tenant, "is_primary": True})
    connection.set_schema_to_public()
    return tenant
