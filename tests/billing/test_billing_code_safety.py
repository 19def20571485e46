"""ai_safety: the billing app has none of the forbidden patterns (SQL by string formatting,
shell=True, eval/exec, unpickling, csrf_exempt). Billing writes with COPY and composed
identifiers; this keeps it that way."""

import pytest

from tests.code_safety import check_app

pytestmark = [pytest.mark.ai_safety, pytest.mark.contract]


def test_no_forbidden_patterns_in_the_billing_source():
    findings = check_app("billing")
    assert not findings, "\n".join(map(str, findings))


def test_money_never_goes_through_float_in_the_billing_source():
    """`float(` on money is how cents get lost; billing code never calls it (benchmarks, which
    compute timings and rates, not money, are exempt)."""
    import ast

    from tests.code_safety import REPO, python_files

    offenders = []
    for path in python_files("billing"):
        if path.name.startswith("bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders
