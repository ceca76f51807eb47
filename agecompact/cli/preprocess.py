"""``agecompact preprocess``: turn a dataset into the 64x64 BGR uint8 ``.npz`` training schema."""

from __future__ import annotations

from agecompact.cli._app import app, handle_errors, not_available


@app.command()
@handle_errors
def preprocess() -> None:
    """Crop, resize and pack IMDB, WIKI, MegaAge-Asian, UTKFace or All-Age-Faces into an .npz."""
    not_available("preprocess", "issue 3")
