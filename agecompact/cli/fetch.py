"""``agecompact fetch``: download datasets, released weights and detectors."""

from __future__ import annotations

from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors, not_available


@app.command(no_args_is_help=False)
@handle_errors
def fetch(
    name: Annotated[str | None, typer.Argument(help="What to fetch (see --list).")] = None,
) -> None:
    """Download a dataset, released weights or a face detector, resumably and checksum-verified."""
    not_available("fetch", "issue 3")
