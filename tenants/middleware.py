"""Host -> tenant routing. Unknown hosts get 404; a suspended tenant's hosts get 403."""

from django.core.exceptions import DisallowedHost
from django.http import JsonResponse
from django.shortcuts import render
from django_tenants.middleware.main import TenantMainMiddleware


def wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def error_response(request, *, status: int, code: str, message: str, template: str):
    if wants_json(request):
        return JsonResponse({"error": {"code": code, "message": message, "fields": {}}}, status=status)
    return render(request, template, {"code": code, "message": message}, status=status)


class TenantRoutingMiddleware(TenantMainMiddleware):
    def no_tenant_found(self, request, hostname):
        return error_response(
            request,
            status=404,
            code="unknown_host",
            message="No ISP is served at this address.",
            template="errors/404.html",
        )

    def process_request(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            return self.no_tenant_found(request, hostname=None)
        response = super().process_request(request)
        if response is not None:
            return response
        tenant = request.tenant
        if tenant.is_suspended:
            return error_response(
                request,
                status=403,
                code="tenant_suspended",
                message=f"The account of {tenant.name} is suspended. Its data is kept; contact the platform operator.",
                template="errors/tenant_suspended.html",
            )
        return None
