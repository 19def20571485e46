"""OpenAPI: every operation documents the errors it can answer, in the API's one error shape.

drf-spectacular documents the success response of an operation; the errors come from the API
plumbing (isp/api/errors.py, isp/api/permissions.py, pagination), so they are derived here, from
the same declarations the plumbing enforces, instead of being repeated on every view:

- 400 `invalid`/`parse_error`: the operation takes a request body, or query parameters that are
  validated (filters, `include_pii`);
- 401 `not_authenticated`/`authentication_failed`: the view authenticates (a wrong or foreign
  token is refused before any rule, even on a public operation);
- 403 `permission_denied`: the view's declared rule for the action is a permission or `PORTAL`
  (also `tenant_suspended`, for any request to a suspended tenant's host);
- 404 `not_found`: the path names an object, or the list is paginated (a page past the end);
- 415 `unsupported_media_type`: the operation takes a request body (one without a known type);
- 429 `throttled`: the view is throttled (login, signup).

A POST, PUT or PATCH whose view declares no input documents an empty object as its body.

A view documents other errors (or these where the rules above cannot see them, e.g. an id in
the body looked up with a 404) with `@extend_schema(responses={...})`; what it states is kept.
`ApiSchemaGenerator` (used by /api/schema/, and by `manage.py spectacular --generator-class
isp.api.schema.ApiSchemaGenerator`) gives every view `ApiAutoSchema`, keeping the view's own
`@extend_schema` overrides."""

from __future__ import annotations

import copy

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_class
from drf_spectacular.utils import OpenApiResponse, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from isp.api.permissions import AUTHENTICATED, PUBLIC

ERROR_MEDIA_TYPES = ["application/json"]
# A write whose view reads no fields still documents its body: an empty object (or none at all).
NO_FIELDS_BODY = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "maxProperties": 0, "description": "No fields: send `{}` or no body."}
        }
    }
}
# Query parameters that never make a request invalid: a bad `page_size` or `ordering` is ignored.
# (A `page` past the end is a 404, documented for every paginated list.)
UNVALIDATED_QUERY_PARAMETERS = frozenset({"page_size", "ordering"})


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {},
        "description": "Field name -> its messages (a list of strings; an object or a list of objects for "
        "nested input). `{}` when no field is at fault; `non_field_errors` for the input as a whole.",
    }
)
class _ErrorFields(serializers.DictField):
    pass


class ErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable: invalid, parse_error, not_found, not_authenticated, authentication_failed, "
        "permission_denied, tenant_suspended, unknown_host, throttled, ..."
    )
    message = serializers.CharField(help_text="For people; may change.")
    fields = _ErrorFields()


@extend_schema_serializer(component_name="Error")
class ErrorOutput(serializers.Serializer):
    """The one error shape of the API (isp/api/errors.py)."""

    error = ErrorDetailOutput()


ERROR_DESCRIPTIONS = {
    "400": "Invalid input (`invalid`, or `parse_error` for a body that is not JSON); `error.fields` names "
    "every field at fault.",
    "401": "No credentials (`not_authenticated`) or credentials this host does not know (`authentication_failed`).",
    "403": "The caller's role does not allow this action (`permission_denied`), or the tenant is suspended "
    "(`tenant_suspended`).",
    "404": "No such object here (`not_found`), or a page past the end of the list.",
    "415": "The body's Content-Type is not JSON, a form or multipart (`unsupported_media_type`).",
    "429": "Too many attempts (`throttled`); retry after the `Retry-After` header's seconds.",
}


def error_response(code: int | str) -> OpenApiResponse:
    """An error response in the API's error shape, for `@extend_schema(responses={...})`."""
    return OpenApiResponse(ErrorOutput, description=ERROR_DESCRIPTIONS[str(code)])


class ApiAutoSchema(AutoSchema):
    def declared_rule(self):
        rules = getattr(self.view, "required_permissions", None)
        if not isinstance(rules, dict):
            return None
        return rules.get(getattr(self.view, "action", None) or self.method.lower())

    def get_auth(self):
        auths = super().get_auth()
        if auths and self.declared_rule() == PUBLIC and {} not in auths:
            auths.append({})  # credentials are optional (but a wrong one is still refused: 401)
        return auths

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body is None and self.method in ("POST", "PUT", "PATCH"):
            return copy.deepcopy(NO_FIELDS_BODY)
        return body

    def error_codes(self, operation: dict) -> list[str]:
        codes = []
        query = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        if "requestBody" in operation or query - UNVALIDATED_QUERY_PARAMETERS - {"page"}:
            codes.append("400")
        if self.view.get_authenticators():
            codes.append("401")
        if self.declared_rule() not in (PUBLIC, AUTHENTICATED):
            codes.append("403")
        if "{" in self.path or (self._is_list_view() and self._get_paginator() and "page" in query):
            codes.append("404")
        if "requestBody" in operation:
            codes.append("415")
        if getattr(self.view, "throttle_classes", None) and getattr(self.view, "throttle_scope", None):
            codes.append("429")
        return codes

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        for code in self.error_codes(operation):
            if code not in responses:
                responses[code] = self._get_response_for_code(error_response(code), code, ERROR_MEDIA_TYPES)
        operation["responses"] = dict(sorted(responses.items()))
        return operation


class ApiSchemaGenerator(SchemaGenerator):
    """Gives every view `ApiAutoSchema`, on top of the schema its `@extend_schema` overrides built."""

    def create_view(self, callback, method, request=None):
        view = super().create_view(callback, method, request)
        schema_class = get_class(view.schema)
        if not issubclass(schema_class, ApiAutoSchema):
            combined = type(f"Api{schema_class.__name__}", (ApiAutoSchema, schema_class), {})
            self._set_schema_to_view(view, combined())
        return view
