from django.db import connection
from rest_framework.throttling import ScopedRateThrottle


class TenantScopedRateThrottle(ScopedRateThrottle):
    """A scoped throttle whose counters are per tenant: one ISP's traffic never throttles another's."""

    def get_cache_key(self, request, view):
        key = super().get_cache_key(request, view)
        return None if key is None else f"{connection.schema_name}:{key}"
