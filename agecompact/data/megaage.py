"""MegaAge-Asian: ``list/{train,test}_name.txt`` and ``list/{train,test}_age.txt``, images in ``train/``, ``test/``.

The reference script cuts 20 rows from the top and the bottom of each (178x218) aligned face before the
resize (spec §6.2); that is applied by the ``ssrnet`` method. There is no gender label (stored as -1).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from agecompact.data.samples import Samples, find_dataset_root
from agecompact.errors import InputError

SPLITS = ("train", "test")
CROP_ROWS = 20


def find_root(root: str | os.PathLike | None) -> Path:
    return find_dataset_root(
        root, "megaage_asian", lambda p: (p / "list").is_dir(),
        "no MegaAge-Asian layout (list/, train/, test/) in {base}: `agecompact fetch megaage` "
        "says where to get it; pass --root to point at the folder")


def list_samples(root: str | os.PathLike | None = None) -> Samples:
    folder = find_root(root)
    paths, ages, splits = [], [], []
    digest = hashlib.sha256()
    present = []
    for split_index, split in enumerate(SPLITS):
        names_file = folder / "list" / f"{split}_name.txt"
        ages_file = folder / "list" / f"{split}_age.txt"
        if not names_file.is_file() and not ages_file.is_file():
            continue
        for f in (names_file, ages_file):
            if not f.is_file():
                raise InputError(f"missing list file {f}")
        names = names_file.read_text(encoding="utf-8", errors="replace").split()
        age_text = ages_file.read_text(encoding="utf-8", errors="replace")
        digest.update(names_file.read_bytes() + ages_file.read_bytes())
        try:
            # int(float(x)), as the reference script reads them: a fractional age is truncated, not rounded
            split_ages = [int(float(a)) for a in age_text.split()]
        except (ValueError, OverflowError):  # text, nan, inf
            raise InputError(f"{ages_file}: ages must be finite numbers") from None
        if len(split_ages) != len(names):
            raise InputError(f"{names_file.name} lists {len(names)} names but {ages_file.name} "
                             f"{len(split_ages)} ages")
        present.append(split)
        paths += [f"{split}/{n}" for n in names]
        ages += split_ages
        splits += [split_index] * len(names)
    if not present:
        raise InputError(f"no list/{{train,test}}_name.txt in {folder}")
    return Samples("megaage", folder, paths, np.asarray(ages), np.full(len(paths), -1), np.asarray(splits),
                   list(SPLITS), source={"labels": "list/{train,test}_{name,age}.txt", "splits_present": present,
                                         "lists_sha256": digest.hexdigest()})
