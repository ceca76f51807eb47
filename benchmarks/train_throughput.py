"""Train-step throughput (images/s) per model and batch size on the current device.

    python benchmarks/train_throughput.py [--models ssrnet c3ae ...] [--batches 50 128 1024]
                                          [--conv auto|chunked|xla|both] [--max-seconds 4] [--quick]

Times the real jitted train step of ``agecompact train`` (``agecompact.training.steps``: forward,
loss, backward, Adam, BatchNorm statistics, donated state) on seeded random uint8 faces already on the
device, after compilation and warm-up, and reports images/s from the median step. ``--conv both`` runs
every configuration with XLA's own convolution (``xla``, the plain-jit baseline) and with the
cache-sized batch chunks that ``layers.Conv2D`` uses on CPU (``chunked``). Host-side augmentation
(OpenCV, one thread) is timed separately per batch size: it runs on a background thread during
training, so it only limits throughput when it is slower than the step.

Writes ``benchmarks/results/train_throughput.json`` and prints a Rich table. The load average is
recorded before and after: numbers taken while other work runs are indicative only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import time_call, write_results
from rich.console import Console
from rich.table import Table

MODELS = ["ssrnet", "c3ae", "c3ae_full", "aec"]  # ssrnet_gender runs the ssrnet graph
# Reference points on the 2-core development CPU (SSR-Net, batch 128), from the issue.
REFERENCES = {"plain_jit_ssrnet_128": 170, "keras_tf_ssrnet_128": 770}


def bench_step(model_name: str, batch: int, conv: str, max_seconds: float) -> dict:
    """The training loop's own step (``agecompact.bench.train_step.benchmark_step``), traced with ``conv``."""
    from agecompact.bench.train_step import benchmark_step
    from agecompact.models import layers

    with layers.conv_implementation(conv):  # fixed when the step is traced (in benchmark_step)
        t0 = time.perf_counter()
        step = benchmark_step(model_name, batch)
        compile_s = time.perf_counter() - t0
    stats = time_call(step, runs=50, warmup=2, max_seconds=max_seconds)
    return {"model": model_name, "batch": batch, "conv": conv, "compile_s": round(compile_s, 2),
            "step_ms": round(stats["median_ms"], 2), "step_min_ms": round(stats["min_ms"], 2),
            "runs": stats["runs"], "images_per_s": round(batch / (stats["median_ms"] / 1e3), 1),
            "images_per_s_best": round(batch / (stats["min_ms"] / 1e3), 1)}


def bench_augment(batch: int) -> float:
    from agecompact.training.augment import make_augmenter

    aug = make_augmenter("radians")
    images = np.random.default_rng(0).integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)
    stats = time_call(lambda: aug(images, np.random.default_rng(1)), runs=20, warmup=1, max_seconds=2.0)
    return round(batch / (stats["median_ms"] / 1e3), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--batches", nargs="+", type=int, default=[50, 128, 1024])
    ap.add_argument("--conv", choices=["auto", "chunked", "xla", "both"], default="both")
    ap.add_argument("--max-seconds", type=float, default=4.0, help="timed seconds per configuration (>= 3 steps)")
    ap.add_argument("--quick", action="store_true", help="ssrnet at batch 128 only")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import jax

    from agecompact.envinfo import device_info

    models, batches = (["ssrnet"], [128]) if args.quick else (args.models, args.batches)
    convs = ["xla", "chunked"] if args.conv == "both" else [args.conv]
    load_before = os.getloadavg()
    rows = []
    console = Console(stderr=True)
    for name in models:
        for batch in batches:
            for conv in convs:
                console.print(f"{name} batch {batch} conv={conv} ...", end=" ")
                try:
                    row = bench_step(name, batch, conv, args.max_seconds)
                except Exception as e:  # e.g. out of memory at a large batch: record it, go on
                    row = {"model": name, "batch": batch, "conv": conv, "error": f"{type(e).__name__}: {e}"[:300]}
                rows.append(row)
                console.print(f"{row.get('images_per_s', '-')} img/s")
    augment = {b: bench_augment(b) for b in batches}
    load_after = os.getloadavg()

    table = Table(title=f"train step throughput, {jax.default_backend()} "
                        f"({jax.devices()[0].device_kind}), load {load_before[0]:.1f} -> {load_after[0]:.1f}")
    for col in ("model", "batch", "conv", "img/s (median)", "img/s (best)", "step ms", "compile s"):
        table.add_column(col, justify="right" if col not in ("model", "conv") else "left")
    for r in rows:
        if "error" in r:
            table.add_row(r["model"], str(r["batch"]), r["conv"], "error", r["error"][:40], "", "")
        else:
            table.add_row(r["model"], str(r["batch"]), r["conv"], f"{r['images_per_s']:.0f}",
                          f"{r['images_per_s_best']:.0f}", f"{r['step_ms']:.1f}", f"{r['compile_s']:.1f}")
    Console().print(table)
    Console().print(f"host augmentation (1 thread), images/s: {augment}; references on the 2-core dev CPU, "
                    f"SSR-Net batch 128: plain jit {REFERENCES['plain_jit_ssrnet_128']}, Keras/TF "
                    f"{REFERENCES['keras_tf_ssrnet_128']}")
    path = write_results("train_throughput", {
        "device": device_info(), "load_average_before": load_before, "load_average_after": load_after,
        "cpu_count": os.cpu_count(), "results": rows, "augment_images_per_s": augment, "references": REFERENCES,
        "note": "images/s of the jitted train step on device-resident random uint8 batches (median step); "
                "measured while other work may run: compare load averages",
    }, args.out)
    Console(stderr=True).print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
