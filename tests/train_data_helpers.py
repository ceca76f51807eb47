"""Tiny synthetic datasets with a learnable age signal, for the training and evaluation tests.

Each image is noise plus a disc whose brightness and size grow with the age, so every model family can
learn it in a few epochs; the predict-the-mean baseline stays near 17 years for ages in [5, 75].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def synthetic_faces(n: int, seed: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.integers(5, 76, n).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    r2 = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        radius = 10 + 0.25 * age[i]
        level = 40 + 2.4 * age[i]
        img = rng.normal(60, 12, (size, size, 3))
        disc = r2 <= radius**2
        img[disc] = level + rng.normal(0, 8, (int(disc.sum()), 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    gender = rng.integers(0, 2, n).astype(np.int64)
    return images, age, gender


def write_synthetic_npz(path: str | Path, n: int = 256, seed: int = 0, *, with_split: bool = False,
                        db: str | None = None, margin: float | None = None) -> Path:
    """An ``.npz`` in the preprocess schema (+ optional ``split`` and a sidecar with ``db``/``margin``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images, age, gender = synthetic_faces(n, seed)
    arrays = {"image": images, "age": age, "gender": gender, "img_size": np.int64(64)}
    if with_split:
        arrays["split"] = (np.arange(n) % 5 == 0).astype(np.uint8)
    np.savez(path, **arrays)
    if db is not None or margin is not None:
        side = {"db": db or path.stem}
        if margin is not None:
            side["margin"] = margin
        path.with_name(path.name + ".json").write_text(json.dumps(side))
    return path


def mean_baseline_mae(age: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray) -> float:
    """MAE of always predicting the training-set mean age on the validation rows."""
    return float(np.mean(np.abs(age[val_idx] - age[train_idx].mean())))
