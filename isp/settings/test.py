"""Test settings: the production settings with what a test run must change, nothing more."""

import base64
import os
import secrets

# Throwaway keys per test run; never the DEV-ONLY key, so tests run with DEBUG off. They are put
# in the environment so that processes the tests start (a Celery worker) share them.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-run-" + secrets.token_urlsafe(32))
os.environ.setdefault("PII_KEYS", "t1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
os.environ.setdefault("PII_INDEX_KEY", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())

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
# CoA / Disconnect sent by the process that made the change (no worker in most tests), with
# short timeouts: the NAS simulator answers on loopback at once.
RADIUS_COA_ASYNC = False
RADIUS_COA_TIMEOUT = 0.5
