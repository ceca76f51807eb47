"""SSR-Net's training augmentation (spec §1.7), on the host with OpenCV, every draw from a seeded generator.

Per image, independently: horizontal flip (p 0.5); then with p 0.25 each a rotation in ±20°, a shear of
intensity 0.2, a shift of ±20 % of height and width, and a zoom with zx, zy ~ U[0.8, 1.2]. The affine
steps are composed into one matrix around the image centre and applied in a single warp with
"nearest" (replicated-edge) fill, instead of one warp per step as the Keras helper did: the same
distribution of transforms with one interpolation instead of up to four. Shear intensity is in radians
for SSR-Net (the TF-1.x helper it used) and in degrees for AEC (``keras_preprocessing``, i.e. almost no
shear); ``shear_units`` picks. All parameters are drawn for every image whether or not its gate fires,
so the number of draws per batch is fixed and the stream stays reproducible.

The ``strong`` policy (the "modern" recipe) adds face-safe photometric changes after the geometry —
brightness, contrast and saturation, each with p 0.5 — and random erasing (p 0.25, 2-12 % of the image,
filled with noise), which regularise these tiny networks against lighting and occlusion. Its draws come
after the geometric ones, so the ``ssrnet`` stream is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentSpec:
    flip_p: float = 0.5
    affine_p: float = 0.25
    rotation_deg: float = 20.0
    shear: float = 0.2
    shear_units: str = "radians"
    shift: float = 0.2
    zoom: tuple[float, float] = (0.8, 1.2)
    photometric_p: float = 0.0  # strong: p of each of brightness / contrast / saturation
    brightness: float = 0.25  # pixel values + U(-b, b) * 255
    contrast: float = 0.3  # (x - mean) * U(1 - c, 1 + c) + mean
    saturation: float = 0.3  # blend with grey by U(1 - s, 1 + s)
    erase_p: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.12)


STRONG = {"photometric_p": 0.5, "erase_p": 0.25}


def photometric(images: np.ndarray, rng: np.random.Generator, spec: AugmentSpec) -> np.ndarray:
    """Brightness, contrast, saturation and random erasing on a uint8 batch (N, ..., S, S, 3)."""
    n = len(images)
    gates = rng.random((n, 4))
    b = rng.uniform(-spec.brightness, spec.brightness, n) * 255.0
    c = rng.uniform(1 - spec.contrast, 1 + spec.contrast, n)
    s = rng.uniform(1 - spec.saturation, 1 + spec.saturation, n)
    area = rng.uniform(*spec.erase_area, n)
    aspect = np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    pos = rng.random((n, 2))
    noise_seed = rng.integers(0, 2**31, n)
    on = gates[:, :3] < spec.photometric_p
    erase = gates[:, 3] < spec.erase_p
    out = images
    if on.any() or erase.any():
        out = images.astype(np.float32)
        shape = (n,) + (1,) * (images.ndim - 1)
        grey = out @ np.array([0.114, 0.587, 0.299], np.float32)  # BGR luma
        sat = np.where(on[:, 2], s, 1.0).reshape(shape)
        out = grey[..., None] + (out - grey[..., None]) * sat
        mean = out.mean(axis=tuple(range(1, out.ndim)), keepdims=True)
        con = np.where(on[:, 1], c, 1.0).reshape(shape)
        out = (out - mean) * con + mean + np.where(on[:, 0], b, 0.0).reshape(shape)
        size = images.shape[-2]
        for i in np.flatnonzero(erase):
            h = int(round(min(size, math.sqrt(area[i] * aspect[i]) * size)))
            w = int(round(min(size, math.sqrt(area[i] / aspect[i]) * size)))
            y0 = int(pos[i, 0] * (size - h + 1))
            x0 = int(pos[i, 1] * (size - w + 1))
            patch = np.random.default_rng(int(noise_seed[i])).integers(0, 256, (h, w, 3))
            out[i, ..., y0:y0 + h, x0:x0 + w, :] = patch
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


def draw_params(rng: np.random.Generator, n: int, spec: AugmentSpec) -> dict[str, np.ndarray]:
    """Per-image parameters; a transform that does not fire gets its identity value."""
    gates = rng.random((n, 5))
    flip = gates[:, 0] < spec.flip_p
    on = gates[:, 1:] < spec.affine_p
    rot = np.deg2rad(rng.uniform(-spec.rotation_deg, spec.rotation_deg, n)) * on[:, 0]
    shear = rng.uniform(-spec.shear, spec.shear, n)
    if spec.shear_units == "degrees":
        shear = np.deg2rad(shear)
    shear = shear * on[:, 1]
    shift = rng.uniform(-spec.shift, spec.shift, (n, 2)) * on[:, 2:3]
    zoom = np.where(on[:, 3:4], rng.uniform(spec.zoom[0], spec.zoom[1], (n, 2)), 1.0)
    return {"flip": flip, "rotation": rot, "shear": shear, "shift": shift, "zoom": zoom}


def affine_matrix(rotation: float, shear: float, shift: tuple[float, float], zoom: tuple[float, float],
                  size: int) -> np.ndarray:
    """Output -> input pixel map (2x3, OpenCV x/y order), composed as Keras composes it, about the centre."""
    c, s = math.cos(rotation), math.sin(rotation)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    sh = np.array([[1.0, -math.sin(shear), 0.0], [0.0, math.cos(shear), 0.0], [0.0, 0.0, 1.0]])
    tr = np.array([[1.0, 0.0, shift[1] * size], [0.0, 1.0, shift[0] * size], [0.0, 0.0, 1.0]])
    zm = np.array([[zoom[1], 0.0, 0.0], [0.0, zoom[0], 0.0], [0.0, 0.0, 1.0]])
    m = rot @ tr @ sh @ zm
    o = (size - 1) / 2.0
    to_centre = np.array([[1.0, 0.0, o], [0.0, 1.0, o], [0.0, 0.0, 1.0]])
    from_centre = np.array([[1.0, 0.0, -o], [0.0, 1.0, -o], [0.0, 0.0, 1.0]])
    return (to_centre @ m @ from_centre)[:2]


def augment_batch(images: np.ndarray, rng: np.random.Generator, spec: AugmentSpec = AugmentSpec()) -> np.ndarray:
    """Augmented copy of a uint8 batch (N, S, S, 3), or (N, 3, S, S, 3) with one transform for all crops."""
    import cv2

    n = len(images)
    p = draw_params(rng, n, spec)
    out = images.copy()
    flip = p["flip"]
    if flip.any():
        out[flip] = out[flip][..., ::-1, :]  # width is the second-to-last axis in both layouts
    size = images.shape[-2]
    moved = (p["rotation"] != 0) | (p["shear"] != 0) | np.any(p["shift"] != 0, axis=1) | np.any(p["zoom"] != 1, axis=1)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for i in np.flatnonzero(moved):
        m = affine_matrix(float(p["rotation"][i]), float(p["shear"][i]), tuple(p["shift"][i]), tuple(p["zoom"][i]),
                          size)
        crops = out[i] if out.ndim == 5 else out[i][None]
        for j in range(len(crops)):
            crops[j] = cv2.warpAffine(crops[j], m, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if spec.photometric_p > 0 or spec.erase_p > 0:
        out = photometric(out, rng, spec)
    return out


def make_augmenter(shear_units: str = "radians", policy: str = "ssrnet"):
    """The callable the batch stream uses: ``f(images, rng) -> images``."""
    spec = AugmentSpec(shear_units=shear_units, **(STRONG if policy == "strong" else {}))

    def apply(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return augment_batch(images, rng, spec)

    return apply
