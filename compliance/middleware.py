from compliance.pii.keystore import key_scope


class PIIKeyScopeMiddleware:
    """Unwrapped data keys are cached for one request at most."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with key_scope():
            return self.get_response(request)
