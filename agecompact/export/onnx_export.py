"""Assemble, check and write the ONNX graph of an ``AgeModel``.

The graph's input ``images`` is a BGR NHWC batch of any size, uint8 or float32 (0..255, no
normalisation): (N, 64, 64, 3), or (N, 3, 64, 64, 3) = [outer, middle, inner] crops for the C3AE
context models (the graph itself takes only that five-dimensional form; ``agecompact.inference``
feeds a single crop to all three branches, as ``AgeModel.predict`` does). Its outputs carry the same
names and shapes as ``AgeModel.outputs``: ``pred`` (N,) plus the family's heads.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from agecompact._version import __version__
from agecompact.errors import AgecompactError, NotAvailableError, UsageError

EXPORTER_VERSION = 1  # bump when the graph layout changes: cached exports are then rebuilt
DEFAULT_OPSET = 17
MIN_OPSET = 13  # ReduceSum/Squeeze take axes as inputs, Softmax is per-axis
INPUT_DTYPES = ("uint8", "float32")
INPUT_NAME = "images"


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise NotAvailableError("ONNX export needs the onnx package: pip install 'agecompact[onnx]'") from None
    return onnx


def weights_sha256(model) -> str:
    """Checksum of the weights (names, shapes and float32 values), independent of any file format."""
    h = hashlib.sha256()

    def walk(tree: dict[str, Any], prefix: str) -> None:
        for key in sorted(tree):
            value = tree[key]
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}/")
            else:
                arr = np.ascontiguousarray(value, np.float32)
                h.update(f"{prefix}{key}:{arr.shape}".encode())
                h.update(arr.tobytes())

    walk(model.state_dict(), "")
    return h.hexdigest()


def export_fingerprint(model, *, weights: str | None = None) -> str:
    """What the graph's content depends on: weights, architecture and its options, exporter version.

    The input dtype and opset are left out on purpose: any export of the same weights serves a cache.
    """
    doc = {
        "exporter": EXPORTER_VERSION,
        "arch": model.arch,
        "arch_kwargs": model.meta.arch_kwargs,
        "input_size": model.meta.input_size,
        "weights": weights or weights_sha256(model),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def check_options(input_dtype: str, opset: int) -> None:
    onnx = require_onnx()
    if input_dtype not in INPUT_DTYPES:
        raise UsageError(f"unknown input dtype {input_dtype!r}; choose one of: {', '.join(INPUT_DTYPES)}")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset) <= newest:
        raise UsageError(f"opset {opset} is not supported; choose {MIN_OPSET}..{newest}")


def _output_shapes(model) -> dict[str, tuple[int, ...]]:
    """Per-example output shapes of the JAX model, traced without compiling."""
    import jax
    import jax.numpy as jnp

    s = model.meta.input_size
    spec = jax.ShapeDtypeStruct((1, s, s, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.module(x), spec)
    return {k: tuple(v.shape[1:]) for k, v in shapes.items()}


def metadata(model, *, input_dtype: str, opset: int) -> dict[str, str]:
    """The ``metadata_props`` of an export: how to feed the graph and where it came from."""
    meta = model.meta
    weights = weights_sha256(model)
    return {
        "name": model.name,
        "arch": model.arch,
        "arch_kwargs": json.dumps(meta.arch_kwargs, sort_keys=True, default=str),
        "task": meta.task,
        "margin": repr(float(meta.margin)),
        "color_order": meta.color_order,
        "pixel_range": json.dumps(list(meta.pixel_range)),
        "input_size": str(meta.input_size),
        "crops": meta.crops,
        "input_layout": "N,3,H,W,C" if meta.crops == "context" else "N,H,W,C",
        "input_dtype": input_dtype,
        "dataset": meta.dataset or "",
        "source": json.dumps(meta.source, sort_keys=True, default=str),
        "calibration": json.dumps(meta.calibration, sort_keys=True),
        "num_params": str(model.num_params),
        "agecompact_version": __version__,
        "exporter_version": str(EXPORTER_VERSION),
        "opset": str(opset),
        "weights_sha256": weights,
        "export_fingerprint": export_fingerprint(model, weights=weights),
    }


def build_onnx(model, *, input_dtype: str = "uint8", opset: int = DEFAULT_OPSET, quantizable: bool = False):
    """The checked ``onnx.ModelProto`` of ``model`` (an ``AgeModel``).

    ``quantizable`` writes the same function with ops that have fast int8 kernels (average pools as
    depthwise convolutions, SSR-Net's tanh stream as sigmoids): the input of ``export.quantize``.
    """
    check_options(input_dtype, opset)
    onnx = require_onnx()
    from onnx import TensorProto, helper

    from agecompact.export.graph import GraphBuilder
    from agecompact.models.families import hook
    from agecompact.models.registry import family_of

    build_family = hook(family_of(model.arch).onnx_builder)
    size = model.meta.input_size
    context = model.meta.crops == "context"
    elem = TensorProto.UINT8 if input_dtype == "uint8" else TensorProto.FLOAT

    g = GraphBuilder(quantizable=quantizable)
    x = INPUT_NAME
    if context:
        x = g.op("Reshape", [x, g.const([-1, size, size, 3], "shape", np.int64)])
    x = g.op("Transpose", [x], perm=[0, 3, 1, 2])  # the only layout change: NHWC -> NCHW, once
    if input_dtype == "uint8":
        x = g.op("Cast", [x], to=TensorProto.FLOAT)
    output_names = build_family(g, x, model.state_dict(), model.module)

    shapes = _output_shapes(model)
    if set(output_names) != set(shapes):
        raise AgecompactError(f"ONNX outputs {sorted(output_names)} differ from the model's {sorted(shapes)}")
    in_shape = ["N", 3, size, size, 3] if context else ["N", size, size, 3]
    graph = helper.make_graph(
        g.nodes, f"agecompact_{model.arch}",
        [helper.make_tensor_value_info(INPUT_NAME, elem, in_shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", *shapes[n]]) for n in output_names],
        initializer=g.initializers,
    )
    opsets = [helper.make_opsetid("", int(opset))]
    proto = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets),
                              producer_name="agecompact", producer_version=__version__,
                              doc_string=f"{model.name}: BGR {input_dtype} images {in_shape} (0..255) -> ages")
    helper.set_model_props(proto, metadata(model, input_dtype=input_dtype, opset=opset))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def write_onnx(proto, path: str | os.PathLike) -> Path:
    """Serialize ``proto`` to ``path`` atomically; an unwritable place is one clear error."""
    from agecompact.fileio import atomic_write_bytes

    path = Path(path)
    try:
        atomic_write_bytes(path, proto.SerializeToString())
    except OSError as e:
        raise AgecompactError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def export_onnx(model, path: str | os.PathLike, *, input_dtype: str = "uint8", opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as an ONNX file (atomically) and return its path."""
    return write_onnx(build_onnx(model, input_dtype=input_dtype, opset=opset), path)


def sample_inputs(model, n: int = 16, *, seed: int = 0) -> np.ndarray:
    """Seeded random uint8 faces in the model's input layout (distinct crops for context models)."""
    s = model.meta.input_size
    shape = (n, 3, s, s, 3) if model.meta.crops == "context" else (n, s, s, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


RECORD_ONLY = ("pred_end_to_end",)  # reported by ``max_differences`` but not held to the tolerance


def max_differences(model, proto, images: np.ndarray) -> dict[str, float]:
    """Largest |onnxruntime - JAX| per output on ``images`` (needs onnxruntime).

    SSR-Net's age divides by Π s_j (1 + Δ_j) with Δ = tanh(·): once a Δ nears -1 (it does after short
    training) a float32-sized difference in Δ moves the age by hundredths of a year, in either
    implementation. There ``pred`` is onnxruntime's age against the JAX merge of onnxruntime's own heads,
    and the heads are compared with JAX; ``pred_end_to_end`` keeps the plain difference for the record.
    """
    from agecompact.export.ort_session import open_session

    session = open_session(proto.SerializeToString())
    x = np.asarray(images)
    if session.get_inputs()[0].type == "tensor(float)":
        x = x.astype(np.float32)
    names = [o.name for o in session.get_outputs()]
    ref = model.outputs(images)
    got = {k: v.reshape(ref[k].shape) for k, v in zip(names, session.run(names, {INPUT_NAME: x}), strict=True)}
    diffs = {k: max_abs_diff(got[k], ref[k]) for k in names}
    merge_outputs = getattr(model.module, "merge_outputs", None)
    if merge_outputs is not None and "pred" in got:
        diffs["pred_end_to_end"] = diffs["pred"]
        diffs["pred"] = max_abs_diff(got["pred"], np.asarray(merge_outputs(got)))
    return diffs


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| where equal values (infinities and NaNs included) count 0 and a lone NaN counts inf."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
    return float(np.max(np.nan_to_num(diff, nan=np.inf), initial=0.0))
