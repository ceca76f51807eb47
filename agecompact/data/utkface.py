"""UTKFace: labels live in the file names ``age_gender_race_datetime.jpg.chip.jpg``.

The real distribution has a few malformed names (race missing, a space or a missing dot before ``jpg``);
they are parsed anyway. UTKFace writes gender as 0 = male, 1 = female; we store the IMDB-WIKI convention
(1 = male, 0 = female), so it is flipped here.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from agecompact.data.samples import Samples, find_dataset_root, is_image_name

_NAME = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>\d)(?:_(?P<race>\d))?_(?P<stamp>\d{8,})")


def parse_name(name: str) -> tuple[int, int, int | None] | None:
    """(age, gender in our convention, race or None) from a UTKFace file name; None if it has no labels."""
    m = _NAME.match(name)
    if m is None:
        m2 = re.match(r"^(?P<age>\d{1,3})_(?P<gender>\d)(?:_(?P<race>\d))?(?:[_ .]|$)", name)
        if m2 is None:
            return None
        m = m2
    age = int(m["age"])
    utk_gender = int(m["gender"])
    gender = {0: 1, 1: 0}.get(utk_gender, -1)
    race = int(m["race"]) if m["race"] is not None else None
    return age, gender, race


def find_root(root: str | os.PathLike | None) -> Path:
    return find_dataset_root(
        root, "UTKFace", lambda p: p.is_dir() and any(is_image_name(n) for n in os.listdir(p)),
        "no UTKFace images in {base}: `agecompact fetch utkface` says where to get them; "
        "pass --root to point at the folder", nested=("utkface",))


def list_samples(root: str | os.PathLike | None = None) -> Samples:
    folder = find_root(root)
    names = sorted(n for n in os.listdir(folder) if is_image_name(n))
    paths, ages, genders, unlabelled = [], [], [], []
    listing = hashlib.sha256()
    for name in names:
        listing.update(name.encode() + b"\n")
        parsed = parse_name(name)
        if parsed is None:
            unlabelled.append(name)
            continue
        paths.append(name)
        ages.append(parsed[0])
        genders.append(parsed[1])
    return Samples("utkface", folder, paths, np.asarray(ages), np.asarray(genders), unlabelled=unlabelled,
                   source={"labels": "file names age_gender_race_datetime (UTKFace gender flipped to 1 = male)",
                           "listing_sha256": listing.hexdigest(), "files": len(names),
                           # kept as labelled (yu4u's scripts cap them at 100)
                           "ages_above_100": int(sum(a > 100 for a in ages))})
