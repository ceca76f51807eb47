"""A real training step, compiled and warmed up, for timing (``bench speed`` and ``benchmarks/``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def benchmark_step(arch: str, batch: int, dtype: str = "float32", *, seed: int = 0) -> Callable[[], None]:
    """One call = one real training step of ``arch`` (forward, loss, backward, Adam, BatchNorm statistics)
    on a fixed random batch already on the device, awaited. Compiled and warmed up before it is returned,
    so timing it never includes compilation. Used by ``agecompact bench speed`` and the benchmarks."""
    import jax

    from agecompact.models.registry import create_model
    from agecompact.training.losses import loss_for
    from agecompact.training.steps import (
        bn_momentum_zero,
        init_state,
        make_optimizer,
        make_parallel,
        make_train_step,
        seed_key_data,
        split_model,
    )

    par = make_parallel()
    model = create_model(arch, seed=seed)
    model.train()
    with bn_momentum_zero(model) as momentum:
        graphdef, params, stats = split_model(model)
    tx = make_optimizer(1e-8)
    box = {"state": par.replicate(init_state(params, stats, tx)), "step": 0}
    step = make_train_step(graphdef, loss_for(arch), tx, par, bn_momentum=momentum, compute_dtype=dtype)
    rng = np.random.default_rng(seed)
    images = par.put_batch(rng.integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8))
    targets = par.put_batch({"y": rng.uniform(1, 90, batch).astype(np.float32)})
    key = par.replicate(seed_key_data(seed))

    def run() -> None:
        box["state"], metrics = step(box["state"], images, targets, np.float32(1e-3), np.int32(box["step"]), key)
        box["step"] += 1
        jax.block_until_ready(metrics["loss"])

    run()  # compile
    return run

