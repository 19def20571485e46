"""API token authentication that notices a token of another tenant (or of the platform).

Tokens live in the schema of the host that issued them, so another host does not know them and
the request is refused (401) anyway. When an unknown token exists in another schema, that is a
leaked or misused credential: it is logged to the `security` logger and recorded as an audit
event on both sides (the attacked host's record does not name the other tenant)."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import schema_context
from psycopg import sql
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from compliance.audit import Actor

from . import events


def token_home_schema(key: str) -> str | None:
    """The schema (other than the current one) whose token table holds `key`, if any."""
    from tenants.models import Tenant

    current = connection.schema_name
    schemas = [s for s in Tenant.objects.values_list("schema_name", flat=True) if s != current]
    if not schemas:
        return None
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {schema} FROM {table} WHERE key = %s").format(
            schema=sql.Literal(schema), table=sql.Identifier(schema, "authtoken_token")
        )
        for schema in schemas
    )
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("{} LIMIT 1").format(query), [key] * len(schemas))
        row = cursor.fetchone()
    return row[0] if row else None


class TenantTokenAuthentication(TokenAuthentication):
    request = None

    def authenticate(self, request):
        self.request = request  # one instance per request (APIView.get_authenticators)
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        try:
            return super().authenticate_credentials(key)
        except AuthenticationFailed:
            home = token_home_schema(key)
            if home is not None:
                _report_foreign_token(key=key, home=home, request=self.request)
            raise


class VerifiedSessionAuthentication(SessionAuthentication):
    """The admin's session on the API, only once the second factor is done where it is needed:
    a password-only session of an owner is not a way around the admin's two-step login."""

    def authenticate(self, request):
        from .otp import needs_second_factor

        result = super().authenticate(request)
        if result is not None and needs_second_factor(request._request):
            return None
        return result


def _report_foreign_token(*, key: str, home: str, request) -> None:
    from rest_framework.authtoken.models import Token

    from isp.middleware import current_request_id

    attacked = connection.schema_name
    events.security_event(
        events.FOREIGN_CREDENTIAL,
        request=request,
        reason="an API token issued on another host was presented here and refused",
    )
    with schema_context(home):
        user_id = Token.objects.filter(key=key).values_list("user_id", flat=True).first()
    events.security_event(
        events.CREDENTIAL_USED_ELSEWHERE,
        schema=home,
        actor=Actor.system("token check"),
        object_type="auth.user",
        object_id=str(user_id or ""),
        reason=f"this user's API token was presented on another host (request {current_request_id()}); revoke it",
    )
    events.logger.warning("foreign token: issued in schema=%s, presented in schema=%s", home, attacked)
