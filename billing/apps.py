from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        # Celery's autodiscovery imports `billing.tasks` only; the billing-run tasks live in
        # `billing.run_tasks` and are registered here, in every process that loads Django.
        from . import run_tasks  # noqa: F401
