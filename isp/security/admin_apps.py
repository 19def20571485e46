from django.contrib.admin.apps import AdminConfig


class TenantAdminConfig(AdminConfig):
    """Django's admin app, whose default site (`admin.site`, served on tenant hosts) asks the
    roles that require it for their second factor (isp/security/admin_site.py)."""

    default_site = "isp.security.admin_site.TenantAdminSite"
