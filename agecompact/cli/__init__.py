"""The ``agecompact`` command line: one module per subcommand, registered on one Typer app.

Nothing here imports jax: each command imports what it needs when it runs, so ``--help`` stays fast.
"""

from agecompact.cli import (  # noqa: F401, I001  (registration side effects, in help order)
    fetch,
    filter,
    preprocess,
    train,
    eval,
    bench,
    predict,
    serve,
    export,
    info,
)
import sys

from agecompact.cli._app import app


def main() -> None:
    """Console-script entry point: like ``app()``, but a usage error (bad option, missing argument) is
    one ``error:`` line on stderr with exit code 2 instead of Click's multi-line panel."""
    try:
        code = app(prog_name="agecompact", standalone_mode=False)
    except Exception as e:
        if not _is_usage_error(e):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":
            text = e.ctx.get_help()  # Typer's Rich help prints itself and returns ""
            if text.strip():
                sys.stdout.write(text + "\n")
        else:
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            from agecompact.console import print_error

            print_error(f"{e.format_message()}{hint}")
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(e: BaseException) -> bool:
    # Typer vendors Click privately, so match Click's UsageError by name rather than by import.
    return any(c.__name__ == "UsageError" for c in type(e).__mro__) and hasattr(e, "format_message")


__all__ = ["app", "main"]
