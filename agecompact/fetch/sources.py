"""What ``agecompact fetch NAME`` knows how to get, and where each thing ends up.

Kinds: ``dataset`` (a tar downloaded and extracted into the data folder), ``weights`` (released Keras
weights, verified and converted into an agecompact model file in the cache), ``detector`` (the YuNet ONNX
file), ``demo`` (generated offline) and ``manual`` (no direct link: we say where to get it and where to put it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agecompact.errors import UsageError

IMDB_WIKI_PAGE = "https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/"
_IMDB_WIKI_STATIC = IMDB_WIKI_PAGE + "static/"
YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2023mar.onnx")
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
YUNET_SIZE = 232_589


@dataclass(frozen=True)
class Source:
    name: str
    kind: str  # dataset | weights | detector | demo | manual
    description: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    filename: str | None = None
    licence: str | None = None
    instructions: str | None = None

    def destination(self, dest: str | os.PathLike | None = None) -> Path:
        """Where the fetched thing is placed (``dest`` overrides the folder)."""
        from agecompact.data.demo import DEFAULT_DEST
        from agecompact.data.locate import data_dir
        from agecompact.faces.detector import default_yunet_path
        from agecompact.pretrained import cached_model_path

        if self.kind == "dataset":
            return Path(dest) if dest else data_dir()
        if self.kind == "weights":
            return cached_model_path(self.name)
        if self.kind == "detector":
            return Path(dest) / default_yunet_path().name if dest else default_yunet_path()
        if self.kind == "demo":
            return Path(dest) if dest else DEFAULT_DEST
        if self.kind == "manual":
            return data_dir(dest) / (self.filename or self.name)
        raise AssertionError(self.kind)  # pragma: no cover

    def weights_file(self, dest: str | os.PathLike | None = None) -> Path:
        """Where the downloaded ``.h5`` of a weights entry is kept (``dest`` overrides the folder)."""
        from agecompact.paths import cache_home

        suffix = Path(self.url or "x.h5").suffix or ".h5"
        folder = Path(dest) if dest else cache_home() / "weights"
        return folder / f"{self.name}{suffix}"


def _datasets() -> list[Source]:
    return [
        Source("imdb", "dataset", "IMDB face crops (460,723 images, ~7 GB) with imdb.mat",
               url=_IMDB_WIKI_STATIC + "imdb_crop.tar", filename="imdb_crop.tar",
               licence="academic research only (IMDB-WIKI terms)"),
        Source("wiki", "dataset", "WIKI face crops (62,328 images, ~1 GB) with wiki.mat",
               url=_IMDB_WIKI_STATIC + "wiki_crop.tar", filename="wiki_crop.tar",
               licence="academic research only (IMDB-WIKI terms)"),
    ]


def _weights() -> list[Source]:
    from agecompact.pretrained import PRETRAINED

    return [Source(w.name, "weights", f"released {w.arch} weights trained on {w.dataset}", url=w.url,
                   sha256=w.sha256, size=w.size, licence=w.licence) for w in PRETRAINED.values()]


def _others() -> list[Source]:
    return [
        Source("yunet", "detector", "YuNet face detector (OpenCV Zoo, 2023mar) used by predict and --method aec",
               url=YUNET_URL, sha256=YUNET_SHA256, size=YUNET_SIZE, filename="face_detection_yunet_2023mar.onnx",
               licence="MIT"),
        Source("demo", "demo", "synthetic faces in the WIKI layout, generated offline (--count, --seed)"),
        Source("megaage", "manual", "MegaAge-Asian (about 40,000 Asian faces, ages 0-70)",
               filename="megaage_asian", licence="research only (CUHK MMLab)",
               instructions=(
                   "MegaAge-Asian has no direct download link. Request it from CUHK MMLab "
                   "(http://mmlab.ie.cuhk.edu.hk/projects/MegaAge/) and extract it so that "
                   "{dest}/train/, {dest}/test/ and {dest}/list/{{train,test}}_{{name,age}}.txt exist. Then run "
                   "`agecompact preprocess --db megaage` (or pass --root to point elsewhere).")),
        Source("utkface", "manual", "UTKFace aligned & cropped faces (23,708 images, labels in file names)",
               filename="UTKFace", licence="non-commercial research only",
               instructions=(
                   "UTKFace is distributed from https://susanqq.github.io/UTKFace/ (Google Drive). Download "
                   "'Aligned&Cropped Faces' (UTKFace.tar.gz) and extract it so that the "
                   "age_gender_race_datetime.jpg.chip.jpg files are in {dest}/. Then run "
                   "`agecompact preprocess --db utkface` (or pass --root to point elsewhere).")),
        Source("aaf", "manual", "All-Age-Faces (13,322 mostly Asian faces, ages 2-80, train/val split)",
               filename="All-Age-Faces Dataset", licence="research only",
               instructions=(
                   "All-Age-Faces is linked (Google Drive / Baidu) from "
                   "https://github.com/JingchunCheng/All-Age-Faces-Dataset. Extract it so that "
                   "'{dest}/aglined faces/' and '{dest}/image sets/{{train,val}}.txt' exist. Then run "
                   "`agecompact preprocess --db aaf` (or pass --root to point elsewhere).")),
    ]


def sources() -> dict[str, Source]:
    return {s.name: s for s in [*_datasets(), *_weights(), *_others()]}


def get_source(name: str) -> Source:
    known = sources()
    key = name.strip().lower()
    if key not in known:
        raise UsageError(f"unknown fetch target {name!r}; `agecompact fetch --list` shows them all "
                         f"({', '.join(known)})")
    return known[key]
