"""Access control for every API view, declared on the view and checked in one place.

Each view states, per action (viewset action or lower-case HTTP method), what it needs:
a list of Django permission codenames (granted through the staff role groups),
`AUTHENTICATED`, `PORTAL` (an authenticated user linked to a customer, for the customer
portal, which only ever shows that customer's own data) or `PUBLIC`. An action the view does
not declare is refused, so a new endpoint that forgets its rule serves nobody (fail closed).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

PUBLIC = "public"
AUTHENTICATED = "authenticated"
PORTAL = "portal"


def view_action(request, view) -> str:
    return getattr(view, "action", None) or request.method.lower()


def declared_rule(request, view):
    rules = getattr(view, "required_permissions", None)
    if not isinstance(rules, dict):
        return None
    return rules.get(view_action(request, view))


class DeclaredRolePermission(BasePermission):
    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        rule = declared_rule(request, view)
        if rule is None:
            return False
        if rule == PUBLIC:
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if rule == AUTHENTICATED:
            return True
        if rule == PORTAL:
            return hasattr(user, "customer")  # Customer.portal_user; staff have no customer
        return user.has_perms(rule)
