"""Start-up: `agecompact --help`, a single-photo `agecompact predict` with a cached ONNX export, and the
first `agecompact.predict(...)` call of a fresh Python process.

    python benchmarks/cli_startup.py [--runs 5] [--before REF]

Every run is a fresh process. Wall and CPU (user + sys of the child) times are reported with the load
average, because a busy machine stretches wall time but hardly CPU time. `--before REF` also times the
package as it was at git REF (extracted with `git archive` into a temporary folder and put first on
PYTHONPATH), for a before/after table. The model is SSR-Net with the released WIKI weights from
../shared (random weights without it); the detector is the YuNet copy in ../shared, else the cached one,
else Haar.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import write_results
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
FIRST_CALL = ("import sys, time; t = time.perf_counter(); import agecompact; "
              "r = agecompact.predict(sys.argv[1], model=sys.argv[2]{det}); "
              "print(f'{{time.perf_counter() - t:.4f}} {{len(r)}} {{\"jax\" in sys.modules}}')")


def _setup(work: Path) -> tuple[Path, Path, Path | None]:
    """A model file, a photo and a detector; the export is cached beside the model by a warm-up run."""
    sys.path.insert(0, str(REPO))
    from agecompact.paths import shared_dir

    shared = shared_dir()
    model = work / "ssrnet.msgpack"
    photo = work / "photo.png"
    import agecompact

    if shared is not None and (shared / "weights/ssrnet/ssrnet_wiki.h5").is_file():
        agecompact.load_model(shared / "weights/ssrnet/ssrnet_wiki.h5").save(model)
        shutil.copy(shared / "images/the_flash_cast.png", photo)
    else:
        import numpy as np

        from agecompact.api import AgeModel
        from agecompact.models.registry import create_model
        from agecompact.weights.modelfile import ModelMeta

        AgeModel(create_model("aec"), ModelMeta.for_arch("aec")).save(model)
        import cv2

        cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8))
    detector = None
    if shared is not None and (shared / "detectors/yunet/face_detection_yunet_2026may.onnx").is_file():
        detector = shared / "detectors/yunet/face_detection_yunet_2026may.onnx"
    return model, photo, detector


def _time(cmd: list[str], env: dict[str, str], runs: int, cwd: Path) -> dict[str, float | list[float] | str]:
    """``cwd`` must not hold an ``agecompact`` folder: ``python -m``/``-c`` put it before PYTHONPATH."""
    subprocess.run(cmd, capture_output=True, env=env, check=True, cwd=cwd)  # warm the page cache and the export
    walls, cpus, loads, inner = [], [], [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        loads.append(os.getloadavg()[0])
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, env=env, check=True, text=True, cwd=cwd)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if out.stdout.split() and out.stdout.split()[0].replace(".", "", 1).isdigit():
            inner.append(float(out.stdout.split()[0]))
    row: dict[str, float | list[float] | str] = {
        "wall_median_s": statistics.median(walls), "wall_min_s": min(walls),
        "cpu_median_s": statistics.median(cpus), "load_avg_1min": statistics.mean(loads), "runs": runs}
    if inner:
        row["in_process_median_s"] = statistics.median(inner)
    return row


def _commands(model: Path, photo: Path, detector: Path | None) -> dict[str, list[str]]:
    det_cli = ["--detector-model", str(detector)] if detector else []
    det_py = f", detector_model={str(detector)!r}" if detector else ""
    py = sys.executable
    return {
        "agecompact --help": [py, "-m", "agecompact", "--help"],
        "agecompact predict one_photo (cached export)": [
            py, "-m", "agecompact", "predict", str(photo), "--model", str(model), *det_cli, "--json", "-q"],
        "import agecompact; agecompact.predict(...) first call": [
            py, "-c", FIRST_CALL.format(det=det_py), str(photo), str(model)],
        "python -c 'import jax' (reference)": [py, "-c", "import jax"],
    }


def _extract(ref: str, dest: Path) -> None:
    archive = dest / "src.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), ref, "agecompact"],
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", metavar="REF", help="also time the package at this git ref")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="agecompact-startup-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "AGECOMPACT_HOME": str(work / "home"), "JAX_PLATFORMS": "cpu"}
        model, photo, detector = _setup(work)
        commands = _commands(model, photo, detector)
        versions = {"after (working tree)": {**env, "PYTHONPATH": str(REPO)}}
        if args.before:
            (work / "before").mkdir()
            _extract(args.before, work / "before")
            versions[f"before ({args.before})"] = {**env, "PYTHONPATH": str(work / "before")}
        for version, venv in versions.items():
            for label, cmd in commands.items():
                if "agecompact.predict(" in label and version.startswith("before"):
                    continue  # no such call before
                if "jax' (reference)" in label and version.startswith("before"):
                    continue
                results[f"{version}: {label}"] = _time(cmd, venv, args.runs, work)
    table = Table(title=f"start-up, fresh process each run ({os.cpu_count()} CPUs)")
    for col in ("version: command", "wall median s", "wall min s", "CPU median s", "in-process s", "load avg"):
        table.add_column(col, justify="left" if col.startswith("version") else "right")
    for label, s in results.items():
        inner = f"{s['in_process_median_s']:.2f}" if "in_process_median_s" in s else ""
        table.add_row(label, f"{s['wall_median_s']:.2f}", f"{s['wall_min_s']:.2f}", f"{s['cpu_median_s']:.2f}",
                      inner, f"{s['load_avg_1min']:.1f}")
    Console().print(table)
    path = write_results("cli_startup", {"results": results, "detector": str(detector) if detector else "haar"})
    Console(stderr=True).print(f"wrote {path}")


if __name__ == "__main__":
    main()
