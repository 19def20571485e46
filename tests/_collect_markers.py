"""A tiny pytest plugin: dump every collected item's node id and marker names as JSON.

Load it with ``-p tests._collect_markers`` (usually together with ``--collect-only``) and set
``ISP_COLLECT_MARKERS_OUT`` to the output file. Without that variable it does nothing.

Output: ``{"rootdir": "...", "items": [{"nodeid": ..., "path": ..., "markers": [...]}, ...]}``
where ``path`` is the item's file relative to the rootdir (POSIX separators) and ``markers``
are the sorted, de-duplicated names of every marker that applies to the item (its own, its
class's and its module's ``pytestmark``), as ``item.iter_markers()`` reports them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "ISP_COLLECT_MARKERS_OUT"


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
        }
        for item in session.items
    ]
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rootdir": str(rootdir), "items": items}, indent=1) + "\n", encoding="utf-8")
