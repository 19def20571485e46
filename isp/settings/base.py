"""Settings for every environment, driven by environment variables (django-environ).

There is one settings world: production, the demo and the tests all load this
module; `isp.settings.test` only changes what a test run must change.

Development defaults are marked DEV-ONLY and are refused when DEBUG is off.
"""

import os
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A project-local env file written by scripts/setup.sh (the database/redis it found or started, a
# machine-local secret). Real environment variables win. ISP_ENV_FILE="" reads no file.
_env_file = os.environ.get("ISP_ENV_FILE", str(BASE_DIR / ".local" / "env"))
if _env_file:
    environ.Env.read_env(_env_file, overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# DEV-ONLY: this key is public. It is accepted only with DEBUG on.
DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105 - public on purpose
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = DEV_SECRET_KEY
elif SECRET_KEY == DEV_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured("The DEV-ONLY secret key is refused when DJANGO_DEBUG is off.")

# Tenants live at <slug>.<ISP_BASE_DOMAIN>; the base domain itself is the public (operator) site.
ISP_BASE_DOMAIN = env.str("ISP_BASE_DOMAIN", default="localhost").lower().strip(".")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[ISP_BASE_DOMAIN, f".{ISP_BASE_DOMAIN}"])

# --- Applications -------------------------------------------------------------------------
# auth, contenttypes, sessions and authtoken are in both lists on purpose: operators live in
# the public schema, each ISP's staff and portal customers in the ISP's own schema.
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Django's admin, with the tenant staff's two-factor check (isp/security/admin_site.py).
    "isp.security.admin_apps.TenantAdminConfig",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    # Failed-login lockout and staff TOTP: in both lists, like auth (users are per schema).
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "isp.security",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django.contrib.postgres",
    # Shared piece of compliance: the operators' audit trail lives in the public schema.
    "compliance",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "isp.security.admin_apps.TenantAdminConfig",
    "rest_framework.authtoken",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "compliance",
    "customers",
    "billing",
    "network",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New tenants are cloned from this schema (kept migrated by `platform_migrate`).
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
TENANT_LIMIT_SET_CALLS = True
PUBLIC_SCHEMA_URLCONF = "isp.urls_public"
ROOT_URLCONF = "isp.urls_tenant"

MIDDLEWARE = [
    "isp.middleware.RequestIdMiddleware",
    "tenants.middleware.TenantRoutingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "compliance.middleware.PIIKeyScopeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a login refused by the lockout into its response (isp/security/lockout.py).
    "axes.middleware.AxesMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "isp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "isp.wsgi.application"
ASGI_APPLICATION = "isp.asgi.application"

# --- Database -----------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/isp")}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=0))
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username + address before any password is checked.
    "isp.security.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",  # staff and operators, by username
    "customers.auth.CustomerEmailBackend",  # portal customers, by e-mail (blind index)
]

# Failed-login lockout (django-axes), for the admin login and POST /api/v1/auth/token/: after
# ISP_LOGIN_FAILURE_LIMIT failures of one username from one address, that pair is refused (429)
# for ISP_LOGIN_LOCKOUT_MINUTES. Attempts are stored in the schema of the host (users are per
# schema). The per-tenant API throttle (ISP_LOGIN_THROTTLE) limits the rate on top of this.
AXES_ENABLED = True
AXES_FAILURE_LIMIT = env.int("ISP_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = env.float("ISP_LOGIN_LOCKOUT_MINUTES", default=30.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # locked for the cool-off from the lockout
AXES_CLIENT_IP_CALLABLE = "compliance.audit.client_ip"  # REMOTE_ADDR, set by the proxy
AXES_LOCKOUT_CALLABLE = "isp.security.lockout.lockout_response"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_VERBOSE = False  # the `security` logger reports lockouts (isp/security/events.py)
AXES_SENSITIVE_PARAMETERS = ["username", "password"]

# Staff two-factor login (django-otp, TOTP): required in the tenant admin for the roles in
# tenants.roles.TWO_FACTOR_REQUIRED (owner, billing_admin); optional for the others.
OTP_TOTP_ISSUER = env.str("ISP_OTP_ISSUER", default="ISP back office")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a device's key

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG and env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- I18N / static ------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / ".local" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's token authentication, reporting a token of another tenant (isp/security/authentication.py).
        "isp.security.authentication.TenantTokenAuthentication",
        # The admin's session, once its second factor is verified where the role needs one.
        "isp.security.authentication.VerifiedSessionAuthentication",
    ],
    # Fail closed: a view that forgets to declare its access rules serves nobody.
    "DEFAULT_PERMISSION_CLASSES": ["isp.api.permissions.DeclaredRolePermission"],
    "DEFAULT_PAGINATION_CLASS": "isp.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "EXCEPTION_HANDLER": "isp.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "login": env.str("ISP_LOGIN_THROTTLE", default="10/min"),
        # Portal self-signup, per client address and tenant.
        "signup": env.str("ISP_SIGNUP_THROTTLE", default="20/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ISP back office API",
    "DESCRIPTION": "Staff and portal API of one ISP tenant (served on the tenant's host).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Documents each operation's error responses (the Error shape of isp/api/errors.py) from its
    # permission rule, authenticators, path and body; `/api/schema/` and `manage.py spectacular` agree.
    "DEFAULT_GENERATOR_CLASS": "isp.api.schema.ApiSchemaGenerator",
    # Several models have a `status` (and two share one kind/category choice set): name each set.
    "ENUM_NAME_OVERRIDES": {
        "TenantStatusEnum": "tenants.models.Tenant.Status",
        "CustomerStatusEnum": "customers.models.Customer.Status",
        "CustomerKindEnum": "customers.models.Customer.Kind",
        "PlanStatusEnum": "customers.models.Plan.Status",
        "SubscriptionStatusEnum": "customers.api.serializers.SUBSCRIPTION_STATUS_CHOICES",
        "BillingRunStatusEnum": "billing.models.BillingRun.Status",
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "InvoiceLineKindEnum": "billing.models.InvoiceLine.Kind",
        "PaymentStatusEnum": "billing.models.Payment.Status",
        "DiscountKindEnum": "billing.models.Discount.Kind",
        "BillingCategoryEnum": "billing.models.CATEGORY_CHOICES",
        "CoaRequestKindEnum": "network.models.CoaRequest.Kind",
        "DeviceKindEnum": "network.models.Device.Kind",
        "AlarmKindEnum": "network.models.Alarm.Kind",
        "AlarmStateEnum": "network.models.Alarm.State",
        "OnuStateEnum": "network.models.Onu.State",
        "ProvisioningJobStateEnum": "network.models.ProvisioningJob.State",
        "DataSubjectRequestKindEnum": "compliance.models.DataSubjectRequest.Kind",
        "DataSubjectRequestStatusEnum": "compliance.models.DataSubjectRequest.Status",
    },
}

# --- Cache --------------------------------------------------------------------------------
# Shared by every web worker, so limits such as the login throttle hold across processes.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("ISP_CACHE_URL", default=""),
        "KEY_PREFIX": "isp",
    }
}

# --- Celery -------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES["default"]["LOCATION"] = CACHES["default"]["LOCATION"] or REDIS_URL
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # Reminders and suspensions for overdue invoices, every tenant (each as of its own local day;
    # idempotent, so a repeated or late run sends nothing twice).
    "billing-dunning-daily": {"task": "billing.dunning_all_tenants", "schedule": crontab(hour=6, minute=0)},
    # Stale RADIUS sessions closed, fair-use speed applied/lifted (CoA), every tenant.
    "network-radius-housekeeping": {"task": "network.radius_housekeeping_all_tenants", "schedule": 300.0},
    # SNMP polling: every SNMP_POLL_INTERVAL (default 300 s) each tenant's devices are split into
    # chunks, one task per chunk, spread over the workers (network/tasks_snmp.py).
    "network-snmp-poll": {
        "task": "network.snmp_poll_all_tenants",
        "schedule": env.float("SNMP_POLL_INTERVAL", default=300.0),  # = SNMP_POLL_INTERVAL below
    },
    # Hourly roll-ups of interface samples, purge past retention.
    "network-snmp-retention": {"task": "network.snmp_retention_all_tenants", "schedule": crontab(minute=5)},
    # Data past the tenant's retention policy (closed RADIUS sessions, expired export archives).
    "compliance-retention-purge": {
        "task": "compliance.retention_purge_all_tenants",
        "schedule": crontab(hour=3, minute=30),
    },
    # Every audit chain recomputed, its head logged outside the database (compliance/tasks.py).
    "compliance-audit-verify": {"task": "compliance.audit_verify_all", "schedule": crontab(hour=4, minute=15)},
}

# --- RADIUS ------------------------------------------------------------------------------
# FreeRADIUS's database role (network/radius/db.py grants it the `radius` functions only).
RADIUS_DB_USER = env.str("RADIUS_DB_USER", default="isp_radius")
RADIUS_DB_PASSWORD = env.str("RADIUS_DB_PASSWORD", default="")
# CoA / Disconnect to the NAS: per-attempt timeout (s), attempts, and whether they go through
# Celery (on) or are sent by the process that made the change (off: tests, demo).
RADIUS_COA_TIMEOUT = env.float("RADIUS_COA_TIMEOUT", default=2.0)
RADIUS_COA_RETRIES = env.int("RADIUS_COA_RETRIES", default=3)
RADIUS_COA_ASYNC = env.bool("RADIUS_COA_ASYNC", default=True)

# --- SNMP polling, GPON, alarms (docs/network.md) -------------------------------------------
SNMP_POLL_INTERVAL = env.float("SNMP_POLL_INTERVAL", default=300.0)  # seconds between polls of a device
SNMP_POLL_TIMEOUT = env.float("SNMP_POLL_TIMEOUT", default=2.0)  # per request; a dead device costs this
SNMP_POLL_RETRIES = env.int("SNMP_POLL_RETRIES", default=1)
SNMP_POLL_WORKERS = env.int("SNMP_POLL_WORKERS", default=32)  # devices in flight per process
SNMP_POLL_CHUNK = env.int("SNMP_POLL_CHUNK", default=200)  # devices per Celery task
SNMP_STORE_BATCH = env.int("SNMP_STORE_BATCH", default=500)  # devices per storage transaction
SNMP_SAMPLE_RETENTION_DAYS = env.int("SNMP_SAMPLE_RETENTION_DAYS", default=7)
SNMP_ROLLUP_RETENTION_DAYS = env.int("SNMP_ROLLUP_RETENTION_DAYS", default=400)
GPON_SNMP_TIMEOUT = env.float("GPON_SNMP_TIMEOUT", default=2.0)
GPON_SNMP_RETRIES = env.int("GPON_SNMP_RETRIES", default=1)
# Alarm notifications: e-mail recipients (comma-separated) and a webhook signed with HMAC-SHA256.
NETWORK_ALARM_EMAILS = env.list("NETWORK_ALARM_EMAILS", default=[])
NETWORK_ALARM_FROM_EMAIL = env.str("NETWORK_ALARM_FROM_EMAIL", default="")
NETWORK_ALARM_WEBHOOK_URL = env.str("NETWORK_ALARM_WEBHOOK_URL", default="")
NETWORK_ALARM_WEBHOOK_SECRET = env.str("NETWORK_ALARM_WEBHOOK_SECRET", default="")
NETWORK_ALARM_WEBHOOK_TIMEOUT = env.float("NETWORK_ALARM_WEBHOOK_TIMEOUT", default=5.0)

# --- Logging ------------------------------------------------------------------------------
# Every handler masks personal data (e-mail addresses, phone numbers, IBAN-like numbers and the
# values of personal-data fields) before a record is written or mailed: isp/security/logging.py.
# Security events (lockouts, foreign tokens, second-factor failures) go to the `security` logger.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "isp.middleware.RequestIdLogFilter"},
        "pii": {"()": "isp.security.logging.PIIScrubFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id", "pii"]},
        # Django's error mails (to ADMINS, none by default), with the filter too.
        "mail_admins": {
            "class": "isp.security.logging.PIIAdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "request_id", "pii"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},  # runserver
        "django.db.backends": {"level": "WARNING"},
        "security": {"level": "INFO"},
    },
}
# Error pages and mails (DEBUG's technical page, 500 mails) hide settings, request data and
# local variables whose names are secrets or personal data.
DEFAULT_EXCEPTION_REPORTER_FILTER = "isp.security.logging.PIIExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "isp.security.logging.PIIExceptionReporter"

# --- Personal data (docs/pii.md) ---------------------------------------------------------
# Key ring, newest first: "k2:<base64 32 bytes>,k1:<base64 32 bytes>". Required; `make setup`
# generates machine-local keys into .local/env. Checked at first use and by `manage.py check`.
PII_KEYS = env.str("PII_KEYS", default="")
PII_INDEX_KEY = env.str("PII_INDEX_KEY", default="")
# The key store (subject data keys) lives outside the application database. Default: the same
# server, database "<application database>_keys".
PII_KEYSTORE_URL = env.str("PII_KEYSTORE_URL", default="")

# --- Tenant defaults ----------------------------------------------------------------------
ISP_DEFAULT_BILLING_DAY = 1
ISP_DEFAULT_PAYMENT_TERMS_DAYS = 14
ISP_DEFAULT_SUSPEND_AFTER_DAYS = 15

# --- Billing runs -------------------------------------------------------------------------
# The Celery queue billing runs are sent to (empty: Celery's default queue); their batches follow
# the queue `billing.run_start` came from. Customers per batch (one transaction per batch).
ISP_BILLING_QUEUE = env.str("ISP_BILLING_QUEUE", default="")
ISP_BILLING_BATCH_SIZE = env.int("ISP_BILLING_BATCH_SIZE", default=500)

# --- Payments -----------------------------------------------------------------------------
# The card gateway (dotted path to a class, billing.gateways.PaymentGateway). The default is the
# local sandbox, which charges nothing: set a real gateway adapter in production.
ISP_PAYMENT_GATEWAY = env.str("ISP_PAYMENT_GATEWAY", default="billing.gateways.SandboxGateway")
