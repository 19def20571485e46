"""The tenant admin site (Django's default `admin.site` on tenant hosts), which asks for the
second factor: a signed-in user who needs one and has not verified it this session is sent to
enrolment or verification before any admin page (logout excepted)."""

from __future__ import annotations

from functools import update_wrapper

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import path

from . import otp


class TenantAdminSite(admin.AdminSite):
    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)
        if getattr(view, "__name__", "") == "logout":
            return inner

        def wrapped(request, *args, **kwargs):
            if self.has_permission(request) and otp.needs_second_factor(request):
                return redirect(otp.second_factor_url(request))
            return inner(request, *args, **kwargs)

        return update_wrapper(wrapped, view)

    def get_urls(self):
        # Signed in with a password, second factor pending: these pages skip the check above.
        unchecked = super().admin_view
        return [
            path("2fa/setup/", unchecked(lambda request: otp.setup_view(self, request)), name="otp_setup"),
            path("2fa/verify/", unchecked(lambda request: otp.verify_view(self, request)), name="otp_verify"),
            *super().get_urls(),
        ]
