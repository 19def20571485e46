"""Mutation testing of the billing domain and the PII crypto (`make mutation`; docs/testing.md).

Runs mutmut (configured in pyproject.toml, [tool.mutmut]) and prints the score: killed mutants
out of all mutants in scope, the survivors with their diffs, and whether each survivor is
explained in docs/testing.md. Exits 1 when the score is below the goal (90 %) or a survivor is
neither killed nor explained.

mutmut works in ./mutants of its working directory. So that a run never leaves a copy of the
project's packages in the source tree (code-safety tests walk the top-level directories, and other
people run the suite in the same checkout), it works in .local/mutation/, which links to the
project's files. The run needs no database and no Redis: the tests it runs are the pure ones, and
the environment points the database and the key store at a closed port, so a mutant that strays
into either fails instead of touching real data.

    scripts/mutation.py [--incremental | --only GLOB...] [--report-only] [--no-diffs]
                        [--max-children N] [--min-score PERCENT]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import threading
import time
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".local" / "mutation"
DOC = REPO / "docs" / "testing.md"
GOAL = 90.0

# Functions of the mutated files that are not part of the score: they talk to PostgreSQL (the
# key-store database), which the mutation run does not have. Their tests are the database tests
# (tests/customers/test_pii_fields.py, test_pii_rotation.py). Keys are mangled mutmut names.
OUT_OF_SCOPE = {
    "compliance.pii.fields.xǁSubjectKeyFieldǁpre_save": "allocates a data key in the key-store database",
    "compliance.pii.keystore.xǁKeyStoreǁ": "SQL against the key-store database",
    "compliance.pii.keystore.x__default_conninfo": "connection settings of the key-store database",
    "compliance.pii.keystore.x_keystore_conninfo": "connection settings of the key-store database",
    "compliance.pii.keystore.x_get_keystore": "opens the key-store database",
    "compliance.pii.keystore.x_data_keys": "reads the key-store database on a cache miss",
    "compliance.pii.keystore.x_keystore_database_ensure": "creates the key-store database",
    "compliance.pii.keystore.x_keystore_database_drop": "drops the key-store database",
}

KILLED = {"killed", "timeout", "segfault"}  # the tests noticed the mutant (a hang or a crash counts)
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault",
          -9: "segfault", 2: "interrupted", None: "not checked"}
UNREACHABLE_DB = "postgres://mutation@127.0.0.1:1/test_mutation_no_database"


def mutmut_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]


def prepare_workspace(*, incremental: bool) -> None:
    """.local/mutation/ with links to what mutmut copies: the source packages, tests, config."""
    WORK.mkdir(parents=True, exist_ok=True)
    cfg = mutmut_config()
    names = {*cfg["source_paths"], *cfg.get("also_copy", []), "tests", "pyproject.toml"}
    for name in sorted(names):
        link = WORK / name
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to(REPO / name)
    if not incremental:
        shutil.rmtree(WORK / "mutants", ignore_errors=True)


def set_environment() -> None:
    """For the tests mutmut runs in this process and its children."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="isp.settings.test",
        ISP_ENV_FILE="",  # read no .local/env: the run needs neither the database nor Redis
        DATABASE_URL=UNREACHABLE_DB,
        PII_KEYSTORE_URL=UNREACHABLE_DB.replace("postgres://", "postgresql://") + "_keys",
        HYPOTHESIS_PROFILE="dev",  # 50 examples; the seed is fixed in [tool.mutmut]
    )
    os.environ.pop("ISP_KIND_REPORT", None)


def last_status(log_path: Path) -> str:
    """mutmut's latest progress line ("done/total 🎉 killed ...") from the end of its log."""
    with log_path.open("rb") as log:
        log.seek(max(0, log_path.stat().st_size - 4000))
        tail = log.read().decode(errors="replace")
    found = re.findall(r"(\d+/\d+\s+🎉[^\r\n]*)[\r\n]", tail)
    return found[-1].strip() if found else "preparing (copy, mutants, stats, clean run)"


def run_mutmut(*, max_children: int, only: list[str]) -> int:
    """Run mutmut in this process (mutmut forks a child per mutant), with its output going to
    .local/mutation/mutmut.log and a progress line every 30 s on the console."""
    log_path = WORK / "mutmut.log"
    args = ["run", "--max-children", str(max_children), *only]
    print(f"mutation: mutmut {' '.join(args)} in {WORK.relative_to(REPO)}/ (log: {log_path.relative_to(REPO)})")
    set_environment()
    started = time.monotonic()
    console = os.fdopen(os.dup(1), "w", buffering=1)
    saved_err = os.dup(2)
    done = threading.Event()

    def progress() -> None:
        while not done.wait(30):
            console.write(f"  {int(time.monotonic() - started):>5d} s  {last_status(log_path)}\n")

    code = 0
    with log_path.open("w") as log:
        sys.stdout.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        reporter = threading.Thread(target=progress, daemon=True)
        reporter.start()
        os.chdir(WORK)  # mutmut reads pyproject.toml and works in ./mutants of its working directory
        try:
            from mutmut.__main__ import cli

            cli.main(args=args, prog_name="mutmut", standalone_mode=False)
        except SystemExit as exit_:  # mutmut stops with exit(1) when the setup is wrong
            code = exit_.code if isinstance(exit_.code, int) else 1
        except Exception as error:  # any other failure: reported, with the end of the log, below
            print(f"mutmut failed: {error!r}")
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            done.set()
            reporter.join()
            os.dup2(console.fileno(), 1)
            os.dup2(saved_err, 2)
            os.close(saved_err)
            console.close()
            os.chdir(REPO)
    print(f"mutation: mutmut finished in {time.monotonic() - started:.0f} s (exit {code})")
    if code != 0:
        print("".join(log_path.read_text().splitlines(keepends=True)[-40:]))
    return code


def load_results() -> dict[str, tuple[str, str]]:
    """mutant name -> (status, source path relative to the project)."""
    results = {}
    mutants = WORK / "mutants"
    for meta in sorted(mutants.rglob("*.py.meta")):
        path = str(meta.relative_to(mutants)).removesuffix(".meta")
        data = json.loads(meta.read_text())
        for name, exit_code in data["exit_code_by_key"].items():
            results[name] = (STATUS.get(exit_code, "suspicious"), path)
    return results


def out_of_scope_reason(name: str) -> str | None:
    function = name.partition("__mutmut_")[0]
    for prefix, reason in OUT_OF_SCOPE.items():
        if function == prefix or (prefix.endswith("ǁ") and function.startswith(prefix)):
            return reason
    return None


def explained_in_doc() -> set[str]:
    """Mutant names written in backticks in docs/testing.md (the explained survivors)."""
    if not DOC.exists():
        return set()
    return set(re.findall(r"`([\w.ǁ]+__mutmut_\d+)`", DOC.read_text()))


def diff_of(name: str, path: str) -> str:
    """The changed lines of a mutant (what `mutmut show` prints, without starting mutmut each time)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    cwd = Path.cwd()
    os.chdir(WORK)
    try:
        diff = get_diff_for_mutant(name, path=path)
    finally:
        os.chdir(cwd)
    lines = [line for line in diff.splitlines() if line.startswith(("+", "-")) and line[:3] not in {"+++", "---"}]
    return "\n".join(f"      {line}" for line in lines)


def module_of(name: str) -> str:
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def report(results: dict[str, tuple[str, str]], *, min_score: float, diffs: bool) -> int:
    in_scope = {n: r for n, r in results.items() if out_of_scope_reason(n) is None}
    outside = [n for n in results if out_of_scope_reason(n) is not None]
    counts = Counter(status for status, _ in in_scope.values())
    killed = sum(counts[s] for s in KILLED)
    total = len(in_scope)
    score = 100.0 * killed / total if total else 0.0

    per_module: dict[str, Counter] = defaultdict(Counter)
    for name, (status, _) in in_scope.items():
        per_module[module_of(name)][status in KILLED] += 1
    print("\nmutation: killed / mutants, per module")
    for module, c in sorted(per_module.items()):
        print(f"  {module:34s} {c[True]:4d} / {c.total():4d}  {100.0 * c[True] / c.total():5.1f} %")

    explained = explained_in_doc()
    survivors = sorted(n for n, (status, _) in in_scope.items() if status not in KILLED)
    unexplained = [n for n in survivors if n not in explained]
    if survivors:
        print(f"\nmutation: {len(survivors)} survivor(s): [status] name (explained in docs/testing.md?)")
        for name in survivors:
            status, path = in_scope[name]
            print(f"  [{status}] {name}  ({'explained' if name in explained else 'NOT EXPLAINED'})")
            if diffs:
                print(diff_of(name, path))
    stale = sorted(n for n in explained if n in in_scope and in_scope[n][0] in KILLED)
    if stale:
        print(f"\nmutation: explained in docs/testing.md but killed now (update the doc): {', '.join(stale)}")
    if outside:
        reasons = Counter(out_of_scope_reason(n) for n in outside)
        print(f"\nmutation: {len(outside)} mutant(s) not scored: they need PostgreSQL (the database tests test them)")
        for reason, n in sorted(reasons.items()):
            print(f"  {n:4d}  {reason}")

    others = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()) if s not in KILLED | {"survived"})
    print(f"\nmutation score: {killed} / {total} killed = {score:.1f} % (goal {min_score:.0f} %); "
          f"survived {counts['survived']}{'; ' + others if others else ''}")
    failed = False
    if score < min_score:
        print(f"mutation: FAILED, the score is below {min_score:.0f} %")
        failed = True
    if unexplained:
        print(f"mutation: FAILED, {len(unexplained)} survivor(s) neither killed nor explained in docs/testing.md")
        failed = True
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incremental", action="store_true",
                        help="keep the previous run's mutants and verdicts (faster; the score of record is a "
                             "fresh run)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel test processes (default 2)")
    parser.add_argument("--min-score", type=float, default=GOAL, help=f"goal in percent (default {GOAL:.0f})")
    parser.add_argument("--report-only", action="store_true", help="print the last run's results, run nothing")
    parser.add_argument("--only", nargs="+", default=[], metavar="GLOB",
                        help="re-run only these mutants (mutmut name globs, e.g. 'billing.domain.money.*'); "
                             "implies --incremental")
    parser.add_argument("--no-diffs", action="store_true", help="list the survivors without their changes")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    started = time.monotonic()
    if not args.report_only:
        prepare_workspace(incremental=args.incremental or bool(args.only))
        if run_mutmut(max_children=args.max_children, only=args.only) != 0:
            print("mutation: FAILED, mutmut did not complete")
            return 1
    results = load_results()
    if not results:
        print("mutation: no results; run without --report-only first")
        return 1
    code = report(results, min_score=args.min_score, diffs=not args.no_diffs)
    print(f"mutation: {time.monotonic() - started:.0f} s in all "
          "(to browse the mutants: cd .local/mutation && ../../.venv/bin/mutmut browse)")
    return code


if __name__ == "__main__":
    sys.exit(main())
