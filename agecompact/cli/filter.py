"""``agecompact filter``: apply the IMDB-WIKI label-quality rules to the .mat metadata."""

from __future__ import annotations

from agecompact.cli._app import app, handle_errors, not_available


@app.command("filter")
@handle_errors
def filter_() -> None:
    """Filter IMDB or WIKI metadata (.mat) with the SSR-Net or AEC rules and write the kept rows as CSV."""
    not_available("filter", "issue 3")
