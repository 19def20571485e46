"""Test settings: the production settings with what a test run must change, nothing more."""

import os
import secrets

# A throwaway key per test process; never the DEV-ONLY key, so tests run with DEBUG off.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-run-" + secrets.token_urlsafe(32))

from .base import *  # noqa: E402,F403
from .base import DATABASES, env  # noqa: E402

DEBUG = False
ISP_BASE_DOMAIN = "localhost"
ALLOWED_HOSTS = ["localhost", ".localhost"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Fast hashing: tests create many users. Production keeps Django's default (PBKDF2).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES["default"]["TEST"] = {"NAME": env.str("ISP_TEST_DATABASE", default="test_isp")}
# Each test starts with a clean cache (tests/conftest.py clears it); a per-process memory cache
# keeps that from flushing a Redis that other processes share. Celery tests use the real Redis.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
