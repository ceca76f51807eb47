"""The onnxruntime engine: the exported graph on CPU, in micro-batches.

Why micro-batches: these networks' feature maps are large next to their weights (SSR-Net's first layer
writes ~0.5 MB per face), so one onnxruntime call on 128 faces streams everything through DRAM while
calls on ~8 images stay in cache. Measured on the 2-core dev machine, SSR-Net on one thread: ~4,900
faces/s in micro-batches of 8 against ~3,600 in one call of 128.

Parallelism: by default every session is single-threaded and the micro-batches of a batch are shared
by one Python worker per physical core (onnxruntime releases the GIL). On a quiet machine that matches
one session with intra-op threads = cores for throughput (SSR-Net ~9,000 faces/s either way) and is
slower only for a single face (0.24 against 0.16 ms); on a machine other work already loads, the
spinning intra-op threads lose their time slices and throughput halved (SSR-Net ~2,300 against ~4,200
faces/s), while the workers held up. ``threads=<cores>, workers=1`` picks the intra-op way.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import AgecompactError, InputError, NotAvailableError, UsageError
from agecompact.export.ort_session import open_session

MICRO_BATCH_IMAGES = 8  # network inputs per call; a context model's face is three of them
_ORT_DTYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads add little to convolutions)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def _fingerprint(session) -> str | None:
    return session.get_modelmeta().custom_metadata_map.get("export_fingerprint")


def cache_candidates(model, fingerprint: str) -> list[Path]:
    """Where this model's graph is looked for and written, in order (see ``agecompact.inference``)."""
    from agecompact.paths import export_cache_candidates

    return export_cache_candidates(getattr(model, "path", None), fingerprint)


def _cached_session(model, fingerprint: str, threads: int):
    """Open a valid cached export, exporting (once) where none is; returns (session, path)."""
    from agecompact.export.onnx_export import export_onnx

    failure = None
    for candidate in cache_candidates(model, fingerprint):
        if candidate.is_file():
            try:
                session = open_session(candidate, threads)
            except Exception:  # corrupt or from an incompatible onnxruntime: rebuild it
                session = None
            if session is not None and _fingerprint(session) == fingerprint:
                return session, candidate
        try:
            export_onnx(model, candidate)
        except NotAvailableError:
            raise
        except AgecompactError as e:  # not writable: try the next place
            failure = e
            continue
        return open_session(candidate, threads), candidate
    raise AgecompactError(f"cannot cache the ONNX export of {model.name}: {failure}")


class OnnxEngine:
    backend = "onnx"
    name = "onnxruntime-cpu"

    def __init__(self, model, *, threads: int | None = None, workers: int | None = None,
                 micro_batch: int | None = None, onnx_path: str | os.PathLike | None = None,
                 quantize: str | None = None, calibration: str | os.PathLike | None = None):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            from agecompact.inference import ONNX_MISSING

            raise NotAvailableError(ONNX_MISSING) from None
        from agecompact.export.onnx_export import export_fingerprint

        self.model = model
        crops = 3 if model.meta.crops == "context" else 1
        self.threads = 1 if threads is None else int(threads)
        self.workers = physical_cores() if workers is None else int(workers)
        self.micro_batch = max(1, MICRO_BATCH_IMAGES // crops) if micro_batch is None else int(micro_batch)
        if min(self.threads, self.workers, self.micro_batch) < 1:
            raise UsageError("threads, workers and micro_batch must be at least 1")
        graph_only = getattr(model, "onnx_file", None)  # an exported .onnx given as the model itself
        if graph_only is not None and onnx_path is None:
            onnx_path = graph_only
        fingerprint = None if graph_only is not None else export_fingerprint(model)
        from agecompact.export.quantize import check_mode

        self.quantize = check_mode(quantize)  # None (float32) or "int8": see agecompact.export.quantize
        if calibration is not None and self.quantize is None:
            raise UsageError("calibration data is only used with quantize='int8' (--quantize int8)")
        if onnx_path is not None:
            self.path = Path(onnx_path)
            if not self.path.is_file():
                raise InputError(f"ONNX file not found: {self.path}")
            try:
                session = open_session(self.path, self.threads)
            except Exception as e:
                raise InputError(f"{self.path}: not a loadable ONNX model ({type(e).__name__})") from None
            if fingerprint is not None and _fingerprint(session) != fingerprint:
                raise UsageError(f"{self.path} was not exported from these weights ({model.name})")
            stored = session.get_modelmeta().custom_metadata_map.get("quantization")
            if self.quantize is not None and stored != self.quantize:
                raise UsageError(f"{self.path} is not an {self.quantize} export "
                                 f"(make one with `agecompact export MODEL --quantize {self.quantize}`)")
            self.quantize = stored or None
        elif self.quantize is not None:
            from agecompact.export.quantize import cached_int8_session, load_calibration

            session, self.path = cached_int8_session(model, load_calibration(calibration, model), self.threads)
        else:
            session, self.path = _cached_session(model, fingerprint, self.threads)
        if self.quantize is not None:
            self.name = f"onnxruntime-cpu-{self.quantize}"
        self._sessions: dict[type, Any] = {}
        self._add_session(session)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # guards the lazily created float32 session and worker pool

    def __repr__(self) -> str:
        return (f"OnnxEngine(model={self.model.name!r}, path={str(self.path)!r}, quantize={self.quantize!r}, "
                f"threads={self.threads}, "
                f"workers={self.workers}, micro_batch={self.micro_batch})")

    def _add_session(self, session) -> None:
        dtype = _ORT_DTYPES[session.get_inputs()[0].type]
        self._sessions[dtype] = session
        self._input = session.get_inputs()[0].name
        self._output_shapes = {o.name: tuple(o.shape[1:]) for o in session.get_outputs()}

    def _session_for(self, dtype: np.dtype):
        """The uint8 graph serves uint8 input; float input needs the float32 graph (built in memory once)."""
        want = np.uint8 if dtype == np.uint8 else np.float32
        if want in self._sessions:
            return self._sessions[want], want
        if want == np.uint8:  # a float32 export takes uint8 pixels exactly
            return self._sessions[np.float32], np.float32
        from agecompact.export.onnx_export import build_onnx

        with self._lock:
            if np.float32 not in self._sessions:
                proto = build_onnx(self.model, input_dtype="float32")
                self._add_session(open_session(proto.SerializeToString(), self.threads))
        return self._sessions[np.float32], np.float32

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> OnnxEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inference --------------------------------------------------------------------------------
    def _prepare(self, images: Any) -> np.ndarray:
        x = self.model.check_input(images)
        if self.model.meta.crops == "context" and x.ndim == 4:  # one crop fed to all three branches
            x = np.broadcast_to(x[:, None], (x.shape[0], 3, *x.shape[1:]))
        return x

    def _run(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        session, dtype = self._session_for(x.dtype)
        # with several workers, a batch smaller than workers x micro_batch is still shared by all of them
        step = max(1, min(self.micro_batch, -(-len(x) // self.workers)))

        def call(start: int) -> list[np.ndarray]:
            part = np.ascontiguousarray(x[start:start + step], dtype=dtype)
            return session.run(names, {self._input: part})

        starts = range(0, len(x), step)
        if len(starts) == 1:
            return session.run(names, {self._input: np.ascontiguousarray(x, dtype=dtype)})
        if self.workers == 1:
            parts = [call(s) for s in starts]
        else:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="agecompact-ort")
            parts = list(self._pool.map(call, starts))
        return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]

    def outputs(self, images: Any, *, batch_size: int = 256, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Every output of the graph (the keys of ``AgeModel.outputs``), ``batch_size`` faces at a time."""
        x = self._prepare(images)
        names = list(names or self._output_shapes)
        if len(x) == 0:
            return {n: np.zeros((0, *self._output_shapes[n]), np.float32) for n in names}
        if batch_size < 1:
            raise UsageError("batch_size must be at least 1")
        chunks = [self._run(x[s:s + batch_size], names) for s in range(0, len(x), batch_size)]
        return {n: np.concatenate([c[i] for c in chunks]) for i, n in enumerate(names)}

    def predict(self, images: Any, *, batch_size: int = 256) -> np.ndarray:
        """Ages in years (gender score for gender models), float32 of shape (N,)."""
        return self.outputs(images, batch_size=batch_size, names=["pred"])["pred"].astype(np.float32, copy=False)
