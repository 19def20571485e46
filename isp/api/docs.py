"""OpenAPI schema and Swagger UI: public documentation of the API's shape (no data)."""

from isp.api.permissions import PUBLIC


class DocsPermissionMixin:
    @staticmethod
    def wrap(view_class, **initkwargs):
        """The docs describe endpoints, not data, so anyone may read them."""
        view = type(view_class.__name__, (view_class,), {"required_permissions": {"get": PUBLIC}})
        return view.as_view(**initkwargs)
