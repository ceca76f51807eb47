"""The JAX engine: the model's own jitted forward pass (always available; the fast path on GPU)."""

from __future__ import annotations

from typing import Any

import numpy as np


class JaxEngine:
    backend = "jax"

    def __init__(self, model):
        from agecompact.envinfo import default_platform

        self.model = model
        self.name = f"jax-{default_platform()}"

    def __repr__(self) -> str:
        return f"JaxEngine(name={self.name!r}, model={self.model.name!r})"

    def outputs(self, images: Any, *, batch_size: int = 256) -> dict[str, np.ndarray]:
        # AgeModel.outputs copies results to host numpy arrays, so timings of it include the device work.
        return self.model.outputs(images, batch_size=batch_size)

    def predict(self, images: Any, *, batch_size: int = 256) -> np.ndarray:
        return self.model.predict(images, batch_size=batch_size)
