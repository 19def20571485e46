from rest_framework.routers import SimpleRouter

from . import dsr_views, views

router = SimpleRouter()
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("data-subject-requests", dsr_views.DataSubjectRequestViewSet, basename="data-subject-request")
urlpatterns = router.urls
