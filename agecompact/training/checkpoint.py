"""Orbax checkpoints of a run: the latest epoch (for resume) plus the best by validation MAE.

The retention pitfall (orbax issue #526, spec stack.md §4): ``max_to_keep`` together with ``best_fn``
evicts the *newest* steps, which breaks resume. Retention is therefore a preservation policy (keep the
latest 1 OR the best ``keep_best``), and ``best_fn``/``best_mode`` are set as well so ``best_step()``
answers by validation MAE instead of falling back to the latest step.

A checkpoint holds the train state (params, BatchNorm statistics, optimizer state) and a small JSON item
with the host-side loop state (epoch, global step, schedule state, best so far).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

METRIC = "val_mae"


def _metric(metrics: dict[str, Any]) -> float:
    return float(metrics[METRIC])


class RunCheckpoints:
    """Save each epoch, restore the latest (resume) or any given step; steps are epoch numbers."""

    def __init__(self, directory: str | Path, *, keep_best: int = 1, async_save: bool = True):
        self.directory = Path(directory).absolute()  # orbax refuses relative paths
        policy = policies.AnyPreservationPolicy([
            policies.LatestN(n=1),
            policies.BestN(get_metric_fn=_metric, reverse=True, n=keep_best),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy, best_fn=_metric, best_mode="min",
            enable_async_checkpointing=async_save, create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, loop: dict[str, Any], metrics: dict[str, float]) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         loop=ocp.args.JsonSave(loop)),
                          metrics={k: float(v) for k, v in metrics.items()})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def restore(self, step: int, like: Any) -> tuple[Any, dict[str, Any]]:
        """The state at ``step`` (shaped, typed and sharded like ``like``) and its loop dictionary."""
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        out = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                  loop=ocp.args.JsonRestore()))
        return out["state"], dict(out["loop"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    def __enter__(self) -> RunCheckpoints:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
