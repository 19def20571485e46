"""ai_safety: the customers app has none of the forbidden patterns of tests/code_safety.py (the
compliance app it relies on is scanned by tests/compliance/test_compliance_code_safety.py)."""

import pytest

from tests.code_safety import REPO, check_app, python_files

pytestmark = [pytest.mark.ai_safety, pytest.mark.contract]


def test_no_forbidden_patterns_in_the_source():
    findings = check_app("customers")
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize(
    ("app", "module"),
    [
        ("customers", "customers/services.py"),
        ("customers", "customers/domain/lifecycle.py"),
        ("compliance", "compliance/audit.py"),
        ("compliance", "compliance/pii/fields.py"),
    ],
)
def test_the_scan_covers_the_modules_that_write_and_encrypt(app, module):
    scanned = {path.relative_to(REPO).as_posix() for path in python_files(app)}
    assert module in scanned
    assert not any("/migrations/" in path for path in scanned)
