"""Learning-rate schedules, on the host: the train step takes the rate as an argument, so a schedule
change never recompiles, and a resumed run recomputes the same rate from (epoch, step)."""

from __future__ import annotations

import math
from typing import Any

from agecompact.training.config import TrainConfig, step_decay_epochs


def lr_at(cfg: TrainConfig, epoch: int, step_in_epoch: int, steps: int, plateau_scale: float) -> float:
    """The rate at step ``step_in_epoch`` of the 0-based epoch index ``epoch``, warm-up included."""
    warm = (cfg.warmup_epochs or 0.0) * steps
    t = epoch * steps + step_in_epoch
    scale = min(1.0, (t + 1) / warm) if warm > 0 else 1.0
    return scale * _scheduled_lr(cfg, epoch, step_in_epoch, steps, plateau_scale)


def _scheduled_lr(cfg: TrainConfig, epoch: int, step_in_epoch: int, steps: int, plateau_scale: float) -> float:
    if cfg.schedule == "step":
        drops = sum(1 for e in step_decay_epochs(cfg) if epoch >= e)
        return cfg.lr * cfg.decay_factor ** drops
    if cfg.schedule == "cosine":
        t = (epoch * steps + step_in_epoch) / max(cfg.epochs * steps, 1)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if cfg.schedule == "plateau":
        return cfg.lr * plateau_scale
    return cfg.lr


def update_plateau(cfg: TrainConfig, state: dict[str, Any], val_mae: float) -> dict[str, Any]:
    """Keras ReduceLROnPlateau on validation MAE: x decay_factor after ``plateau_patience`` flat epochs."""
    state = dict(state)
    if val_mae < state["best"] - 1e-4:
        state["best"], state["wait"] = val_mae, 0
        return state
    state["wait"] += 1
    if state["wait"] >= cfg.plateau_patience:
        state["scale"] = max(state["scale"] * cfg.decay_factor, cfg.min_lr / cfg.lr)
        state["wait"] = 0
    return state
