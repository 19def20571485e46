"""Test clients shared by the admin and security tests."""

from __future__ import annotations

from django.db import connection
from django.test import Client


class TenantAdminClient(Client):
    """Django's test client on a tenant host; gives the test its schema back after each request
    (the tenant middleware switches the shared connection to the request's host)."""

    def request(self, **request):
        previous = connection.tenant
        try:
            return super().request(**request)
        finally:
            connection.set_tenant(previous)
