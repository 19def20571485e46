"""OpenAPI schema and Swagger UI: public documentation of the API's shape (no data)."""

from isp.api.permissions import PUBLIC


class DocsPermissionMixin:
    @staticmethod
    def wrap(view_class, **initkwargs):
        """The docs describe endpoints, not data, so anyone may read them. They authenticate
        nobody: a stale or foreign token must not turn the Swagger page into a server error."""
        attrs = {"required_permissions": {"get": PUBLIC}, "authentication_classes": []}
        view = type(view_class.__name__, (view_class,), attrs)
        return view.as_view(**initkwargs)
