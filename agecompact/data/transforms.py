"""Per-image work of ``preprocess``: decode, then turn one dataset image into one 64x64 BGR face.

Every function here runs in worker threads; OpenCV releases the GIL while decoding, resizing and
detecting, so threads use all cores without copying images between processes.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# status codes stored per sample in the resumable scratch folder
PENDING, OK, MISSING, CORRUPT, NO_FACE, SEVERAL_FACES, FACE_SIZE = range(7)
REASONS = {MISSING: "missing", CORRUPT: "corrupt", NO_FACE: "no_face", SEVERAL_FACES: "several_faces",
           FACE_SIZE: "face_size"}

AEC_RESIZE = 240  # AEC resizes every crop to 240x240 before detecting (spec §3.1)
AEC_MIN_AREA, AEC_MAX_AREA = 6400, 45000  # kept face boxes: 6400 < w*h < 45000 on the 240x240 image


def read_image(path: str | os.PathLike) -> tuple[int, np.ndarray | None]:
    """(OK, BGR uint8 image) or (MISSING/CORRUPT, None). Never raises for a bad file."""
    import cv2

    try:
        data = np.fromfile(path, np.uint8)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return MISSING, None
    except OSError:
        return CORRUPT, None
    if data.size == 0:
        return CORRUPT, None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        return CORRUPT, None
    if image is None or image.size == 0 or image.ndim != 3:
        return CORRUPT, None
    return OK, image


@dataclass
class PlainResize:
    """SSR-Net's processing: the dataset crop resized to ``size`` (bilinear, aspect ratio ignored).

    ``crop_rows`` rows are cut from the top and the bottom first (MegaAge-Asian uses 20).
    """

    size: int = 64
    crop_rows: int = 0

    def describe(self) -> dict:
        d = {"method": "ssrnet", "processing": "cv2.resize of the whole dataset image (bilinear, aspect ignored)"}
        if self.crop_rows:
            d["processing"] = f"cut {self.crop_rows} rows top and bottom, then " + d["processing"]
        return d

    def __call__(self, image: np.ndarray) -> tuple[int, np.ndarray | None]:
        from agecompact.faces.crop import resize_to_input

        if self.crop_rows:
            if image.shape[0] <= 2 * self.crop_rows:
                return CORRUPT, None
            image = image[self.crop_rows:-self.crop_rows]
        return OK, resize_to_input(image, self.size)


@dataclass
class _Detecting:
    """Shared detector handling: YuNet when its file is available (``auto``), else Haar; one per thread."""

    size: int = 64
    detector: str = "auto"  # auto | yunet | haar
    model_path: str | None = None
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def resolved(self) -> tuple[str, str | None]:
        """(detector name, model file) that ``auto`` resolves to."""
        from agecompact.faces.detector import default_yunet_path

        path = Path(self.model_path) if self.model_path else default_yunet_path()
        if self.detector == "haar" or (self.detector == "auto" and not path.is_file()):
            return "haar", None
        return "yunet", str(path)

    def _describe_detector(self, d: dict) -> dict:
        name, path = self.resolved()
        d["detector"] = name
        if path:
            d["detector_model"] = Path(path).name
            d["detector_sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return d

    def check(self) -> None:
        """Build a detector once in the calling thread so configuration errors surface before the pool."""
        self._detector()

    def _detector(self):
        det = getattr(self._local, "detector", None)
        if det is None:
            from agecompact.faces.detector import create_detector

            name, path = self.resolved()
            det = create_detector(name, model_path=path)
            self._local.detector = det
        return det


@dataclass
class AecCrop(_Detecting):
    """AEC's "new data processing": on the crop resized to 240x240, exactly one detected face whose box
    area is in (6400, 45000) px², cut tight (no margin) and resized to ``size``.

    AEC used MTCNN (``mtcnn`` pip package, default thresholds, no confidence cut). We use YuNet when its
    ONNX file is available and OpenCV's Haar cascade otherwise; both give boxes of a slightly different
    extent than MTCNN, so the kept set and the crops differ somewhat from AEC's.
    """

    def describe(self) -> dict:
        name, _ = self.resolved()
        return self._describe_detector({
            "method": "aec", "processing": f"resize to {AEC_RESIZE}x{AEC_RESIZE}, exactly one {name} face with "
            f"{AEC_MIN_AREA} < w*h < {AEC_MAX_AREA}, tight box (margin 0), resize to {self.size}"})

    def __call__(self, image: np.ndarray) -> tuple[int, np.ndarray | None]:
        import cv2

        from agecompact.faces.crop import crop_face

        small = cv2.resize(image, (AEC_RESIZE, AEC_RESIZE), interpolation=cv2.INTER_LINEAR)
        faces = self._detector().detect(small)
        if not faces:
            return NO_FACE, None
        if len(faces) > 1:
            return SEVERAL_FACES, None
        x, y, w, h = faces[0].box
        if not AEC_MIN_AREA < w * h < AEC_MAX_AREA:
            return FACE_SIZE, None
        return OK, crop_face(small, (max(x, 0.0), max(y, 0.0), w, h), margin=0.0, size=self.size)


@dataclass
class DetectCrop(_Detecting):
    """The crop ``predict`` makes: detect on the full image, keep the largest face, grow its box by
    ``margin`` per side, clip to the image, resize. Training on these crops means a model sees at
    prediction time exactly the framing it learnt from, whatever the dataset's own framing was."""

    margin: float = 0.1

    def describe(self) -> dict:
        name, _ = self.resolved()
        return self._describe_detector({
            "method": "detect", "processing": f"largest {name} face on the full image, box + {self.margin:g} "
            f"per side (clipped), resize to {self.size} (the predict crop)"})

    def __call__(self, image: np.ndarray) -> tuple[int, np.ndarray | None]:
        from agecompact.faces.crop import crop_face

        faces = self._detector().detect(image)
        if not faces:
            return NO_FACE, None
        face = max(faces, key=lambda f: f.box[2] * f.box[3])
        return OK, crop_face(image, face.box, margin=self.margin, size=self.size)


def process_file(path: Path, transform) -> tuple[int, np.ndarray | None]:
    """Decode one file and apply ``transform``; OpenCV failures on odd images count as corrupt."""
    import cv2

    status, image = read_image(path)
    if status != OK:
        return status, None
    try:
        return transform(image)
    except cv2.error:
        return CORRUPT, None
