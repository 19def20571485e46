"""ai_safety: the whole project's source, committed files and settings against the patterns that
must never ship, with bandit as a second opinion.

The per-app tests (tests/<app>/test_*code_safety.py) run tests/code_safety.py over their app and
show that its original rules bite; this module scans everything they do not cover, shows that the
rules added since bite too, scans the committed files for credentials, checks the production
settings and the Docker files, and runs bandit with the committed bandit.yaml.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests import code_safety
from tests.code_safety import (
    REPO,
    check_app,
    check_settings_source,
    check_source,
    scan_repository_for_secrets,
    scan_text_for_secrets,
)

pytestmark = [pytest.mark.ai_safety]

# Scanned by their own app's test (tests/<app>/test_*code_safety.py).
APPS_SCANNED_ELSEWHERE = {"tenants", "isp", "customers", "compliance", "billing", "network"}
# Scanned here. `tests` is not: test code builds SQL for its own throwaway schemas on purpose.
SCANNED_HERE = ("scripts",)
NOT_SOURCE = {"tests", "docs", "docker", ".venv", ".local", ".git", "test-artifacts", "bench-results"}
BANDIT_TARGETS = ["isp", "tenants", "customers", "billing", "network", "compliance", "scripts", "manage.py"]


def _top_level_python_dirs() -> set[str]:
    return {
        child.name
        for child in REPO.iterdir()
        if child.is_dir() and child.name not in NOT_SOURCE and not child.name.startswith(".")
        if any(child.rglob("*.py"))
    }


# --- the whole source is scanned --------------------------------------------------------------------
@pytest.mark.contract
def test_every_python_package_of_the_project_is_scanned_by_some_code_safety_test():
    unscanned = _top_level_python_dirs() - APPS_SCANNED_ELSEWHERE - set(SCANNED_HERE)
    assert not unscanned, f"add these to a code-safety scan: {sorted(unscanned)}"


@pytest.mark.contract
def test_no_forbidden_patterns_in_the_scripts_and_manage_py():
    findings = [f for app in SCANNED_HERE for f in check_app(app)]
    findings += check_source((REPO / "manage.py").read_text(), "manage.py")
    assert not findings, "\n".join(map(str, findings))


# --- the rules added to tests/code_safety.py bite ------------------------------------------------------
@pytest.mark.contract
@pytest.mark.parametrize(
    ("snippet", "rule"),
    [
        ('q = f"SELECT * FROM {table}"\ncursor.execute(q)', "through `q`"),
        ('def f(c, t):\n    q = "DELETE FROM %s" % t\n    c.execute(q, [])', "through `q`"),
        ('q = "SELECT 1"\nq += " WHERE id = " + user_id\ncursor.execute(q)', "through `q`"),
        ("w = f'id = {x}'\nModel.objects.extra(w)", "through `w`"),
        ("yaml.load(body)", "unsafe YAML load"),
        ("yaml.load(body, Loader=yaml.Loader)", "unsafe YAML load"),
        ("yaml.unsafe_load(body)", "unsafe YAML load"),
        ("from pickle import loads\nloads(blob)", "unpickling with pickle.loads"),
        ("marshal.loads(blob)", "unpickling with marshal.loads()"),
        ("shelve.open(path)", "unpickling with shelve.open()"),
        ("os.system('rm -rf ' + path)", "os.system()"),
        ("os.popen(cmd)", "os.popen()"),
        ("from django.views.decorators import csrf\nview = csrf.csrf_exempt(view)", "csrf_exempt"),
    ],
)
def test_the_checker_catches_each_added_pattern(snippet, rule):
    findings = check_source(snippet)
    assert [f for f in findings if rule in f.rule], f"not caught: {snippet!r} -> {findings}"


@pytest.mark.contract
@pytest.mark.parametrize(
    "snippet",
    [
        'q = "SELECT * FROM t WHERE id = %s"\ncursor.execute(q, [user_id])',
        'q = sql.SQL("SELECT * FROM {}").format(sql.Identifier(name))\ncursor.execute(q)',
        'name = f"report-{day}.csv"\ncursor.execute("SELECT 1")',
        "yaml.safe_load(body)",
        "yaml.load(body, Loader=yaml.SafeLoader)",
        "json.loads(blob)",
        "subprocess.run(['git', 'status'], check=True)",
    ],
)
def test_the_checker_accepts_the_safe_forms_of_the_added_patterns(snippet):
    assert check_source(snippet) == []


@pytest.mark.contract
def test_unpickling_is_allowed_only_in_a_declared_trusted_module(monkeypatch):
    snippet = "import pickle\npickle.loads(blob)"
    assert check_source(snippet, "cache/trusted.py")
    monkeypatch.setitem(code_safety.UNPICKLE_TRUSTED, "cache/trusted.py", "signed blobs we wrote ourselves")
    assert check_source(snippet, "cache/trusted.py") == []
    assert check_source(snippet, "cache/other.py")


@pytest.mark.contract
def test_csrf_exempt_is_allowed_only_in_a_declared_module(monkeypatch):
    snippet = "from django.views.decorators.csrf import csrf_exempt\n@csrf_exempt\ndef hook(request): ..."
    assert check_source(snippet, "billing/webhooks.py")
    monkeypatch.setitem(code_safety.CSRF_EXEMPT_ALLOWED, "billing/webhooks.py", "signed gateway webhook")
    assert check_source(snippet, "billing/webhooks.py") == []


# --- settings and deployment files ---------------------------------------------------------------------
@pytest.mark.contract
def test_the_production_settings_read_debug_secret_and_hosts_from_the_environment():
    modules = [p for p in (REPO / "isp" / "settings").glob("*.py") if p.name != "test.py"]
    assert any(p.name == "base.py" for p in modules)
    findings = [f for p in modules for f in check_settings_source(p.read_text(), p.name)]
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.contract
@pytest.mark.parametrize(
    ("snippet", "rule"),
    [
        ("DEBUG = True", "DEBUG"),
        ("DEBUG = os.environ.get('DJANGO_DEBUG', '1') == '1'", "DEBUG"),
        ("DEBUG = env.bool('DJANGO_DEBUG', default=True)", "DEBUG"),
        ("SECRET_KEY = 'django-insecure-abc'", "SECRET_KEY hard-coded"),
        ("ALLOWED_HOSTS = ['*']", "any host"),
    ],
)
def test_the_settings_checker_catches_each_unsafe_setting(snippet, rule):
    assert [f for f in check_settings_source(snippet) if rule in f.rule], snippet


@pytest.mark.contract
def test_the_settings_checker_accepts_the_environment_driven_forms():
    source = "DEBUG = env.bool('DJANGO_DEBUG', default=False)\nSECRET_KEY = env.str('DJANGO_SECRET_KEY', default='')\n"
    assert check_settings_source(source + "ALLOWED_HOSTS = env.list('DJANGO_ALLOWED_HOSTS', default=[])") == []


@pytest.mark.contract
def test_the_docker_image_and_stack_never_turn_debug_on_or_bake_in_a_secret():
    import re

    for path in (REPO / "docker").iterdir():
        if not path.is_file():
            continue
        text = path.read_text()
        assert not re.search(r"DJANGO_DEBUG\s*[:=]\s*['\"]?(1|true|yes|on)\b", text, re.I), path
        assert not re.search(r"^\s*ENV\s+.*DJANGO_SECRET_KEY", text, re.M), path
        assert not re.search(r"DJANGO_SECRET_KEY\s*:\s*['\"]?[^$\s'\"]", text), path


# --- credentials in the repository ------------------------------------------------------------------------
@pytest.mark.contract
def test_no_credentials_are_committed():
    findings = scan_repository_for_secrets()
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.contract
@pytest.mark.parametrize(
    ("text", "path", "rule"),
    [
        # (split so that this file does not itself hold what it looks for)
        ("-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE...", "deploy/id_rsa", "private key"),
        ("-----BEGIN OPENSSH " + "PRIVATE KEY-----", "keys.txt", "private key"),
        ("AWS_ACCESS_KEY_ID=AKIA" + "IOSFODNN7EXAMPLE", "docker/.env.example", "AWS access key id"),
        ("aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "cfg.ini", "AWS secret access key"),
        ('DB_PASSWORD = "hunter2-prod"', "isp/settings/base.py", "credential literal"),
        ('client.login(password="s3cr3t-live")', "network/snmp/session.py", "credential literal"),
        ("smtp:\n  password: 'mail-pass-42'", "docker/compose.yaml", "credential literal"),
    ],
)
def test_the_credential_scan_catches_each_kind(text, path, rule):
    assert [f for f in scan_text_for_secrets(text, path) if f.rule == rule], text


@pytest.mark.contract
@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('DEV_SECRET_KEY = "dev-insecure-key"  # noqa: S105 - DEV-ONLY, public on purpose', "isp/settings/base.py"),
        ('password = factory.django.Password("staff-password-0")', "tests/factories.py"),
        ("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it}", "docker/compose.yaml"),
        ('password = env.str("RADIUS_DB_PASSWORD", default="")', "isp/settings/base.py"),
    ],
)
def test_the_credential_scan_accepts_marked_dev_defaults_tests_and_variables(text, path):
    assert scan_text_for_secrets(text, path) == []


# --- bandit ----------------------------------------------------------------------------------------------
def _bandit_config() -> dict:
    return yaml.safe_load((REPO / "bandit.yaml").read_text())


def _bandit_results() -> list[dict]:
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "bandit", "-c", "bandit.yaml", "-r", *BANDIT_TARGETS, "-f", "json", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert not report["errors"], report["errors"]
    return report["results"]


def _accepted(finding: dict, accepted: list[dict]) -> dict | None:
    path = finding["filename"].removeprefix("./")
    line = (REPO / path).read_text().splitlines()[finding["line_number"] - 1]
    for rule in accepted:
        if rule["test"] == finding["test_id"] and rule["path"] == path and rule["match"] in line:
            return rule
    return None


@pytest.mark.contract
def test_every_accepted_bandit_finding_has_a_reason():
    for rule in _bandit_config()["accepted"]:
        assert set(rule) == {"test", "path", "match", "reason"}, rule
        assert len(rule["reason"]) >= 10, rule


@pytest.mark.contract
def test_bandit_finds_nothing_that_the_committed_config_does_not_justify():
    accepted = _bandit_config()["accepted"]
    results = _bandit_results()
    unexplained = [
        f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}"
        for r in results
        if _accepted(r, accepted) is None
    ]
    assert not unexplained, "bandit findings without a justification in bandit.yaml:\n" + "\n".join(unexplained)
    used = {id(_accepted(r, accepted)) for r in results}
    stale = [f"{rule['test']} {rule['path']}" for rule in accepted if id(rule) not in used]
    assert not stale, f"bandit.yaml accepts findings that no longer exist (remove them): {stale}"


@pytest.mark.contract
def test_bandit_with_the_committed_config_flags_a_bad_snippet(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n")
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "bandit", "-c", str(REPO / "bandit.yaml"), str(bad), "-f", "json", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    tests = {r["test_id"] for r in json.loads(result.stdout)["results"]}
    assert "B602" in tests  # subprocess with shell=True
