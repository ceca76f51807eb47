"""Face detectors: YuNet (OpenCV's ``FaceDetectorYN``) when its ONNX file is available, else Haar.

YuNet also gives five landmarks (eyes, nose tip, mouth corners), which C3AE's context crops need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agecompact.choices import DETECTORS
from agecompact.errors import InputError, UsageError
from agecompact.paths import cache_home

YUNET_FILENAME = "face_detection_yunet_2023mar.onnx"


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x, y, w, h in pixels
    score: float
    landmarks: np.ndarray | None = None  # (5, 2): right eye, left eye, nose tip, mouth right, mouth left


def default_yunet_path() -> Path:
    """Where ``agecompact fetch yunet`` puts the detector."""
    return cache_home() / "detectors" / YUNET_FILENAME


class YuNetDetector:
    name = "yunet"
    scored = True  # its scores are confidences in [0, 1]

    def __init__(self, model_path: str | os.PathLike, *, score_threshold: float = 0.8,
                 nms_threshold: float = 0.3):
        import cv2

        path = Path(model_path)
        if not path.is_file():
            raise InputError(f"YuNet model not found: {path} (run `agecompact fetch yunet`)")
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, 5000)
        except cv2.error:
            raise InputError(f"{path}: not a usable YuNet ONNX model") from None

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _, rows = self._net.detect(image)
        faces = []
        for r in rows if rows is not None else []:
            faces.append(Face((float(r[0]), float(r[1]), float(r[2]), float(r[3])), float(r[14]),
                              np.asarray(r[4:14], np.float32).reshape(5, 2)))
        return faces


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade: no download, weaker than YuNet, no landmarks.

    Each box gets a score in (0, 1) from the cascade's last-stage weight ``w`` (``w / (1 + w)``): it ranks
    detections but is not a calibrated confidence, so ``--min-score`` (a YuNet threshold) does not apply.
    Overlapping boxes (the cascade sometimes keeps a second, nested box on one face) go through
    non-maximum suppression: of two boxes whose overlap covers more than ``overlap`` of the smaller one,
    only the higher-scoring one is kept.
    """

    name = "haar"
    scored = False  # --min-score does not apply: the scores below are not confidences
    reports_score = True

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 overlap: float = 0.5):
        import cv2

        haar_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
        if not haar_dir or not hasattr(cv2, "CascadeClassifier"):
            raise UsageError("this OpenCV build has no Haar cascades (opencv-python-headless>=4.10,<5 has them)")
        self._cascade = cv2.CascadeClassifier(os.path.join(haar_dir, "haarcascade_frontalface_default.xml"))
        self._args = (scale_factor, min_neighbors, (min_size, min_size))
        self.overlap = overlap

    def detect(self, image: np.ndarray) -> list[Face]:
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        scale, neighbors, min_size = self._args
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=scale, minNeighbors=neighbors, minSize=min_size, outputRejectLevels=True)
        if len(boxes) == 0:
            return []
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        w = np.maximum(np.asarray(weights, np.float64).reshape(-1), 0.0)
        scores = w / (1.0 + w)
        return [Face(tuple(float(v) for v in boxes[i]), float(scores[i]))
                for i in suppress_overlaps(boxes, scores, self.overlap)]


def suppress_overlaps(boxes: np.ndarray, scores: np.ndarray, overlap: float) -> list[int]:
    """Indices kept by non-maximum suppression, best first; two boxes overlap when their intersection
    covers more than ``overlap`` of the smaller box (so a box nested in another counts, as it must)."""
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(_covered(i, j, x1, y1, x2, y2, area) <= overlap for j in keep):
            keep.append(int(i))
    return keep


def _covered(i, j, x1, y1, x2, y2, area) -> float:
    iw = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]))
    ih = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]))
    smaller = min(area[i], area[j])
    return iw * ih / smaller if smaller > 0 else 0.0


class WholeImage:
    """No detection: the whole image is the face (already-cropped inputs such as UTKFace chips)."""

    name = "none"
    scored = False

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        return [Face((0.0, 0.0, float(w), float(h)), 1.0)]


def create_detector(kind: str = "auto", *, model_path: str | os.PathLike | None = None,
                    score_threshold: float = 0.8):
    """``auto``: YuNet if its model file is given or cached, else Haar. ``yunet``, ``haar``, ``none``."""
    if kind == "none":
        return WholeImage()
    if kind == "haar":
        return HaarDetector()
    path = Path(model_path) if model_path else default_yunet_path()
    if kind == "yunet":
        return YuNetDetector(path, score_threshold=score_threshold)
    if kind == "auto":
        if path.is_file():
            return YuNetDetector(path, score_threshold=score_threshold)
        return HaarDetector()
    raise UsageError(f"unknown detector {kind!r}: choose one of: {', '.join(DETECTORS)}")
