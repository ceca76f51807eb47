"""``agecompact train``: train a model with its published recipe."""

from __future__ import annotations

from agecompact.cli._app import app, handle_errors, not_available


@app.command()
@handle_errors
def train() -> None:
    """Train SSR-Net, C3AE or AEC on a preprocessed .npz, resumably, into a run folder."""
    not_available("train", "issue 4")
