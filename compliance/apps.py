from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance and audit"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks

        # Celery's autodiscovery imports `compliance.tasks` only: register the retention task here.
        from .dsr import tasks  # noqa: F401
