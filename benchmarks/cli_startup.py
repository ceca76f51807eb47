"""Wall time of `agecompact --help` (must stay under a second: no jax at start-up).

    python benchmarks/cli_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from _common import timing_stats, write_results
from rich.console import Console
from rich.table import Table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    commands = {"agecompact --help": [sys.executable, "-m", "agecompact", "--help"],
                "agecompact bench --help": [sys.executable, "-m", "agecompact", "bench", "--help"],
                "python -c 'import jax' (reference)": [sys.executable, "-c", "import jax"]}
    if shutil.which("agecompact"):
        commands["agecompact --help (console script)"] = ["agecompact", "--help"]
    rows = {}
    for label, cmd in commands.items():
        subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
        samples = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            samples.append(time.perf_counter() - t0)
        rows[label] = timing_stats(samples)
    table = Table(title="CLI start-up (wall time, fresh process each run)")
    for col in ("command", "median ms", "min ms", "max ms", "runs"):
        table.add_column(col, justify="left" if col == "command" else "right")
    for label, s in rows.items():
        table.add_row(label, f"{s['median_ms']:.0f}", f"{s['min_ms']:.0f}", f"{s['max_ms']:.0f}", str(s["runs"]))
    Console().print(table)
    path = write_results("cli_startup", {"results": rows})
    Console(stderr=True).print(f"wrote {path}")


if __name__ == "__main__":
    main()
