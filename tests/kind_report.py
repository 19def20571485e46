"""Count tests per *kind* marker and write the counts as JSON.

Every test should carry exactly one kind marker: ``property``, ``behavior``,
``contract`` or ``smoke``. Tests with none are counted as ``unmarked``.

Call :func:`write_kind_report` from ``pytest_sessionfinish`` in conftest.py::

    from tests.kind_report import write_kind_report

    def pytest_sessionfinish(session, exitstatus):
        write_kind_report(session)

It does nothing unless the environment variable ``ISP_KIND_REPORT`` holds a
file path (``scripts/run_gates.py`` sets it per step). The counts cover the
items pytest collected after ``-m`` / ``-k`` deselection, whether or not they
ran to completion.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

KINDS: tuple[str, ...] = ("property", "behavior", "contract", "smoke")
UNMARKED = "unmarked"
ENV_VAR = "ISP_KIND_REPORT"


def kind_of(item: Any) -> str:
    """Return the item's kind marker (first match in KINDS order) or 'unmarked'."""
    for kind in KINDS:
        if item.get_closest_marker(kind) is not None:
            return kind
    return UNMARKED


def count_kinds(items: list[Any]) -> dict[str, int]:
    """Map kind -> number of items."""
    return dict(Counter(kind_of(item) for item in items))


def write_kind_report(session: Any) -> Path | None:
    """Write {kind: count} JSON to $ISP_KIND_REPORT; return the path, or None if unset."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return None
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = count_kinds(list(getattr(session, "items", None) or []))
    path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
