"""The names users pick from — backends, detectors, compute dtypes, test-time augmentation modes.

The library checks its arguments against these tuples and the CLI builds its option types from them
(``cli._choices``), so a new choice is added once and ``--help`` can never list a stale set. Plain
tuples, no imports: the CLI reads them at start-up.
"""

from __future__ import annotations

BACKENDS = ("auto", "jax", "onnx")
BACKEND_ALIASES = {"onnxruntime": "onnx", "ort": "onnx"}  # accepted, and normalised to the canonical name
DETECTORS = ("auto", "yunet", "haar", "none")
COMPUTE_DTYPES = ("float32", "bfloat16")
TTA_MODES = ("none", "flip")


def canonical_backend(name: str) -> str | None:
    """``name`` or its alias as one of ``BACKENDS`` (case-insensitive); None when it is neither."""
    choice = BACKEND_ALIASES.get(str(name).lower(), str(name).lower())
    return choice if choice in BACKENDS else None
