"""The base classes that save through services declare hook methods that raise NotImplementedError
(ServiceAdmin.persist, CatalogAdmin's and _CatalogViewSet's create/update/delete). Those bodies are
never meant to run: this checks that every concrete admin and viewset overrides its hooks, so a new
one that forgets a hook fails here instead of at a staff member's first save."""

from __future__ import annotations

import pytest
from django.contrib import admin

pytestmark = [pytest.mark.contract]


def _all_subclasses(cls) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_registered_service_admin_overrides_its_hooks():
    from billing.admin import CatalogAdmin
    from customers.admin import ServiceAdmin

    service_admins = [a for a in admin.site._registry.values() if isinstance(a, ServiceAdmin)]
    assert len(service_admins) >= 8  # customers, billing and network register several
    missing = [type(a).__name__ for a in service_admins if type(a).persist is ServiceAdmin.persist]
    catalog = [a for a in service_admins if isinstance(a, CatalogAdmin)]
    assert catalog
    for hook in ("create_object", "update_object", "delete_object", "in_use"):
        missing += [
            f"{type(a).__name__}.{hook}" for a in catalog if getattr(type(a), hook) is getattr(CatalogAdmin, hook)
        ]
    assert not missing, missing


def test_every_catalog_viewset_overrides_its_hooks():
    from billing.api.views import _CatalogViewSet

    viewsets = _all_subclasses(_CatalogViewSet)
    assert len(viewsets) >= 2  # tax rates, discounts
    missing = [
        f"{v.__name__}.{hook}"
        for v in viewsets
        for hook in ("create_object", "update_object", "delete_object")
        if getattr(v, hook) is getattr(_CatalogViewSet, hook)
    ]
    assert not missing, missing


def test_service_admin_forms_get_their_persist_bound_per_request(rf):
    """ServiceForm.persist is replaced by ServiceAdmin.get_form with the admin's own persist."""
    from customers.admin import ServiceAdmin, ServiceForm

    some_admin = next(a for a in admin.site._registry.values() if isinstance(a, ServiceAdmin))
    request = rf.get("/")
    request.user = type("U", (), {"has_perm": lambda *a: True, "is_active": True, "is_staff": True})()
    form_class = some_admin.get_form(request)
    assert form_class.persist is not ServiceForm.persist
