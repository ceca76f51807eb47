"""``agecompact.predict(source)``: ages of every face in a photo, a folder, an array or a list of them.

The same pipeline as ``agecompact predict``: detect (YuNet, else Haar), crop as the model was trained
(margin, colour order and size from the model file), estimate. Models, detector and engine are kept
between calls with the same options, so only the first call pays for loading them.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import InputError, UsageError

_CACHE_SIZE = 4
_cache: OrderedDict[tuple, Any] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class FaceRecord:
    """One face: where it is, what the detector and the models say about it."""

    file: str | None  # the image's path; None for an in-memory array
    image: int  # position of the image among all the images of the call
    face: int  # index of the face within its image
    box: tuple[float, float, float, float]  # x, y, w, h in pixels
    score: float | None  # detector confidence (None for Haar and detector="none")
    age: float  # years
    age_std: float | None = None  # spread of the model's age distribution, years (see predict.uncertainty)
    gender: str | None = None  # "M" / "F" with a gender model
    gender_score: float | None = None  # P(male) in [0, 1] with a gender model
    frame: int | None = None  # frame number, for videos

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["box"] = list(self.box)
        return d


def predict(source: Any, model: Any = "default", *, detector: str = "auto", gender_model: Any = None,
            detector_model: str | os.PathLike | None = None, min_score: float = 0.8, backend: str = "auto",
            batch_size: int = 64, recursive: bool = True, tta: str = "none") -> list[FaceRecord]:
    """Every face in ``source`` with its age: a list of :class:`FaceRecord`, in input order.

    ``source``: an image path, a folder (searched for images and videos), a video path, a BGR uint8
    ``np.ndarray`` (H, W, 3) as OpenCV reads it, or a list of any of these. ``model``: a model file,
    run folder, Keras ``.h5``, an ``.onnx`` from ``agecompact export``, a pretrained or zoo name, or an
    ``AgeModel``. ``detector``: ``auto`` (YuNet if ``agecompact fetch yunet`` stored it or
    ``detector_model`` is given, else OpenCV's Haar cascade), ``yunet``, ``haar`` or ``none`` (each
    image is one face). ``tta="flip"`` averages each face with its mirror image. Images without a face add no record. A missing or unreadable path raises
    ``agecompact.errors.InputError``; unreadable files found inside a folder are skipped with a warning.
    """
    sources = list(source) if isinstance(source, list | tuple) else [source]
    predictor = _predictor(model, gender_model, detector, detector_model, min_score, backend, batch_size, tta)
    records: list[FaceRecord] = []
    counter = iter(range(1 << 62))
    for src in sources:
        if isinstance(src, np.ndarray):
            image = as_bgr_image(src)
            (faces,) = predictor([image])
            records += _records(faces, file=None, image=next(counter))
        elif isinstance(src, str | os.PathLike):
            records += _from_path(predictor, Path(src), counter, recursive)
        else:
            raise UsageError(f"cannot predict on a {type(src).__name__}: give a path, a BGR uint8 array or a list")
    return records


def as_bgr_image(array: np.ndarray) -> np.ndarray:
    """A contiguous (H, W, 3) uint8 image from a BGR, BGRA or greyscale uint8 array."""
    x = np.asarray(array)
    if x.dtype != np.uint8:
        raise UsageError(f"images must be uint8 BGR arrays (as cv2.imread returns them), got {x.dtype}")
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=-1)
    elif x.ndim == 3 and x.shape[-1] == 4:
        x = x[..., :3]
    if x.ndim != 3 or x.shape[-1] != 3 or min(x.shape[:2]) < 1:
        raise UsageError(f"an image array must have shape (H, W, 3), got {x.shape}")
    return np.ascontiguousarray(x)


def _records(faces, *, file: str | None, image: int, frame: int | None = None) -> list[FaceRecord]:
    return [FaceRecord(file=file, image=image, face=f.index, box=f.box, score=f.score, age=f.age,
                       age_std=f.age_std, gender=f.gender, gender_score=f.gender_score, frame=frame)
            for f in faces]


def _from_path(predictor, path: Path, counter, recursive: bool) -> list[FaceRecord]:
    from agecompact.predict.inputs import discover
    from agecompact.predict.run import PredictRun

    items, problems = discover([path], recursive=recursive)
    if not items and problems:
        raise InputError(f"{problems[0].path}: {problems[0].message}")
    skipped: list = []
    tally = PredictRun(predictor, on_problem=skipped.append)(items)
    if len(items) == 1 and skipped:
        raise InputError(skipped[0].message if skipped[0].message.startswith(str(path))
                         else f"{skipped[0].path}: {skipped[0].message}")
    for p in skipped:
        warnings.warn(f"skipped {p.path}: {p.message}", stacklevel=3)
    out: list[FaceRecord] = []
    for outcome in tally.outcomes:
        name = str(outcome.item.path)
        if outcome.frames is None:
            out += _records(outcome.faces[0], file=name, image=next(counter))
        else:
            index = next(counter)
            for frame, faces in zip(outcome.frames, outcome.faces, strict=True):
                out += _records(faces, file=name, image=index, frame=frame)
    return out


def _model_key(source: Any) -> Any:
    if source is None or isinstance(source, str | os.PathLike):
        path = Path(source) if source is not None else None
        if path is not None and path.exists():
            return (str(path.resolve()), path.stat().st_mtime_ns)
        return ("name", str(source))
    return ("object", id(source))


def _predictor(model, gender_model, detector, detector_model, min_score, backend, batch_size, tta="none"):
    from agecompact.faces.detector import create_detector
    from agecompact.inference import resolve_backend
    from agecompact.inference.tta import check_tta
    from agecompact.predict.models import load_predict_model
    from agecompact.predict.pipeline import Predictor

    if detector not in ("auto", "yunet", "haar", "none"):
        raise UsageError(f"unknown detector {detector!r}: choose auto, yunet, haar or none")
    if not 0.0 <= float(min_score) <= 1.0:
        raise UsageError(f"min_score must be in [0, 1], got {min_score}")
    cacheable = all(m is None or isinstance(m, str | os.PathLike) for m in (model, gender_model))
    key = (_model_key(model), _model_key(gender_model), detector, str(detector_model), float(min_score),
           resolve_backend(backend), int(batch_size), check_tta(tta))
    with _lock:
        if cacheable and key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        age = load_predict_model(model, flag="model=")
        sex = load_predict_model(gender_model, flag="gender_model=") if gender_model is not None else None
        kind = "yunet" if detector == "auto" and detector_model is not None else detector
        found = create_detector(kind, model_path=detector_model, score_threshold=min_score)
        predictor = Predictor(age, detector=found, gender_model=sex, backend=backend, batch_size=batch_size,
                              min_score=min_score, tta=tta)
        if cacheable:
            _cache[key] = predictor
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)[1].close()
        return predictor


def clear_cache() -> None:
    """Forget the models and detectors kept between calls (and stop their worker threads)."""
    with _lock:
        while _cache:
            _cache.popitem()[1].close()
