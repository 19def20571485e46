from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "isp.security"
    label = "isp_security"
    verbose_name = "Login protection"

    def ready(self) -> None:
        from . import events, schema  # noqa: F401 - schema registers its OpenAPI extension

        events.connect_signals()
