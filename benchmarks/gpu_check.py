"""One-shot check of the CUDA path, for a GPU machine (see gpu_check.sh; <= 8 minutes on one GPU).

    PYTHONPATH=. python benchmarks/gpu_check.py [--cpu-dry-run] [--budget-s 450]

1. generates demo data (``agecompact fetch demo`` + ``preprocess``), then for every family (SSR-Net,
   C3AE, AEC): ``train`` 2 epochs, ``train --resume`` to 3 (dry run: 1, then 2), ``eval`` - through the real CLI, so the
   device placement, checkpoints and resume are what users get;
2. times the jitted train step (``agecompact bench speed --what train``) at batch 128/512/1024 in
   float32 and bfloat16, and the host augmentation (one thread, as the batch stream runs it);
3. extrapolates a 90-epoch IMDB-size run (170,000 images/epoch, augmented): per epoch
   max(images / step rate, images / augmentation rate), plus the measured compile time.

Writes ``$OUT/gpu_check.json`` when ``$OUT`` is set (else ``benchmarks/results/gpu_check.json``) and
prints a summary. ``--cpu-dry-run`` runs every step on the CPU with tiny sizes (a test of this script).
Needs only the base install (jax, flax, optax, orbax, typer, rich, scipy, opencv); no onnxruntime,
no h5py. Exit status 1 if any step failed (the JSON says which).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FAMILIES = ("ssrnet", "c3ae", "aec")
IMDB_IMAGES = 170_000
EPOCHS = 90


def cli(args: list[str], log: list, timeout: float) -> tuple[int, str, float]:
    """Run ``python -m agecompact ARGS``; record it; (returncode, stdout, seconds)."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "agecompact", *args], capture_output=True, text=True,
                           timeout=timeout, env=os.environ.copy())
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = 124, "", f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - t0
    entry = {"cmd": "agecompact " + " ".join(args), "rc": rc, "seconds": round(seconds, 2)}
    if rc != 0:
        entry["stderr_tail"] = err.strip().splitlines()[-3:]
    log.append(entry)
    print(f"  [{'ok' if rc == 0 else 'FAIL'} {seconds:6.1f} s] {entry['cmd']}", file=sys.stderr, flush=True)
    return rc, out, seconds


def last_json(text: str):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def train_checks(work: Path, dry: bool, log: list, deadline: float) -> dict:
    count, batch, first = (160, 16, 1) if dry else (3000, 128, 2)
    limit = 1500 if dry else 400  # per command; a loaded CPU compiles slowly
    demo, npz = work / "demo", work / "demo.npz"
    out: dict = {"images": count, "batch": batch, "families": {}}
    rc, _, _ = cli(["fetch", "demo", "--dest", str(demo), "--count", str(count), "--quiet"], log, 300)
    if rc == 0:
        rc, _, _ = cli(["preprocess", "--db", "wiki", "--root", str(demo), "--out", str(npz), "--quiet"], log, 300)
    if rc != 0:
        out["error"] = "could not generate the demo data"
        return out
    for family in FAMILIES:
        if time.monotonic() > deadline:
            out["families"][family] = {"skipped": "time budget"}
            continue
        run = work / "runs" / family
        base = ["train", "--db", str(npz), "--model", family, "--batch-size", str(batch), "--out", str(run),
                "--quiet"]
        r1, _, t1 = cli([*base, "--epochs", str(first)], log, limit)
        r2, _, t2 = cli([*base, "--epochs", str(first + 1), "--resume"], log, limit) if r1 == 0 else (1, "", 0.0)
        r3, text, _ = cli(["eval", "--model", str(run), "--db", str(npz), "--backend", "jax", "--json", "--quiet"],
                          log, limit) if r2 == 0 else (1, "", 0.0)
        epochs = 0
        metrics = run / "metrics.jsonl"
        if metrics.is_file():
            epochs = sum(1 for line in metrics.read_text().splitlines() if line.strip())
        summary = last_json(text) if r3 == 0 else None
        out["families"][family] = {
            "ok": r1 == r2 == r3 == 0 and epochs == first + 1, f"train_{first}_epochs_s": round(t1, 1),
            f"resume_to_{first + 1}_s": round(t2, 1), "epochs_recorded": epochs,
            "val_mae": (summary or {}).get("metrics", {}).get("mae"), "eval_backend": (summary or {}).get("backend"),
        }
    return out


def speed_checks(dry: bool, log: list, deadline: float) -> list:
    batches, runs, max_s = (["8", "16"], "3", "1") if dry else (["128", "512", "1024"], "20", "2")
    rows = []
    for family in FAMILIES:
        if time.monotonic() > deadline:
            rows.append({"arch": family, "skipped": "time budget"})
            continue
        args = ["bench", "speed", "--what", "train", "--model", family, "--dtype", "float32", "--dtype", "bfloat16",
                "--runs", runs, "--max-seconds", max_s, "--json"]
        for b in batches:
            args += ["--batch-size", b]
        if not dry:
            args += ["--device", "gpu"]
        t0 = time.perf_counter()
        rc, text, seconds = cli(args, log, 1500 if dry else 400)
        doc = last_json(text) if rc == 0 else None
        for r in (doc or {}).get("results", []):
            rows.append({k: r.get(k) for k in ("arch", "batch", "dtype", "median_ms", "min_ms", "images_per_s",
                                               "runs")})
        if doc is None:
            rows.append({"arch": family, "error": "bench speed failed"})
        else:
            rows[-1]["family_wall_s"] = round(time.perf_counter() - t0, 1)
    return rows


def augment_rate(dry: bool) -> float:
    import numpy as np

    from agecompact.training.augment import make_augmenter

    aug = make_augmenter("radians")
    images = np.random.default_rng(0).integers(0, 256, (128, 64, 64, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    aug(images, rng)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < (0.5 if dry else 3.0):
        aug(images, rng)
        n += len(images)
    return n / (time.perf_counter() - t0)


def extrapolate(speed: list, augment_ips: float, compile_s: float) -> list:
    """Per arch and dtype: the fastest measured batch, and the 90-epoch IMDB-size wall time."""
    best: dict = {}
    for r in speed:
        if r.get("images_per_s"):
            key = (r["arch"], r["dtype"])
            if key not in best or r["images_per_s"] > best[key]["images_per_s"]:
                best[key] = r
    out = []
    for (arch, dtype), r in sorted(best.items()):
        step_epoch = IMDB_IMAGES / r["images_per_s"]
        epoch = max(step_epoch, IMDB_IMAGES / augment_ips)
        out.append({"arch": arch, "dtype": dtype, "batch": r["batch"], "step_images_per_s": round(r["images_per_s"]),
                    "epoch_s_step_bound": round(step_epoch, 1), "epoch_s": round(epoch, 1),
                    "bound_by": "augmentation (host, 1 thread)" if epoch > step_epoch else "train step",
                    "run_90_epochs_min": round((EPOCHS * epoch + compile_s) / 60, 1)})
    return out


def write(doc: dict, dry: bool) -> Path:
    """The JSON document, atomically (also after each phase, so a killed run still leaves its results)."""
    target = Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else \
        Path(__file__).resolve().parent / "results" / ("gpu_check_dry_run.json" if dry else "gpu_check.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_target = target.with_suffix(".json.tmp")
    tmp_target.write_text(json.dumps(doc, indent=2) + "\n")
    tmp_target.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-dry-run", action="store_true", help="run everything on the CPU with tiny sizes")
    ap.add_argument("--budget-s", type=float, default=400.0, help="skip remaining steps after this long")
    args = ap.parse_args(argv)
    dry = args.cpu_dry_run
    if dry:
        os.environ["JAX_PLATFORMS"] = "cpu"
    start = time.monotonic()
    import jax

    devices = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    doc: dict = {"benchmark": "gpu_check", "dry_run": dry, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "jax": jax.__version__, "devices": devices, "loadavg": os.getloadavg(), "commands": []}
    if not dry and jax.default_backend() != "gpu":
        print(f"error: JAX sees no GPU here ({', '.join(devices)}); install jax[cuda12] or use --cpu-dry-run",
              file=sys.stderr)
        return 2
    print(f"gpu_check on {', '.join(devices)}{' (CPU dry run)' if dry else ''}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="agecompact-gpucheck-") as tmp:
        os.environ.setdefault("AGECOMPACT_HOME", str(Path(tmp) / "home"))
        doc["train"] = train_checks(Path(tmp), dry, doc["commands"], start + args.budget_s * 0.55)
        write(doc, dry)
        doc["train_step_speed"] = speed_checks(dry, doc["commands"], start + args.budget_s)
    doc["augment_images_per_s_1_thread"] = round(augment_rate(dry))
    compile_s = max((c["seconds"] for c in doc["commands"] if c["cmd"].startswith("agecompact train")), default=0)
    doc["extrapolated_imdb_90_epochs"] = extrapolate(doc["train_step_speed"], doc["augment_images_per_s_1_thread"],
                                                      compile_s)
    doc["note"] = (f"90 epochs x {IMDB_IMAGES:,} augmented images; an epoch takes the slower of the train step and "
                   "the host augmentation (one background thread); plus the longest measured train command as a "
                   "compile/start-up allowance")
    doc["wall_s"] = round(time.monotonic() - start, 1)
    failed = [c["cmd"] for c in doc["commands"] if c["rc"] != 0]
    doc["ok"] = not failed
    target = write(doc, dry)
    for fam, r in doc["train"].get("families", {}).items():
        print(f"{fam}: {r}")
    for e in doc["extrapolated_imdb_90_epochs"]:
        print(f"{e['arch']} {e['dtype']} b{e['batch']}: {e['step_images_per_s']:,} img/s -> 90 epochs "
              f"{e['run_90_epochs_min']} min ({e['bound_by']})")
    print(f"{'ok' if doc['ok'] else 'FAILED: ' + '; '.join(failed)} in {doc['wall_s']} s; wrote {target}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
