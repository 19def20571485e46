"""ai_safety: production settings cannot run with the dev secret, and DEBUG is off unless asked for."""

import os
import subprocess
import sys

import pytest

from tests.code_safety import REPO

pytestmark = [pytest.mark.ai_safety, pytest.mark.behavior]


def load_settings(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ISP_"))}
    clean["ISP_ENV_FILE"] = ""  # not the checkout's .local/env: only what this test passes
    clean.update(env)
    code = "import isp.settings.base as s; print('DEBUG', s.DEBUG, 'SECRET_IS_DEV', s.SECRET_KEY == s.DEV_SECRET_KEY)"
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60)


def test_without_a_secret_and_without_debug_the_settings_refuse_to_load():
    result = load_settings()
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_the_dev_secret_is_refused_when_debug_is_off():
    result = load_settings(DJANGO_SECRET_KEY="dev-insecure-secret-key-do-not-use-in-production")
    assert result.returncode != 0
    assert "DEV-ONLY secret key is refused" in result.stderr


def test_debug_is_off_by_default_and_the_dev_secret_only_comes_with_debug():
    assert "DEBUG False SECRET_IS_DEV False" in load_settings(DJANGO_SECRET_KEY="s" * 50).stdout
    assert "DEBUG True SECRET_IS_DEV True" in load_settings(DJANGO_DEBUG="1").stdout


def test_no_settings_module_hard_codes_debug_on():
    for path in (REPO / "isp" / "settings").glob("*.py"):
        assert "DEBUG = True" not in path.read_text(), path
