"""`scripts/bench_report.py <dir>`: the markdown report `make bench` writes from the benchmark
outputs it keeps (one `<command>.txt` each, whose last JSON line holds the figures).

Run on canned outputs in a temporary directory, the way the Makefile runs it; no database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.contract, pytest.mark.performance_baseline]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_report.py"

# The last lines of each command's output, as the commands print them (figures from the docs).
FIGURES = {
    "bench_tenants": {
        "bench": "tenant_create",
        "tenants": 10,
        "clone_s_per_tenant_median": 0.4048,
        "clone_s_p90": 0.4308,
        "migrate_schemas_s_median": 0.2448,
        "speedup": 0.6,
        "target_s": 1.0,
        "meets_target": True,
    },
    "bench_pii": {
        "bench": "pii",
        "encrypt_decrypt_per_s": 209719,
        "wrap_unwrap_per_s": 51234,
        "customers": 10000,
        "list_with_pii_per_s": 3635.0,
        "list_without_pii_per_s": 6916.0,
        "ratio": 0.526,
        "page_size": 100,
        "list_path": "api",
        "list_masked_per_s": 4100.2,
        "reveal_events": 10000,
        "reveal_audit_rows_per_s": 31000,
    },
    "bench_billing": {
        "bench": "billing",
        "customers": 10000,
        "invoices": 10000,
        "invoices_per_s": 2396.0,
        "baseline_rows_per_s": 60100.5,
        "baseline_invoices_per_s": 9600.0,
        "ratio": 0.22,
        "peak_rss_mb": 122.0,
        "workers": 2,
        "lines_per_invoice": 5.2,
        "mismatches": 0,
    },
    "bench_radius": {
        "bench": "radius",
        "subscribers": 1000,
        "in_flight": 200,
        "auth_per_s": 1710.0,
        "auth_p50_ms": 100.0,
        "auth_p99_ms": 133.0,
        "auth_success_rate": 1.0,
        "baseline_auth_per_s": 3224.0,
        "baseline_p99_ms": 70.1,
        "ratio": 0.53,
        "burst_sent": 1000,
        "burst_accepted": 1000,
        "burst_lost": 0,
        "acct_per_s": 1164.0,
        "acct_new_sessions_per_s": 939.0,
        "acct_sent": 4000,
        "acct_answered": 4000,
        "acct_sessions_stored": 2000,
    },
    "bench_provisioning": {
        "bench": "provisioning",
        "subscriptions": 1000,
        "workers": 2,
        "mode": "batch",
        "activations_per_s": 217.0,
        "baseline_per_s": 316.0,
        "ratio": 0.6867,
        "complete": True,
        "jobs_done": 1000,
        "distinct_ips": 1000,
        "pppoe_accounts": 1000,
        "onus_bound": 1000,
        "active": 1000,
    },
    "bench_polling": {
        "bench": "polling",
        "devices": 1000,
        "agents": 2,
        "workers": 32,
        "counters_per_device": 29,
        "polls_per_s": 618.0,
        "success_rate": 1.0,
        "baseline_requests_per_s": 1050.0,
        "ratio": 0.589,
        "storage_share": 0.22,
        "latency_ms": 0.0,
        "poll_seconds": 1.26,
        "store_seconds": 0.36,
    },
}


def _output(command: str, figures: dict | None, *, after: str = "") -> str:
    """What `make bench` keeps of one command: its progress lines, then the JSON line."""
    lines = [f"{command}: 2026-11-25 10:00:00 UTC", "(a) building a throwaway tenant", "  done"]
    if figures is not None:
        lines.append(json.dumps(figures))
    return "\n".join(lines) + "\n" + after


def _run(directory: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    report = directory / "report.md"
    return done.returncode, report.read_text(encoding="utf-8") if report.exists() else ""


def _sections(report: str) -> dict[str, str]:
    parts = re.split(r"^## ", report, flags=re.MULTILINE)
    return {part.split("\n", 1)[0].strip(): part for part in parts[1:]}


def _table(section: str) -> dict[str, tuple[str, str]]:
    """figure -> (value, bar verdict) from a benchmark's table."""
    rows = re.findall(r"^\| (\w+) \| ([^|]*) \| ([^|]*) \|$", section, flags=re.MULTILINE)
    return {key: (value.strip(), verdict.strip()) for key, value, verdict in rows if key != "figure"}


def _chart(section: str) -> tuple[list[str], tuple[float, float], list[float]]:
    """(x-axis labels, y-axis range, bar values) of the section's Mermaid xychart-beta chart."""
    block = re.search(r"```mermaid\nxychart-beta\n(.*?)\n```", section, flags=re.DOTALL)
    assert block, section
    body = block.group(1)
    labels = re.findall(r'"([^"]*)"', re.search(r"^\s*x-axis \[(.*)\]$", body, flags=re.MULTILINE).group(1))
    low, high = re.search(r'^\s*y-axis "[^"]*" ([\d.]+) --> ([\d.]+)$', body, flags=re.MULTILINE).groups()
    bars = [float(v) for v in re.search(r"^\s*bar \[(.*)\]$", body, flags=re.MULTILINE).group(1).split(",")]
    return labels, (float(low), float(high)), bars


def test_the_report_has_a_table_and_a_chart_of_rate_baseline_and_bar_per_benchmark(tmp_path):
    # given the outputs of a full `make bench`
    for command, figures in FIGURES.items():
        (tmp_path / f"{command}.txt").write_text(_output(command, figures), encoding="utf-8")

    # when the report is written
    status, report = _run(tmp_path)

    # then every benchmark has its section, in the Makefile's order
    assert status == 0
    sections = _sections(report)
    assert list(sections) == list(FIGURES)
    for command, figures in FIGURES.items():
        table = _table(sections[command])
        assert list(table) == list(figures), command  # every figure of the JSON line, in order
    # the tables hold the figures
    billing = _table(sections["bench_billing"])
    assert billing["invoices_per_s"][0] == "2,396"
    assert billing["baseline_invoices_per_s"][0] == "9,600"
    assert billing["customers"][0] == "10,000"
    # the charts: measured rate, same-run baseline, then the bar where the docs set one; y from 0
    labels, (low, high), bars = _chart(sections["bench_billing"])
    assert labels == ["billing run", "baseline COPY", "bar"]
    assert bars == [2396, 9600, 5000]
    assert low == 0
    assert high >= max(bars)
    labels, _, bars = _chart(sections["bench_radius"])
    assert (labels, bars) == (["FreeRADIUS sql", "baseline files", "bar"], [1710, 3224, 3000])
    labels, _, bars = _chart(sections["bench_polling"])
    assert bars == [618, 1050, 2000]
    labels, _, bars = _chart(sections["bench_pii"])  # no bar in the docs: rate and baseline only
    assert (labels, bars) == (["with personal data", "without personal data"], [3635, 6916])
    _, _, bars = _chart(sections["bench_provisioning"])
    assert bars == [217, 316]
    # tenant provisioning reports seconds; its chart shows tenants/s: 1 / median, 1 / p90, 1 / target
    labels, (low, high), bars = _chart(sections["bench_tenants"])
    assert labels == ["clone, median", "migrate, median", "clone, p90", "bar (p90)"]
    assert bars == pytest.approx([1 / 0.4048, 1 / 0.2448, 1 / 0.4308, 1.0], rel=0.01)
    assert low == 0
    assert high >= max(bars)


def test_each_bar_is_reported_met_or_not_met_against_the_figures(tmp_path):
    for command, figures in FIGURES.items():
        (tmp_path / f"{command}.txt").write_text(_output(command, figures), encoding="utf-8")

    _, report = _run(tmp_path)

    sections = _sections(report)
    billing, radius = _table(sections["bench_billing"]), _table(sections["bench_radius"])
    assert billing["ratio"] == ("0.22", ">= 0.25: **not met**")
    assert billing["invoices_per_s"][1] == ">= 5,000: **not met**"
    assert billing["mismatches"][1] == "<= 0: met"
    assert radius["ratio"][1] == ">= 0.25: met"
    assert radius["auth_p99_ms"][1] == "<= 100: **not met**"
    assert radius["burst_lost"][1] == "<= 0: met"
    assert _table(sections["bench_tenants"])["clone_s_p90"][1] == "<= 1: met"
    assert "docs/radius.md" in sections["bench_radius"]  # where the bars come from
    # the summary counts them
    assert re.search(
        r"^\| bench_billing \| 2,396 invoices/s \| 9,600 invoices/s \| 0.22 \| 1 of 3 met \|$", report, re.M
    )


def test_the_figures_are_the_last_json_line_even_with_output_after_it(tmp_path):
    # given an output with a JSON-looking progress line, then the figures, then a warning on stderr
    early = dict(FIGURES["bench_billing"], invoices_per_s=1.0)
    text = _output("bench_billing", early) + json.dumps(FIGURES["bench_billing"]) + "\n"
    text += "cleanup problem: none, a warning printed after the JSON\n{not json}\n"
    (tmp_path / "bench_billing.txt").write_text(text, encoding="utf-8")

    status, report = _run(tmp_path)

    assert status == 0
    assert _table(_sections(report)["bench_billing"])["invoices_per_s"][0] == "2,396"


def test_a_failed_benchmark_is_reported_and_fails_the_run_while_the_others_are_still_reported(tmp_path):
    # given one command that crashed before its JSON line, one that printed it and then exited
    # non-zero, and one that never wrote its output file (the Makefile lists both in failed.txt)
    (tmp_path / "bench_radius.txt").write_text(_output("bench_radius", None, after="Traceback ...\n"))
    (tmp_path / "bench_billing.txt").write_text(_output("bench_billing", FIGURES["bench_billing"]))
    (tmp_path / "bench_polling.txt").write_text(_output("bench_polling", FIGURES["bench_polling"]))
    (tmp_path / "failed.txt").write_text("bench_radius\nbench_billing\nbench_pii\n")

    status, report = _run(tmp_path)

    assert status == 1
    sections = _sections(report)
    assert set(sections) == {"bench_radius", "bench_billing", "bench_polling", "bench_pii"}
    assert "exited with an error" in sections["bench_radius"]
    assert "no final JSON line" in sections["bench_radius"]
    assert "mermaid" not in sections["bench_radius"]
    assert "exited with an error" in sections["bench_billing"]
    assert _table(sections["bench_billing"])["invoices_per_s"][0] == "2,396"  # its figures still reported
    assert "exited with an error" in sections["bench_pii"]
    assert "exited with an error" not in sections["bench_polling"]
    assert _chart(sections["bench_polling"])[2] == [618, 1050, 2000]


def test_a_missing_directory_is_a_usage_error(tmp_path):
    status, report = _run(tmp_path / "nowhere")
    assert (status, report) == (2, "")
