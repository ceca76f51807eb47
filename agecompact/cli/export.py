"""``agecompact export``: write a model as an ONNX graph for fast CPU inference."""

from __future__ import annotations

from agecompact.cli._app import app, handle_errors, not_available


@app.command()
@handle_errors
def export() -> None:
    """Export a model to ONNX (for onnxruntime on CPU)."""
    not_available("export", "issue 6")
