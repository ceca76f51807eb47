"""Models trained by agecompact itself and shipped inside the package, loadable offline by name.

``manifest.json`` beside this file lists each model: its file, architecture, the exact command that
trained it, the data and their licences, held-out metrics and the file's SHA-256. ``load_model("default")``
(the most accurate model with <= 50,000 values) and ``load_model("tiny")`` (<= 20,000) resolve here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from agecompact.errors import InputError

ZOO_DIR = Path(__file__).parent
MANIFEST = ZOO_DIR / "manifest.json"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    file: str
    arch: str
    sha256: str
    description: str = ""
    info: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def path(self) -> Path:
        return ZOO_DIR / self.file


@lru_cache(maxsize=1)
def entries() -> dict[str, ZooEntry]:
    """The manifest's models by name (an empty zoo when the manifest lists none)."""
    try:
        data = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        return {}
    out = {}
    for m in data.get("models", []):
        info = {k: v for k, v in m.items() if k not in ("name", "file", "arch", "sha256", "description")}
        out[m["name"]] = ZooEntry(m["name"], m["file"], m["arch"], m["sha256"], m.get("description", ""), info)
    return out


def is_shipped(path: str | Path) -> bool:
    """Whether ``path`` is one of the package's own files: exports are then cached in the user cache, never
    beside it (site-packages may be read-only, and the source tree must stay clean)."""
    try:
        return Path(path).resolve().parent == ZOO_DIR.resolve()
    except OSError:
        return False


def probe_faces():
    """Four deterministic face-like 64x64 BGR images (gradients with a bright ellipse). The manifest records
    each model's ages on them (``probe_ages``), so an install can be checked without any data."""
    import numpy as np

    yy, xx = np.mgrid[:64, :64].astype(np.float32)
    out = []
    for k in range(4):
        img = 40 + 30 * k + 0.8 * yy[..., None] + np.zeros((64, 64, 3), np.float32)
        face = ((yy - 34) / (22 - 2 * k)) ** 2 + ((xx - 32) / 17) ** 2 <= 1
        img[face] = [120 + 20 * k, 150 + 10 * k, 190]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def zoo_model_path(name: str) -> Path | None:
    """The verified file of zoo model ``name``, or None when the zoo has no such model."""
    entry = entries().get(name)
    if entry is None:
        return None
    try:
        digest = hashlib.sha256(entry.path.read_bytes()).hexdigest()
    except OSError as e:
        raise InputError(f"zoo model {name!r}: cannot read {entry.path}: {e.strerror}") from None
    if digest != entry.sha256:
        raise InputError(f"zoo model {name!r}: {entry.path.name} does not match its manifest sha256 "
                         "(a damaged install?)")
    return entry.path
