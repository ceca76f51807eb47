"""Inference backends compared on this machine: JAX (jit), onnxruntime float32 and int8, for every model.

    python benchmarks/inference_backends.py [--models ssrnet aec ...] [--backends jax onnx int8] [--quick]
                                            [--threads N] [--workers W] [--micro-batch M]
                                            [--calibration faces.npz|folder] [--accuracy-faces 1000]

``int8`` is ``get_engine(model, "onnx", quantize="int8")`` (default calibration unless --calibration).
Because other work may load the machine, int8 and float onnxruntime are also timed *interleaved* at
batch 128 (alternating calls, median of each): ``int8_vs_float_b128`` is that ratio. Accuracy: the ages
of both graphs on real UTKFace faces from ../shared (evenly spaced, resized like ``preprocess``): MAE
change and max |int8 - float|.

For each model and backend, through ``agecompact.inference.get_engine`` (numpy faces in, numpy ages
out, the way ``predict``/``eval`` call it): ms/face at batch 1 (median, min, max after warm-up) and
faces/s at batch 128 and 1024 (median call). Engine creation (export, session start) and JAX
compilation happen before any timing; every timed call returns host numpy arrays, so JAX's work has
finished (``device_get`` blocks until it is ready). Inputs are seeded random uint8 faces; context
models (C3AE full) get three distinct crops per face. Released weights from ../shared are used when
present (random weights otherwise: the same speed).

Writes ``benchmarks/results/inference_backends.json`` and prints a Rich table. The machine's load
average is recorded before and after: timings taken while other work runs are indicative only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
from _common import time_call, write_results  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

MODELS = ["ssrnet", "aec", "c3ae", "c3ae_full", "c3ae_full_se"]  # ssrnet_gender runs the ssrnet graph
WEIGHTS = {
    "ssrnet": "weights/ssrnet/ssrnet_wiki.h5",
    "ssrnet_gender": "weights/ssrnet/ssrnet_gender_wiki.h5",
    "aec": "weights/aec/aec_weights.hdf5",
    "c3ae_full": "weights/c3ae/imdb_focal_loss_c3ae_v84.h5",
    "c3ae_full_se": "weights/c3ae/c3ae_imdb_v89.h5",
}
# Targets from the issue (SSR-Net, onnxruntime, this 2-core CPU) and the reference points measured earlier.
TARGETS = {"ssrnet": {"batch1_ms": 0.3, "faces_per_s_128": 4500}}
REFERENCES = {"keras_tf_ssrnet": {"batch1_ms": 1.6, "faces_per_s_128": 3100}}


def load(name: str):
    from agecompact.api import AgeModel, load_model
    from agecompact.models.registry import create_model
    from agecompact.paths import shared_dir
    from agecompact.weights.modelfile import ModelMeta

    shared = shared_dir()
    rel = WEIGHTS.get(name)
    if shared is not None and rel and (shared / rel).is_file():
        return load_model(shared / rel), "released"
    return AgeModel(create_model(name), ModelMeta.for_arch(name, name=name)), "random"


def faces(model, n: int, seed: int = 0) -> np.ndarray:
    s = model.meta.input_size
    shape = (n, 3, s, s, 3) if model.meta.crops == "context" else (n, s, s, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def measure(engine, model, *, quick: bool) -> dict:
    x1, x128, x1024 = faces(model, 1), faces(model, 128, 1), faces(model, 1024, 2)
    budget = 2.0 if quick else 6.0
    one = time_call(lambda: engine.predict(x1, batch_size=1), runs=100 if quick else 500, warmup=20,
                    max_seconds=budget)
    b128 = time_call(lambda: engine.predict(x128, batch_size=128), runs=5 if quick else 20, warmup=2,
                     max_seconds=budget)
    b1024 = time_call(lambda: engine.predict(x1024, batch_size=1024), runs=2 if quick else 5, warmup=1,
                      max_seconds=budget)
    return {
        "batch1_ms": {k: one[k] for k in ("median_ms", "min_ms", "max_ms", "p10_ms", "p90_ms", "runs")},
        "faces_per_s_128": 128 / (b128["median_ms"] / 1e3),
        "faces_per_s_128_best": 128 / (b128["min_ms"] / 1e3),
        "faces_per_s_1024": 1024 / (b1024["median_ms"] / 1e3),
        "faces_per_s_1024_best": 1024 / (b1024["min_ms"] / 1e3),
        "runs": {"batch1": one["runs"], "batch128": b128["runs"], "batch1024": b1024["runs"]},
    }


def utkface_faces(n: int):
    """``n`` evenly spaced UTKFace faces from ../shared resized to 64x64, and their ages (None if absent)."""
    import cv2

    from agecompact.paths import shared_dir

    root = shared_dir()
    folder = root / "datasets" / "UTKFace" if root is not None else None
    if folder is None or not folder.is_dir():
        return None, None
    files = sorted(folder.glob("*.jpg"))
    faces, ages = [], []
    for i in np.unique(np.linspace(0, len(files) - 1, min(n, len(files))).astype(int)):
        img = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        age = files[i].name.split("_")[0]
        if img is not None and age.isdigit():
            faces.append(cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA))
            ages.append(int(age))
    return np.stack(faces), np.asarray(ages, np.float64)


def accuracy(model, float_engine, int8_engine, faces, ages) -> dict:
    ref = float_engine.predict(faces).astype(np.float64)
    got = int8_engine.predict(faces).astype(np.float64)
    diff = np.abs(got - ref)
    return {"faces": int(len(faces)), "mae_float": float(np.mean(np.abs(ref - ages))),
            "mae_int8": float(np.mean(np.abs(got - ages))),
            "mae_change": float(np.mean(np.abs(got - ages)) - np.mean(np.abs(ref - ages))),
            "mean_abs_diff": float(diff.mean()), "p99_abs_diff": float(np.quantile(diff, 0.99)),
            "max_abs_diff": float(diff.max())}


def interleaved(a, b, x: np.ndarray, rounds: int) -> dict:
    """Alternate calls of engines ``a`` and ``b`` on ``x``; faces/s from each one's median call."""
    ta, tb = [], []
    a.predict(x, batch_size=len(x))
    b.predict(x, batch_size=len(x))
    for _ in range(rounds):
        for engine, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            engine.predict(x, batch_size=len(x))
            times.append(time.perf_counter() - t0)
    fa, fb = len(x) / float(np.median(ta)), len(x) / float(np.median(tb))
    return {"float_faces_per_s": fa, "int8_faces_per_s": fb, "ratio": fb / fa, "rounds": rounds,
            "ratio_best": (len(x) / min(tb)) / (len(x) / min(ta))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--backends", nargs="+", default=["jax", "onnx", "int8"], choices=["jax", "onnx", "int8"])
    parser.add_argument("--calibration", default=None, help="int8 calibration faces (.npz or folder)")
    parser.add_argument("--accuracy-faces", type=int, default=1000, help="UTKFace faces for the accuracy check")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="Python threads sharing a batch (default: cores)")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="faces per onnxruntime call (default 8, 2 for three-crop models)")
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test, not a measurement)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)

    from agecompact.envinfo import device_info
    from agecompact.errors import AgecompactError
    from agecompact.inference import get_engine
    from agecompact.models.registry import MODELS as REGISTERED

    unknown = [m for m in args.models if m not in REGISTERED]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; choose from {', '.join(REGISTERED)}", file=sys.stderr)
        return 2
    err = Console(stderr=True)
    load_before = os.getloadavg()
    if load_before[0] > 0.5:
        err.print(f"[yellow]load average {load_before[0]:.2f}: other work is running, timings are indicative only[/]")
    rows, settings, comparisons = [], {}, []
    real_faces, real_ages = utkface_faces(args.accuracy_faces) if "int8" in args.backends else (None, None)
    for name in args.models:
        model, weights = load(name)
        engines = {}
        for backend in args.backends:
            opts = {} if backend == "jax" else {"threads": args.threads, "workers": args.workers,
                                                "micro_batch": args.micro_batch}
            if backend == "int8":
                opts.update(quantize="int8", calibration=args.calibration)
            try:
                t0 = time.perf_counter()
                engine = get_engine(model, "jax" if backend == "jax" else "onnx",
                                    **{k: v for k, v in opts.items() if v is not None})
                setup_s = time.perf_counter() - t0
            except AgecompactError as e:
                err.print(f"[yellow]{name} / {backend}: skipped ({e})[/]")
                continue
            err.print(f"{name} / {engine.name} ...")
            row = {"model": name, "weights": weights, "backend": backend, "engine": engine.name,
                   "engine_setup_s": setup_s, **measure(engine, model, quick=args.quick)}
            if backend != "jax":
                row.update({"threads": engine.threads, "workers": engine.workers, "micro_batch": engine.micro_batch})
                settings = {"threads": engine.threads, "workers": engine.workers}
                engines[backend] = engine
            rows.append(row)
        if "onnx" in engines and "int8" in engines:
            cmp = {"model": name, "weights": weights, "calibration": args.calibration or "default",
                   "interleaved_b128": interleaved(engines["onnx"], engines["int8"], faces(model, 128, 1),
                                                   rounds=4 if args.quick else 15)}
            if real_faces is not None:
                cmp["accuracy_utkface"] = accuracy(model, engines["onnx"], engines["int8"], real_faces, real_ages)
            comparisons.append(cmp)
            err.print(f"  int8 / float b128 (interleaved): {cmp['interleaved_b128']['ratio']:.2f}x")
        for engine in engines.values():
            engine.close()
    load_after = os.getloadavg()

    out = Console(width=None if sys.stdout.isatty() else 132)
    jax_rows = {r["model"]: r for r in rows if r["backend"] == "jax"}
    table = Table(title=f"Inference backends on {device_info()['cpu']} ({os.cpu_count()} CPUs)"
                  f"{' — QUICK, not a measurement' if args.quick else ''}")
    for col in ("model", "engine", "ms/face b1 median", "b1 min–max", "faces/s b128", "faces/s b1024", "vs jax b128"):
        table.add_column(col, justify="left" if col in ("model", "engine") else "right")
    for r in rows:
        b1 = r["batch1_ms"]
        ref = jax_rows.get(r["model"])
        speedup = f"{r['faces_per_s_128'] / ref['faces_per_s_128']:.1f}×" if ref and r is not ref else "—"
        table.add_row(r["model"], r["engine"], f"{b1['median_ms']:.3f}", f"{b1['min_ms']:.3f}–{b1['max_ms']:.3f}",
                      f"{r['faces_per_s_128']:,.0f}", f"{r['faces_per_s_1024']:,.0f}", speedup)
    out.print(table)
    target = TARGETS["ssrnet"]
    for r in rows:
        if r["model"] == "ssrnet" and r["backend"] == "onnx":
            ok = r["batch1_ms"]["median_ms"] <= target["batch1_ms"] and r["faces_per_s_128"] >= target["faces_per_s_128"]
            out.print(f"SSR-Net onnxruntime vs target (≤ {target['batch1_ms']} ms/face, ≥ "
                            f"{target['faces_per_s_128']:,} faces/s at 128): {'met' if ok else 'NOT met'}"
                            f"{' (quick run)' if args.quick else ''}")
    for c in comparisons:
        acc = c.get("accuracy_utkface")
        out.print(f"{c['model']}: int8/float faces/s at b128, interleaved: {c['interleaved_b128']['ratio']:.2f}x"
                  + (f"; UTKFace ({acc['faces']} faces, {c['weights']} weights) MAE {acc['mae_float']:.3f} -> "
                     f"{acc['mae_int8']:.3f} ({acc['mae_change']:+.3f}), max |int8 - float| {acc['max_abs_diff']:.2f}"
                     if acc else ""))
    out.print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}"
                    f"{' (contended: indicative only)' if max(load_before[0], load_after[0]) > 0.5 else ''}")
    path = write_results("inference_backends", {
        "device": device_info(), "loadavg_before": load_before, "loadavg_after": load_after,
        "quick": args.quick, "onnx_settings": settings, "targets": TARGETS, "references": REFERENCES,
        "results": rows, "int8_vs_float": comparisons,
    }, args.out)
    err.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
