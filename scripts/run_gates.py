#!/usr/bin/env python3
"""Run the test suite as ordered quality gates (the entry point of ``make test``).

Steps, in order; the run stops at the first step that fails:

1. ``revenue`` gate: tests marked revenue_critical, billing_core or payment_flow.
2. ``data`` gate: tests marked data_safety, customer_data_protection, ai_safety
   or business_logic_protection.
3. ``rest``: every test not selected by either gate.

A step fails when pytest exits non-zero, when a *gate* selects no tests
(pytest exit code 5), or when a test in a gate was skipped without a reason (a bare
``pytest.skip()`` or ``@pytest.mark.skip``). ``rest`` selecting nothing is reported but allowed.

Each step writes ``test-artifacts/<step>.xml`` (JUnit XML), which is parsed for
the selected / passed / failed / skipped / error counts. The step also sets
``ISP_KIND_REPORT=test-artifacts/kinds-<step>.json``; if conftest writes that
file (see ``tests/kind_report.py``) the per-kind shares are printed too.

The run ends with a table and a pytest-style line for CI, e.g.
``gates: 120 passed, 0 failed, 3 skipped`` (failed includes errors).
Exit status is 0 only if every step that was asked for passed.

Usage::

    scripts/run_gates.py [--only revenue|data|rest] [--list] [-- PYTEST_ARGS...]

pytest gets ``--ds=isp.settings.test`` unless DJANGO_SETTINGS_MODULE is set,
or ISP_GATES_NO_DS=1 (for self-tests of this script outside Django).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DS = "isp.settings.test"
ARTIFACTS = Path("test-artifacts")
NO_TESTS_COLLECTED = 5
# What pytest's JUnit report says for a skip that gave no reason.
BARE_SKIP_MESSAGES = frozenset({"", "skipped", "skipped:", "unconditional skip"})

REVENUE_MARKERS = ("revenue_critical", "billing_core", "payment_flow")
DATA_MARKERS = ("data_safety", "customer_data_protection", "ai_safety", "business_logic_protection")


@dataclass(frozen=True)
class Step:
    name: str
    markexpr: str
    must_select: bool  # gates must select at least one test


@dataclass
class Outcome:
    step: Step
    returncode: int
    selected: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    unexplained_skips: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        if self.returncode == NO_TESTS_COLLECTED or self.selected == 0:
            return not self.step.must_select and self.returncode in (0, NO_TESTS_COLLECTED)
        if self.step.must_select and self.unexplained_skips:
            return False
        return self.returncode == 0

    @property
    def result(self) -> str:
        if self.selected == 0 and self.returncode in (0, NO_TESTS_COLLECTED):
            return "EMPTY (ok)" if self.ok else "FAIL (no tests)"
        if self.returncode == 0 and not self.ok:
            return f"FAIL ({len(self.unexplained_skips)} skipped without a reason)"
        return "PASS" if self.ok else f"FAIL (exit {self.returncode})"


def _any_of(markers: tuple[str, ...]) -> str:
    return " or ".join(markers)


STEPS: tuple[Step, ...] = (
    Step("revenue", _any_of(REVENUE_MARKERS), must_select=True),
    Step("data", _any_of(DATA_MARKERS), must_select=True),
    Step("rest", f"not ({_any_of(REVENUE_MARKERS + DATA_MARKERS)})", must_select=False),
)


def pytest_command(step: Step, junit: Path, extra: list[str]) -> list[str]:
    """Build the pytest command line for one step."""
    cmd = [sys.executable, "-m", "pytest", "-m", step.markexpr, f"--junitxml={junit}"]
    if not os.environ.get("DJANGO_SETTINGS_MODULE") and os.environ.get("ISP_GATES_NO_DS") != "1":
        cmd.append(f"--ds={DEFAULT_DS}")
    return cmd + extra


def parse_junit(path: Path, outcome: Outcome) -> None:
    """Fill the outcome's counts from a JUnit XML file (one class per testcase)."""
    if not path.is_file():
        return
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - our own pytest JUnit output
    except ET.ParseError as exc:
        print(f"run_gates: cannot parse {path}: {exc}", file=sys.stderr)
        return
    for case in root.iter("testcase"):
        outcome.selected += 1
        if case.find("failure") is not None:
            outcome.failed += 1
        elif case.find("error") is not None:
            outcome.errors += 1
        elif (skipped := case.find("skipped")) is not None:
            outcome.skipped += 1
            if skipped.get("message", "").strip().lower() in BARE_SKIP_MESSAGES:
                outcome.unexplained_skips.append(f"{case.get('classname')}::{case.get('name')}")
        else:
            outcome.passed += 1


def read_kinds(path: Path) -> Counter[str]:
    """Read a {kind: count} JSON file written by tests/kind_report.py; empty if absent."""
    if not path.is_file():
        return Counter()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Counter({str(k): int(v) for k, v in data.items()})
    except (ValueError, AttributeError, TypeError) as exc:
        print(f"run_gates: cannot read {path}: {exc}", file=sys.stderr)
        return Counter()


def run_step(step: Step, extra: list[str], kinds: Counter[str]) -> Outcome:
    """Run pytest for one step, streaming its output; add its kind counts to `kinds`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    junit = ARTIFACTS / f"{step.name}.xml"
    kinds_file = ARTIFACTS / f"kinds-{step.name}.json"
    for stale in (junit, kinds_file):
        stale.unlink(missing_ok=True)

    cmd = pytest_command(step, junit, extra)
    print(f"\n=== step {step.name}: -m {step.markexpr!r}", flush=True)
    env = {**os.environ, "ISP_KIND_REPORT": str(kinds_file.resolve())}
    returncode = subprocess.run(cmd, env=env, check=False).returncode

    outcome = Outcome(step, returncode)
    parse_junit(junit, outcome)
    for name in outcome.unexplained_skips:
        print(f"run_gates: {step.name}: skipped without a reason: {name}", file=sys.stderr)
    kinds.update(read_kinds(kinds_file))
    return outcome


def format_table(outcomes: list[Outcome], steps: list[Step]) -> str:
    """Render the per-step table; steps that did not run show as NOT RUN."""
    rows = [f"{'gate':<8}{'selected':>10}{'passed':>8}{'failed':>8}{'skipped':>9}{'errors':>8}  result"]
    done = {o.step.name: o for o in outcomes}
    for step in steps:
        o = done.get(step.name)
        if o is None:
            rows.append(f"{step.name:<8}{'-':>10}{'-':>8}{'-':>8}{'-':>9}{'-':>8}  NOT RUN")
        else:
            rows.append(
                f"{step.name:<8}{o.selected:>10}{o.passed:>8}{o.failed:>8}{o.skipped:>9}{o.errors:>8}  {o.result}"
            )
    return "\n".join(rows)


def format_kinds(kinds: Counter[str]) -> str | None:
    """'test kinds: behavior 60% (72), ...' sorted by count, or None if nothing counted."""
    total = sum(kinds.values())
    if total == 0:
        return None
    ordered = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [f"{kind} {round(100 * n / total)}% ({n})" for kind, n in ordered]
    return "test kinds: " + ", ".join(parts)


def format_summary(outcomes: list[Outcome]) -> str:
    """Pytest-style summary line for CI; errors count as failed."""
    passed = sum(o.passed for o in outcomes)
    failed = sum(o.failed + o.errors for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    return f"gates: {passed} passed, {failed} failed, {skipped} skipped"


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split argv at the first '--' into (our args, pytest args)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run pytest as ordered quality gates: revenue, data, then the rest.",
        epilog="Arguments after '--' are passed to pytest.",
    )
    parser.add_argument("--only", choices=[s.name for s in STEPS], help="run a single step")
    parser.add_argument("--list", action="store_true", help="print each step's -m expression and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    own, extra = split_argv(sys.argv[1:] if argv is None else argv)
    args = parse_args(own)
    steps = [s for s in STEPS if args.only in (None, s.name)]

    if args.list:
        for step in steps:
            print(f"{step.name:<8} -m {step.markexpr!r}")
        return 0

    outcomes: list[Outcome] = []
    kinds: Counter[str] = Counter()
    interrupted = False
    try:
        for step in steps:
            outcome = run_step(step, extra, kinds)
            outcomes.append(outcome)
            if not outcome.ok:
                break
    except KeyboardInterrupt:
        interrupted = True

    print()
    print(format_table(outcomes, steps))
    kinds_line = format_kinds(kinds)
    if kinds_line:
        print(kinds_line)
    all_ok = not interrupted and len(outcomes) == len(steps) and all(o.ok for o in outcomes)
    failed_at = next((o.step.name for o in outcomes if not o.ok), None)
    if interrupted:
        print("result: INTERRUPTED")
    elif failed_at:
        print(f"result: FAIL at step {failed_at}")
    else:
        print("result: PASS")
    print(format_summary(outcomes), flush=True)
    if interrupted:
        return 130
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
