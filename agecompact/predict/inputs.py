"""Turn the INPUT arguments (files, folders, videos) into a list of work items, and read images.

Problems with single inputs (a missing path, an unreadable file) are collected rather than raised, so
one bad file in a folder does not stop the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agecompact.errors import InputError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v"})
WRITABLE_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}  # what OpenCV can write


@dataclass(frozen=True)
class Item:
    path: Path
    kind: str  # "image" or "video"
    out_name: Path  # where its annotated copy goes, relative to --out (a format OpenCV writes)


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str


def kind_of(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def annotated_name(rel: Path, kind: str) -> Path:
    """``rel`` with a suffix OpenCV can write: videos become ``.avi`` unless their container is writable,
    images in other formats get ``.png`` appended."""
    if kind == "video":
        return rel if rel.suffix.lower() in VIDEO_FOURCC else rel.with_suffix(".avi")
    return rel if rel.suffix.lower() in WRITABLE_IMAGE_SUFFIXES else rel.with_name(rel.name + ".png")


def _folder_files(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            p = Path(root) / name
            if not name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
                found.append(p)
        if not recursive:
            break
    return found


def discover(inputs: list[Path], *, recursive: bool = True) -> tuple[list[Item], list[Problem]]:
    """Files are taken as given (an unknown extension is tried as an image); folders are searched for
    image and video extensions. Output names mirror the input: ``name.jpg`` for a file argument, the
    path inside the folder for a folder argument; clashes get a ``-N`` suffix."""
    items: list[Item] = []
    problems: list[Problem] = []
    taken: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        kind = kind_of(path)
        name = annotated_name(rel, kind)
        out, n = name, 1
        while out in taken:  # two inputs with one output name (b.jpg from two folders, clip.avi + clip.mkv)
            out = name.with_name(f"{name.stem}-{n}{name.suffix}")
            n += 1
        taken.add(out)
        items.append(Item(path, kind, out))

    for arg in inputs:
        if arg.is_dir():
            files = _folder_files(arg, recursive)
            if not files:
                where = "" if recursive else " (top level only; --recursive searches subfolders)"
                problems.append(Problem(arg, f"no images or videos found in folder{where}"))
            for f in files:
                add(f, f.relative_to(arg))
        elif arg.is_file():
            add(arg, Path(arg.name))
        elif arg.exists():
            problems.append(Problem(arg, "not a regular file or folder"))
        else:
            problems.append(Problem(arg, "no such file or folder"))
    return items, problems


def read_image(path: Path) -> np.ndarray:
    """A BGR uint8 image (alpha dropped, grey expanded, 16-bit scaled) or an InputError saying why not."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise InputError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise InputError(f"{path}: not a readable image")
    return image
