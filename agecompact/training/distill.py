"""Knowledge distillation: a trained teacher's ages as a second target for the student (``--teacher``).

The teacher (any age model ``load_model`` opens: a zoo name, a model file, a run folder) predicts every
face of the dataset once, before training, on the un-augmented crop (with ``teacher_tta="flip"`` the mean
of the face and its mirror). Age does not change under the training augmentation (flips, small shifts,
colour), so that number stays a valid target for every augmented view of the face, and the student's
step costs nothing extra. The student's loss becomes

    (1 - w) * family_loss(out, label) + w * family_loss(out, teacher_age)

with the family's own objective (L1, AEC's composite, C3AE's two-point KL + L1), so every architecture
can be distilled. The teacher's ages are softer than the labels (an ensemble's mean error is lower than
its members'), which is what the student learns from.

The run folder records the teacher, its file's sha256 and the sha256 of its predictions
(``teacher.json``); a resume recomputes them and refuses a different teacher.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from agecompact.errors import InputError, UsageError
from agecompact.training.losses import LossFn

TEACHER_BATCH = 512


def _file_sha256(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_teacher(source: str, ds, *, crops: str):
    """The teacher model, checked against what the student trains on: an age model that takes the
    dataset's rows (size, single or context crops) framed as the dataset frames them (margin)."""
    from agecompact.api import load_model

    teacher = load_model(source)
    meta = teacher.meta
    what = f"--teacher {source}"
    if meta.task != "age":
        raise UsageError(f"{what} is a {meta.task} model; distillation needs an age model")
    size = int(ds.images.shape[-2])
    if int(meta.input_size) != size:
        raise InputError(f"{what} takes {meta.input_size}x{meta.input_size} faces; the dataset's are {size}x{size}")
    ds_crops = "context" if ds.images.ndim == 5 else "single"
    if meta.crops != ds_crops or crops != ds_crops:
        raise InputError(f"{what} takes {meta.crops} crops, the student {crops}; the dataset holds {ds_crops} crops")
    if ds.margin is not None and abs(float(meta.margin) - float(ds.margin)) > 1e-6:
        raise InputError(f"{what} was trained on crops with margin {meta.margin}; the dataset's have margin "
                         f"{ds.margin} (its ages would be off on them)")
    return teacher


def teacher_ages(teacher, images: np.ndarray, *, tta: str) -> np.ndarray:
    """The teacher's age for every row, float32, on the JAX engine (the same numbers on every machine)."""
    from agecompact.inference import get_engine

    engine = get_engine(teacher, "jax", tta=tta)
    out = np.empty(len(images), np.float32)
    for start in range(0, len(images), TEACHER_BATCH):
        out[start:start + TEACHER_BATCH] = engine.predict(images[start:start + TEACHER_BATCH],
                                                           batch_size=TEACHER_BATCH)
    if not np.all(np.isfinite(out)):
        raise InputError(f"the teacher {teacher.name} gives non-finite ages on this dataset")
    return out


def teacher_record(source: str, teacher, ages: np.ndarray, *, tta: str, weight: float) -> dict[str, Any]:
    return {"source": str(source), "name": teacher.name, "arch": teacher.arch,
            "file": str(getattr(teacher, "path", "") or ""), "file_sha256": _file_sha256(getattr(teacher, "path", None)),
            "tta": tta, "weight": weight, "count": int(len(ages)),
            "ages_sha256": hashlib.sha256(np.ascontiguousarray(ages).tobytes()).hexdigest(),
            "ages_mean": float(np.mean(ages))}


def check_teacher(saved_path: Path, record: dict[str, Any]) -> None:
    """On resume: the teacher must predict exactly what it predicted when the run started."""
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{saved_path}: unreadable; the run's teacher cannot be checked") from None
    if saved.get("ages_sha256") != record["ages_sha256"]:
        raise UsageError(f"--teacher {record['source']} predicts other ages than the teacher the run was started "
                         f"with ({saved.get('source')}); resume with that teacher or start a new run")


def distilled(loss_fn: LossFn, weight: float) -> LossFn:
    """``loss_fn`` against the label, blended with ``loss_fn`` against the teacher's age."""

    def loss(out, targets):
        hard, aux = loss_fn(out, {"y": targets["y"]})
        soft, _ = loss_fn(out, {"y": targets["teacher"]})
        return ((1.0 - weight) * hard + weight * soft,
                {**aux, "teacher_l1": jnp.mean(jnp.abs(out["pred"] - targets["teacher"]))})

    return loss
