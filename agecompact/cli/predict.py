"""``agecompact predict``: find faces, crop them as in training, estimate ages, draw the result."""

from __future__ import annotations

from agecompact.cli._app import app, handle_errors, not_available


@app.command()
@handle_errors
def predict() -> None:
    """Estimate the age of every face in images, folders or videos."""
    not_available("predict", "issue 5")
