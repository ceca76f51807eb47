"""Evaluation the way models are used: original labelled photos -> detection -> the model's crop -> age.

The chips path (``evaluate``) scores a model on 64x64 crops made by ``preprocess``; this one starts from
the photos themselves and runs the ``predict`` pipeline: the detector, the margin, colour order and size
from the model's own metadata, and the largest face of each image. Images where no face is found are
counted in the detection rate and left out of the age metrics.

Photos come from one of:

* a preprocessed ``.npz`` whose rows remember their file (``source_file`` + the sidecar's ``root``),
  restricted to a split exactly as ``evaluate`` restricts it (so chips and photos score the same faces);
* a dataset folder in its original layout (``--db utkface|aaf|megaage|wiki|imdb --root DIR``);
* any folder with a labels CSV (``--labels ages.csv``: columns ``file`` and ``age``, paths relative to
  the CSV's folder or ``--root``).
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import InputError, UsageError
from agecompact.runfolder import EvalResult

RAW_DATASETS = ("utkface", "aaf", "megaage", "wiki", "imdb")
CHUNK = 32  # photos decoded and detected before one batched forward pass


@dataclass
class PhotoSet:
    name: str
    root: Path
    files: list[str]  # relative to root
    ages: np.ndarray  # float32
    split: str


def from_npz(db: str | Path, split: str, run: Path | None) -> PhotoSet:
    from agecompact.data.locate import resolve_npz
    from agecompact.data.npz import load_npz
    from agecompact.evaluation.evaluate import select_rows

    path = resolve_npz(db)
    ds = load_npz(path)
    if ds.source_file is None:
        raise InputError(f"{path}: its rows do not record their photos (no 'source_file'; preprocessed by an "
                         "older agecompact): preprocess it again, or give --db DATASET --root FOLDER")
    files = ds.source_file
    root = ds.sidecar.get("root")
    if not isinstance(root, str):
        raise InputError(f"{path}: its sidecar does not say where the photos are ('root'); give --root")
    split, rows = select_rows(ds, split, run)
    return PhotoSet(ds.name, Path(root), [str(f) for f in files[rows]], ds.age[rows], split)


def from_root(db: str, root: Path, split: str) -> PhotoSet:
    from agecompact.data import aaf, megaage, utkface
    from agecompact.data.build import imdbwiki_samples

    if db not in RAW_DATASETS:
        raise UsageError(f"--db {db!r} with --root must be one of: {', '.join(RAW_DATASETS)}")
    if db in ("wiki", "imdb"):
        samples = imdbwiki_samples(db, root=root, csv=None, method="ssrnet", quiet=True)
    else:
        samples = {"utkface": utkface, "aaf": aaf, "megaage": megaage}[db].list_samples(root)
    if len(samples) == 0:
        raise InputError(f"no labelled {db} images found in {samples.root}")
    rows = np.arange(len(samples))
    if split in ("test", "train"):
        if samples.split is None:
            raise UsageError(f"{db} has no official split: use --split all")
        rows = rows[samples.split == (0 if split == "train" else 1)]
    elif split not in ("all", "auto"):
        raise UsageError(f"--split {split} needs a run folder's .npz; use all, test or train with --root")
    else:
        split = "all" if samples.split is None or split == "all" else "test"
        if split == "test":
            rows = rows[samples.split == 1]
    return PhotoSet(db, samples.root, [samples.paths[i] for i in rows], samples.age[rows].astype(np.float32), split)


def from_labels(labels: Path, root: Path | None) -> PhotoSet:
    """A CSV with a header naming ``file`` and ``age`` columns."""
    try:
        with open(labels, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = [c.strip().lower() for c in reader.fieldnames or []]
            if "file" not in fields or "age" not in fields:
                raise InputError(f"{labels}: needs a header with 'file' and 'age' columns, got {fields}")
            rows = [{k.strip().lower(): v for k, v in r.items() if k} for r in reader]
    except FileNotFoundError:
        raise InputError(f"labels file not found: {labels}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{labels}: cannot read labels ({e})") from None
    files, ages = [], []
    for i, r in enumerate(rows, start=2):
        try:
            age = float(r["age"])
        except (TypeError, ValueError):
            raise InputError(f"{labels}, line {i}: age {r.get('age')!r} is not a number") from None
        if not np.isfinite(age) or not r.get("file"):
            raise InputError(f"{labels}, line {i}: needs a file name and a finite age")
        files.append(r["file"].strip())
        ages.append(age)
    if not files:
        raise InputError(f"{labels}: no labelled rows")
    return PhotoSet(labels.stem, root if root is not None else labels.parent, files, np.asarray(ages, np.float32),
                    "all")


def evaluate_photos(model_source: str | Path, photos: PhotoSet, *, detector: str = "auto",
                    detector_model: str | Path | None = None, backend: str = "auto", batch_size: int = 64,
                    progress=None, tta: str | None = None) -> dict[str, Any]:
    """Detect, crop and predict every photo; metrics over the photos where a face was found."""
    from agecompact.api import load_model
    from agecompact.data.transforms import OK, read_image
    from agecompact.evaluation.metrics import age_metrics
    from agecompact.faces.detector import create_detector
    from agecompact.predict.pipeline import Predictor

    t0 = time.perf_counter()
    model = load_model(model_source)
    if model.meta.task != "age":
        raise UsageError(f"{model.name} is a {model.meta.task} model; --photos evaluates age models")
    det = create_detector(detector, model_path=detector_model)
    n = len(photos.files)
    preds = np.full(n, np.nan, np.float32)
    unreadable = 0
    task = progress.add_task(f"eval {photos.name}/{photos.split} photos", total=n) if progress is not None else None
    with Predictor(model, detector=det, backend=backend, batch_size=batch_size, tta=tta) as predictor:
        for start in range(0, n, CHUNK):
            idx, images, faces = [], [], []
            for i in range(start, min(start + CHUNK, n)):
                status, image = read_image(photos.root / photos.files[i])
                if status != OK:
                    unreadable += 1
                    continue
                found = predictor.detect(image)
                if found:
                    idx.append(i)
                    images.append(image)
                    faces.append([max(found, key=lambda f: f.box[2] * f.box[3])])
            for i, res in zip(idx, predictor.estimate(images, faces), strict=True):
                preds[i] = res[0].age
            if progress is not None:
                progress.update(task, advance=min(CHUNK, n - start))
        engine = predictor.backend
    found = np.isfinite(preds)
    if not found.any():
        raise InputError(f"no face found in any of the {n} photos of {photos.name} ({det.name} detector; "
                         f"{unreadable} unreadable)")
    return EvalResult(
        model=model.name, arch=model.arch, run=None, model_path=str(model.path) if model.path is not None else None,
        mode="photos",
        dataset={"name": photos.name, "root": str(photos.root), "split": photos.split, "count": int(found.sum())},
        detection={"detector": det.name, "photos": n, "found": int(found.sum()), "unreadable": unreadable,
                   "rate": float(found.mean()), "margin": float(model.meta.margin)},
        metrics=age_metrics(preds[found], photos.ages[found]), task="age", backend=engine, tta=tta or "none",
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), seconds=round(time.perf_counter() - t0, 3),
    ).to_json()
