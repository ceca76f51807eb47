"""Fixed-shape batches: one way to cut an array into chunks and pad each to a size from a short list.

JAX compiles a function once per input shape, so every caller that feeds a jitted network (``AgeModel``,
the predict pipeline, the training loop's validation) pads its chunks to one of a few sizes and drops
the padded rows from the result. The padding rows are zeros: in inference every row is computed on
its own (BatchNorm uses its running statistics), so what they hold never reaches a real row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def powers_of_two(cap: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to ``cap`` and ``cap`` itself: a handful of shapes for any batch length."""
    sizes, s = [], 1
    while s < cap:
        sizes.append(s)
        s *= 2
    return (*sizes, cap)


def padded_size(n: int, sizes: Sequence[int] | None) -> int:
    """The smallest of ``sizes`` that holds ``n`` rows (``n`` itself when ``sizes`` is None: no padding)."""
    if sizes is None:
        return n
    fits = [s for s in sizes if s >= n]
    if not fits:
        raise ValueError(f"no batch size in {tuple(sizes)} holds {n} rows")
    return min(fits)


def pad_rows(part: np.ndarray, size: int) -> np.ndarray:
    """``part`` with zero rows appended up to ``size`` rows."""
    n = len(part)
    if size == n:
        return part
    return np.concatenate([part, np.zeros((size - n, *part.shape[1:]), part.dtype)])


def padded_batches(x: np.ndarray, batch_size: int, sizes: Sequence[int] | None = None,
                   rows: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """``(batch, n_real)`` for consecutive chunks of at most ``batch_size`` rows of ``x`` (or of
    ``x[rows]``, gathered chunk by chunk), each padded to a size from ``sizes`` (None: not padded)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    total = len(x) if rows is None else len(rows)
    for start in range(0, total, batch_size):
        part = x[start:start + batch_size] if rows is None else x[rows[start:start + batch_size]]
        yield pad_rows(part, padded_size(len(part), sizes)), len(part)
