"""What a run starts from: the network (seeded, or warm-started with ``--init-from``) and its targets."""

from __future__ import annotations

import numpy as np

from agecompact.errors import UsageError
from agecompact.training.config import TrainConfig


def training_targets(cfg: TrainConfig, ds, task: str) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Training targets and the rows usable for them (gender models need a known gender)."""
    y, keep = ds.labels(task)
    return {"y": y}, keep


def initial_model(cfg: TrainConfig):
    """A fresh network from ``cfg.seed``, then ``--init-from`` weights or C3AE's anchor read-out."""
    from flax import nnx

    from agecompact.models.families import hook
    from agecompact.models.registry import create_model, family_of

    try:
        model = create_model(cfg.model, seed=cfg.seed, **cfg.arch_kwargs)
    except TypeError as e:
        raise UsageError(f"bad arch_kwargs for {cfg.model}: {e}") from None
    if cfg.init_from:
        import jax

        from agecompact.api import load_model

        src = load_model(cfg.init_from)
        filt = nnx.Any(nnx.Param, nnx.BatchStat)
        want, have = nnx.state(model, filt), nnx.state(src.module, filt)
        same = jax.tree.structure(want) == jax.tree.structure(have) and all(
            a.shape == b.shape for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(have), strict=True))
        if not same:
            raise UsageError(f"--init-from {cfg.init_from}: its weights ({src.arch}) do not fit {cfg.model}")
        nnx.update(model, have)
    else:
        init_hook = family_of(cfg.model).init_hook
        if init_hook is not None:
            hook(init_hook)(model, cfg)
    return model


def c3ae_anchor_init(model, cfg) -> None:
    """C3AE's W2 starts as the bin anchors (age = Σ 10·i·p_i), unless ``c3ae_anchor_init`` is off."""
    if not cfg.c3ae_anchor_init:
        return
    from agecompact.models.c3ae import BIN_WIDTH, NUM_BINS

    model.pred.kernel[...] = (BIN_WIDTH * np.arange(NUM_BINS, dtype=np.float32))[:, None]
    model.pred.bias[...] = np.zeros((1,), np.float32)
