"""Test-time augmentation: the average of a model's outputs on each face and on its mirror image.

Faces are close to left-right symmetric and every training recipe flips them at random, so the mirror
is an equally likely view of the same face; averaging the two halves the variance that comes from
the crop alone, at twice the compute. Probabilities stay probabilities (a mean of distributions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agecompact.choices import TTA_MODES
from agecompact.errors import UsageError


def check_tta(mode: str | None) -> str:
    mode = "none" if mode is None else str(mode).lower()
    if mode not in TTA_MODES:
        raise UsageError(f"unknown test-time augmentation {mode!r}; choose one of: {', '.join(TTA_MODES)}")
    return mode


def mirrored(images: Any) -> np.ndarray:
    """Left-right mirror of BGR faces: (N, H, W, C) chips or (N, crops, H, W, C) context crops."""
    x = np.asarray(images)
    if x.ndim not in (4, 5):
        raise UsageError(f"expected a batch of faces (N, H, W, C) or (N, 3, H, W, C), got shape {x.shape}")
    return x[..., ::-1, :]


class FlipEngine:
    """Wraps any engine: ``outputs``/``predict`` are the mean over each face and its mirror."""

    def __init__(self, inner):
        self.inner = inner
        self.backend = inner.backend
        self.model = inner.model
        self.name = f"{inner.name}+flip"

    def __repr__(self) -> str:
        return f"FlipEngine({self.inner!r})"

    def __getattr__(self, item: str):  # .path, .close, ... of the wrapped engine
        return getattr(self.inner, item)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def outputs(self, images: Any, *, batch_size: int = 256) -> dict[str, np.ndarray]:
        x = np.asarray(images)
        a = self.inner.outputs(x, batch_size=batch_size)
        b = self.inner.outputs(mirrored(x), batch_size=batch_size)
        return {k: ((np.asarray(v) + np.asarray(b[k])) / 2).astype(np.asarray(v).dtype) for k, v in a.items()}

    def predict(self, images: Any, *, batch_size: int = 256) -> np.ndarray:
        x = np.asarray(images)
        a = np.asarray(self.inner.predict(x, batch_size=batch_size), np.float32)
        b = np.asarray(self.inner.predict(mirrored(x), batch_size=batch_size), np.float32)
        return (a + b) / 2
