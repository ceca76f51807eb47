"""Jitted train and eval steps: plain ``jax.jit`` over split NNX state, donated buffers, data parallel.

The model is split once into a static graph definition and two state trees (``nnx.Param`` and
``nnx.BatchStat``); a step merges them back inside the trace, so there is no per-step Python graph
traversal (the Flax performance guide's functional loop). The train state is donated, images arrive as
uint8 and are cast on device, the learning rate is an argument (host-side schedules, no recompiles), and
the dropout key is ``fold_in(key(seed), global_step)``.

Data parallelism: one ``Mesh`` over every device (``jax.devices()``, which under
``jax.distributed.initialize()`` spans all hosts) with a single axis ``"data"``. Batches are sharded along
it, the state is replicated, and XLA's partitioner inserts the gradient and BatchNorm-statistics
all-reduces, so a sharded step computes what the unsharded step computes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from agecompact.errors import UsageError
from agecompact.training.losses import LossFn

State = dict[str, Any]  # {"params": nnx.State, "batch_stats": nnx.State, "opt": optax state}


@dataclass
class Parallel:
    """Where batches and state live."""

    mesh: Mesh
    data: NamedSharding  # batch axis split over "data"
    replicated: NamedSharding

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def put_batch(self, tree: Any) -> Any:
        """Host arrays -> device arrays sharded along the batch axis (process-local rows when multi-host)."""
        if jax.process_count() > 1:
            return jax.tree.map(lambda a: jax.make_array_from_process_local_data(self.data, a), tree)
        return jax.device_put(tree, self.data)

    def replicate(self, tree: Any) -> Any:
        return jax.device_put(tree, self.replicated)

    def scalar(self, value: np.generic) -> Any:
        """A per-step scalar argument: passed as is on one process, replicated explicitly on several."""
        return value if jax.process_count() == 1 else self.replicate(value)

    def local_rows(self, n: int) -> slice:
        """This process's rows of a global batch of ``n`` (all of them on a single process)."""
        k, p = jax.process_index(), jax.process_count()
        return slice(k * n // p, (k + 1) * n // p)

    def to_host(self, x: jax.Array) -> np.ndarray:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    def check_batch(self, batch_size: int, what: str = "batch size") -> None:
        if batch_size % self.num_devices:
            raise UsageError(f"{what} {batch_size} must be a multiple of the {self.num_devices} devices")


def make_parallel(devices: list | None = None) -> Parallel:
    devices = list(devices) if devices is not None else jax.devices()
    mesh = Mesh(np.asarray(devices), ("data",))
    return Parallel(mesh, NamedSharding(mesh, P("data")), NamedSharding(mesh, P()))


def split_model(model: nnx.Module) -> tuple[Any, nnx.State, nnx.State]:
    """(graphdef, params, batch_stats); the models keep no other state."""
    graphdef, params, stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    if jax.tree.leaves(rest):
        raise ValueError("model holds state other than Param and BatchStat")
    return graphdef, params, stats


def make_optimizer(adam_eps: float, clip_norm: float | None = None, weight_decay: float = 0.0
                   ) -> optax.GradientTransformation:
    """Adam's direction without the learning rate (applied by the step): Keras Adam up to eps placement.

    ``weight_decay`` > 0 makes it AdamW: decoupled decay of the kernels (arrays of rank >= 2; biases and
    BatchNorm scales are left alone), scaled by the learning rate together with the Adam step.
    """
    parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    parts.append(optax.scale_by_adam(b1=0.9, b2=0.999, eps=adam_eps))
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay, mask=lambda p: jax.tree.map(lambda a: a.ndim >= 2, p)))
    return optax.chain(*parts)


def init_state(params: nnx.State, stats: nnx.State, tx: optax.GradientTransformation, *, ema: bool = False
               ) -> State:
    state = {"params": params, "batch_stats": stats, "opt": tx.init(params)}
    if ema:
        state["ema_params"] = jax.tree.map(jnp.copy, params)
    return state


def eval_params(state: State) -> Any:
    """The weights to validate and export: the EMA when the run keeps one."""
    return state.get("ema_params", state["params"])


@contextlib.contextmanager
def bn_momentum_zero(model: nnx.Module) -> Iterator[float]:
    """Within the block every BatchNorm has momentum 0 (its "running" stats = the batch's); yields the
    models' momentum so the step can apply its own, step-dependent average (see ``make_train_step``)."""
    bns = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
    saved = [bn.momentum for bn in bns]
    try:
        for bn in bns:
            bn.momentum = 0.0
        yield max(saved, default=0.99)
    finally:
        for bn, m in zip(bns, saved, strict=True):
            bn.momentum = m


def make_train_step(graphdef, loss_fn: LossFn, tx: optax.GradientTransformation, par: Parallel, *,
                    bn_momentum: float | None = None, compute_dtype: str = "float32", ema_decay: float = 0.0,
                    ) -> Callable[..., tuple[State, dict[str, jax.Array]]]:
    """``step(state, images_u8, targets, lr, global_step, key_data) -> (state, metrics)``.

    A non-finite loss leaves the state untouched (``metrics["finite"]`` is False) so the caller can stop
    with the last good weights still in memory. With ``bn_momentum`` set, ``graphdef`` must come from
    ``bn_momentum_zero``: the running averages are then updated here with momentum
    ``min(bn_momentum, (1 + t) / (10 + t))``. ``compute_dtype="bfloat16"`` is mixed precision: convolutions
    and dense layers run on bfloat16 copies of the weights (they compute in their kernel's dtype), while
    BatchNorm, the weights, Adam moments, loss and gradients stay float32. With ``ema_decay`` the state
    also carries ``ema_params``, an exponential average with decay ``min(ema_decay, (1 + t) / (10 + t))``.
    """
    dtype = jnp.dtype(compute_dtype)
    mixed = dtype != jnp.float32

    def cast(tree, to):
        return jax.tree.map(lambda a: a.astype(to) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    def step(state: State, images, targets, lr, global_step, key_data):
        key = jax.random.fold_in(jax.random.wrap_key_data(key_data), global_step)

        model = nnx.merge(graphdef, state["params"], state["batch_stats"])

        def compute(model):
            if mixed:
                run = nnx.merge(graphdef, cast(nnx.state(model, nnx.Param), dtype), nnx.state(model, nnx.BatchStat))
                out = cast(run(images, rngs=key), jnp.float32)
                batch_stats = nnx.state(run, nnx.BatchStat)
            else:
                out = model(images, rngs=key)
                batch_stats = nnx.state(model, nnx.BatchStat)
            loss, aux = loss_fn(out, targets)
            return loss, (aux, out["pred"], batch_stats)

        (loss, (aux, pred, stats)), grads = nnx.value_and_grad(compute, has_aux=True)(model)
        if bn_momentum is not None:
            t = global_step.astype(jnp.float32)
            m = jnp.minimum(bn_momentum, (1.0 + t) / (10.0 + t))
            stats = jax.tree.map(lambda old, batch: m * old + (1.0 - m) * batch, state["batch_stats"], stats)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], jax.tree.map(lambda u: -lr * u, updates))
        # Reject the update if the loss, a gradient or a new weight is not finite (e.g. an absurd lr).
        ok = jnp.isfinite(loss)
        for leaf in jax.tree.leaves((grads, params, stats)):
            ok &= jnp.all(jnp.isfinite(leaf))
        new = {"params": params, "batch_stats": stats, "opt": opt}
        if ema_decay:
            t = global_step.astype(jnp.float32)
            d = jnp.minimum(ema_decay, (1.0 + t) / (10.0 + t))
            new["ema_params"] = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state["ema_params"], params)
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
        metrics = {"loss": loss, "abs_err_sum": jnp.sum(jnp.abs(pred - targets["y"])), "finite": ok, **aux}
        return new, metrics

    return jax.jit(step, in_shardings=(par.replicated, par.data, par.data, par.replicated, par.replicated,
                                       par.replicated),
                   out_shardings=(par.replicated, par.replicated), donate_argnums=0)


def make_eval_step(graphdef_eval, par: Parallel) -> Callable[..., jax.Array]:
    """``predict(params, batch_stats, images_u8) -> pred`` with BatchNorm on its running statistics."""

    def predict(params, stats, images):
        return nnx.merge(graphdef_eval, params, stats)(images)["pred"]

    return jax.jit(predict, in_shardings=(par.replicated, par.replicated, par.data), out_shardings=par.data)


def seed_key_data(seed: int) -> np.ndarray:
    return np.asarray(jax.random.key_data(jax.random.key(seed)))
