"""Draw boxes and ages on a copy of the image: the original stays untouched for cropping."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agecompact.predict.pipeline import FaceResult

BOX_COLOR = (0, 200, 0)  # BGR
TEXT_COLOR = (255, 255, 255)


def label(face: FaceResult) -> str:
    text = f"{face.age:.0f}"
    if face.gender is not None:
        text += f" {face.gender}"
    return text


def draw_faces(image: np.ndarray, faces: Sequence[FaceResult]) -> np.ndarray:
    """A copy of ``image`` with each face's box and label."""
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for face in faces:
        x, y, bw, bh = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x, y), (x + bw, y + bh), BOX_COLOR, thickness)
        text = label(face)
        scale = max(0.4, min(2.0, bw / 90))
        (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
        top = y - th - base - 2 if y - th - base - 2 >= 0 else y + bh  # above the box, else below it
        top = min(max(top, 0), max(h - th - base - 2, 0))
        cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 2), BOX_COLOR, cv2.FILLED)
        cv2.putText(out, text, (x + 2, top + th + 1), font, scale, TEXT_COLOR, thickness, cv2.LINE_AA)
    return out
