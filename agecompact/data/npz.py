"""The preprocessed dataset file: a uint8 ``.npz`` (image, age, optional gender / split / source_file) and
its JSON sidecar, read and checked into a ``Dataset``; several joined for training on all of them.

Images stay uint8 on the host (a float copy of IMDB would need ~10 GB); models cast on device.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import InputError, UsageError

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

    def labels(self, task: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The float32 targets of ``task`` ("age" or "gender") and the rows that have one (None: all).

        Training and evaluation both read labels here, so they agree on which rows count."""
        if task == "gender":
            if self.gender is None:
                raise InputError(f"{self.path}: a gender model needs a 'gender' column")
            return self.gender.astype(np.float32), (self.gender == 0) | (self.gender == 1)
        return self.age.astype(np.float32), None

    @property
    def kind(self) -> str | None:
        """The source dataset ``preprocess`` recorded in the sidecar (``--db imdb`` -> "imdb"); None without
        one, and for a join of several files. Recipes read it, never the file's name."""
        db = self.sidecar.get("db")
        return db.lower() if isinstance(db, str) and not self.parts else None

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
    if sc.is_file():  # it sets the dataset's name (recipe batch size), crop margin and parts: never ignored
        try:
            sidecar = json.loads(sc.read_text())
        except (ValueError, OSError) as e:
            raise InputError(f"{sc}: unreadable sidecar ({e}); fix it or remove it") from None
        if not isinstance(sidecar, dict):
            raise InputError(f"{sc}: not an agecompact sidecar (a JSON object is expected); fix it or remove it")
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
