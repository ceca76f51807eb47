"""Well-known locations: the shared reference folder and the user cache."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path | None:
    """The reference material folder (``$AGECOMPACT_SHARED`` or ``../shared`` beside the checkout)."""
    env = os.environ.get("AGECOMPACT_SHARED")
    candidates = [Path(env)] if env else []
    repo_root = Path(__file__).resolve().parent.parent
    candidates += [repo_root.parent / "shared", Path.cwd().parent / "shared"]
    for c in candidates:
        if (c / "README.md").is_file() or (c / "weights").is_dir():
            return c
    return None


def cache_home() -> Path:
    """Where fetched weights, converted models and detectors live (``$AGECOMPACT_HOME``)."""
    env = os.environ.get("AGECOMPACT_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "agecompact"


def export_cache_candidates(model_path, fingerprint: str, suffix: str = ".onnx") -> list[Path]:
    """Where an export of a model is looked for and written, in order: beside its ``.msgpack``
    (``best.msgpack`` -> ``best<suffix>``) unless the model ships inside the package, then the user cache."""
    from agecompact.zoo import is_shipped

    out = []
    if model_path is not None and Path(model_path).suffix == ".msgpack" and not is_shipped(model_path):
        out.append(Path(model_path).with_suffix(suffix))
    out.append(cache_home() / "onnx" / f"{fingerprint}{suffix}")
    return out
