"""A tiny pytest plugin: dump every collected item's node id and marker names as JSON.

Load it with ``-p tests._collect_markers`` (usually together with ``--collect-only``) and set
``ISP_COLLECT_MARKERS_OUT`` to the output file. Without that variable it does nothing.

Output: ``{"rootdir": "...", "items": [{"nodeid": ..., "path": ..., "markers": [...], "skips": [...]}, ...]}``
where ``path`` is the item's file relative to the rootdir (POSIX separators) and ``markers``
are the sorted, de-duplicated names of every marker that applies to the item (its own, its
class's and its module's ``pytestmark``), as ``item.iter_markers()`` reports them; ``skips`` the
reasons its skip/skipif/xfail markers give ('' for none).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "ISP_COLLECT_MARKERS_OUT"
SKIP_MARKERS = ("skip", "skipif", "xfail")


def _skip_reason(marker) -> str:
    """The reason a skip/skipif/xfail marker gives ('' when none): its reason=, or for skip its
    first argument, or for a skipif/xfail with a string condition the condition (pytest shows it)."""
    reason = marker.kwargs.get("reason")
    if reason is None and marker.args:
        first = marker.args[0]
        reason = first if marker.name == "skip" or isinstance(first, str) else ""
    return str(reason or "")


def _relative(path: Path, rootdir: Path) -> str:
    try:
        return path.relative_to(rootdir).as_posix()
    except ValueError:
        return path.as_posix()


def pytest_collection_finish(session) -> None:
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    rootdir = Path(session.config.rootpath)
    items = [
        {
            "nodeid": item.nodeid,
            "path": _relative(Path(item.path), rootdir),
            "markers": sorted({marker.name for marker in item.iter_markers()}),
            "skips": [_skip_reason(marker) for marker in item.iter_markers() if marker.name in SKIP_MARKERS],
        }
        for item in session.items
    ]
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rootdir": str(rootdir), "items": items}, indent=1) + "\n", encoding="utf-8")
