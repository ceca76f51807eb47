"""Shared by the benchmark scripts: timing statistics, result files, environment stamp."""

from __future__ import annotations

import datetime as _dt
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def timing_stats(samples_s: list[float]) -> dict[str, float]:
    """Median, min, max and spread of a list of durations in seconds, reported in milliseconds."""
    ms = sorted(s * 1e3 for s in samples_s)
    return {
        "median_ms": statistics.median(ms),
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "p10_ms": ms[max(0, int(0.1 * len(ms)) - 1)],
        "p90_ms": ms[min(len(ms) - 1, int(0.9 * len(ms)))],
        "runs": len(ms),
    }


def repeat(fn: Callable[[], Any], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def write_results(name: str, payload: dict[str, Any], path: str | Path | None = None) -> Path:
    from agecompact.envinfo import package_versions

    target = Path(path) if path else RESULTS_DIR / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "versions": package_versions(), **payload}
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(target)
    return target
