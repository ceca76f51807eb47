"""Inference backends: one call picks the fastest engine for this machine.

    engine = get_engine(model, backend="auto", **opts)
    ages = engine.predict(images, batch_size=256)     # np.float32 (N,)
    heads = engine.outputs(images, batch_size=256)    # {"pred": (N,), ...}: the same keys as AgeModel.outputs

``model`` is an ``AgeModel`` (or anything ``agecompact.load_model`` accepts). ``images`` are BGR
(N, 64, 64, 3) batches, uint8 or float 0..255; C3AE context models also take (N, 3, 64, 64, 3) crops
and, given single crops, feed them to all three branches, exactly as ``AgeModel.predict`` does.
Float images with fractional values are never rounded: a uint8 graph gets a float32 twin, built in
memory on first use.

``backend``:

* ``"auto"``: JAX when JAX's default backend is an accelerator (GPU/TPU; judged without importing JAX
  when no accelerator plugin is installed or ``JAX_PLATFORMS=cpu``); otherwise onnxruntime when it is installed (``pip install 'agecompact[onnx]'``); otherwise JAX on CPU.
* ``"jax"``: the model's own jitted forward pass; always available.
* ``"onnx"`` (aliases ``"onnxruntime"``, ``"ort"``): onnxruntime on CPU; a one-line ``NotAvailableError``
  when onnxruntime (or onnx, for a first export) is not installed.

Options (``**opts``), ignored by the JAX engine:

* ``workers``: Python threads that share a batch, each running whole micro-batches (default: the
  physical cores this process may use).
* ``threads``: onnxruntime intra-op threads per call (default 1). ``threads=<cores>, workers=1`` cuts
  single-face latency on a quiet machine (SSR-Net 0.16 against 0.24 ms) but halves throughput when
  other work loads the CPU; the default holds up in both cases.
* ``micro_batch``: faces per onnxruntime call (default 8, 2 for three-crop models: small calls stay
  in cache and ran ~1.4x faster than one large call).
* ``onnx_path``: use this exported file instead of the cache (it must hold these weights).
* ``tta``: ``"flip"`` wraps the engine so every face is also run mirrored and the two outputs are
  averaged (``agecompact.inference.tta``; twice the compute); ``"none"`` (default) does not.
* ``quantize``: ``"int8"`` runs the statically quantised graph (``agecompact.export.quantize``), built
  once and cached beside the float export (``best.int8.onnx``) or as ``<fingerprint>.int8.onnx``;
  ``calibration``: the faces it is calibrated on (a ``.npz`` or a folder; default: synthetic faces).

Every engine has ``.name`` (``"jax-cpu"``, ``"jax-gpu"``, ``"onnxruntime-cpu"``), ``.backend``
(``"jax"`` or ``"onnx"``) and ``.model``. ONNX engines also have ``.path``, the graph they run.

Where exported graphs are cached (an export happens once per weights):

* a model loaded from our ``.msgpack`` file gets the graph beside it: ``best.msgpack`` -> ``best.onnx``;
  the file's ``export_fingerprint`` metadata (weights checksum, architecture, exporter version) must match
  or it is rebuilt; if that folder is read-only, the next rule applies;
* anything else (a Keras ``.h5``, a model built in memory) goes to
  ``agecompact.paths.cache_home() / "onnx" / "<export_fingerprint>.onnx"``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Protocol, runtime_checkable

import numpy as np

from agecompact.choices import BACKENDS, canonical_backend
from agecompact.errors import NotAvailableError, UsageError

ONNX_MISSING = "the onnx backend needs onnxruntime: pip install 'agecompact[onnx]'"


@runtime_checkable
class Engine(Protocol):
    name: str
    backend: str

    def predict(self, images: Any, *, batch_size: int = 256) -> np.ndarray: ...

    def outputs(self, images: Any, *, batch_size: int = 256) -> dict[str, np.ndarray]: ...


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


_PLUGIN_PREFIXES = ("jax_cuda", "jax_rocm", "jax_plugins", "jax_tpu", "jax_metal", "libtpu")


def _accelerator_installed() -> bool:
    """Whether JAX could see a GPU/TPU at all, judged without importing it (~2 s): ``JAX_PLATFORMS``
    naming only cpu, or no accelerator plugin (``jax-cuda12-plugin``, ``libtpu``, ...) installed."""
    platforms = [p.strip().lower() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
    if platforms:
        return any(p != "cpu" for p in platforms)
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        if any(name.lower().startswith(_PLUGIN_PREFIXES) for name in names):
            return True
    return False


def _accelerator() -> bool:
    if "jax" not in sys.modules and not _accelerator_installed():
        return False  # CPU only: no need to start JAX to find that out
    from agecompact.envinfo import default_platform

    return default_platform() != "cpu"


def backend_name(backend: str = "auto") -> str:
    """The canonical name (``auto``, ``jax`` or ``onnx``) of ``backend`` or an alias (``ort``, ``onnxruntime``)."""
    choice = canonical_backend(backend)
    if choice is None:
        raise UsageError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return choice


def resolve_backend(backend: str = "auto") -> str:
    """``"jax"`` or ``"onnx"``: what ``backend`` means on this machine."""
    choice = backend_name(backend)
    if choice == "auto":
        return "jax" if _accelerator() or not onnxruntime_available() else "onnx"
    if choice == "onnx" and not onnxruntime_available():
        raise NotAvailableError(ONNX_MISSING)
    return choice


def get_engine(model: Any, backend: str = "auto", *, tta: str | None = None, **opts: Any) -> Engine:
    """An inference engine for ``model``; see the module docstring for backends, options and caching."""
    from agecompact.inference.tta import FlipEngine, check_tta

    engine = _plain_engine(model, backend, **opts)
    return FlipEngine(engine) if check_tta(tta) == "flip" else engine


def _plain_engine(model: Any, backend: str, **opts: Any) -> Engine:
    if isinstance(model, str | os.PathLike):
        from agecompact.api import load_model

        model = load_model(model)
    known = {"tta", "threads", "workers", "micro_batch", "onnx_path", "quantize", "calibration"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise UsageError(f"unknown engine option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    requested = str(backend).lower()
    if getattr(model, "onnx_file", None) is not None:  # an exported graph: onnxruntime or nothing
        if resolve_backend(backend) != "onnx" and requested != "auto":
            raise UsageError(f"{model.onnx_file} is an ONNX graph: it runs on the onnx backend only")
        from agecompact.inference.onnx_engine import OnnxEngine

        return OnnxEngine(model, **opts)
    choice = resolve_backend(backend)
    if opts.get("quantize") not in (None, "none") and choice != "onnx":
        raise UsageError(f"--quantize {opts['quantize']} runs on onnxruntime: use --backend onnx (or auto on a CPU)")
    if choice == "onnx":
        from agecompact.inference.onnx_engine import OnnxEngine

        try:
            return OnnxEngine(model, **opts)
        except NotAvailableError:
            if requested != "auto" or opts.get("quantize") not in (None, "none"):
                raise
            # auto: onnxruntime is there but the onnx package needed for a first export is not
    from agecompact.inference.jax_engine import JaxEngine

    return JaxEngine(model)


__all__ = ["BACKENDS", "Engine", "get_engine", "onnxruntime_available", "resolve_backend"]
