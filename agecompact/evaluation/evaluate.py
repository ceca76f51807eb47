"""``evaluate(model, db, split)``: a model's metrics on a split of a preprocessed dataset.

Splits:

* ``val``: for a run folder, that run's validation rows (its ``split.json``); for other models, the
  dataset's held-out rows (``split == 1``) when it has a split column.
* ``test``: the dataset's ``split == 1`` rows; ``train``: the training rows (run or dataset split);
  ``all``: every row.
* ``auto`` (default): ``val`` for a run folder, else ``test`` when the dataset has a split, else ``all``.

Result (also written to ``<run>/eval/<db>-<split>.json`` when the model is a run folder)::

    {"model": name, "arch": arch, "run": run folder or null, "model_path": file,
     "dataset": {"name": "wiki", "path": ..., "split": "val", "count": N},
     "metrics": {"mae", "ca3", "ca5", "rmse", "count", "mae_by_decade": {"20-29": {"mae", "count"}, ...}},
     "task": "age", "backend": engine name, "created": ISO time, "seconds": wall time}

Gender models report ``{"mae", "accuracy", "count"}`` on the rows with a known gender instead.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import NotAvailableError, UsageError
from agecompact.runfolder import EvalResult, eval_result_path, is_run_folder, read_split

SPLITS = ("auto", "val", "test", "train", "all")
CHUNK = 8192  # images handed to the engine at a time, so memory stays bounded on large datasets


def select_rows(ds, split: str, run: Path | None, usable: np.ndarray | None = None) -> tuple[str, np.ndarray]:
    """(resolved split name, row indices)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    n = len(ds)
    rows = np.arange(n) if usable is None else np.flatnonzero(usable)
    if split == "auto":
        split = "val" if run is not None else ("test" if ds.split is not None else "all")
    if split == "all":
        return split, rows
    if split in ("val", "train") and run is not None:
        saved = read_split(run)
        info = saved.dataset
        val = np.asarray(saved.val_indices, np.int64)
        part = _matching_part(info, ds)
        if part is not None:  # one dataset of a run trained on several: its rows of the run's split
            lo, hi = part["offset"], part["offset"] + part["count"]
            val = val[(val >= lo) & (val < hi)] - lo
            info = {"name": ds.name, "count": n}
        if info.get("count") != n or info.get("name") != ds.name:
            raise UsageError(f"--split {split} means the rows of the run's own dataset ({info.get('name')}, "
                             f"{info.get('count')} images); {ds.path} is {ds.name} with {n}: use --split "
                             "test or all")
        if split == "val":
            return split, val
        mask = np.zeros(n, bool)
        mask[rows] = True
        mask[val] = False
        return split, np.flatnonzero(mask)
    if ds.split is None:
        raise UsageError(f"{ds.path} has no split column: use --split all"
                         + (" (or evaluate a run folder for its validation rows)" if split == "val" else ""))
    want = 0 if split == "train" else 1
    return split, rows[ds.split[rows] == want]


def _matching_part(info: dict[str, Any], ds) -> dict[str, Any] | None:
    for part in info.get("parts") or []:
        if part.get("name") == ds.name and part.get("count") == len(ds):
            return part
    return None


def _engine(model, backend: str, quantize: str | None = None, tta: str | None = None):
    try:
        from agecompact.inference import get_engine
    except ImportError:
        if backend not in ("auto", "jax"):
            raise NotAvailableError(f"backend {backend!r} is not available in this build") from None
        import jax

        class _Plain:
            name = f"jax-{jax.default_backend()}"

            def predict(self, images, *, batch_size: int = 256):
                return model.predict(images, batch_size=batch_size)

        return _Plain()
    return get_engine(model, backend=backend, quantize=quantize, tta=tta)


@dataclass
class Evaluation:
    summary: dict[str, Any]  # the JSON document described in the module docstring
    pred: np.ndarray  # predictions for the evaluated rows
    true: np.ndarray  # their labels


def evaluate(model_source: str | Path, db: str | Path, *, split: str = "auto", backend: str = "auto",
             batch_size: int = 256, progress=None, write_run_result: bool = True,
             quantize: str | None = None, tta: str | None = None) -> Evaluation:
    """Predict ``split`` of ``db`` with ``model_source`` and compute the metrics (see module docstring)."""
    from agecompact.api import load_model
    from agecompact.data.locate import resolve_npz
    from agecompact.data.npz import load_npz
    from agecompact.evaluation.metrics import task_metrics
    from agecompact.fileio import atomic_write_json

    if batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    t0 = time.perf_counter()
    run = Path(model_source) if is_run_folder(model_source) else None
    model = load_model(model_source)
    ds = load_npz(resolve_npz(db))
    task = model.meta.task
    labels, usable = ds.labels(task)
    split, rows = select_rows(ds, split, run, usable)
    engine = _engine(model, backend, quantize, tta)
    preds = np.zeros(len(rows), np.float32)
    task_id = progress.add_task(f"eval {ds.name}/{split}", total=len(rows)) if progress is not None else None
    for start in range(0, len(rows), CHUNK):
        part = rows[start:start + CHUNK]
        preds[start:start + len(part)] = np.asarray(engine.predict(ds.images[part], batch_size=batch_size),
                                                    np.float32).reshape(-1)
        if progress is not None:
            progress.update(task_id, advance=len(part))
    metrics = task_metrics(task, preds, labels[rows])
    result = EvalResult(
        model=model.name, arch=model.arch, run=str(run.resolve()) if run is not None else None,
        model_path=str(model.path) if model.path is not None else None,
        dataset={"name": ds.name, "path": str(ds.path.resolve()), "split": split, "count": int(len(rows))},
        metrics=metrics, task=task, backend=getattr(engine, "name", backend), tta=tta or "none",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), seconds=round(time.perf_counter() - t0, 3),
    ).to_json()
    if run is not None and write_run_result:
        atomic_write_json(eval_result_path(run, ds.name, split), result)
    return Evaluation(result, preds, np.asarray(labels[rows], np.float32))
