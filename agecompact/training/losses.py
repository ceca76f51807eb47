"""The training objectives of the three families, as the reference code trains them.

Every loss takes the model's output dict and the batch targets and returns ``(loss, aux)`` where ``aux``
holds the per-term values for logging. Reductions run over the whole (global) batch, so a sharded batch
gives the same loss as an unsharded one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from agecompact.models.c3ae import BIN_WIDTH, NUM_BINS, two_point_encode

KERAS_EPSILON = 1e-7  # Keras's K.epsilon(): the clip applied inside its KL divergence

LossFn = Callable[[dict[str, jax.Array], dict[str, jax.Array]], tuple[jax.Array, dict[str, jax.Array]]]


def mae(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(a - b))


def ssrnet_loss(out, targets):
    """SSR-Net: L1 on the age (or on the 0/1 gender for the V = 1 model)."""
    loss = mae(out["pred"], targets["y"])
    return loss, {"l1": loss}


def gaussian_encode(age: jax.Array, sigma: float) -> jax.Array:
    """A Gaussian label distribution over C3AE's bin anchors (0, 10, ..., 110): mass ∝ exp(−(c − age)² / 2σ²),
    normalised over the bins (DLDL's soft target, on C3AE's coarse bins)."""
    centres = BIN_WIDTH * jnp.arange(NUM_BINS, dtype=jnp.float32)
    age = jnp.asarray(age, jnp.float32)[..., None]
    return jax.nn.softmax(-jnp.square(centres - age) / (2.0 * sigma * sigma), axis=-1)


def kl_divergence(target: jax.Array, dist: jax.Array) -> jax.Array:
    """Batch mean of KL(target || dist), both clipped to [eps, 1] as Keras's KL does (no log 0)."""
    p = jnp.clip(target, KERAS_EPSILON, 1.0)
    q = jnp.clip(dist, KERAS_EPSILON, 1.0)
    return jnp.mean(jnp.sum(p * (jnp.log(p) - jnp.log(q)), axis=-1))


def kl_two_point(dist: jax.Array, age: jax.Array) -> jax.Array:
    """Batch mean of KL(two-point(age) || dist)."""
    return kl_divergence(two_point_encode(age), dist)


def make_c3ae_loss(kl_weight: float = 10.0, label_distribution: str = "two_point", label_sigma: float = 5.0,
                   **_options) -> LossFn:
    """C3AE: alpha * KL(target || W1 softmax) + L1(W2 age), alpha = 10 in both re-implementations. The
    target is the published two-point code, or with ``label_distribution="gaussian"`` a Gaussian of
    ``label_sigma`` years over the bins (label-distribution learning: KL plus the expectation's L1)."""
    if label_distribution == "gaussian":
        encode = lambda age: gaussian_encode(age, label_sigma)  # noqa: E731
    else:
        encode = two_point_encode

    def loss_fn(out, targets):
        l1 = mae(out["pred"], targets["y"])
        kl = kl_divergence(encode(targets["y"]), out["distribution"])
        return kl_weight * kl + l1, {"l1": l1, "kl": kl}

    return loss_fn


def aec_loss(out, targets):
    """AEC: 3·MAE(age) + 8.5·MAE(pre_4, 4⌊age/4⌋) + 12·MAE(pre_1 = age) + 18·(1 − R²) over the batch.

    The reference subtracts dataset constants from two terms; they shift the value, not the gradients,
    and are left out. 1 − R² = Σ(y − ŷ)² / Σ(y − ȳ)², guarded against a batch of identical ages.
    """
    y = targets["y"]
    pred = out["pred"]
    l1 = mae(pred, y)
    coarse = mae(out["pre_4"], 4.0 * jnp.floor(y / 4.0))
    denom = jnp.sum(jnp.square(y - jnp.mean(y)))
    one_minus_r2 = jnp.sum(jnp.square(y - pred)) / jnp.maximum(denom, KERAS_EPSILON)
    loss = 3.0 * l1 + 8.5 * coarse + 12.0 * l1 + 18.0 * one_minus_r2
    return loss, {"l1": l1, "coarse_l1": coarse, "one_minus_r2": one_minus_r2}


def make_ssrnet_loss(**_options) -> LossFn:
    return ssrnet_loss


def make_aec_loss(**_options) -> LossFn:
    return aec_loss


def loss_for(model: str, *, kl_weight: float = 10.0, label_distribution: str = "two_point",
             label_sigma: float = 5.0) -> LossFn:
    """The objective of architecture ``model``: its family's loss factory (models/families.py)."""
    from agecompact.models.families import hook
    from agecompact.models.registry import family_of

    return hook(family_of(model).loss)(kl_weight=kl_weight, label_distribution=label_distribution,
                                       label_sigma=label_sigma)
