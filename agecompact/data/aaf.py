"""All-Age-Faces: ``aglined faces/NNNNNAyy.jpg`` (yy = age) and ``image sets/{train,val}.txt``.

The lists hold ``name gender`` lines with 0 = female, 1 = male, which is already our convention. The
official train/val split is kept in the ``split`` key (0 = train, 1 = val).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from agecompact.data.samples import Samples, find_dataset_root
from agecompact.errors import InputError

SPLITS = ("train", "val")
IMAGE_DIRS = ("aglined faces", "aligned faces")  # the distribution spells it "aglined"
_NAME = re.compile(r"^\d+A(?P<age>\d+)(?:\.\w+)?$")  # the lists name files with or without ".jpg"


def parse_name(name: str) -> int | None:
    m = _NAME.match(name)
    return int(m["age"]) if m else None


def find_root(root: str | os.PathLike | None) -> Path:
    return find_dataset_root(
        root, "All-Age-Faces Dataset",
        lambda p: (p / "image sets").is_dir() and any((p / d).is_dir() for d in IMAGE_DIRS),
        "no All-Age-Faces layout ('aglined faces/' and 'image sets/') in {base}: "
        "`agecompact fetch aaf` says where to get it; pass --root to point at the folder")


def list_samples(root: str | os.PathLike | None = None) -> Samples:
    folder = find_root(root)
    image_dir = next(d for d in IMAGE_DIRS if (folder / d).is_dir())
    paths, ages, genders, splits, unlabelled = [], [], [], [], []
    digest = hashlib.sha256()
    for split_index, split in enumerate(SPLITS):
        list_file = folder / "image sets" / f"{split}.txt"
        if not list_file.is_file():
            raise InputError(f"missing list file {list_file}")
        text = list_file.read_text(encoding="utf-8", errors="replace")
        digest.update(text.encode())
        for line_no, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1"):
                raise InputError(f"{list_file}:{line_no}: expected 'name gender', got {line!r}")
            name = fields[0] if "." in fields[0] else f"{fields[0]}.jpg"
            age = parse_name(name)
            if age is None:
                unlabelled.append(f"{image_dir}/{name}")
                continue
            paths.append(f"{image_dir}/{name}")
            ages.append(age)
            genders.append(int(fields[1]))
            splits.append(split_index)
    return Samples("aaf", folder, paths, np.asarray(ages), np.asarray(genders), np.asarray(splits),
                   list(SPLITS), unlabelled=unlabelled,
                   source={"labels": "age from the file name (NNNNNAyy), gender and split from image sets/*.txt",
                           "lists_sha256": digest.hexdigest()})
