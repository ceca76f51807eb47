"""Forward-pass and train-step speed of the JAX models, per batch size and dtype."""

from __future__ import annotations

from typing import Any


def _cast_state(state, dtype):
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, state)


def forward_speed(arch: str, batch: int, dtype: str, *, runs: int, max_seconds: float) -> dict[str, Any]:
    """Jitted forward pass on the default JAX device; inputs already on device, output awaited."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from agecompact.bench.timing import time_call
    from agecompact.models.registry import create_model

    jdtype = jnp.dtype(dtype)
    graphdef, state = nnx.split(create_model(arch))
    state = _cast_state(state, jdtype)
    images = np.random.default_rng(0).integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8)
    x = jax.device_put(jnp.asarray(images, jdtype))
    fwd = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)["pred"])
    stats = time_call(lambda: jax.block_until_ready(fwd(state, x)), runs=runs, warmup=3, max_seconds=max_seconds)
    return {"what": "forward", "arch": arch, "batch": batch, "dtype": dtype, **stats,
            "images_per_s": batch / (stats["median_ms"] / 1e3), "ms_per_image": stats["median_ms"] / batch}


def train_step_speed(arch: str, batch: int, dtype: str, *, runs: int, max_seconds: float) -> dict[str, Any]:
    """One optimiser step of the training loop's own jitted step (loss, grads, Adam, BN statistics)."""
    from agecompact.bench.timing import time_call
    from agecompact.bench.train_step import benchmark_step

    step = benchmark_step(arch, batch, dtype)
    stats = time_call(step, runs=runs, warmup=3, max_seconds=max_seconds)
    return {"what": "train_step", "arch": arch, "batch": batch, "dtype": dtype, **stats,
            "images_per_s": batch / (stats["median_ms"] / 1e3), "ms_per_image": stats["median_ms"] / batch}
