"""Shared by the benchmark scripts: result files with an environment stamp.

Timing itself lives in ``agecompact.bench.timing`` so the CLI and the scripts measure the same way.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from agecompact.bench.timing import time_call, timing_stats

__all__ = ["RESULTS_DIR", "time_call", "timing_stats", "write_results"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(name: str, payload: dict[str, Any], path: str | Path | None = None) -> Path:
    """Write ``benchmarks/results/<name>.json`` (atomically) with versions and a timestamp."""
    from agecompact.envinfo import package_versions

    target = Path(path) if path else RESULTS_DIR / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "versions": package_versions(), **payload}
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(target)
    return target
