"""URLs served on a tenant's host (<slug>.<ISP_BASE_DOMAIN>): staff admin and the tenant API."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing.api import urls as billing_api
from compliance.api import urls as compliance_api
from customers.api import urls as customers_api
from network.api import urls as network_api
from tenants.api.urls import tenant_urlpatterns

from .api.docs import DocsPermissionMixin

handler404 = "isp.api.errors.handler404"
handler500 = "isp.api.errors.handler500"

api_v1 = [
    *tenant_urlpatterns,
    path("", include(compliance_api)),
    path("", include(customers_api)),
    path("", include(billing_api)),
    path("", include(network_api)),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", DocsPermissionMixin.wrap(SpectacularAPIView, urlconf="isp.urls_tenant"), name="schema"),
    path("api/docs/", DocsPermissionMixin.wrap(SpectacularSwaggerView, url_name="schema"), name="swagger-ui"),
]
