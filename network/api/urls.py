from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("nas", views.NasViewSet, basename="nas")
router.register("pppoe-accounts", views.PppoeAccountViewSet, basename="pppoe-account")
router.register("radius-sessions", views.RadiusSessionViewSet, basename="radius-session")
router.register("coa-requests", views.CoaRequestViewSet, basename="coa-request")

urlpatterns = [
    *router.urls,
    path("radius-settings/", views.RadiusSettingsView.as_view(), name="radius-settings"),
]
