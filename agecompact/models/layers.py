"""Keras-compatible building blocks: the parameter layout and numerics the released weights expect.

Kernels are stored as Keras stores them, (kh, kw, in, out) for convolutions and (in, out) for dense
layers, so importing a ``.h5`` is a plain copy. BatchNorm uses Keras's epsilon 1e-3 and momentum 0.99.
Inputs are NHWC.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

KERAS_BN_EPSILON = 1e-3
KERAS_BN_MOMENTUM = 0.99

glorot_uniform = nnx.initializers.xavier_uniform()
he_uniform = nnx.initializers.he_uniform()
zeros = nnx.initializers.zeros_init()


class Conv2D(nnx.Module):
    """Stride-1 2-D convolution with a (kh, kw, in, out) kernel and 'VALID' or 'SAME' padding."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int,
        *,
        padding: str = "VALID",
        use_bias: bool = True,
        kernel_init: Callable = glorot_uniform,
        rngs: nnx.Rngs,
    ):
        shape = (kernel_size, kernel_size, in_features, out_features)
        self.kernel = nnx.Param(kernel_init(rngs.params(), shape, jnp.float32))
        self.bias = nnx.Param(zeros(rngs.params(), (out_features,), jnp.float32)) if use_bias else None
        self.padding = padding
        self.kernel_size = kernel_size

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        if self.kernel_size == 1:
            # A 1x1 convolution is a matmul over channels; XLA's CPU backend runs that far faster.
            y = jnp.einsum("nhwc,cd->nhwd", x, kernel[0, 0])
        else:
            y = jax.lax.conv_general_dilated(
                x, kernel, window_strides=(1, 1), padding=self.padding,
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
        if self.bias is not None:
            y = y + self.bias[...]
        return y


class Dense(nnx.Module):
    """Fully connected layer with an (in, out) kernel."""

    def __init__(self, in_features: int, out_features: int, *, kernel_init: Callable = glorot_uniform,
                 rngs: nnx.Rngs):
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features), jnp.float32))
        self.bias = nnx.Param(zeros(rngs.params(), (out_features,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.kernel[...] + self.bias[...]


def batch_norm(num_features: int, *, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(num_features, momentum=KERAS_BN_MOMENTUM, epsilon=KERAS_BN_EPSILON, rngs=rngs)


def avg_pool(x: jax.Array, size: int) -> jax.Array:
    """Non-overlapping average pool with floor semantics ('VALID', stride = size)."""
    n, h, w, c = x.shape
    ho, wo = h // size, w // size
    x = x[:, : ho * size, : wo * size, :].reshape(n, ho, size, wo, size, c)
    return x.mean(axis=(2, 4))


def max_pool(x: jax.Array, size: int) -> jax.Array:
    """Non-overlapping max pool with floor semantics ('VALID', stride = size)."""
    n, h, w, c = x.shape
    ho, wo = h // size, w // size
    x = x[:, : ho * size, : wo * size, :].reshape(n, ho, size, wo, size, c)
    return x.max(axis=(2, 4))


def flatten(x: jax.Array) -> jax.Array:
    """Row-major NHWC flatten, the same order as Keras's Flatten on channels-last tensors."""
    return x.reshape(x.shape[0], -1)


def to_float(x: jax.Array) -> jax.Array:
    """Raw 0..255 pixels as floats (no normalisation, as in the released models).

    Integer images become float32; floating images keep their dtype, so bfloat16 inputs with
    bfloat16 parameters run the whole network in bfloat16.
    """
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
