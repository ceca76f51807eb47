"""``agecompact eval``: MAE, CA(3), CA(5) and friends of a model on a dataset split."""

from __future__ import annotations

from agecompact.cli._app import app, handle_errors, not_available


@app.command("eval")
@handle_errors
def eval_() -> None:
    """Evaluate a model (file, run, Keras .h5 or pretrained name) on a preprocessed dataset."""
    not_available("eval", "issue 4")
