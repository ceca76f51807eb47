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
    export,
    info,
)
from agecompact.cli._app import app


def main() -> None:
    app(prog_name="agecompact")


__all__ = ["app", "main"]
