"""The CLI's option types, built from the library's own names (``agecompact.choices``, the model registry).

Every command that takes ``--model`` (an architecture), ``--backend``, ``--detector``, ``--dtype`` or
``--tta`` uses these, so the choices and the help agree across commands and with the library.
"""

from __future__ import annotations

from enum import StrEnum

import typer

from agecompact.choices import (
    BACKEND_ALIASES,
    BACKENDS,
    COMPUTE_DTYPES,
    DETECTORS,
    TTA_MODES,
    canonical_backend,
)
from agecompact.models.registry import model_names


def _enum(name: str, values) -> type[StrEnum]:
    return StrEnum(name, {v: v for v in values})


ArchName = _enum("ArchName", model_names())
Detector = _enum("Detector", DETECTORS)
FaceDetector = _enum("FaceDetector", [d for d in DETECTORS if d != "none"])  # preprocess must find faces
TTA = _enum("TTA", TTA_MODES)
BACKEND_METAVAR = "|".join(BACKENDS)  # --backend stays a string: its aliases are normalised by backend_option
DTYPE_METAVAR = "|".join(COMPUTE_DTYPES)


def backend_option(value: str | None) -> str | None:
    """``--backend``: a canonical name or an alias (``ort``, ``onnxruntime``), returned canonical."""
    if value is None:
        return None
    choice = canonical_backend(value)
    if choice is None:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(BACKENDS)} (or an alias: "
                                 f"{', '.join(BACKEND_ALIASES)})")
    return choice
