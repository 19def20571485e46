from django.urls import path
from rest_framework.routers import SimpleRouter

from . import portal, views

router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("service-addresses", views.ServiceAddressViewSet, basename="service-address")
router.register("plans", views.PlanViewSet, basename="plan")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")

portal_urlpatterns = [
    path("portal/signup/", portal.SignupView.as_view(), name="portal-signup"),
    path("portal/me/", portal.MeView.as_view(), name="portal-me"),
    path("portal/subscriptions/", portal.PortalSubscriptionListView.as_view(), name="portal-subscriptions"),
    path("portal/plans/", portal.PortalPlanListView.as_view(), name="portal-plans"),
]

urlpatterns = [*router.urls, *portal_urlpatterns]
