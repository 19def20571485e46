from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def pii_keys_configured(app_configs, **kwargs):
    from compliance.pii.keyring import get_keyring

    try:
        get_keyring()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="compliance.E001", hint="Run `make setup`, or set PII_KEYS and PII_INDEX_KEY.")]
    return []
