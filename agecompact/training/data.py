"""Datasets for training: the uint8 ``.npz`` in RAM, a seeded split, and a prefetching batch stream.

Images stay uint8 on the host (a float copy of IMDB would need ~10 GB); the train step casts on device.
Batch order and augmentation are pure functions of ``(seed, epoch, step)``, so a resumed run sees
exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import InputError, UsageError

DEFAULT_VAL_FRACTION = 0.2
SPLIT_TRAIN, SPLIT_TEST = 0, 1


@dataclass
class Dataset:
    """A preprocessed dataset: ``images`` uint8 (N, S, S, 3) BGR (or (N, 3, S, S, 3) context crops)."""

    path: Path
    name: str  # dataset name, e.g. "wiki" (the sidecar's "db", else the file stem)
    images: np.ndarray
    age: np.ndarray  # float32 (N,)
    gender: np.ndarray | None  # int (N,): 1 male, 0 female, -1 unknown
    split: np.ndarray | None  # uint8 (N,): 0 train, 1 test/val, when the dataset has an official split
    sidecar: dict[str, Any]
    # a dataset joined from several files (``--db a.npz,b.npz``): each part in row order, with its rows
    parts: list[tuple[Dataset, int]] | None = None  # (part, first row)
    source_file: np.ndarray | None = None  # str (N,): each row's photo, relative to the sidecar's root

    def __len__(self) -> int:
        return len(self.age)

    @property
    def margin(self) -> float | None:
        m = self.sidecar.get("margin")
        return float(m) if isinstance(m, int | float) else None


def load_npz(path: str | Path, *, name: str | None = None) -> Dataset:
    """Read and check a preprocessed ``.npz``; any problem is one ``InputError`` line."""
    from agecompact.data.locate import sidecar_path

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = {"image", "age"} - keys
            if missing:
                raise InputError(f"{path}: not a preprocessed dataset (missing {', '.join(sorted(missing))})")
            images = z["image"]
            age = z["age"]
            gender = z["gender"] if "gender" in keys else None
            split = z["split"] if "split" in keys else None
            source_file = z["source_file"] if "source_file" in keys else None
    except FileNotFoundError:
        raise InputError(f"dataset file not found: {path}") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read dataset ({e})") from None
    for key, column in (("age", age), ("gender", gender), ("split", split)):
        if column is not None and (column.ndim != 1 or not np.issubdtype(column.dtype, np.number)):
            raise InputError(f"{path}: '{key}' must be one number per image, got {column.dtype} of shape "
                             f"{column.shape}")
    n = len(age)
    if images.dtype != np.uint8:
        raise InputError(f"{path}: 'image' must be uint8, got {images.dtype}")
    shape_ok = (images.ndim == 4 and images.shape[3] == 3 and images.shape[1] == images.shape[2]) or (
        images.ndim == 5 and images.shape[1] == 3 and images.shape[4] == 3)
    if not shape_ok or len(images) != n:
        raise InputError(f"{path}: 'image' has shape {images.shape}, expected (N, S, S, 3) with N = {n}")
    age = np.asarray(age, np.float32).reshape(-1)
    if n and not np.all(np.isfinite(age)):
        raise InputError(f"{path}: 'age' contains NaN or infinite values")
    if gender is not None and len(gender) != n:
        raise InputError(f"{path}: 'gender' has {len(gender)} rows, expected {n}")
    if split is not None and len(split) != n:
        raise InputError(f"{path}: 'split' has {len(split)} rows, expected {n}")
    sidecar: dict[str, Any] = {}
    sc = sidecar_path(path)
    if sc.is_file():
        try:
            sidecar = json.loads(sc.read_text())
        except (ValueError, OSError):
            sidecar = {}
        if not isinstance(sidecar, dict):  # not one of ours: ignore it, as an unreadable one is
            sidecar = {}
    db = name or sidecar.get("db") or path.stem
    return Dataset(path=path, name=str(db), images=images, age=age,
                   gender=None if gender is None else np.asarray(gender).astype(np.int64).reshape(-1),
                   split=None if split is None else np.asarray(split).astype(np.uint8).reshape(-1),
                   sidecar=sidecar,
                   source_file=source_file if source_file is not None and len(source_file) == n else None)


def load_datasets(paths: list[Path]) -> Dataset:
    """One dataset, or several joined in order for training on all of them.

    The parts must agree on what a row is (image shape and, where recorded, the face margin and colour
    order, since the trained model can only carry one); each keeps its own split rule (``make_split``).
    """
    if len(paths) == 1:
        return load_npz(paths[0])
    parts = [load_npz(p) for p in paths]
    if len({p.path.resolve() for p in parts}) != len(parts):
        raise UsageError("--db lists the same dataset file twice")
    first = parts[0]
    for p in parts[1:]:
        if p.images.shape[1:] != first.images.shape[1:]:
            raise InputError(f"cannot train on {first.path.name} and {p.path.name} together: images are "
                             f"{first.images.shape[1:]} and {p.images.shape[1:]}")
        for key in ("margin", "color_order"):
            a, b = first.sidecar.get(key), p.sidecar.get(key)
            if a is not None and b is not None and a != b:
                raise InputError(f"cannot train on {first.path.name} and {p.path.name} together: their {key} "
                                 f"differs ({a} vs {b}); preprocess them alike (e.g. --method detect --margin)")
    offsets = np.cumsum([0] + [len(p) for p in parts])[:-1].tolist()
    gender = np.concatenate([p.gender if p.gender is not None else np.full(len(p), -1, np.int64) for p in parts])
    sidecar = {k: v for k, v in first.sidecar.items() if k in ("margin", "color_order", "img_size")}
    sidecar["parts"] = [str(p.path) for p in parts]
    return Dataset(path=first.path, name="+".join(p.name for p in parts),
                   images=np.concatenate([p.images for p in parts]), age=np.concatenate([p.age for p in parts]),
                   gender=gender, split=None, sidecar=sidecar, parts=list(zip(parts, offsets, strict=True)))


def indices_sha256(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()


@dataclass
class Split:
    train: np.ndarray  # int64 indices, sorted
    val: np.ndarray
    method: str  # "dataset" (the npz's split column) or "random"
    seed: int
    val_fraction: float | None

    def to_json(self, ds: Dataset) -> dict[str, Any]:
        info: dict[str, Any] = {"name": ds.name, "path": str(ds.path.resolve()), "count": len(ds)}
        if ds.parts:
            info["parts"] = [{"name": p.name, "path": str(p.path.resolve()), "count": len(p), "offset": int(o)}
                             for p, o in ds.parts]
        return {
            "method": self.method,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "dataset": info,
            "n_train": int(len(self.train)),
            "n_val": int(len(self.val)),
            "train_sha256": indices_sha256(self.train),
            "val_sha256": indices_sha256(self.val),
            "val_indices": self.val.tolist(),
        }


def make_split(ds: Dataset, *, seed: int, val_fraction: float | None, keep: np.ndarray | None = None) -> Split:
    """The dataset's own split when it has one (and no fraction is forced), else a seeded random split.

    ``keep`` (bool mask) drops rows before splitting, e.g. unknown genders for a gender model. A joined
    dataset is split part by part, each by its own rule, with the same seed.
    """
    if ds.parts:
        subs = [make_split(p, seed=seed, val_fraction=val_fraction,
                           keep=None if keep is None else keep[o:o + len(p)]) for p, o in ds.parts]
        offs = [o for _, o in ds.parts]
        methods = sorted({sp.method for sp in subs})
        return Split(np.concatenate([sp.train + o for sp, o in zip(subs, offs, strict=True)]),
                     np.concatenate([sp.val + o for sp, o in zip(subs, offs, strict=True)]),
                     "+".join(methods), seed, val_fraction)
    n = len(ds)
    rows = np.arange(n) if keep is None else np.flatnonzero(keep)
    if ds.split is not None and val_fraction is None:
        train = rows[ds.split[rows] == SPLIT_TRAIN]
        val = rows[ds.split[rows] != SPLIT_TRAIN]
        out = Split(np.sort(train), np.sort(val), "dataset", seed, None)
    else:
        frac = DEFAULT_VAL_FRACTION if val_fraction is None else float(val_fraction)
        perm = rows[np.random.default_rng(seed).permutation(len(rows))]
        n_val = int(round(len(rows) * frac))
        out = Split(np.sort(perm[n_val:]), np.sort(perm[:n_val]), "random", seed, frac)
    if len(out.train) == 0 or len(out.val) == 0:
        raise InputError(f"{ds.path}: the split leaves {len(out.train)} training and {len(out.val)} validation "
                         "images; need at least one of each")
    return out


def repeat_parts(ds: Dataset, split: Split, repeats: list[int] | None) -> Split:
    """``split`` with each part's training rows listed ``repeats[i]`` times (validation untouched).

    An epoch then visits a small dataset's faces several times for each pass over a large one, so
    the model is not fitted to the large one's population alone.
    """
    if not repeats or all(int(r) == 1 for r in repeats):
        return split
    bounds = [(o, o + len(p)) for p, o in ds.parts] if ds.parts else [(0, len(ds))]
    pieces = [np.repeat(split.train[(split.train >= lo) & (split.train < hi)], int(r))
              for (lo, hi), r in zip(bounds, repeats, strict=True)]
    return dataclasses.replace(split, train=np.sort(np.concatenate(pieces)))


def check_split(saved: dict[str, Any], split: Split) -> None:
    """On resume, the recomputed split must be the saved one (same data, same seed)."""
    if saved.get("train_sha256") != indices_sha256(split.train) or saved.get("val_sha256") != indices_sha256(split.val):
        raise UsageError("the dataset or seed differs from the run being resumed (split.json does not match)")


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    steps = n_train // batch_size
    if steps < 1:
        raise UsageError(f"batch size {batch_size} is larger than the training set ({n_train} images); "
                         "lower --batch-size")
    return steps


def epoch_order(train: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """This epoch's shuffled training indices: a pure function of (seed, epoch)."""
    return train[np.random.default_rng([seed, epoch, 0]).permutation(len(train))]


def batch_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """The generator behind one batch's augmentation draws."""
    return np.random.default_rng([seed, epoch, 1, step])


Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def train_batches(ds: Dataset, targets: dict[str, np.ndarray], train: np.ndarray, *, batch_size: int, seed: int,
                  epoch: int, start_step: int = 0, augment: Transform | None = None
                  ) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
    """(step, uint8 images, targets) for one epoch, remainder dropped so shapes never change."""
    order = epoch_order(train, seed, epoch)
    for step in range(start_step, steps_per_epoch(len(train), batch_size)):
        idx = np.sort(order[step * batch_size:(step + 1) * batch_size])  # sorted: faster gather
        images = ds.images[idx]
        if augment is not None:
            images = augment(images, batch_rng(seed, epoch, step))
        yield step, images, {k: v[idx] for k, v in targets.items()}


def eval_batches(images: np.ndarray, idx: np.ndarray, batch_size: int
                 ) -> Iterator[tuple[np.ndarray, int]]:
    """Fixed-size batches (the tail padded with copies of the first row) and the count of real rows."""
    for start in range(0, len(idx), batch_size):
        part = idx[start:start + batch_size]
        n = len(part)
        if n < batch_size:
            part = np.concatenate([part, np.full(batch_size - n, part[0], part.dtype)])
        yield images[part], n


_END = object()


class Prefetcher:
    """Runs an iterator (gather + augmentation + device transfer) on a background thread, ``depth`` ahead.

    Exceptions in the worker are re-raised in the consumer; ``close`` stops the worker early.
    """

    def __init__(self, it: Iterator[Any], depth: int = 2, transfer: Callable[[Any], Any] | None = None):
        self._q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._transfer = transfer
        self._thread = threading.Thread(target=self._run, args=(it,), daemon=True, name="agecompact-prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator[Any]) -> None:
        try:
            for item in it:
                if self._stop.is_set():
                    return
                if self._transfer is not None:
                    item = self._transfer(item)
                if not self._put(item):
                    return
        except BaseException as e:  # handed to the consumer, re-raised there
            self._put(("__error__", e))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, tuple) and len(item) == 2 and item[0] == "__error__":
                raise item[1]
            yield item

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
