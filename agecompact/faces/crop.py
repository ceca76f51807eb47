"""Crop geometry: margin around a detector box, clipping, and the resize to the network input."""

from __future__ import annotations

import numpy as np


def resize_to_input(image: np.ndarray, size: int = 64) -> np.ndarray:
    """Resize a BGR uint8 image to ``size`` x ``size`` (bilinear, aspect ratio ignored, as in training)."""
    import cv2

    if image.shape[0] == size and image.shape[1] == size:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def expand_box(box: tuple[float, float, float, float], margin: float, width: int, height: int
               ) -> tuple[int, int, int, int]:
    """Grow an (x, y, w, h) box by ``margin`` of its width/height on every side, clipped to the image.

    Returns inclusive-exclusive pixel bounds (x1, y1, x2, y2).
    """
    x, y, w, h = box
    x1 = max(int(x - margin * w), 0)
    y1 = max(int(y - margin * h), 0)
    x2 = min(int(x + w + margin * w), width)
    y2 = min(int(y + h + margin * h), height)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def crop_face(image: np.ndarray, box: tuple[float, float, float, float], *, margin: float, size: int = 64
              ) -> np.ndarray:
    """The network input for one face: box + margin, clipped, cut from the untouched image, resized."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = expand_box(box, margin, w, h)
    return resize_to_input(image[y1:y2, x1:x2], size)
