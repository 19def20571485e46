"""The declared permission table: who may call which API endpoint with which HTTP method.

This is the reviewed statement of access, written independently of the views' own
`required_permissions` and of `tenants/roles.py`; tests/security/test_rbac_matrix.py walks the
URL confs, calls every endpoint x method as every role and compares with this table. A new
endpoint (or method, or viewset action) that is not declared here fails that test, naming it.

Keys are path templates as routed (`{pk}` for a detail id, `{slug}` for a tenant), without
DRF's format-suffix variants (`.json`), which share their base route's rule. Values map an
upper-case HTTP method to the roles allowed; every other role must get 401 (anonymous) or 403.
"""

from __future__ import annotations

# Roles on a tenant host: the five staff roles, a portal customer, nobody.
OWNER = "owner"
BILLING_ADMIN = "billing_admin"
NETWORK_OPS = "network_ops"
SUPPORT = "support"
AUDITOR = "auditor"
PORTAL = "portal_customer"
ANONYMOUS = "anonymous"
TENANT_ROLES = (OWNER, BILLING_ADMIN, NETWORK_OPS, SUPPORT, AUDITOR, PORTAL, ANONYMOUS)

STAFF = frozenset({OWNER, BILLING_ADMIN, NETWORK_OPS, SUPPORT, AUDITOR})
SIGNED_IN = STAFF | {PORTAL}
EVERYONE = frozenset(TENANT_ROLES)
NOBODY: frozenset[str] = frozenset()
_O = frozenset({OWNER})
_OA = frozenset({OWNER, AUDITOR})
_CUSTOMER_WRITE = frozenset({OWNER, SUPPORT})  # create customers, addresses, plans, subscriptions
_CUSTOMER_CHANGE = frozenset({OWNER, BILLING_ADMIN, SUPPORT})  # change them, subscription actions
_BILLING_READ = frozenset({OWNER, BILLING_ADMIN, SUPPORT, AUDITOR})
_BILLING_WRITE = frozenset({OWNER, BILLING_ADMIN})
_NETWORK_READ = frozenset({OWNER, NETWORK_OPS, SUPPORT, AUDITOR})
_NETWORK_WRITE = frozenset({OWNER, NETWORK_OPS})
_PORTAL = frozenset({PORTAL})

TENANT_TABLE: dict[str, dict[str, frozenset[str]]] = {
    # --- platform plumbing
    "/api/v1/": {"GET": NOBODY},  # the router's root view declares no rule: fail closed
    "/api/v1/auth/token/": {"POST": EVERYONE, "DELETE": SIGNED_IN},
    "/api/v1/me/": {"GET": SIGNED_IN},
    "/api/v1/tenant/": {"GET": STAFF, "PATCH": _O},
    "/api/v1/staff/": {"GET": _OA, "POST": _O},
    "/api/v1/staff/{pk}/": {"GET": _OA},
    "/api/v1/staff/{pk}/role/": {"POST": _O},
    "/api/v1/audit-events/": {"GET": _OA},
    "/api/v1/audit-events/{pk}/": {"GET": _OA},
    # --- data-subject requests (compliance): owners handle them, auditors read them; the export
    # archive holds the subject's personal data in clear, so only roles with reveal_pii
    "/api/v1/data-subject-requests/": {"GET": _OA, "POST": _O},
    "/api/v1/data-subject-requests/{pk}/": {"GET": _OA},
    "/api/v1/data-subject-requests/{pk}/erasure-blockers/": {"GET": _OA},
    "/api/v1/data-subject-requests/{pk}/verify/": {"POST": _O},
    "/api/v1/data-subject-requests/{pk}/fulfil/": {"POST": _O},
    "/api/v1/data-subject-requests/{pk}/refuse/": {"POST": _O},
    "/api/v1/data-subject-requests/{pk}/archive/": {"GET": _O},
    "/api/schema/": {"GET": EVERYONE},
    "/api/docs/": {"GET": EVERYONE},
    # --- subscribers
    "/api/v1/customers/": {"GET": STAFF, "POST": _CUSTOMER_WRITE},
    "/api/v1/customers/{pk}/": {"GET": STAFF, "PATCH": _CUSTOMER_CHANGE},
    "/api/v1/service-addresses/": {"GET": STAFF, "POST": _CUSTOMER_WRITE},
    "/api/v1/service-addresses/{pk}/": {"GET": STAFF},
    "/api/v1/plans/": {"GET": STAFF, "POST": _CUSTOMER_WRITE},
    "/api/v1/plans/{pk}/": {"GET": STAFF, "PATCH": _CUSTOMER_CHANGE},
    "/api/v1/plans/{pk}/archive/": {"POST": _CUSTOMER_CHANGE},
    "/api/v1/subscriptions/": {"GET": STAFF, "POST": _CUSTOMER_WRITE},
    "/api/v1/subscriptions/{pk}/": {"GET": STAFF},
    "/api/v1/subscriptions/{pk}/history/": {"GET": STAFF},
    "/api/v1/subscriptions/{pk}/activate/": {"POST": _CUSTOMER_CHANGE},
    "/api/v1/subscriptions/{pk}/suspend/": {"POST": _CUSTOMER_CHANGE},
    "/api/v1/subscriptions/{pk}/reactivate/": {"POST": _CUSTOMER_CHANGE},
    "/api/v1/subscriptions/{pk}/terminate/": {"POST": _CUSTOMER_CHANGE},
    "/api/v1/subscriptions/{pk}/change-plan/": {"POST": _CUSTOMER_CHANGE},
    # --- customer portal (only ever the customer's own data)
    "/api/v1/portal/signup/": {"POST": EVERYONE},
    "/api/v1/portal/plans/": {"GET": EVERYONE},
    "/api/v1/portal/me/": {"GET": _PORTAL, "PATCH": _PORTAL},
    "/api/v1/portal/subscriptions/": {"GET": _PORTAL},
    "/api/v1/portal/invoices/": {"GET": _PORTAL},
    "/api/v1/portal/invoices/{pk}/pdf/": {"GET": _PORTAL},
    "/api/v1/portal/balance/": {"GET": _PORTAL},
    # --- billing: owners and billing admins write, support and auditors read, network ops nothing
    "/api/v1/billing-runs/": {"GET": _BILLING_READ, "POST": _BILLING_WRITE},
    "/api/v1/billing-runs/{pk}/": {"GET": _BILLING_READ},
    "/api/v1/invoices/": {"GET": _BILLING_READ},
    "/api/v1/invoices/{pk}/": {"GET": _BILLING_READ},
    "/api/v1/invoices/{pk}/pdf/": {"GET": _BILLING_READ},
    "/api/v1/credit-notes/": {"GET": _BILLING_READ, "POST": _BILLING_WRITE},
    "/api/v1/credit-notes/{pk}/": {"GET": _BILLING_READ},
    "/api/v1/payments/": {"GET": _BILLING_READ, "POST": _BILLING_WRITE},
    "/api/v1/payments/{pk}/": {"GET": _BILLING_READ},
    "/api/v1/tax-rates/": {"GET": _BILLING_READ, "POST": _BILLING_WRITE},
    "/api/v1/tax-rates/{pk}/": {"GET": _BILLING_READ, "PATCH": _BILLING_WRITE, "DELETE": _BILLING_WRITE},
    "/api/v1/discounts/": {"GET": _BILLING_READ, "POST": _BILLING_WRITE},
    "/api/v1/discounts/{pk}/": {"GET": _BILLING_READ, "PATCH": _BILLING_WRITE, "DELETE": _BILLING_WRITE},
    "/api/v1/discount-assignments/": {"GET": _BILLING_READ, "POST": _BILLING_WRITE},
    "/api/v1/discount-assignments/{pk}/": {"GET": _BILLING_READ, "DELETE": _BILLING_WRITE},
    "/api/v1/customers/{pk}/balance/": {"GET": _BILLING_READ},
    # --- network: owners and network ops write, support and auditors read, billing admins nothing
    "/api/v1/nas/": {"GET": _NETWORK_READ, "POST": _NETWORK_WRITE},
    "/api/v1/nas/{pk}/": {"GET": _NETWORK_READ, "PATCH": _NETWORK_WRITE, "DELETE": _NETWORK_WRITE},
    "/api/v1/pppoe-accounts/": {"GET": _NETWORK_READ, "POST": _NETWORK_WRITE},
    "/api/v1/pppoe-accounts/{pk}/": {"GET": _NETWORK_READ, "PATCH": _NETWORK_WRITE},
    "/api/v1/pppoe-accounts/{pk}/reset-password/": {"POST": _NETWORK_WRITE},
    "/api/v1/radius-sessions/": {"GET": _NETWORK_READ},
    "/api/v1/radius-sessions/{pk}/": {"GET": _NETWORK_READ},
    "/api/v1/coa-requests/": {"GET": _NETWORK_READ},
    "/api/v1/coa-requests/{pk}/": {"GET": _NETWORK_READ},
    "/api/v1/devices/": {"GET": _NETWORK_READ, "POST": _NETWORK_WRITE},
    "/api/v1/devices/{pk}/": {"GET": _NETWORK_READ},
    "/api/v1/interfaces/": {"GET": _NETWORK_READ},
    "/api/v1/interfaces/{pk}/": {"GET": _NETWORK_READ},
    "/api/v1/interfaces/{pk}/traffic/": {"GET": _NETWORK_READ},
    "/api/v1/alarms/": {"GET": _NETWORK_READ},
    "/api/v1/alarms/{pk}/": {"GET": _NETWORK_READ},
    "/api/v1/alarms/{pk}/acknowledge/": {"POST": _NETWORK_WRITE},
    "/api/v1/alarms/{pk}/clear/": {"POST": _NETWORK_WRITE},
    # the outage report names the affected subscriptions: network readers who may see customers
    "/api/v1/alarms/{pk}/outage/": {"GET": _NETWORK_READ},
    "/api/v1/onus/": {"GET": _NETWORK_READ},
    "/api/v1/onus/{pk}/": {"GET": _NETWORK_READ},
    "/api/v1/onus/{pk}/authorise/": {"POST": _NETWORK_WRITE},
    "/api/v1/provisioning-jobs/": {"GET": _NETWORK_READ, "POST": _NETWORK_WRITE},
    "/api/v1/provisioning-jobs/activate-many/": {"POST": _NETWORK_WRITE},
    "/api/v1/provisioning-jobs/{pk}/": {"GET": _NETWORK_READ},
    "/api/v1/provisioning-jobs/{pk}/retry/": {"POST": _NETWORK_WRITE},
    "/api/v1/provisioning-jobs/{pk}/cancel/": {"POST": _NETWORK_WRITE},
    "/api/v1/radius-settings/": {"GET": _NETWORK_READ, "PATCH": _NETWORK_WRITE},
}

# Roles on the platform's public host: an operator (a public-schema user holding the tenant
# permissions), a public-schema user without them, a tenant owner's token (another schema's
# credential: unknown here), nobody.
OPERATOR = "operator"
PUBLIC_USER = "public_user"
TENANT_OWNER_TOKEN = "tenant_owner_token"
PUBLIC_ROLES = (OPERATOR, PUBLIC_USER, TENANT_OWNER_TOKEN, ANONYMOUS)
_OPERATOR = frozenset({OPERATOR})
PUBLIC_EVERYONE = frozenset(PUBLIC_ROLES)

PUBLIC_TABLE: dict[str, dict[str, frozenset[str]]] = {
    "/api/v1/": {"GET": NOBODY},
    # A credential this host does not know is refused (401) before any rule, even a public one.
    "/api/v1/auth/token/": {
        "POST": frozenset({OPERATOR, PUBLIC_USER, ANONYMOUS}),
        "DELETE": frozenset({OPERATOR, PUBLIC_USER}),
    },
    "/api/v1/tenants/": {"GET": _OPERATOR, "POST": _OPERATOR},
    "/api/v1/tenants/{slug}/": {"GET": _OPERATOR, "PATCH": _OPERATOR},
    "/api/v1/tenants/{slug}/suspend/": {"POST": _OPERATOR},
    "/api/v1/tenants/{slug}/reactivate/": {"POST": _OPERATOR},
    # The docs authenticate nobody (isp/api/docs.py), so any credential reads them.
    "/api/schema/": {"GET": PUBLIC_EVERYONE},
    "/api/docs/": {"GET": PUBLIC_EVERYONE},
}
