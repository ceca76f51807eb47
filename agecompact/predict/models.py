"""What ``predict`` accepts as a model: everything ``load_model`` does, plus the ``.onnx`` files that
``agecompact export`` writes (their metadata says how to crop), and ``"default"`` (the zoo's model).

Models load lazily: with a cached ONNX export nothing here imports JAX.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agecompact.api import AgeModel
from agecompact.errors import InputError, NotAvailableError, UsageError
from agecompact.weights.modelfile import ModelMeta

DEFAULT_MODEL = "default"


class OnnxFileModel(AgeModel):
    """An exported graph and the metadata stored in it; runs on the onnxruntime engine only."""

    def __init__(self, meta: ModelMeta, path: Path):
        super().__init__(None, meta)
        self.path = self.onnx_file = path
        self.num_params = int(meta.num_params or 0)
        self._counts = {"trainable": 0, "non_trainable": 0, "total": self.num_params}

    @property
    def module(self):
        raise UsageError(f"{self.path} is an ONNX graph: it runs on the onnx backend only "
                         "(use the .msgpack it was exported from for --backend jax)")

    def state_dict(self) -> dict[str, Any]:
        raise UsageError(f"{self.path} is an ONNX graph without a model file: give it uint8 images")


def _meta_from_onnx(props: dict[str, str], origin: str) -> ModelMeta:
    if "arch" not in props or "margin" not in props:
        raise InputError(f"{origin}: not an agecompact export (no arch/margin metadata); "
                         "re-export it with `agecompact export`")
    try:
        fields: dict[str, Any] = {
            "arch": props["arch"], "name": props.get("name") or Path(origin).stem,
            "arch_kwargs": json.loads(props.get("arch_kwargs") or "{}"),
            "task": props.get("task", "age"), "margin": float(props["margin"]),
            "color_order": props.get("color_order", "BGR"), "input_size": int(props.get("input_size", 64)),
            "crops": props.get("crops", "single"), "dataset": props.get("dataset") or None,
            "num_params": int(props["num_params"]) if props.get("num_params") else None,
            "calibration": json.loads(props.get("calibration") or "{}"),
        }
        if props.get("pixel_range"):
            fields["pixel_range"] = tuple(json.loads(props["pixel_range"]))
        return ModelMeta.from_dict(fields)
    except (ValueError, TypeError) as e:
        raise InputError(f"{origin}: bad agecompact metadata in the ONNX file ({e})") from None


def load_onnx_model(path: str | os.PathLike) -> OnnxFileModel:
    """An ``.onnx`` file written by ``agecompact export``, ready for the onnxruntime engine."""
    from agecompact.inference import onnxruntime_available

    path = Path(path)
    if not onnxruntime_available():
        from agecompact.inference import ONNX_MISSING

        raise NotAvailableError(ONNX_MISSING)
    from agecompact.export.ort_session import open_session

    try:
        session = open_session(path)
    except Exception as e:  # onnxruntime raises its own exception types
        raise InputError(f"{path}: not a loadable ONNX model ({type(e).__name__})") from None
    props = dict(session.get_modelmeta().custom_metadata_map)
    meta = _meta_from_onnx(props, str(path))
    from agecompact.models.registry import get_spec

    try:
        get_spec(meta.arch)
    except UsageError:
        raise InputError(f"{path}: exported from an unknown architecture {meta.arch!r}") from None
    return OnnxFileModel(meta, path)


def load_predict_model(source: Any, *, flag: str = "--model") -> AgeModel:
    """An ``AgeModel`` from what a user passes as the model (an ``AgeModel`` is returned as is)."""
    if isinstance(source, AgeModel):
        return source
    if source is None or (str(source) == DEFAULT_MODEL and not Path(DEFAULT_MODEL).exists()):
        from agecompact.zoo import entries

        if DEFAULT_MODEL not in entries():
            raise UsageError(f"no model given and the zoo has no '{DEFAULT_MODEL}' model; pass {flag} "
                             "(a model file, run folder, Keras .h5, exported .onnx or pretrained name)")
    path = Path(source)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise InputError(f"ONNX file not found: {path}")
        return load_onnx_model(path)
    from agecompact.api import load_model

    return load_model(source, lazy=True)
