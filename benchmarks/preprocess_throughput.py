"""Preprocess throughput (images/s) and peak memory, on UTKFace and on generated IMDB-layout sets.

Each measurement runs ``preprocess`` in a fresh Python process and reads that process's peak resident
memory (``VmHWM``), so sizes can be compared: with the images written straight to disk, peak RSS should
stay flat as the number of images grows (only the per-row metadata grows, a few hundred bytes per image,
against 12,288 bytes per 64x64x3 face).

    python benchmarks/preprocess_throughput.py                      # UTKFace (if ../shared) + 10k + 100k
    python benchmarks/preprocess_throughput.py --count 2000 --count 20000 --skip-utkface   # quick

Generated sets live under a temporary folder that is deleted afterwards (``--keep`` to keep it). Faces are
drawn once for a pool of ``--unique-faces`` images whose JPEG bytes are reused for every row, with crop
sizes like IMDB's (150-500 px), so generation is quick while decoding work is realistic.
Results: a Rich table and ``benchmarks/results/preprocess_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "preprocess_throughput.json"

# Runs in the child process: preprocess one dataset and report time and peak RSS as one JSON line.
CHILD = r"""
import json, sys, time
from agecompact.data.build import build
from agecompact.data.imdbwiki import run_filter

def peak_rss_kib():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

args = json.loads(sys.argv[1])
t0 = time.perf_counter()
if args["step"] == "filter":
    summary = run_filter(args["db"], root=args["root"], out=args["csv"])
    out = {"rows": summary["total"], "kept": summary["kept"]}
else:
    summary = build(args["db"], root=args["root"], out=args["out"], csv=args.get("csv"), workers=args["workers"],
                    restart=True, quiet=True)
    out = {"count": summary["count"], "listed": summary["listed"], "skipped": summary["skipped"]}
print(json.dumps({**out, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_kib() / 1024}))
"""


def run_child(step: str, db: str, root: Path, work: Path, workers: int | None) -> dict:
    env = dict(os.environ, AGECOMPACT_DATA=str(work), JAX_PLATFORMS="cpu")
    args = {"step": step, "db": db, "root": str(root), "out": str(work / f"{db}.npz"), "workers": workers,
            "csv": str(work / f"{db}_filtered.csv") if db in ("imdb", "wiki") else None}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{step} of {db} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(db: str, root: Path, work: Path, workers: int | None) -> dict:
    """filter (IMDB-WIKI only) and preprocess, each in its own fresh process."""
    result: dict = {"filter_s": None, "filter_peak_rss_mb": None}
    if db in ("imdb", "wiki"):
        f = run_child("filter", db, root, work, workers)
        result.update(filter_s=f["seconds"], filter_peak_rss_mb=f["peak_rss_mb"], metadata_rows=f["rows"])
    p = run_child("preprocess", db, root, work, workers)
    result.update(preprocess_s=p["seconds"], count=p["count"], listed=p["listed"], skipped=p["skipped"],
                  peak_rss_mb=p["peak_rss_mb"], images_per_s=p["listed"] / p["seconds"],
                  npz_mb=(work / f"{db}.npz").stat().st_size / 2**20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, action="append", help="generated IMDB-layout set size "
                        "(repeatable; default 10000 and 100000)")
    parser.add_argument("--unique-faces", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None, help="preprocess threads (default: all cores)")
    parser.add_argument("--skip-utkface", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated sets and outputs")
    parser.add_argument("--tmp", type=Path, default=None, help="where to generate (default: system temp)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    counts = args.count or [10_000, 100_000]

    from rich.console import Console
    from rich.table import Table

    from agecompact.data.demo import generate
    from agecompact.envinfo import package_versions
    from agecompact.paths import shared_dir

    err = Console(stderr=True)
    rows = []
    base = Path(tempfile.mkdtemp(prefix="agecompact-bench-", dir=args.tmp))
    try:
        shared = shared_dir()
        utk = shared / "datasets" / "UTKFace" if shared else None
        if not args.skip_utkface and utk is not None and utk.is_dir():
            work = base / "utkface"
            work.mkdir()
            err.print("preprocess UTKFace ...")
            r = measure("utkface", utk, work, args.workers)
            rows.append({"dataset": "UTKFace (../shared)", "images": r["listed"], **r})
            if not args.keep:
                shutil.rmtree(work)
        elif not args.skip_utkface:
            err.print("UTKFace not found (../shared absent): skipped")
        for n in counts:
            work = base / f"imdb_{n}"
            err.print(f"generating an IMDB-layout set of {n:,} images ...")
            t0 = time.perf_counter()
            generate(work, count=n, seed=0, db="imdb", unique_faces=min(args.unique_faces, n),
                     size_range=(150, 500))
            gen_s = time.perf_counter() - t0
            files_mb = sum(p.stat().st_size for p in (work / "imdb_crop").rglob("*.jpg")) / 2**20
            err.print(f"  generated in {gen_s:.0f} s ({files_mb:,.0f} MiB of JPEG); preprocessing ...")
            r = measure("imdb", work, work, args.workers)
            rows.append({"dataset": f"generated IMDB layout, {n:,}", "images": n, "generate_s": gen_s,
                         "jpeg_mb": files_mb, **r})
            if not args.keep:
                shutil.rmtree(work)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    table = Table(title="preprocess throughput (method ssrnet, 64x64 BGR uint8)")
    for col in ("dataset", "listed", "written", "preprocess s", "images/s", "peak RSS MiB", ".npz MiB",
                "filter s", "filter peak RSS MiB"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for r in rows:
        table.add_row(r["dataset"], f"{r['listed']:,}", f"{r['count']:,}", f"{r['preprocess_s']:.1f}",
                      f"{r['images_per_s']:,.0f}", f"{r['peak_rss_mb']:,.0f}", f"{r['npz_mb']:,.0f}",
                      f"{r['filter_s']:.1f}" if r["filter_s"] is not None else "-",
                      f"{r['filter_peak_rss_mb']:,.0f}" if r["filter_peak_rss_mb"] is not None else "-")
    Console(width=max(Console().width, 150)).print(table)
    report = {"rows": rows, "workers": args.workers or os.cpu_count(), "cpu_count": os.cpu_count(),
              "unique_faces": args.unique_faces, "versions": package_versions(),
              "note": "filter and preprocess each run in a fresh process; peak RSS is its VmHWM; images/s "
                      "= listed images / preprocess wall time (listing, decoding, resizing, writing the .npz)"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    Console(stderr=True).print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
