from django.urls import include, path
from rest_framework.routers import DefaultRouter

from . import views

tenant_router = DefaultRouter()
tenant_router.register("staff", views.StaffViewSet, basename="staff")

public_router = DefaultRouter()
public_router.register("tenants", views.OperatorTenantViewSet, basename="tenant")

tenant_urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("me/", views.MeView.as_view(), name="me"),
    path("tenant/", views.TenantSettingsView.as_view(), name="tenant-settings"),
    path("", include(tenant_router.urls)),
]

public_urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("", include(public_router.urls)),
]
