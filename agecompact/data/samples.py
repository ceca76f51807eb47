"""The labelled file list a dataset reader hands to ``preprocess``: paths, ages, genders, official splits."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agecompact.errors import InputError

GENDER_CONVENTION = "1 = male, 0 = female, -1 = unknown (the IMDB-WIKI convention)"


@dataclass
class Samples:
    db: str
    root: Path  # the folder ``paths`` are relative to
    paths: list[str]
    age: np.ndarray  # int32
    gender: np.ndarray  # int8, GENDER_CONVENTION
    split: np.ndarray | None = None  # uint8 index into split_names, only for official splits
    split_names: list[str] | None = None
    unlabelled: list[str] = field(default_factory=list)  # files seen whose labels could not be read
    source: dict = field(default_factory=dict)  # where the labels came from, for the sidecar

    def __post_init__(self) -> None:
        self.age = np.asarray(self.age, np.int32)
        self.gender = np.asarray(self.gender, np.int8)
        if self.split is not None:
            self.split = np.asarray(self.split, np.uint8)
        n = len(self.paths)
        if len(self.age) != n or len(self.gender) != n or (self.split is not None and len(self.split) != n):
            raise ValueError("paths, age, gender and split must have the same length")

    def __len__(self) -> int:
        return len(self.paths)

    def labels_sha256(self) -> str:
        """A hash of exactly what will be read: every path with its labels, in order."""
        h = hashlib.sha256()
        h.update(json.dumps({"db": self.db, "split_names": self.split_names}).encode())
        split = self.split if self.split is not None else np.zeros(len(self), np.uint8)
        for p, a, g, s in zip(self.paths, self.age.tolist(), self.gender.tolist(), split.tolist(), strict=True):
            h.update(f"{p}\t{a}\t{g}\t{s}\n".encode())
        return h.hexdigest()


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def find_dataset_root(root: str | os.PathLike | None, folder_name: str, probe, missing: str,
                      nested: tuple[str, ...] = ()) -> Path:
    """The dataset folder: ``root`` (default ``<data dir>/<folder_name>``) or a same-named folder inside it.

    Archives often extract into one more level of the same name; ``probe`` says which candidate holds the layout.
    ``missing`` is the message (``{base}`` filled in) when none does.
    """
    from agecompact.data.locate import data_dir

    base = Path(root) if root is not None else data_dir() / folder_name
    for candidate in [base, base / folder_name, *(base / n for n in nested)]:
        if probe(candidate):
            return candidate
    raise InputError(missing.format(base=base))
