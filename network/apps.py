from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"
    verbose_name = "Network"

    def ready(self):
        # RADIUS reactions to subscription changes (Disconnect on suspension, CoA on plan change),
        # delivered by customers.events after the change commits.
        from customers import events

        from . import services

        events.subscribe(events.SubscriptionStatusChanged, services.on_status_changed)
        events.subscribe(events.SubscriptionPlanChanged, services.on_plan_changed)
        from . import tasks_snmp  # noqa: F401 - registers the SNMP polling tasks
