"""Staff second factor (TOTP, django-otp): who needs it, enrolment and verification.

Roles in `tenants.roles.TWO_FACTOR_REQUIRED` (owner, billing_admin) must have a confirmed TOTP
device and have verified it in the current session before any tenant admin page; the others may
enrol and then verify too (enrolled staff are always asked). The pages live under the admin
(`/admin/2fa/setup/`, `/admin/2fa/verify/`), see isp/security/admin_site.py."""

from __future__ import annotations

import base64

from django import forms
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import devices_for_user, user_has_device
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.audit import Actor

from . import events

DEVICE_NAME = "authenticator"


def second_factor_required(user) -> bool:
    from tenants.roles import TWO_FACTOR_REQUIRED

    if not (user and user.is_authenticated):
        return False
    return user.groups.filter(name__in=TWO_FACTOR_REQUIRED).exists() or user_has_device(user)


def needs_second_factor(request) -> bool:
    """A signed-in user who must verify a device before using the admin and has not yet."""
    user = request.user
    verified = getattr(user, "is_verified", None)
    return second_factor_required(user) and not (verified and verified())


def second_factor_url(request) -> str:
    name = "admin:otp_verify" if user_has_device(request.user) else "admin:otp_setup"
    return f"{reverse(name)}?{REDIRECT_FIELD_NAME}={request.get_full_path()}"


def pending_device(user) -> TOTPDevice:
    """The user's unconfirmed device for enrolment (created once, then reused until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def provisioning(device: TOTPDevice) -> dict[str, str]:
    return {"secret": base64.b32encode(device.bin_key).decode(), "uri": device.config_url}


class TokenForm(forms.Form):
    token = forms.RegexField(regex=r"^\d{6,8}$", label="Code from your authenticator app", max_length=8)


def _next_url(request) -> str:
    target = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME) or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def _failed(request, *, why: str) -> None:
    events.security_event(
        events.OTP_FAILED,
        request=request,
        actor=Actor.from_user(request.user),
        object_type="auth.user",
        object_id=str(request.user.pk),
        reason=why,
    )


def setup_view(site, request):
    """Enrol: show the secret (and otpauth:// URI) of a new device; confirm it with one code."""
    if user_has_device(request.user):
        return redirect(f"{reverse('admin:otp_verify')}?{REDIRECT_FIELD_NAME}={_next_url(request)}")
    device = pending_device(request.user)
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            with transaction.atomic():
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                events.security_event(
                    events.OTP_ENROLLED,
                    request=request,
                    actor=Actor.from_user(request.user),
                    object_type="auth.user",
                    object_id=str(request.user.pk),
                    reason="TOTP device confirmed",
                    level=20,
                )
            otp_login(request, device)
            return redirect(_next_url(request))
        _failed(request, why="wrong code while enrolling")
        form.add_error("token", "That code is not valid. Check the time on your device and try again.")
    context = {
        **site.each_context(request),
        "title": "Set up two-factor login",
        "form": form,
        "next": _next_url(request),
        **provisioning(device),
    }
    return TemplateResponse(request, "security/otp_setup.html", context)


def verify_view(site, request):
    """Second step of the admin login: a code from a confirmed device."""
    if not user_has_device(request.user):
        return redirect(f"{reverse('admin:otp_setup')}?{REDIRECT_FIELD_NAME}={_next_url(request)}")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        for device in devices_for_user(request.user, confirmed=True, for_verify=True):
            if device.verify_token(form.cleaned_data["token"]):
                otp_login(request, device)
                return redirect(_next_url(request))
        _failed(request, why="wrong second-factor code")
        form.add_error("token", "That code is not valid.")
    context = {**site.each_context(request), "title": "Two-factor login", "form": form, "next": _next_url(request)}
    return TemplateResponse(request, "security/otp_verify.html", context)


def demo_device(user) -> TOTPDevice:
    """The demo owner's TOTP device (DEV-ONLY, `manage.py demo_seed`): created confirmed once and
    kept, so every demo run prints the same secret for the authenticator app."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="demo authenticator", confirmed=True)
