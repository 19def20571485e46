"""URLs served on the platform's own host (ISP_BASE_DOMAIN): operators' admin and API."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tenants.admin import platform_admin
from tenants.api.urls import public_urlpatterns

from .api.docs import DocsPermissionMixin

handler404 = "isp.api.errors.handler404"
handler500 = "isp.api.errors.handler500"

urlpatterns = [
    path("admin/", platform_admin.urls),
    path("api/v1/", include((public_urlpatterns, "api"), namespace="v1")),
    path("api/schema/", DocsPermissionMixin.wrap(SpectacularAPIView, urlconf="isp.urls_public"), name="schema"),
    path("api/docs/", DocsPermissionMixin.wrap(SpectacularSwaggerView, url_name="schema"), name="swagger-ui"),
]
