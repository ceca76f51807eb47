"""Where output goes: tables and JSON on stdout, progress and logs on stderr.

Text from outside the program (file and folder names, model-file and ONNX metadata, dataset sidecars,
config values, URLs, library messages) reaches these consoles all the time, so they treat every plain
``str`` as data, never as Rich markup: no ``[tags]``, no ``:emoji:`` codes, no highlighting, and control
characters, line breaks and undecodable bytes shown visibly (``visible``), so one value stays one line and
cannot move the cursor or recolour the terminal. That holds for ``print``, table cells and titles and
progress descriptions alike. Styled output is built explicitly: ``print(msg, style="yellow")`` or
``markup("[bold]{}[/]: {}", name, text)``, whose template is the program's and whose values are escaped.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# C0 and C1 controls, DEL, Unicode line/paragraph separators, bidirectional overrides and marks, and lone
# surrogates (os.fsdecode's stand-ins for bytes that are not UTF-8, which no terminal encoding can write).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _show(match: re.Match) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: Any) -> str:
    """``value`` as one printable line: control characters, line breaks and undecodable bytes as escapes
    (``\\n``, ``\\x1b``, ``\\xff``), everything else unchanged. Never raises."""
    try:
        text = value if isinstance(value, str) else os.fsdecode(value) if isinstance(value, bytes) else str(value)
    except Exception:  # an object whose __str__ fails still gets a name
        text = f"<{type(value).__name__}>"
    return _UNSAFE.sub(_show, text)


def plain(value: Any, style: str = "") -> Text:
    """A Rich ``Text`` of an untrusted value: shown literally and on one line, optionally styled."""
    return Text(visible(value), style=style)


def markup(template: str, *values: Any, **named: Any) -> Text:
    """Rich markup from a template the program wrote, with untrusted ``values`` filled into its ``{}``:
    ``markup("[bold]{}[/]: {}", name, text)``. The values are escaped, so they never open or close tags."""
    def safe(v: Any) -> str:
        return escape(visible(v))

    return Text.from_markup(template.format(*map(safe, values), **{k: safe(v) for k, v in named.items()}),
                            emoji=False)


class SafeConsole(Console):
    """A Rich console for which every plain string is data (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(markup=False, emoji=False, highlight=False)
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        # Every str Rich prints goes through here: print() arguments, table cells, titles and captions.
        kwargs.update(markup=False, emoji=False, highlight=False)
        return super().render_str(visible(text), **kwargs)


err_console = SafeConsole(stderr=True)


def stdout_console() -> Console:
    # Built per call so that test runners that swap sys.stdout capture the output. Piped output gets
    # a wide page so tables are not truncated to 80 columns.
    width = None if sys.stdout.isatty() else 200
    return SafeConsole(file=sys.stdout, soft_wrap=True, width=width)


def print_error(message: Any) -> None:
    """``error: <message>`` as one plain line on stderr (no Rich involved). Never raises: this is the last
    thing a failing command does."""
    line = "error: " + visible(message.strip() if isinstance(message, str) else message) + "\n"
    stream = sys.stderr
    try:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            line = line.encode(encoding, "backslashreplace").decode(encoding)
        except (LookupError, UnicodeError):
            line = line.encode("ascii", "backslashreplace").decode("ascii")
        stream.write(line)
        stream.flush()
    except Exception:  # a closed or broken stderr: nowhere left to report
        pass


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


def log(message: Any, *, style: str | None = None) -> None:
    """One note on stderr, shown literally (see the module docstring); ``style`` colours it, e.g. "yellow"."""
    err_console.print(message, style=style, soft_wrap=True)


class DescriptionColumn(ProgressColumn):
    """A progress bar's task description, shown literally: descriptions carry file and dataset names."""

    def render(self, task) -> Text:
        return plain(task.description, style="progress.description")


def make_progress(*, quiet: bool = False, transient: bool = False) -> Progress:
    """A Rich progress bar on stderr with the columns every long command uses.

    A transient bar is off when stderr is not a terminal: it would leave nothing there but the bare
    newline Rich writes when a live display stops, ahead of whatever line comes next (e.g. an error).
    """
    return Progress(
        SpinnerColumn(),
        DescriptionColumn(),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or (transient and not err_console.is_terminal),
        transient=transient,
    )
