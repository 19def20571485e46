from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("nas", views.NasViewSet, basename="nas")
router.register("pppoe-accounts", views.PppoeAccountViewSet, basename="pppoe-account")
router.register("radius-sessions", views.RadiusSessionViewSet, basename="radius-session")
router.register("coa-requests", views.CoaRequestViewSet, basename="coa-request")
router.register("devices", views.DeviceViewSet, basename="device")
router.register("interfaces", views.InterfaceViewSet, basename="interface")
router.register("alarms", views.AlarmViewSet, basename="alarm")
router.register("onus", views.OnuViewSet, basename="onu")
router.register("provisioning-jobs", views.ProvisioningJobViewSet, basename="provisioning-job")

urlpatterns = [
    *router.urls,
    path("radius-settings/", views.RadiusSettingsView.as_view(), name="radius-settings"),
]
