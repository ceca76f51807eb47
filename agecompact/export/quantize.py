"""Static int8 quantisation of the ONNX exports, calibrated on faces, cached beside the float export.

    proto, check = build_int8(model, load_calibration("data/utkface.npz", model))

What is quantised (onnxruntime's QOperator format: QLinearConv and friends, uint8 activations, int8
weights per output channel, min/max calibration): every convolution, ReLU, max pool, average pool
and sigmoid, i.e. the convolutional trunks. The graph is first written in its ``quantizable`` form
(``build_onnx(quantizable=True)``: average pools as depthwise convolutions, SSR-Net's tanh stream as
sigmoids), so the trunk runs in int8 from the first convolution to the last without float round
trips. Everything after the trunk stays float32: the dense layers, softmaxes and the decoders, and
in particular SSR-Net's soft stagewise merge, whose division by Π s_j(1 + Δ_j) turns small errors in
Δ into years.

Calibration faces: a ``.npz`` (our ``image`` array, or the reference ``inputs_bgr_uint8``), a folder of
face crops (any size, resized like ``predict --detector none``), or by default 256 synthetic faces
drawn with the demo-data generator. At most ``CALIBRATION_FACES`` faces are used, evenly spaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agecompact.errors import AgecompactError, InputError, NotAvailableError, UsageError

QUANTIZER_VERSION = 1  # bump when the recipe changes: cached int8 exports are then rebuilt
MODES = ("int8",)
CALIBRATION_FACES = 256
DEFAULT_CALIBRATION = "default"  # the synthetic demo faces
INT8_OPS = ("Conv", "Relu", "MaxPool", "AveragePool", "Sigmoid")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# A quantised graph whose ages move by more than this on average over the calibration faces is refused
# (years, or a tenth of the mean |age| if larger, for untrained models; gender scores: a 30th of it).
# Observed on released weights: 0.3-0.9 years.
MAX_MEAN_ABS_DIFF = 3.0
QUANTIZE_MISSING = "int8 quantisation needs onnx and onnxruntime: pip install 'agecompact[onnx]'"


def check_mode(quantize: str | None) -> str | None:
    """``None`` (float32) or ``"int8"``; anything else is a usage error."""
    if quantize is None or str(quantize).lower() in ("", "none", "float32", "fp32"):
        return None
    mode = str(quantize).lower()
    if mode not in MODES:
        raise UsageError(f"unknown quantisation {quantize!r}; choose one of: none, {', '.join(MODES)}")
    return mode


@dataclass
class Calibration:
    """Faces to calibrate on, and an identity for the cache key (no faces are read until needed)."""

    source: str
    size: int
    sha256: str | None = None
    _faces: np.ndarray | None = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        if self.source == DEFAULT_CALIBRATION:
            return f"default-synthetic-{CALIBRATION_FACES}"
        return f"sha256:{self.sha256}"

    @property
    def faces(self) -> np.ndarray:
        if self._faces is None:
            self._faces = synthetic_faces(CALIBRATION_FACES, self.size)
        return self._faces


def synthetic_faces(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded demo-generator faces, ages 1..90, as BGR uint8 (n, size, size, 3)."""
    from agecompact.synthetic_faces import random_identity, render_face

    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        person = random_identity(rng, int(rng.integers(0, 2)))
        out[i] = render_face(rng, float(rng.uniform(1, 90)), person, size)
    return out


def _evenly(n: int, limit: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(np.int64))


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if img.shape[:2] == (size, size):
        return img
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _npz_faces(path: Path, size: int, limit: int) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            key = next((k for k in ("image", "inputs_bgr_uint8") if k in data.files), None)
            if key is None and len(data.files) == 1:
                key = data.files[0]
            if key is None:
                raise InputError(f"{path}: no 'image' array (keys: {', '.join(data.files) or 'none'})")
            images = data[key]
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz ({e})") from None
    if images.ndim == 5:  # (N, 3, s, s, 3) context crops: calibrate on the inner ones
        images = images[:, -1]
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0 or images.dtype != np.uint8:
        raise InputError(f"{path}: expected uint8 BGR faces (N, H, W, 3), got {images.dtype} {images.shape}")
    return np.stack([_resize(images[i], size) for i in _evenly(len(images), limit)])


def _folder_faces(path: Path, size: int, limit: int) -> np.ndarray:
    import cv2

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    faces = []
    for i in _evenly(len(files), limit) if files else []:
        img = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if img is not None:
            faces.append(_resize(img, size))
    if not faces:
        raise InputError(f"{path}: no readable face images ({', '.join(IMAGE_SUFFIXES)}) to calibrate on")
    return np.stack(faces)


def load_calibration(source: str | os.PathLike | None, model, *, limit: int = CALIBRATION_FACES) -> Calibration:
    """The calibration faces for ``model`` from ``source`` (a .npz, a folder, or None for the default)."""
    size = int(model.meta.input_size)
    if source is None or str(source) == DEFAULT_CALIBRATION:
        return Calibration(DEFAULT_CALIBRATION, size)
    path = Path(source)
    if path.is_dir():
        faces = _folder_faces(path, size, limit)
    elif path.is_file():
        faces = _npz_faces(path, size, limit)
    else:
        raise InputError(f"calibration data not found: {path} (a .npz, a folder of face images, or omit it)")
    faces = np.ascontiguousarray(faces)
    return Calibration(str(path), size, hashlib.sha256(faces.tobytes()).hexdigest(), faces)


def quantization_fingerprint(model, calibration: Calibration, mode: str = "int8") -> str:
    """What a quantised graph depends on: the float export's fingerprint, the recipe and the faces."""
    from agecompact.export.onnx_export import export_fingerprint

    doc = {"export": export_fingerprint(model), "mode": mode, "quantizer": QUANTIZER_VERSION,
           "calibration": calibration.identity}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def model_inputs(model, faces: np.ndarray) -> np.ndarray:
    """Single crops in the graph's layout (a context model's three branches all get the crop)."""
    if model.meta.crops == "context":
        return np.ascontiguousarray(np.broadcast_to(faces[:, None], (len(faces), 3, *faces.shape[1:])))
    return faces


@contextlib.contextmanager
def _quiet():
    """onnxruntime's quantiser logs advice on the root logger: keep stderr to our own lines."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _require():
    try:
        import onnx  # noqa: F401
        from onnxruntime import quantization
    except ImportError:
        raise NotAvailableError(QUANTIZE_MISSING) from None
    return quantization


def build_int8(model, calibration: Calibration, *, opset: int | None = None):
    """The int8 ``onnx.ModelProto`` of ``model`` and its check against the float graph (see ``int8_check``)."""
    q = _require()
    import onnx
    from onnx import helper

    from agecompact.export.onnx_export import DEFAULT_OPSET, INPUT_NAME, build_onnx

    opset = DEFAULT_OPSET if opset is None else int(opset)
    float_proto = build_onnx(model, input_dtype="float32", opset=opset, quantizable=True)
    x = model_inputs(model, calibration.faces).astype(np.float32)
    from agecompact.models.registry import family_of

    keep = family_of(model.arch).float_convs  # convolutions that stay float32, by weight-name prefix
    exclude = [n.name for n in float_proto.graph.node
               if n.op_type == "Conv" and len(n.input) > 1 and n.input[1].startswith(keep or ("\0",))]

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{INPUT_NAME: x[i:i + 32]} for i in range(0, len(x), 32)])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="agecompact-int8-") as tmp, _quiet():
        out = Path(tmp) / "int8.onnx"
        try:
            q.quantize_static(float_proto, out, Reader(), quant_format=q.QuantFormat.QOperator,
                              op_types_to_quantize=list(INT8_OPS), nodes_to_exclude=exclude, per_channel=True, reduce_range=False,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              calibrate_method=q.CalibrationMethod.MinMax)
        except Exception as e:  # the quantiser raises whatever its passes raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise AgecompactError(f"int8 quantisation of {model.name} failed: {first}") from None
        proto = onnx.load(str(out))
    check = int8_check(model, proto, calibration)
    props = {p.key: p.value for p in float_proto.metadata_props}
    props.update({
        "input_dtype": "float32",
        "quantization": "int8",
        "quantization_fingerprint": quantization_fingerprint(model, calibration),
        "quantizer_version": str(QUANTIZER_VERSION),
        "quantized_ops": ",".join(INT8_OPS),
        "calibration": calibration.source,
        "calibration_identity": calibration.identity,
        "calibration_faces": str(len(calibration.faces)),
        "int8_check": json.dumps(check, sort_keys=True),
    })
    helper.set_model_props(proto, props)
    proto.doc_string = f"{model.name}: int8 (QOperator, per-channel weights), float32 BGR 0..255 images"
    return proto, check


def int8_check(model, proto, calibration: Calibration) -> dict:
    """|int8 - float| of the age (or gender score) over the calibration faces; refuses a broken graph."""
    from agecompact.export.onnx_export import INPUT_NAME, build_onnx
    from agecompact.export.ort_session import open_session

    x = model_inputs(model, calibration.faces).astype(np.float32)
    float_session = open_session(build_onnx(model, input_dtype="float32").SerializeToString())
    try:
        int8_session = open_session(proto.SerializeToString())
    except Exception as e:
        raise AgecompactError(f"onnxruntime cannot run the int8 graph of {model.name} ({type(e).__name__})") from None
    ref = np.concatenate([float_session.run(["pred"], {INPUT_NAME: x[i:i + 64]})[0] for i in range(0, len(x), 64)])
    got = np.concatenate([int8_session.run(["pred"], {INPUT_NAME: x[i:i + 64]})[0] for i in range(0, len(x), 64)])
    finite = np.isfinite(ref)  # an untrained SSR-Net can divide by zero in float too: not int8's doing
    diff = np.abs(got[finite].astype(np.float64) - ref[finite].astype(np.float64))
    if not diff.size:
        diff = np.zeros(1)
    check = {"faces": int(len(x)), "mean_abs_diff": float(np.mean(diff)), "max_abs_diff": float(np.max(diff)),
             "p99_abs_diff": float(np.quantile(diff, 0.99)), "calibration": calibration.source}
    base = MAX_MEAN_ABS_DIFF if model.meta.task == "age" else MAX_MEAN_ABS_DIFF / 30
    limit = max(base, 0.1 * float(np.mean(np.abs(ref[finite]))) if finite.any() else base)  # untrained scales
    if not np.all(np.isfinite(got[finite])) or not check["mean_abs_diff"] <= limit:
        raise AgecompactError(f"int8 quantisation moves {model.name}'s outputs by {check['mean_abs_diff']:.3g} "
                              f"on average on the calibration faces (limit {limit:g}): nothing written")
    return check


def int8_cache_candidates(model, fingerprint: str) -> list[Path]:
    """Beside a ``.msgpack`` model (``best.msgpack`` -> ``best.int8.onnx``), then the user cache."""
    from agecompact.paths import export_cache_candidates

    return export_cache_candidates(getattr(model, "path", None), fingerprint, ".int8.onnx")


def cached_int8_session(model, calibration: Calibration, threads: int = 1):
    """Open the valid cached int8 export of ``model`` or quantise (once) and cache it; (session, path)."""
    from agecompact.export.onnx_export import write_onnx
    from agecompact.export.ort_session import open_session

    fingerprint = quantization_fingerprint(model, calibration)
    failure = None
    proto = None
    for candidate in int8_cache_candidates(model, fingerprint):
        if candidate.is_file():
            try:
                session = open_session(candidate, threads)
            except Exception:  # corrupt, or from an incompatible onnxruntime: rebuild it
                session = None
            meta = session.get_modelmeta().custom_metadata_map if session is not None else {}
            if meta.get("quantization_fingerprint") == fingerprint:
                return session, candidate
        if proto is None:
            proto, _ = build_int8(model, calibration)
        try:
            write_onnx(proto, candidate)
        except AgecompactError as e:  # not writable: try the next place
            failure = e
            continue
        return open_session(candidate, threads), candidate
    raise AgecompactError(f"cannot cache the int8 export of {model.name}: {failure}")
