#!/usr/bin/env python3
"""Write ``<dir>/report.md`` from the benchmark outputs that ``make bench`` keeps in ``<dir>``.

``make bench`` keeps each benchmark command's output in ``<dir>/<command>.txt``. Every command
prints, as its last line, one JSON object of its figures (``{"bench": "billing", ...}``). The
report has, per benchmark, a table of those figures and a chart: a Mermaid ``xychart-beta`` bar
chart (rendered by GitHub and GitLab, nothing to install) comparing the measured rate with its
same-run baseline and, where the project has set one, the bar. The bars come from the docs
(``BARS`` below); a ratio bar is reported in the table, met or not.

A command that exited with an error is listed in ``<dir>/failed.txt`` (the Makefile writes it);
the report says so, and says when an output has no JSON line (no figures to report).

Usage::

    scripts/bench_report.py <dir>

Exit status: 0 when every output has its figures and no command failed, 1 otherwise (the report
is written either way), 2 on a usage error. Standard library only: no Django, no database.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPORT = "report.md"
FAILED = "failed.txt"
# The Makefile's order; outputs of other commands follow, by name.
ORDER = ("bench_tenants", "bench_pii", "bench_billing", "bench_radius", "bench_provisioning", "bench_polling")


@dataclass(frozen=True)
class Bar:
    """A documented bar: `key` of the figures must be >= `at` (or <= with `most=True`)."""

    key: str
    at: float
    source: str
    most: bool = False

    def met(self, figures: dict) -> bool | None:
        value = figures.get(self.key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        return value <= self.at if self.most else value >= self.at

    @property
    def text(self) -> str:
        return f"{'<=' if self.most else '>='} {_number(self.at)}"


@dataclass(frozen=True)
class Chart:
    """What the chart of one benchmark shows: (label, value of the figures) for the measured rate,
    then its same-run baseline, then any other series (the bar last, where there is one)."""

    title: str
    unit: str
    series: tuple[tuple[str, Callable[[dict], float]], ...]


def _key(name: str) -> Callable[[dict], float]:
    return lambda figures: figures[name]


def _per_s(name: str) -> Callable[[dict], float]:
    """A rate from a duration in seconds."""
    return lambda figures: 1 / figures[name]


def _bar(bench: str, key: str) -> Callable[[dict], float]:
    """The documented bar of a figure (BARS), drawn beside it."""
    (bar,) = (bar for bar in BARS[bench] if bar.key == key)
    return lambda _figures: bar.at


# The bars the project set, with where they are written (checked against the figures in the table).
BARS: dict[str, tuple[Bar, ...]] = {
    "tenant_create": (Bar("clone_s_p90", 1.0, "README.md, Benchmarks (tenants/bench.py TARGET_S)", most=True),),
    "billing": (
        Bar("invoices_per_s", 5_000, "docs/billing.md, 9. Performance"),
        Bar("ratio", 0.25, "docs/billing.md, 9. Performance"),
        Bar("mismatches", 0, "docs/billing.md (0 mismatches)", most=True),
    ),
    "radius": (
        Bar("auth_per_s", 3_000, "docs/radius.md, Benchmark"),
        Bar("ratio", 0.25, "docs/radius.md, Benchmark"),
        Bar("auth_success_rate", 0.999, "docs/radius.md, Benchmark"),
        Bar("auth_p99_ms", 100, "docs/radius.md, Benchmark", most=True),
        Bar("burst_lost", 0, "docs/radius.md, Benchmark", most=True),
        Bar("acct_new_sessions_per_s", 1_500, "docs/radius.md, Benchmark"),
    ),
    "polling": (
        Bar("polls_per_s", 2_000, "docs/network.md, Benchmarks"),
        Bar("ratio", 0.25, "docs/network.md, Benchmarks"),
    ),
}

CHARTS: dict[str, Chart] = {
    "tenant_create": Chart(
        title="Tenant provisioning",
        unit="tenants/s",
        series=(
            ("clone, median", _per_s("clone_s_per_tenant_median")),
            ("migrate, median", _per_s("migrate_schemas_s_median")),
            ("clone, p90", _per_s("clone_s_p90")),
            ("bar (p90)", _per_s("target_s")),
        ),
    ),
    "pii": Chart(
        title="Listing customers",
        unit="customers/s",
        series=(
            ("with personal data", _key("list_with_pii_per_s")),
            ("without personal data", _key("list_without_pii_per_s")),
        ),
    ),
    "billing": Chart(
        title="Billing run",
        unit="invoices/s",
        series=(
            ("billing run", _key("invoices_per_s")),
            ("baseline COPY", _key("baseline_invoices_per_s")),
            ("bar", _bar("billing", "invoices_per_s")),
        ),
    ),
    "radius": Chart(
        title="RADIUS authentication",
        unit="auth/s",
        series=(
            ("FreeRADIUS sql", _key("auth_per_s")),
            ("baseline files", _key("baseline_auth_per_s")),
            ("bar", _bar("radius", "auth_per_s")),
        ),
    ),
    "provisioning": Chart(
        title="Provisioning",
        unit="activations/s",
        series=(("workflow", _key("activations_per_s")), ("baseline bulk INSERT", _key("baseline_per_s"))),
    ),
    "polling": Chart(
        title="SNMP polling",
        unit="polls/s",
        series=(
            ("poller, with storage", _key("polls_per_s")),
            ("one session, same GET", _key("baseline_requests_per_s")),
            ("bar", _bar("polling", "polls_per_s")),
        ),
    ),
}


@dataclass
class Output:
    command: str
    path: Path
    figures: dict | None
    failed: bool
    started: str | None  # the command's first line ("bench_billing: 2026-11-25 10:00:00 UTC")


def last_json(text: str) -> dict | None:
    """The figures: the last line of the output that is a JSON object with a "bench" key."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "bench" in value:
            return value
    return None


def read_outputs(directory: Path) -> list[Output]:
    failed_file = directory / FAILED
    failed = set(failed_file.read_text(encoding="utf-8").split()) if failed_file.exists() else set()
    paths = {p.stem: p for p in directory.glob("*.txt") if p.name != FAILED}
    order = [c for c in ORDER if c in paths] + sorted(set(paths) - set(ORDER))
    outputs = []
    for command in order:
        text = paths[command].read_text(encoding="utf-8", errors="replace")
        first = next((line for line in text.splitlines() if line.startswith(f"{command}: ")), None)
        started = first.split(": ", 1)[1] if first else None
        outputs.append(Output(command, paths[command], last_json(text), command in failed, started))
    for command in sorted(failed - set(paths)):  # failed before writing anything
        outputs.append(Output(command, directory / f"{command}.txt", None, True, None))
    return outputs


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:g}"
    return str(value).replace("|", "\\|")


def nice_ceiling(value: float) -> float:
    """A readable axis end: the smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a
    power of ten) at or above `value`."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if value <= step * power)


def _chart_value(value: float, *, grouped: bool = False) -> str:
    """Whole numbers from 100 on, three significant digits below (Mermaid takes no separators)."""
    if value >= 100:
        return f"{value:,.0f}" if grouped else f"{value:.0f}"
    return f"{value:.3g}"


def _label(text: str) -> str:
    return text.replace('"', "'")


def mermaid(chart: Chart, figures: dict) -> str:
    """The Mermaid xychart-beta bar chart of one benchmark; the y axis starts at 0."""
    labels, values = [], []
    for label, value_of in chart.series:
        try:
            value = float(value_of(figures))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if math.isfinite(value):
            labels.append(label)
            values.append(value)
    if not values:
        return ""
    title = chart.title
    if isinstance(figures.get("ratio"), int | float):
        title += f", ratio {figures['ratio']:g} to the baseline"
    elif isinstance(figures.get("speedup"), int | float):
        title += f", speed-up {figures['speedup']:g}x over the baseline"
    top = nice_ceiling(max(values) * 1.1)
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{_label(title)}"',
            "    x-axis [" + ", ".join(f'"{_label(label)}"' for label in labels) + "]",
            f'    y-axis "{_label(chart.unit)}" 0 --> {_chart_value(top)}',
            "    bar [" + ", ".join(_chart_value(v) for v in values) + "]",
            "```",
        ]
    )


def section(output: Output) -> str:
    lines = [f"## {output.command}", ""]
    if output.started:
        lines += [f"Run at {output.started}. Output: `{output.path.name}`.", ""]
    if output.failed:
        lines += [f"**The command exited with an error**: see `{output.path.name}`.", ""]
    if output.figures is None:
        lines += ["No figures: the output has no final JSON line.", ""]
        return "\n".join(lines)
    figures = output.figures
    bars = {bar.key: bar for bar in BARS.get(figures["bench"], ())}
    lines += ["| figure | value | bar |", "|---|---:|---|"]
    for key, value in figures.items():
        bar = bars.get(key)
        verdict = ""
        if bar is not None:
            met = bar.met(figures)
            verdict = f"{bar.text}: {'met' if met else '**not met**'}" if met is not None else bar.text
        lines.append(f"| {key} | {_number(value)} | {verdict} |")
    lines.append("")
    sources = sorted({bar.source for bar in bars.values()})
    if sources:
        lines += ["Bars from " + "; ".join(sources) + ".", ""]
    chart = CHARTS.get(figures["bench"])
    drawn = mermaid(chart, figures) if chart else ""
    lines += [drawn, ""] if drawn else ["No chart for this benchmark.", ""]
    return "\n".join(lines)


def summary(outputs: list[Output]) -> str:
    lines = ["| benchmark | measured | baseline | ratio | bars |", "|---|---:|---:|---:|---|"]
    for output in outputs:
        figures = output.figures
        if figures is None:
            lines.append(f"| {output.command} | - | - | - | failed, no figures |")
            continue
        chart = CHARTS.get(figures["bench"])
        measured = baseline = "-"
        if chart:
            for (_, value_of), cell in zip(chart.series[:2], ("measured", "baseline"), strict=True):
                try:
                    text = f"{_chart_value(float(value_of(figures)), grouped=True)} {chart.unit}"
                except (KeyError, TypeError, ValueError, ZeroDivisionError):
                    text = "-"
                if cell == "measured":
                    measured = text
                else:
                    baseline = text
        ratio = figures.get("ratio", figures.get("speedup", "-"))
        verdicts = [bar.met(figures) for bar in BARS.get(figures["bench"], ())]
        known = [v for v in verdicts if v is not None]
        bars = f"{sum(known)} of {len(known)} met" if known else "-"
        if output.failed:
            bars += "; exited with an error"
        lines.append(f"| {output.command} | {measured} | {baseline} | {_number(ratio)} | {bars} |")
    return "\n".join(lines)


def report(directory: Path) -> tuple[str, bool]:
    """(the markdown, whether every benchmark ran and reported its figures)."""
    outputs = read_outputs(directory)
    parts = [
        f"# Benchmark report: {directory.name}",
        "",
        "Written by `scripts/bench_report.py` from the outputs of `make bench` in this directory. "
        "Each figure is from the command's final JSON line; each chart compares the measured rate with "
        "the baseline measured in the same run and, where the project set one, the bar.",
        "",
    ]
    if not outputs:
        parts += ["No benchmark outputs (`*.txt`) in this directory.", ""]
        return "\n".join(parts), False
    parts += [summary(outputs), ""]
    parts += [section(output) for output in outputs]
    ok = all(o.figures is not None and not o.failed for o in outputs)
    return "\n".join(parts).rstrip() + "\n", ok


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: scripts/bench_report.py <directory with the benchmark outputs>", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    text, ok = report(directory)
    (directory / REPORT).write_text(text, encoding="utf-8")
    print(f"bench_report: wrote {directory / REPORT}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
