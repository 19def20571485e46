"""Failed-login lockout (django-axes): the backend and the response of a refused login."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render

from tenants.middleware import wants_json

MESSAGE = "Too many failed logins. Try again later."


class LockoutBackend(AxesStandaloneBackend):
    """Axes' check, given Django's request also when DRF calls `authenticate` with its own
    request object (the lockout flag must reach AxesMiddleware, which sees Django's)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:  # a check in code (a command, a service), not a login over the network
            return None
        return super().authenticate(getattr(request, "_request", request), username, password, **kwargs)


def lockout_response(request, original_response=None, credentials=None):
    """429, in the API's error shape on /api/ (or JSON requests), an HTML page otherwise."""
    status = settings.AXES_HTTP_RESPONSE_CODE
    minutes = round(settings.AXES_COOLOFF_TIME * 60)
    if wants_json(request):
        body = {"error": {"code": "locked_out", "message": MESSAGE, "fields": {}}}
        response = JsonResponse(body, status=status)
    else:
        response = render(request, "security/locked_out.html", {"minutes": minutes}, status=status)
    response["Retry-After"] = str(minutes * 60)
    return response
