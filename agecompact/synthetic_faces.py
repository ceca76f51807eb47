"""Synthetic faces whose appearance changes smoothly with age, for the offline demo dataset.

The point is a *learnable* age signal that survives the resize to 64x64, mixed with identity noise so a
network cannot just memorise one template: head proportions (a child's eyes sit low in a round face, the
face lengthens until about 20), skin texture (forehead lines, crow's feet, nasolabial folds and age spots
grow with age), grey hair and receding hairlines, eyelids and lips. Identity (skin tone, hair colour,
spacing, how early someone greys), pose, lighting, background and JPEG quality vary independently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Identity:
    """Traits that belong to a person and do not depend on age."""

    skin: np.ndarray  # BGR float
    hair: np.ndarray  # BGR float, the colour before greying
    greying: float  # how early and how fast the hair turns grey (0.6..1.4)
    balding: float  # 0: never, 1: strongly receding from about 30
    wrinkling: float  # skin ageing speed (0.7..1.3)
    eye_gap: float  # eye spacing, relative to face width
    face_width: float  # relative to the canvas
    long_hair: bool
    beard: bool
    iris: np.ndarray  # BGR float


def random_identity(rng: np.random.Generator, gender: int) -> Identity:
    tone = rng.uniform(0.25, 1.0)
    skin = np.array([90 + 110 * tone, 110 + 105 * tone, 140 + 100 * tone]) * rng.uniform(0.92, 1.05, 3)
    hair_dark = rng.uniform(0.0, 1.0)
    hair = np.array([20, 30, 45]) + hair_dark ** 2 * np.array([40, 70, 110]) * rng.uniform(0.7, 1.3, 3)
    male = gender == 1
    return Identity(
        skin=np.clip(skin, 60, 245),
        hair=np.clip(hair, 5, 200),
        greying=float(rng.uniform(0.7, 1.3)),
        balding=float(rng.uniform(0.3, 1.0) if male and rng.random() < 0.5 else 0.0),
        wrinkling=float(rng.uniform(0.8, 1.2)),
        eye_gap=float(rng.uniform(0.36, 0.46)),
        face_width=float(rng.uniform(0.26, 0.32)),
        long_hair=bool(rng.random() < (0.15 if male else 0.8)),
        beard=bool(male and rng.random() < 0.35),
        iris=np.array(rng.choice([[40, 60, 90], [120, 90, 50], [60, 110, 80], [30, 40, 50]]), float),
    )


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    import cv2

    c1, c2 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    if rng.random() < 0.5:
        img = c1 * (1 - t) + c2 * t
        img = np.broadcast_to(img, (size, size, 3)).copy()
    else:
        img = c1 * (1 - t.transpose(1, 0, 2)) + c2 * t.transpose(1, 0, 2)
        img = np.broadcast_to(img, (size, size, 3)).copy()
    for _ in range(rng.integers(0, 6)):
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            p2 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.rectangle(img, p1, p2, color, -1)
        else:
            cv2.circle(img, p1, int(rng.integers(size // 20 + 1, size // 4 + 2)), color, -1)
    img = cv2.GaussianBlur(img, (0, 0), size / 60)
    img += rng.normal(0, rng.uniform(2, 8), img.shape)
    return img


def _ellipse(img, center, axes, angle, color, thickness=-1):
    import cv2

    cv2.ellipse(img, (int(center[0]), int(center[1])), (max(int(axes[0]), 1), max(int(axes[1]), 1)),
                angle, 0, 360, tuple(float(c) for c in color), thickness, cv2.LINE_AA)


def _arc(img, center, axes, start, end, color, thickness):
    import cv2

    cv2.ellipse(img, (int(center[0]), int(center[1])), (max(int(axes[0]), 1), max(int(axes[1]), 1)),
                0, start, end, tuple(float(c) for c in color), max(int(round(thickness)), 1), cv2.LINE_AA)


def render_face(rng: np.random.Generator, age: float, person: Identity, size: int, *,
                with_face: bool = True, second_face: Identity | None = None) -> np.ndarray:
    """One face crop as a BGR uint8 image of ``size`` x ``size``, the face filling about 60% of it.

    Without ``with_face`` the image is background only (the rows IMDB-WIKI marks face_score = -inf).
    """
    import cv2

    img = _background(rng, size)
    if with_face:
        _draw_person(img, rng, age, person, size, cx=size * rng.uniform(0.46, 0.54),
                     cy=size * rng.uniform(0.48, 0.56), scale=1.0)
    if second_face is not None:
        side = rng.choice([0.12, 0.88])
        _draw_person(img, rng, rng.uniform(5, 80), second_face, size, cx=size * side, cy=size * 0.3, scale=0.45)
    # pose: small in-plane rotation and zoom, as a loosely aligned crop would have
    angle = rng.normal(0, 5)
    zoom = rng.uniform(0.93, 1.07)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, zoom)
    img = cv2.warpAffine(img, m, (size, size), borderMode=cv2.BORDER_REFLECT)
    # lighting and camera
    gain, bias = rng.uniform(0.8, 1.15), rng.uniform(-18, 18)
    img = img * gain + bias
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    img += rng.normal(0, rng.uniform(1, 4), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_person(img: np.ndarray, rng: np.random.Generator, age: float, p: Identity, size: int, *,
                 cx: float, cy: float, scale: float) -> None:
    import cv2

    age = float(np.clip(age, 0, 100))
    child = float(np.clip((18 - age) / 18, 0, 1))  # 1 for a newborn, 0 from 18
    old = float(np.clip((age - 25) / 60, 0, 1.2)) * p.wrinkling  # skin ageing, 0 before 25
    grey = float(np.clip((age - 32 * p.greying) / (35 * p.greying), 0, 1))
    hair = p.hair * (1 - grey) + np.array([205, 208, 212]) * grey

    a = size * p.face_width * scale * (1.0 - 0.06 * child)  # half width of the face
    b = a * (1.34 - 0.26 * child)  # half height: round baby faces, long adult faces
    # neck and shoulders
    cloth = rng.uniform(20, 230, 3)
    _ellipse(img, (cx, cy + b * 2.1), (a * 2.1, b * 0.9), 0, cloth)
    neck = p.skin * 0.85
    cv2.rectangle(img, (int(cx - a * 0.45), int(cy + b * 0.6)), (int(cx + a * 0.45), int(cy + b * 1.4)),
                  tuple(float(c) for c in neck), -1)
    if p.long_hair and age > 3:
        _ellipse(img, (cx, cy + b * 0.35), (a * 1.25, b * 1.25), 0, hair * 0.9)
    # face with a lighting gradient
    face = np.zeros(img.shape[:2], np.float32)
    _ellipse(face, (cx, cy), (a, b), 0, (1.0,))
    lx = rng.uniform(-0.5, 0.5)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    shade = 1.0 + lx * (xs - cx) / max(a, 1) * 0.25 - 0.08 * (ys - cy) / max(b, 1)
    skin = p.skin * (1 - 0.12 * old) + np.array([0, 8, 14]) * child  # rosier children, duller old skin
    face_rgb = skin[None, None, :] * shade[..., None]
    img[:] = img * (1 - face[..., None]) + face_rgb * face[..., None]

    # eye sockets and cheek shadows: soft shading that makes the face read as a face at any size
    shadow = np.zeros(img.shape[:2], np.float32)
    eye_y0 = cy - b * (0.18 - 0.2 * child)
    for s in (-1, 1):
        _ellipse(shadow, (cx + s * a * p.eye_gap * 1.25, eye_y0), (a * 0.36, a * 0.24), 0, (0.32,))
    shadow = cv2.GaussianBlur(shadow, (0, 0), max(a * 0.08, 0.5)) * face
    img[:] = img * (1 - shadow[..., None])

    line = p.skin * (0.7 - 0.08 * old)  # colour of wrinkles and folds
    ink = tuple(float(c) for c in line)
    eye_y = cy - b * (0.18 - 0.2 * child)  # children's eyes sit lower in the head
    eye_dx = a * p.eye_gap * 1.25
    eye_r = a * (0.15 + 0.07 * child)
    # forehead lines
    n_lines = int(np.clip(old * 6, 0, 5))
    for i in range(n_lines):
        yy = eye_y - b * (0.32 + 0.09 * i)
        _arc(img, (cx, yy + a * 0.5), (a * 0.55, a * 0.5), 235, 305, line, 1 + old * size / 160)
    # hair on top (the hairline recedes for balding people after 30)
    recede = float(np.clip((age - 28) / 40, 0, 1)) * p.balding
    top = cy - b * (1.0 + 0.05 * child)
    if age > 1 or rng.random() < 0.5:
        hair_h = b * (0.55 - 0.35 * recede) * (0.6 if age < 2 else 1.0)
        cv2.ellipse(img, (int(cx), int(top + hair_h * 0.55)), (int(a * 1.08), int(max(hair_h, 2))), 0, 180, 360,
                    tuple(float(c) for c in hair), -1, cv2.LINE_AA)
        _ellipse(img, (cx, top + hair_h * 0.1), (a * (0.95 - 0.4 * recede), hair_h * 0.6), 0, hair)
    # eyebrows
    brow = hair * 0.8 + p.skin * 0.2 * (1 - grey)
    for s in (-1, 1):
        _arc(img, (cx + s * eye_dx, eye_y - eye_r * 0.2), (eye_r * 1.5, eye_r * 1.2), 200, 340, brow,
             max(size / 110, 1) * (1.4 - 0.4 * child))
    # eyes: big in children, drooping lids and bags when old
    for s in (-1, 1):
        ex = cx + s * eye_dx
        _ellipse(img, (ex, eye_y), (eye_r * 1.25, eye_r * (0.75 - 0.25 * min(old, 1))), 0, (235, 235, 235))
        _ellipse(img, (ex, eye_y), (eye_r * 0.55, eye_r * 0.55), 0, p.iris)
        _ellipse(img, (ex, eye_y), (eye_r * 0.25, eye_r * 0.25), 0, (15, 15, 15))
        lid = p.skin * 0.8
        if old > 0.3:
            _arc(img, (ex, eye_y - eye_r * 0.2), (eye_r * 1.3, eye_r * 0.7 * min(old, 1)), 190, 350, lid,
                 max(size / 90, 1))
            _arc(img, (ex, eye_y + eye_r * 0.6), (eye_r * 1.1, eye_r * 0.5), 20, 160, line, 1 + old * size / 200)
        if old > 0.35:  # crow's feet
            for k in (-1, 0, 1):
                x0 = ex + s * eye_r * 1.45
                cv2.line(img, (int(x0), int(eye_y)), (int(x0 + s * eye_r * 0.8 * old), int(eye_y + k * eye_r * 0.5)),
                         ink, max(int(1 + old * size / 220), 1), cv2.LINE_AA)
    # nose: short in children
    nose_len = b * (0.28 + 0.14 * (1 - child))
    ny = eye_y + nose_len
    cv2.line(img, (int(cx - a * 0.04), int(eye_y + eye_r)), (int(cx - a * 0.09), int(ny)),
             tuple(float(c) for c in p.skin * 0.75), max(int(size / 120), 1), cv2.LINE_AA)
    _arc(img, (cx, ny), (a * (0.14 + 0.03 * (1 - child)), a * 0.06), 0, 180, p.skin * 0.6, max(size / 120, 1))
    # nasolabial folds
    if old > 0.15:
        for s in (-1, 1):
            _arc(img, (cx + s * a * 0.3, ny + b * 0.12), (a * 0.16, b * 0.22), 90 - s * 80 - 20, 90 - s * 80 + 20,
                 line, 1 + old * size / 150)
    # mouth: full lips when young, thin when old
    my = ny + b * (0.22 + 0.02 * child)
    lips = np.array([95, 95, 175]) * (1 - 0.25 * min(old, 1)) + p.skin * 0.25 * min(old, 1)
    _ellipse(img, (cx, my), (a * (0.32 - 0.06 * child), a * (0.1 - 0.05 * min(old, 1) + 0.02 * child)), 0, lips)
    # beard (adult men), greying with the hair
    if p.beard and age >= 17:
        beard = np.zeros(img.shape[:2], np.float32)
        _ellipse(beard, (cx, cy + b * 0.55), (a * 0.85, b * 0.45), 0, (1.0,))
        _ellipse(beard, (cx, my), (a * 0.33, a * 0.12), 0, (0.0,))
        beard *= rng.uniform(0.4, 0.9, beard.shape).astype(np.float32)
        img[:] = img * (1 - beard[..., None]) + hair[None, None, :] * beard[..., None]
    # age spots
    if age > 55:
        for _ in range(int((age - 55) / 4)):
            px = cx + rng.uniform(-0.7, 0.7) * a
            py = cy + rng.uniform(-0.8, 0.4) * b
            if ((px - cx) / a) ** 2 + ((py - cy) / b) ** 2 < 0.8:
                _ellipse(img, (px, py), (size / 130 + 1, size / 150 + 1), 0, p.skin * 0.7)
