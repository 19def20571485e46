"""Meta-tests over the test suite itself: the blocking gates select what they must.

The suite is *collected* in a subprocess (``pytest --collect-only -p tests._collect_markers``),
which dumps every item's node id and marker names as JSON; the checks read that, plus
pyproject's pytest configuration and the gate definitions of ``scripts/run_gates.py``.
"""

from __future__ import annotations

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
# Apps that may hold business logic; one has it when it has services.py or a domain/ package.
APPS = ("tenants", "customers", "billing", "network", "compliance")
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
    return [app for app in APPS if (REPO_ROOT / app / "services.py").is_file() or (REPO_ROOT / app / "domain").is_dir()]


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
    apps = _business_logic_apps()
    assert apps, f"none of {APPS} has services.py or a domain/ package - the rule checks nothing"
    missing = []
    for app in apps:
        markers = set().union(*(set(item["markers"]) for item in collected if item["path"].startswith(f"tests/{app}/")))
        missing += [(app, marker) for marker in sorted(BLOCKING_MARKERS - markers)]
    assert not missing, (
        f"apps with business logic ({', '.join(apps)}) must have tests under tests/<app>/ selected by every "
        f"blocking marker; missing (app, marker) pairs: {missing}"
    )


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
