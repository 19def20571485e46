"""Staff roles of an ISP: Django groups holding explicit model permissions.

Rules are declarative and resolved against the permissions present in the current schema,
so permissions that later apps add are picked up by `roles_sync` (run by `platform_migrate`
for the template and every tenant, and by tenant provisioning).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.db import transaction

OWNER = "owner"
BILLING_ADMIN = "billing_admin"
NETWORK_OPS = "network_ops"
SUPPORT = "support"
AUDITOR = "auditor"
STAFF_ROLES = (OWNER, BILLING_ADMIN, NETWORK_OPS, SUPPORT, AUDITOR)
# Roles that must log in to the tenant admin with a second factor (TOTP, isp/security/otp.py);
# the others may enrol a device and are then asked for it too.
TWO_FACTOR_REQUIRED = (OWNER, BILLING_ADMIN)

ALL = ("view", "add", "change", "delete")
READ = ("view",)


@dataclass(frozen=True)
class Rule:
    """Grants `actions` (codename prefixes or whole custom codenames) on app/model ("*" = all)."""

    app_label: str
    model: str
    actions: tuple[str, ...]

    def grants(self, perm: Permission) -> bool:
        if self.app_label not in ("*", perm.content_type.app_label):
            return False
        if self.model not in ("*", perm.content_type.model):
            return False
        prefix = perm.codename.split("_", 1)[0]
        return prefix in self.actions or perm.codename in self.actions


# Nobody may edit the audit trail, the permission catalogue, sessions or content types.
NEVER_GRANTED = (
    Rule("compliance", "auditevent", ("add", "change", "delete")),
    Rule("auth", "permission", ("add", "change", "delete")),
    Rule("contenttypes", "*", ALL),
    Rule("sessions", "*", ALL),
    Rule("admin", "logentry", ("add", "change", "delete")),
    # Written by FreeRADIUS (sessions) and the CoA sender only.
    Rule("network", "radiussession", ("add", "change", "delete")),
    Rule("network", "coarequest", ("add", "change", "delete")),
    # Login protection: the lockout's access log is written by django-axes only (owners may
    # delete an access attempt to lift a lockout); a second-factor device is created by its
    # own user's enrolment only (owners may view one, without its key, and delete it to reset).
    Rule("axes", "accesslog", ("add", "change")),
    Rule("axes", "accessfailurelog", ("add", "change")),
    Rule("axes", "accessattempt", ("add", "change")),
    Rule("otp_totp", "totpdevice", ("add", "change")),
)

ROLE_RULES: dict[str, tuple[Rule, ...]] = {
    OWNER: (Rule("*", "*", ALL + ("reveal_pii",)),),
    BILLING_ADMIN: (
        Rule("billing", "*", ALL),
        Rule("customers", "*", ("view", "change", "reveal_pii")),
        Rule("tenants", "tenant", READ),
    ),
    NETWORK_OPS: (
        Rule("network", "*", ALL),
        Rule("customers", "*", READ),
        Rule("tenants", "tenant", READ),
    ),
    SUPPORT: (
        Rule("customers", "*", ("view", "add", "change")),
        Rule("billing", "*", READ),
        Rule("network", "*", READ),
        Rule("tenants", "tenant", READ),
    ),
    AUDITOR: (Rule("*", "*", READ),),
}


def permissions_for_role(role: str, permissions: list[Permission]) -> list[Permission]:
    rules = ROLE_RULES[role]
    return [
        perm
        for perm in permissions
        if any(rule.grants(perm) for rule in rules) and not any(rule.grants(perm) for rule in NEVER_GRANTED)
    ]


@transaction.atomic
def roles_sync() -> dict[str, int]:
    """Create or update every staff role group in the current schema. Idempotent."""
    permissions = list(Permission.objects.select_related("content_type"))
    counts = {}
    for role in STAFF_ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        granted = permissions_for_role(role, permissions)
        group.permissions.set(granted)
        counts[role] = len(granted)
    return counts
