"""Crop geometry: margin around a detector box, clipping, and the resize to the network input.

Preprocessing and ``predict`` both build network inputs through :func:`network_input`, driven by a
:class:`CropSpec` read from the model file's metadata, so a model sees at prediction time exactly the
crops it was trained on (margin, colour order, size, C3AE's context crops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CONTEXT_PADDING = 200  # C3AE pads the image with this much black before taking its three crops


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
    x1 = min(max(int(x - margin * w), 0), width - 1)  # never empty, even for a box off the image
    y1 = min(max(int(y - margin * h), 0), height - 1)
    x2 = min(int(x + w + margin * w), width)
    y2 = min(int(y + h + margin * h), height)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def crop_face(image: np.ndarray, box: tuple[float, float, float, float], *, margin: float, size: int = 64
              ) -> np.ndarray:
    """The network input for one face: box + margin, clipped, cut from the untouched image, resized."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = expand_box(box, margin, w, h)
    return resize_to_input(image[y1:y2, x1:x2], size)


# -- C3AE context crops ----------------------------------------------------------------------------

def context_boxes(box: tuple[float, float, float, float], nose: tuple[float, float]
                  ) -> list[tuple[int, int, int, int]]:
    """C3AE's three boxes (x1, y1, x2, y2) [outer, middle, inner] from a face box and the nose tip.

    outer: the box grown by |w - h| on every side; middle: a square on the nose whose half-side is the
    nose's distance below the box top; inner: a square on the nose with half-side w // 2. Integer pixel
    coordinates as in the reference preprocessing; they may lie outside the image.
    """
    x, y, w, h = box
    xmin, ymin = int(x), int(y)
    xmax, ymax = int(x + w), int(y + h)
    bw, bh = xmax - xmin, ymax - ymin
    nx, ny = int(nose[0]), int(nose[1])
    grow = abs(bw - bh)
    top_to_nose = ny - ymin
    half = bw // 2
    return [
        (xmin - grow, ymin - grow, xmax + grow, ymax + grow),
        (nx - top_to_nose, ny - top_to_nose, nx + top_to_nose, ny + top_to_nose),
        (nx - half, ny - half, nx + half, ny + half),
    ]


def crop_padded(image: np.ndarray, bounds: tuple[int, int, int, int], size: int = 64) -> np.ndarray:
    """Cut (x1, y1, x2, y2) out of the image as if it were surrounded by black, then resize.

    Identical to cropping from the image padded with 200 px of black (C3AE's reference) whenever the
    box stays within that border, and still well defined when it does not.
    """
    ih, iw = image.shape[:2]
    x1, y1, x2, y2 = bounds
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    out = np.zeros((y2 - y1, x2 - x1, *image.shape[2:]), image.dtype)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, iw), min(y2, ih)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return resize_to_input(out, size)


def crop_context(image: np.ndarray, box: tuple[float, float, float, float], nose: tuple[float, float],
                 size: int = 64) -> np.ndarray:
    """The (3, size, size, C) [outer, middle, inner] input of a C3AE context model."""
    return np.stack([crop_padded(image, b, size) for b in context_boxes(box, nose)])


# -- what a model wants ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CropSpec:
    """How one model's inputs are cut: read from its metadata, optionally overridden by the user."""

    size: int = 64
    margin: float = 0.4
    color_order: str = "BGR"
    context: bool = False  # C3AE's three crops

    @classmethod
    def from_meta(cls, meta: Any, *, margin: float | None = None, color_order: str | None = None) -> CropSpec:
        order = (color_order or getattr(meta, "color_order", "BGR") or "BGR").upper()
        if order not in ("BGR", "RGB"):
            from agecompact.errors import UsageError

            raise UsageError(f"unknown colour order {order!r}: choose BGR or RGB")
        return cls(
            size=int(getattr(meta, "input_size", 64) or 64),
            margin=float(meta.margin if margin is None else margin),
            color_order=order,
            context=getattr(meta, "crops", "single") == "context",
        )


def network_input(image: np.ndarray, box: tuple[float, float, float, float], spec: CropSpec, *,
                  landmarks: np.ndarray | None = None) -> np.ndarray:
    """One face as the model expects it, from a BGR image that nothing has been drawn on.

    Single-crop models get (size, size, 3). Context models get (3, size, size, 3) [outer, middle,
    inner] built from the nose landmark (``landmarks[2]``, YuNet order); without landmarks (Haar, no
    detector) the single margin crop is repeated three times.
    """
    if spec.context and landmarks is not None:
        x = crop_context(image, box, tuple(landmarks[2]), spec.size)
    else:
        x = crop_face(image, box, margin=spec.margin, size=spec.size)
        if spec.context:
            x = np.stack([x, x, x])
    if spec.color_order == "RGB":
        x = np.ascontiguousarray(x[..., ::-1])
    return x
