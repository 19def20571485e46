"""OpenAPI: the session authentication with its second-factor check is documented as Django's
session cookie (registered when the app is ready)."""

from drf_spectacular.authentication import SessionScheme


class VerifiedSessionScheme(SessionScheme):
    target_class = "isp.security.authentication.VerifiedSessionAuthentication"
