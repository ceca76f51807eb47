"""``preprocess`` for every supported dataset: pick the reader and the per-image processing, then run.

The face margin recorded in the sidecar tells ``predict`` how much context around a detector box the
training crops had (see ``MARGINS``), so a model trained on these crops is fed the same kind of crop.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from agecompact.data import aaf, demo, imdbwiki, megaage, utkface
from agecompact.data import preprocess as pipeline
from agecompact.data.locate import filtered_csv_path, npz_path
from agecompact.data.samples import Samples
from agecompact.data.transforms import AecCrop, DetectCrop, PlainResize
from agecompact.errors import InputError, UsageError
from agecompact.fileio import check_replaceable, read_json_or_none

DATASETS = ("imdb", "wiki", "megaage", "utkface", "aaf")
METHODS = ("ssrnet", "aec", "detect")

# Margin per side (fraction of the face box) that the dataset's own images have around the face, i.e.
# what ``--method ssrnet`` keeps. IMDB-WIKI crops: the DEX authors' 40%. UTKFace and All-Age-Faces:
# median of YuNet boxes on the ../shared copies (UTKFace 0.10 horizontally / 0.01 vertically,
# All-Age-Faces 0.38 / 0.32). MegaAge-Asian: estimated from its CelebA-like 178x218 framing, not measured.
DEMO_NAME = "demo"  # the dataset name of generated data, whatever layout it imitates
MARGINS = {"imdb": 0.4, "wiki": 0.4, "utkface": 0.1, "aaf": 0.35, "megaage": 0.4}
MARGIN_NOTES = {
    "imdb": "IMDB-WIKI crops carry the DEX 40% margin [unverified upstream]",
    "wiki": "IMDB-WIKI crops carry the DEX 40% margin [unverified upstream]",
    "utkface": "median YuNet box margin on UTKFace chips (0.10 x, 0.01 y)",
    "aaf": "median YuNet box margin on All-Age-Faces (0.38 x, 0.32 y)",
    "megaage": "estimate for 178x218 aligned faces after the 20-row cut, not measured",
}


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def _recorded_root(db: str, root: str | os.PathLike, recorded: str | None) -> Path | None:
    """``root`` or its ``<db>_crop`` when it is the image folder a filter sidecar recorded."""
    if recorded is None:
        return None
    for folder in (Path(root), Path(root) / f"{db}_crop"):
        if str(folder.resolve()) == recorded:
            return folder
    return None


def _image_root_of(db: str, root: str | os.PathLike) -> Path:
    """The image folder for ``--root``: beside its ``.mat`` when there is one, else ``root`` itself."""
    try:
        return imdbwiki.find_mat(db, root)[1]
    except InputError:
        return Path(root)


def imdbwiki_samples(db: str, *, root: str | os.PathLike | None, csv: str | os.PathLike | None, method: str,
                     quiet: bool = False) -> Samples:
    """The kept rows of the filter CSV; runs ``filter`` first when there is none (and says so)."""
    from agecompact.console import log

    csv_path = Path(csv) if csv is not None else filtered_csv_path(db)
    info = read_json_or_none(imdbwiki.filter_sidecar(csv_path))
    recorded = info.get("image_root") if info else None
    image_root = None
    if csv_path.is_file():
        if root is None:
            image_root = Path(recorded) if recorded else None
        else:
            image_root = _recorded_root(db, root, recorded)
            if image_root is None and (csv is not None or recorded is None):
                image_root = _image_root_of(db, root)  # the user's own CSV is used as given, never rewritten
            elif image_root is None:
                # our default CSV was made from other images: filter this folder's metadata again
                _, image_root = imdbwiki.find_mat(db, root)
                rules = info.get("rules", method) if info else method
                if not quiet:
                    log(f"{csv_path} was made from {recorded or 'unknown images'}; re-running "
                        f"`agecompact filter --db {db} --rules {rules}` for {image_root}")
                info = imdbwiki.run_filter(db, root=root, rules=rules,
                                           min_score=info.get("min_score", 1.0) if info else 1.0, out=csv_path)
    else:
        if csv is not None:
            raise InputError(f"filter CSV not found: {csv_path}")
        imdbwiki.find_mat(db, root)  # no metadata at all: say that, not that a filter is about to run
        if not quiet:
            log(f"no filter CSV at {csv_path}: running `agecompact filter --db {db} --rules {method}` first")
        info = imdbwiki.run_filter(db, root=root, rules=method, out=csv_path)
        image_root = Path(info["image_root"])
    if image_root is None:
        _, image_root = imdbwiki.find_mat(db, None)
    if info is not None and info.get("rules") not in (None, method) and not quiet:
        log(f"note: {csv_path.name} was filtered with the {info.get('rules')} rules; preprocessing it with "
            f"--method {method}")
    rows = imdbwiki.read_filtered_csv(csv_path)
    ages = rows.age
    age_labels = "filter CSV: SSR-Net calc_age from dob and photo_taken (birth month >= 7 subtracts 1)"
    if method == "aec":
        from_names = [imdbwiki.age_from_filename(p, rule="aec") for p in rows.full_path]
        ages = np.asarray([a if a is not None else int(c) for a, c in zip(from_names, rows.age, strict=True)])
        age_labels = "file name, AEC rule (birth month > 7 subtracts 1); filter CSV age where the name does not parse"
    source = {"labels": age_labels, "filter_csv": str(csv_path),
              "filter_rules": info.get("rules") if info else None,
              "mat_sha256": info.get("mat_sha256") if info else None}
    name = db
    if (image_root / demo.MANIFEST).is_file():
        # Generated faces in the IMDB-WIKI layout: named "demo" so their results are never taken for WIKI's.
        name = DEMO_NAME
        source.update(layout=db, synthetic=True)
    return Samples(name, image_root, rows.full_path, ages, rows.gender, source=source)


def build(db: str, *, root: str | os.PathLike | None = None, method: str = "ssrnet",
          out: str | os.PathLike | None = None, csv: str | os.PathLike | None = None, workers: int | None = None,
          restart: bool = False, quiet: bool = False, detector: str = "auto",
          detector_model: str | os.PathLike | None = None, img_size: int = 64, margin: float | None = None,
          holdout: float | None = None) -> dict:
    """Preprocess one dataset into ``out`` (default ``data/<db>.npz``); returns the sidecar dictionary."""
    check_choice(db, DATASETS, "dataset")
    check_choice(method, METHODS, "method")
    check_choice(detector, ("auto", "yunet", "haar"), "detector")
    if margin is not None and method != "detect":
        raise UsageError("--margin only applies to --method detect")
    if margin is not None and not 0.0 <= margin <= 2.0:
        raise UsageError("--margin must lie between 0 and 2")
    if holdout is not None and not 0.0 < holdout < 1.0:
        raise UsageError("--holdout must lie between 0 and 1 (exclusive)")
    if csv is not None and db not in imdbwiki.DATABASES:
        raise UsageError("--csv only applies to --db imdb or --db wiki")
    if out is not None:
        check_replaceable(out)
    if db in imdbwiki.DATABASES:
        samples = imdbwiki_samples(db, root=root, csv=csv, method=method, quiet=quiet)
    elif db == "utkface":
        samples = utkface.list_samples(root)
    elif db == "aaf":
        samples = aaf.list_samples(root)
    else:
        samples = megaage.list_samples(root)
    if len(samples) == 0:
        raise InputError(f"no labelled {db} images found in {samples.root}")
    if holdout is not None:
        if samples.split is not None:
            raise UsageError(f"--holdout: {db} has an official split already ({', '.join(samples.split_names)})")
        samples.split = holdout_split(samples.paths, holdout)
        samples.split_names = ["train", "holdout"]
        samples.source = {**samples.source, "holdout": {"fraction": holdout, "rule": HOLDOUT_RULE}}

    if method == "aec":
        transform = AecCrop(img_size, detector, str(detector_model) if detector_model else None)
        transform.check()
        margin, note = 0.0, "tight detector box (AEC)"
    elif method == "detect":
        margin = MARGINS[db] if margin is None else float(margin)
        transform = DetectCrop(img_size, detector, str(detector_model) if detector_model else None, margin=margin)
        transform.check()
        note = "detector box + margin, as predict crops"
    else:
        transform = PlainResize(img_size, megaage.CROP_ROWS if db == "megaage" else 0)
        margin, note = MARGINS[db], MARGIN_NOTES[db]
    out = Path(out) if out is not None else npz_path(samples.db)
    return pipeline.run(samples, transform, out, img_size=img_size, workers=workers, restart=restart,
                        quiet=quiet, settings={"margin": margin}, extra={"margin_note": note})


HOLDOUT_RULE = "split = 1 when int(sha256(file name)[:8], 16) / 2**32 < fraction"


def holdout_split(paths: list[str], fraction: float) -> np.ndarray:
    """A held-out split that depends only on each file's name: stable when files are added, removed or
    listed in another order, and the same on every machine (``HOLDOUT_RULE``)."""
    import hashlib

    out = np.zeros(len(paths), np.uint8)
    for i, p in enumerate(paths):
        h = int(hashlib.sha256(Path(p).name.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16)
        out[i] = h / 2**32 < fraction
    return out
