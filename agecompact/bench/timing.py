"""Timing done properly: warm-up first (compilation never counts), many runs, median and spread."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timing_stats(samples_s: list[float]) -> dict[str, float]:
    """Median, min, max and 10th/90th percentiles of durations in seconds, reported in milliseconds."""
    ms = sorted(s * 1e3 for s in samples_s)
    n = len(ms)
    return {
        "median_ms": statistics.median(ms),
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "p10_ms": ms[int(0.1 * (n - 1))],
        "p90_ms": ms[int(round(0.9 * (n - 1)))],
        "runs": n,
    }


def time_call(fn: Callable[[], Any], *, runs: int, warmup: int = 3, max_seconds: float | None = None
              ) -> dict[str, float]:
    """Call ``fn`` ``warmup`` times untimed, then time up to ``runs`` calls (stopping early after
    ``max_seconds`` of measurement, with at least 3 runs). ``fn`` must block until its result is ready
    (numpy output, or ``jax.block_until_ready``)."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if max_seconds is not None and i >= 2 and time.perf_counter() - start > max_seconds:
            break
    return timing_stats(samples)
