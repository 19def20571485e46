"""ai_safety: the tenants app (and the project package it relies on) has none of the forbidden patterns."""

import pytest

from tests.code_safety import check_app, check_source

pytestmark = [pytest.mark.ai_safety, pytest.mark.contract]


@pytest.mark.parametrize("app", ["tenants", "isp"])
def test_no_forbidden_patterns_in_the_source(app):
    findings = check_app(app)
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize(
    ("snippet", "rule"),
    [
        ('cursor.execute(f"DROP SCHEMA {name}")', "SQL built by string formatting"),
        ('cursor.execute("SELECT * FROM t WHERE id = %s" % user_id)', "SQL built by string formatting"),
        ('cursor.execute("SELECT " + column + " FROM t")', "SQL built by string formatting"),
        ('Model.objects.raw("SELECT * FROM {}".format(table))', "SQL built by string formatting"),
        ("eval(request.GET['q'])", "eval() call"),
        ("subprocess.run(cmd, shell=True)", "subprocess with shell=True"),
        ("pickle.loads(blob)", "unpickling"),
        ("from django.views.decorators.csrf import csrf_exempt", "csrf_exempt"),
    ],
)
def test_the_checker_catches_each_forbidden_pattern(snippet, rule):
    findings = check_source(snippet)
    assert [f.rule for f in findings if rule in f.rule], f"not caught: {snippet}"


@pytest.mark.parametrize(
    "snippet",
    [
        'cursor.execute("SELECT * FROM t WHERE id = %s", [user_id])',
        'cursor.execute(sql.SQL("DROP SCHEMA {}").format(sql.Identifier(name)))',
        "subprocess.run(['ls'], shell=False)",
        "json.loads(blob)",
    ],
)
def test_the_checker_accepts_the_safe_forms(snippet):
    assert check_source(snippet) == []
