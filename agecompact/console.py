"""Where output goes: tables and JSON on stdout, progress and logs on stderr."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

err_console = Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    # Built per call so that test runners that swap sys.stdout capture the output. Piped output gets
    # a wide page so tables are not truncated to 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)


def print_json(obj: Any) -> None:
    """Machine output: one JSON document on stdout, nothing else."""
    _write_json(obj, indent=2)


@contextlib.contextmanager
def native_stdout_to_stderr():
    """Send what native libraries write to file descriptor 1 (gloo's "[Gloo] Rank 0 is connected ...") to
    stderr while the block runs, so stdout stays the one JSON document ``--json`` promises."""
    try:
        out_fd, err_fd = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):  # captured streams (tests): nothing native to catch
        yield
        return
    sys.stdout.flush()
    saved = os.dup(out_fd)
    os.dup2(err_fd, out_fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, out_fd)
        os.close(saved)


def print_jsonl(obj: Any) -> None:
    _write_json(obj, indent=None)


def _write_json(obj: Any, indent: int | None) -> None:
    sys.stdout.write(json.dumps(json_safe(obj), indent=indent, default=_json_default, allow_nan=False) + "\n")
    sys.stdout.flush()


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as null: JSON has no such numbers and strict parsers reject them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def log(message: str) -> None:
    err_console.print(message)


def make_progress(*, quiet: bool = False, transient: bool = False) -> Progress:
    """A Rich progress bar on stderr with the columns every long command uses.

    A transient bar is off when stderr is not a terminal: it would leave nothing there but the bare
    newline Rich writes when a live display stops, ahead of whatever line comes next (e.g. an error).
    """
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or (transient and not err_console.is_terminal),
        transient=transient,
    )
