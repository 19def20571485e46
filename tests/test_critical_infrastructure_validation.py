"""Meta-tests over the test suite itself: the blocking gates select what they must.

The suite is *collected* in a subprocess (``pytest --collect-only -p tests._collect_markers``),
which dumps every item's node id, marker names and skip reasons as JSON; the checks read that,
plus pyproject's pytest configuration and the gate definitions of ``scripts/run_gates.py``:

- the gates select exactly the blocking markers, which are registered, with --strict-markers;
- every suite file the issues named exists and is collected, with tests in it;
- each blocking marker selects tests in billing, customers, network, compliance (and tenants);
- every test has exactly one kind marker;
- no test in a gate is skipped without a reason: a skip marker on a gate test has one, every
  ``pytest.skip()`` in the test code gives one, and ``scripts/run_gates.py`` fails a gate in which
  a test was skipped without one (tested here on a JUnit report).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

pytestmark = [pytest.mark.smoke, pytest.mark.regression_detection]

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
RUN_GATES = REPO_ROOT / "scripts" / "run_gates.py"

BLOCKING_MARKERS = frozenset(
    {
        "revenue_critical",
        "billing_core",
        "payment_flow",
        "data_safety",
        "customer_data_protection",
        "ai_safety",
        "business_logic_protection",
    }
)
OTHER_MARKERS = frozenset(
    {"integration", "customer_journey", "network_monitoring", "performance_baseline", "regression_detection"}
)
KIND_MARKERS = ("property", "behavior", "contract", "smoke")
# The apps; each must have tests under its folder(s) for every blocking marker. Compliance's
# tests live in tests/compliance/ and in the cross-cutting security suite.
APPS = ("tenants", "customers", "billing", "network", "compliance")
APP_TEST_DIRS = {app: (f"tests/{app}/",) for app in APPS} | {"compliance": ("tests/compliance/", "tests/security/")}
# The suite files the issues named (and the seed's tenant suites): each must exist and be collected.
SUITE_FILES = (
    "tests/tenants/test_isolation.py",
    "tests/tenants/test_provisioning.py",
    "tests/tenants/test_routing.py",
    "tests/customers/test_pii_dump.py",
    "tests/revenue_protection/test_critical_billing_accuracy.py",
    "tests/network_infrastructure/test_isp_network_operations.py",
    "tests/security/test_security_compliance.py",
    "tests/integration/test_end_to_end_workflows.py",
    "tests/performance/test_isp_scale_performance.py",
    "tests/test_abstract_hooks.py",
    "tests/test_critical_infrastructure_validation.py",
)
COLLECT_TIMEOUT_S = 300


def _pytest_ini() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]


def _registered_markers() -> set[str]:
    return {line.split(":", 1)[0].strip() for line in _pytest_ini().get("markers", [])}


def _markexpr_names(expr: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr)) - {"and", "or", "not"}


def _selects(expr: str, markers: set[str]) -> bool:
    return Expression.compile(expr).evaluate(lambda name, **_: name in markers)


def _load_run_gates():
    spec = importlib.util.spec_from_file_location("_run_gates_under_test", RUN_GATES)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def _business_logic_apps() -> list[str]:
    """Top-level packages holding business logic: a services.py or a domain/ package anywhere inside."""
    return sorted(
        child.name
        for child in REPO_ROOT.iterdir()
        if child.is_dir() and not child.name.startswith(".") and child.name not in ("tests", "scripts", "docs")
        if any(child.rglob("services.py")) or any(p.is_dir() for p in child.rglob("domain"))
    )


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> list[dict]:
    """Every item of the suite as {"nodeid", "path", "markers"}, from a --collect-only run."""
    out = tmp_path_factory.mktemp("collect") / "items.json"
    env = {
        key: value
        for key, value in os.environ.items()
        # the child must not rewrite the parent's kind report, nor inherit its xdist/addopts
        if key not in ("ISP_KIND_REPORT", "PYTEST_ADDOPTS") and not key.startswith("PYTEST_XDIST")
    }
    env["ISP_COLLECT_MARKERS_OUT"] = str(out)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "tests._collect_markers",
        "-p",
        "no:cacheprovider",
        "tests",
    ]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=COLLECT_TIMEOUT_S, check=False
    )
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(
            f"collecting the suite failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    items = json.loads(out.read_text(encoding="utf-8"))["items"]
    assert items, "the suite collected no tests"
    return items


def test_blocking_markers_are_registered_and_are_exactly_what_the_gates_select():
    registered = _registered_markers()
    unregistered = sorted(BLOCKING_MARKERS - registered)
    assert not unregistered, f"blocking markers not registered in pyproject's markers: {unregistered}"

    run_gates = _load_run_gates()
    steps = list(run_gates.STEPS)
    gates = [step for step in steps if step.must_select]
    assert gates, f"scripts/run_gates.py defines no gate (must_select) steps: {steps}"
    gated = set().union(*(_markexpr_names(step.markexpr) for step in gates))
    assert gated == BLOCKING_MARKERS, (
        f"the gates of scripts/run_gates.py name {sorted(gated)}; "
        f"missing {sorted(BLOCKING_MARKERS - gated)}, unexpected {sorted(gated - BLOCKING_MARKERS)}"
    )

    # Semantics, not just names: a test with one blocking marker is gated (and not left to
    # the non-gate steps); a test with no blocking marker is in no gate but in a non-gate step.
    rest = [step for step in steps if not step.must_select]
    for marker in sorted(BLOCKING_MARKERS):
        assert any(_selects(g.markexpr, {marker}) for g in gates), f"no gate selects a test marked only {marker}"
        leaked = [s.name for s in rest if _selects(s.markexpr, {marker, "behavior"})]
        assert not leaked, f"a {marker} test is also selected by non-gate step(s) {leaked}"
    plain = {"behavior", "integration"}
    assert not any(_selects(g.markexpr, plain) for g in gates), "a gate selects tests without a blocking marker"
    assert any(_selects(s.markexpr, plain) for s in rest), "no step runs tests without a blocking marker"


def test_every_app_with_business_logic_has_tests_for_every_blocking_marker(collected):
    unlisted = sorted(set(_business_logic_apps()) - set(APPS))
    assert not unlisted, f"apps with business logic (services.py or domain/) missing from APPS: {unlisted}"
    missing = []
    for app in APPS:
        dirs = APP_TEST_DIRS[app]
        markers = set().union(*(set(item["markers"]) for item in collected if item["path"].startswith(dirs)))
        missing += [(app, marker) for marker in sorted(BLOCKING_MARKERS - markers)]
    assert not missing, (
        "each blocking marker must select tests of every app (billing, customers, network, compliance, tenants); "
        f"missing (app, marker) pairs: {missing}"
    )


def test_every_suite_file_the_issues_named_exists_and_is_collected(collected):
    per_file = {}
    for item in collected:
        per_file[item["path"]] = per_file.get(item["path"], 0) + 1
    missing = [path for path in SUITE_FILES if not (REPO_ROOT / path).is_file()]
    assert not missing, f"suite files missing: {missing}"
    empty = [path for path in SUITE_FILES if not per_file.get(path)]
    assert not empty, f"suite files that collect no test (renamed tests? a module-level error?): {empty}"


def test_every_test_has_exactly_one_kind_marker(collected):
    offenders = []
    for item in collected:
        kinds = [kind for kind in KIND_MARKERS if kind in item["markers"]]
        if len(kinds) != 1:
            offenders.append(f"{item['nodeid']} -> {kinds or 'no kind'}")
    assert not offenders, (
        f"{len(offenders)} of {len(collected)} tests do not carry exactly one of {KIND_MARKERS}:\n"
        + "\n".join(offenders)
    )


def test_all_markers_are_registered_and_strict():
    expected = BLOCKING_MARKERS | OTHER_MARKERS | set(KIND_MARKERS)
    missing = sorted(expected - _registered_markers())
    assert not missing, f"markers not registered in pyproject's [tool.pytest.ini_options] markers: {missing}"
    addopts = _pytest_ini().get("addopts", "")
    addopts = shlex.split(addopts) if isinstance(addopts, str) else list(addopts)
    assert "--strict-markers" in addopts, f"--strict-markers is not in pytest's addopts: {addopts}"


# --- no test in a gate is skipped without a reason ----------------------------------------------
def _in_a_gate(markers: set[str]) -> bool:
    return bool(markers & BLOCKING_MARKERS)


def test_no_gate_test_carries_a_skip_marker_without_a_reason(collected):
    offenders = [
        f"{item['nodeid']} -> {item['skips']}"
        for item in collected
        if _in_a_gate(set(item["markers"])) and any(not reason.strip() for reason in item["skips"])
    ]
    assert not offenders, "gate tests with a skip/skipif/xfail marker that gives no reason:\n" + "\n".join(offenders)


def _skips_without_a_reason(source: str) -> list[int]:
    """Line numbers of pytest.skip()/pytest.xfail() calls without a reason, and of
    pytest.mark.skip without reason=."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func = node.func
        is_skip_call = func.attr in ("skip", "xfail") and isinstance(func.value, ast.Name) and func.value.id == "pytest"
        is_skip_mark = func.attr == "skip" and isinstance(func.value, ast.Attribute) and func.value.attr == "mark"
        if not (is_skip_call or is_skip_mark):
            continue
        given = [k.value for k in node.keywords if k.arg in ("reason", "msg")]
        reason = node.args[0] if node.args else (given[0] if given else None)
        if reason is None or (isinstance(reason, ast.Constant) and not str(reason.value).strip()):
            lines.append(node.lineno)
    return lines


def test_every_skip_in_the_test_code_gives_its_reason():
    offenders = []
    for path in sorted((REPO_ROOT / "tests").rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        offenders += [f"{path.relative_to(REPO_ROOT)}:{line}" for line in _skips_without_a_reason(path.read_text())]
    assert not offenders, f"pytest.skip()/xfail()/mark.skip without a reason: {offenders}"


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("pytest.skip()", True),
        ("pytest.skip('')", True),
        ("pytest.mark.skip()", True),
        ("pytest.xfail()", True),
        ("pytest.skip('FreeRADIUS not installed')", False),
        ("pytest.skip(reason='no ss')", False),
        ("pytest.mark.skip(reason='flaky upstream, issue 12')", False),
    ],
)
def test_the_skip_rule_bites(source, flagged):
    assert bool(_skips_without_a_reason(source)) is flagged


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.a" name="test_ok"/>
<testcase classname="tests.a" name="test_reasoned">
<skipped type="pytest.skip" message="FreeRADIUS not installed"/></testcase>
<testcase classname="tests.a" name="test_bare"><skipped type="pytest.skip" message="{bare}"/></testcase>
</testsuite></testsuites>"""


@pytest.mark.parametrize("bare", ["", "unconditional skip", "Skipped"])
def test_run_gates_fails_a_gate_in_which_a_test_was_skipped_without_a_reason(tmp_path, bare):
    run_gates = _load_run_gates()
    junit = tmp_path / "gate.xml"
    junit.write_text(JUNIT.format(bare=bare), encoding="utf-8")
    gate = next(step for step in run_gates.STEPS if step.must_select)
    rest = next(step for step in run_gates.STEPS if not step.must_select)

    outcome = run_gates.Outcome(gate, returncode=0)
    run_gates.parse_junit(junit, outcome)
    assert (outcome.passed, outcome.skipped) == (1, 2)
    assert outcome.unexplained_skips == ["tests.a::test_bare"]
    assert not outcome.ok
    assert "skipped without a reason" in outcome.result

    # outside the gates a bare skip is reported, not fatal
    outcome = run_gates.Outcome(rest, returncode=0)
    run_gates.parse_junit(junit, outcome)
    assert outcome.ok

    # and a gate whose skips all give a reason passes
    junit.write_text(JUNIT.format(bare="needs chromium (make setup)"), encoding="utf-8")
    outcome = run_gates.Outcome(gate, returncode=0)
    run_gates.parse_junit(junit, outcome)
    assert outcome.ok
