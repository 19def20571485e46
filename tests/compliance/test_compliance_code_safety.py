"""ai_safety: the compliance app (audit trail, PII encryption, data-subject rights) has none of the
forbidden patterns of tests/code_safety.py, and nothing in the project writes to the audit table
behind the chain's back."""

import ast

import pytest

from tests.code_safety import REPO, check_app, python_files

pytestmark = [pytest.mark.ai_safety, pytest.mark.contract]

SOURCE_APPS = ("isp", "tenants", "customers", "billing", "network", "compliance", "scripts")


def test_no_forbidden_patterns_in_the_compliance_source():
    findings = check_app("compliance")
    assert not findings, "\n".join(map(str, findings))


def _writes_to_the_audit_table(text: str) -> bool:
    lowered = " ".join(text.lower().split())
    return any(
        f"{verb} compliance_auditevent" in lowered
        for verb in ("update", "delete from", "truncate", "truncate table", "insert into")
    )


def test_no_code_writes_the_audit_table_with_sql_of_its_own():
    """Audit records are written through compliance.audit (ORM inserts, sealed by the chain's
    triggers) and leave only through the checkpointed retention purge; SQL of its own that
    inserts, updates or deletes them would bypass the chain (migrations, which install the
    triggers, are not application code)."""
    offenders = []
    for app in SOURCE_APPS:
        for path in python_files(app):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and _writes_to_the_audit_table(
                    node.value
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE compliance_auditevent SET hash = ''",
        "DELETE FROM compliance_auditevent WHERE id = 1",
        "truncate   compliance_auditevent",
        "INSERT INTO compliance_auditevent (action) VALUES ('x')",
    ],
)
def test_the_audit_table_rule_catches_each_write(sql):
    assert _writes_to_the_audit_table(sql)
    assert not _writes_to_the_audit_table("SELECT * FROM compliance_auditevent")
