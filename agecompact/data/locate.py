"""Where preprocessed datasets live, so ``preprocess --db wiki`` and ``train --db wiki`` agree."""

from __future__ import annotations

import os
from pathlib import Path

from agecompact.errors import InputError

DEFAULT_DATA_DIR = Path("data")


def data_dir(override: str | os.PathLike | None = None) -> Path:
    if override is not None:
        return Path(override)
    return Path(os.environ.get("AGECOMPACT_DATA", DEFAULT_DATA_DIR))


def npz_path(db: str, directory: str | os.PathLike | None = None) -> Path:
    """The ``.npz`` a dataset name is preprocessed into (``data/<db>.npz``)."""
    return data_dir(directory) / f"{db}.npz"


def resolve_npz(db_or_path: str | os.PathLike, directory: str | os.PathLike | None = None) -> Path:
    """An existing ``.npz``: a path as given, or a dataset name looked up in the data folder."""
    p = Path(db_or_path)
    if p.suffix == ".npz" or p.is_file():
        if not p.is_file():
            raise InputError(f"dataset file not found: {p}")
        return p
    candidate = npz_path(str(db_or_path), directory)
    if candidate.is_file():
        return candidate
    raise InputError(f"dataset {str(db_or_path)!r} not found at {candidate}; "
                     f"run `agecompact preprocess --db {db_or_path}` first or pass an .npz path")


def sidecar_path(npz: str | os.PathLike) -> Path:
    """The JSON that ``preprocess`` writes beside an ``.npz`` (``data/wiki.npz`` -> ``data/wiki.npz.json``)."""
    npz = Path(npz)
    return npz.with_name(npz.name + ".json")


def filtered_csv_path(db: str, directory: str | os.PathLike | None = None) -> Path:
    """Where ``agecompact filter --db <db>`` writes the kept rows (``data/<db>_filtered.csv``)."""
    return data_dir(directory) / f"{db}_filtered.csv"
