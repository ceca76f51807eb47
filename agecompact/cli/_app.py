"""The root Typer app and the error boundary every command goes through."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from agecompact._version import __version__
from agecompact.cli._command import App
from agecompact.errors import AgecompactError, NotAvailableError

F = TypeVar("F", bound=Callable)

app = App(
    name="agecompact",
    help="Tiny, fast, reproducible face-age estimation: SSR-Net, C3AE and AEC in JAX/Flax.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def fail(message: object, code: int) -> None:
    """Print one ``error:`` line on stderr and leave with ``code``. The message is shown literally: line breaks
    and control characters in it (a file name, a library's multi-line text) appear as escapes (``\\n``)."""
    from agecompact.console import print_error

    print_error(message)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn expected failures into one stderr line and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AgecompactError as e:
            fail(_message(e), e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MemoryError:
            fail("out of memory", 1)
        except OSError as e:  # an output path that is a folder, a read-only or missing place, a full disk...
            fail(describe_os_error(e), 1)
        except UnicodeError as e:  # text a file holds that is not in its encoding, or a name stdout cannot encode
            fail(" ".join(part.strip(" *") for part in _message(e).splitlines() if part.strip(" *")), 1)

    return wrapper  # type: ignore[return-value]


def _message(e: BaseException) -> str:
    try:
        return str(e) or type(e).__name__
    except Exception:  # an exception whose __str__ fails still ends in one line
        return type(e).__name__


def describe_os_error(e: OSError) -> str:
    try:
        what = e.strerror or str(e) or type(e).__name__
        if e.filename is None:
            return what
        name = os.fsdecode(e.filename) if isinstance(e.filename, bytes) else e.filename
        if e.filename2 is None:
            return f"{name}: {what}"
        name2 = os.fsdecode(e.filename2) if isinstance(e.filename2, bytes) else e.filename2
        return f"{name} -> {name2}: {what}"
    except Exception:
        return type(e).__name__


def not_available(command: str, issue: str) -> None:
    raise NotAvailableError(f"`agecompact {command}` is not available yet ({issue})")


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"agecompact {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Show the version and exit.", callback=_version_callback, is_eager=True),
    ] = False,
) -> None:
    """Tiny, fast, reproducible face-age estimation: SSR-Net, C3AE and AEC in JAX/Flax.

    Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 missing or unreadable input, 4 no face found
    (predict --strict), 130 interrupted.
    """
