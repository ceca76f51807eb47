"""What a run starts from: the network (seeded, or warm-started with ``--init-from``) and its targets."""

from __future__ import annotations

import numpy as np

from agecompact.errors import InputError, UsageError
from agecompact.training.config import TrainConfig


def training_targets(cfg: TrainConfig, ds, task: str) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Training targets and the rows usable for them (gender models need a known gender)."""
    if task == "gender":
        if ds.gender is None:
            raise InputError(f"{ds.path}: a gender model needs a 'gender' column")
        keep = (ds.gender == 0) | (ds.gender == 1)
        return {"y": ds.gender.astype(np.float32)}, keep
    return {"y": ds.age.astype(np.float32)}, None


def initial_model(cfg: TrainConfig):
    """A fresh network from ``cfg.seed``, then ``--init-from`` weights or C3AE's anchor read-out."""
    from flax import nnx

    from agecompact.models.registry import create_model, get_spec

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
    elif cfg.c3ae_anchor_init and get_spec(cfg.model).family == "c3ae":
        from agecompact.models.c3ae import BIN_WIDTH, NUM_BINS

        model.pred.kernel[...] = (BIN_WIDTH * np.arange(NUM_BINS, dtype=np.float32))[:, None]
        model.pred.bias[...] = np.zeros((1,), np.float32)
    return model
