"""Inference speed as ``predict`` sees it: per-face latency at batch 1, throughput at batch 256 for every
model and inference backend, and end-to-end images/s of a predict run on a folder (detection, crops,
annotation and writing included).

    python benchmarks/predict_latency.py [--quick] [--backends jax onnx] [--models ssrnet aec ...]

Released weights from ../shared are used when present (random weights otherwise: same speed). The
end-to-end folders are built under a temporary directory: real photos with YuNet (or Haar) detection,
and UTKFace chips with ``--detector none``; synthetic noise chips when ../shared is absent.
Timings taken while other work runs on the machine are indicative only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
from _common import time_call, write_results  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

WEIGHTS = {  # model -> released weights inside ../shared
    "ssrnet": "weights/ssrnet/ssrnet_wiki.h5",
    "ssrnet_gender": "weights/ssrnet/ssrnet_gender_wiki.h5",
    "c3ae_full": "weights/c3ae/imdb_focal_loss_c3ae_v84.h5",
    "c3ae_full_se": "weights/c3ae/c3ae_imdb_v89.h5",
    "aec": "weights/aec/aec_weights.hdf5",
}
YUNET = "detectors/yunet/face_detection_yunet_2026may.onnx"


def load(name: str, shared: Path | None):
    from agecompact.api import AgeModel, load_model
    from agecompact.models.registry import create_model
    from agecompact.weights.modelfile import ModelMeta

    rel = WEIGHTS.get(name)
    if shared is not None and rel and (shared / rel).is_file():
        return load_model(shared / rel), "released"
    return AgeModel(create_model(name), ModelMeta.for_arch(name, name=name)), "random"


def engine_for(model, backend: str):
    from agecompact.errors import AgecompactError
    from agecompact.inference import get_engine

    try:
        return get_engine(model, backend), None
    except AgecompactError as e:
        return None, str(e)


def model_speed(model, engine, *, quick: bool) -> dict:
    size = model.meta.input_size
    shape = (size, size, 3) if model.meta.crops == "single" else (3, size, size, 3)
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, *shape), dtype=np.uint8)
    big = rng.integers(0, 256, (256, *shape), dtype=np.uint8)
    lat = time_call(lambda: engine.predict(one, batch_size=1), runs=50 if quick else 300, warmup=5,
                    max_seconds=1.5 if quick else 5.0)
    thr = time_call(lambda: engine.predict(big, batch_size=256), runs=5 if quick else 30, warmup=2,
                    max_seconds=2.0 if quick else 8.0)
    return {"latency_b1_ms": lat["median_ms"], "latency_b1_p90_ms": lat["p90_ms"],
            "throughput_b256_faces_s": 256 / (thr["median_ms"] / 1e3), "b256_median_ms": thr["median_ms"],
            "runs_b1": lat["runs"], "runs_b256": thr["runs"]}


def build_folders(root: Path, shared: Path | None, *, quick: bool) -> dict[str, tuple[Path, str]]:
    """name -> (folder, detector)."""
    import cv2

    folders: dict[str, tuple[Path, str]] = {}
    chips = root / "chips"
    chips.mkdir()
    n_chips = 64 if quick else 512
    utk = shared / "datasets/UTKFace" if shared else None
    if utk is not None and utk.is_dir():
        for p in sorted(utk.glob("*.jpg"))[:n_chips]:
            shutil.copy(p, chips / p.name)
        folders["utkface-chips"] = (chips, "none")  # 200x200 aligned faces
    else:
        rng = np.random.default_rng(0)
        for i in range(n_chips):
            cv2.imwrite(str(chips / f"{i:04d}.jpg"), rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
        folders["noise-chips"] = (chips, "none")  # 200x200, no ../shared
    images = shared / "images" if shared else None
    if images is not None and images.is_dir():
        photos = root / "photos"
        photos.mkdir()
        sources = sorted(p for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg"))
        for k in range(2 if quick else 8):
            for p in sources:
                shutil.copy(p, photos / f"{k}_{p.name}")
        detector = "yunet" if (shared / YUNET).is_file() else "haar"
        folders["group-photos"] = (photos, detector)  # ../shared/images: 1024x576 and 699x1000
    return folders


def end_to_end(model, backend: str, folder: Path, detector: str, shared: Path | None, out: Path) -> dict:
    from agecompact.faces.detector import create_detector
    from agecompact.predict import Predictor, PredictRun
    from agecompact.predict.inputs import discover

    items, _ = discover([folder])
    det = create_detector(detector, model_path=(shared / YUNET) if detector == "yunet" else None)
    t0 = time.perf_counter()
    with Predictor(model, detector=det, backend=backend) as predictor:
        PredictRun(predictor, out_dir=out)(items)  # includes compiling / exporting and loading the graph
        first_s = time.perf_counter() - t0
        steady = PredictRun(predictor, out_dir=out)(items)
        detect_s = 0.0
        import cv2

        for item in items:  # detection alone, to show where the time goes
            img = cv2.imread(str(item.path))
            t = time.perf_counter()
            det.detect(img)
            detect_s += time.perf_counter() - t
        return {"images": len(items), "faces": steady.faces, "engine": predictor.backend,
                "first_run_images_s": len(items) / first_s, "images_s": len(items) / steady.seconds,
                "faces_s": steady.faces / steady.seconds, "detection_share": detect_s / steady.seconds,
                "seconds": steady.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["ssrnet", "ssrnet_gender", "c3ae", "c3ae_full",
                                                        "c3ae_full_se", "aec"])
    parser.add_argument("--backends", nargs="+", default=["jax", "onnx"])
    parser.add_argument("--e2e-models", nargs="+", default=["ssrnet", "aec"])
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller folders (smoke test)")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default benchmarks/results/)")
    args = parser.parse_args()

    from agecompact.envinfo import device_info
    from agecompact.paths import shared_dir

    shared = shared_dir()
    console = Console(stderr=True)
    rows, e2e_rows = [], []
    cache = Path(tempfile.mkdtemp(prefix="agecompact_bench_home_"))
    os.environ["AGECOMPACT_HOME"] = str(cache)  # ONNX exports of .h5 weights go here, not to ~/.cache
    try:
        for name in args.models:
            model, weights = load(name, shared)
            for backend in args.backends:
                engine, why = engine_for(model, backend)
                row = {"model": name, "weights": weights, "backend": backend, "num_params": model.num_params}
                if engine is None:
                    rows.append({**row, "skipped": why})
                    continue
                console.print(f"[dim]{name} on {engine.name}…[/dim]")
                rows.append({**row, "engine": engine.name, **model_speed(model, engine, quick=args.quick)})
                getattr(engine, "close", lambda: None)()
        tmp = Path(tempfile.mkdtemp(prefix="agecompact_predict_bench_"))
        try:
            folders = build_folders(tmp, shared, quick=args.quick)
            for name in args.e2e_models:
                model, weights = load(name, shared)
                for backend in args.backends:
                    if engine_for(model, backend)[0] is None:
                        continue
                    for label, (folder, detector) in folders.items():
                        console.print(f"[dim]predict {label}: {name} on {backend}, detector {detector}…[/dim]")
                        res = end_to_end(model, backend, folder, detector, shared, tmp / "out")
                        e2e_rows.append({"folder": label, "detector": detector, "model": name, "backend": backend,
                                         **res})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)

    table = Table(title="model speed (per face; median)")
    for col in ("model", "engine", "batch 1 ms/face", "batch 256 faces/s"):
        table.add_column(col, justify="left" if col in ("model", "engine") else "right")
    for r in rows:
        if "skipped" in r:
            table.add_row(r["model"], r["backend"], "skipped", r["skipped"])
        else:
            table.add_row(r["model"], r["engine"], f"{r['latency_b1_ms']:.3f}", f"{r['throughput_b256_faces_s']:,.0f}")
    out = Console(width=None if sys.stdout.isatty() else 130)
    out.print(table)
    t2 = Table(title="end-to-end `predict` on a folder (detection, crops, annotation, writing)")
    for col in ("folder", "detector", "model", "engine", "images", "faces", "images/s", "1st run img/s",
                "detect %"):
        t2.add_column(col, justify="left" if col in ("folder", "detector", "model", "engine") else "right")
    for r in e2e_rows:
        t2.add_row(r["folder"], r["detector"], r["model"], r["engine"], str(r["images"]), str(r["faces"]),
                   f"{r['images_s']:.1f}", f"{r['first_run_images_s']:.1f}", f"{r['detection_share']:.0%}")
    out.print(t2)
    cpus = os.cpu_count()
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    note = (f"{cpus} CPUs, 1-min load average {load1:.1f} at the end: timings are indicative when other work "
            "shares the machine")
    out.print(note)
    path = write_results("predict_latency", {
        "device": device_info(), "quick": args.quick, "shared": shared is not None, "note": note,
        "load_average_1min": load1, "models": rows, "end_to_end": e2e_rows,
    }, args.output)
    out.print(f"wrote {path}")


if __name__ == "__main__":
    main()
