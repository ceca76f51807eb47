"""Keras-compatible building blocks: the parameter layout and numerics the released weights expect.

Kernels are stored as Keras stores them, (kh, kw, in, out) for convolutions and (in, out) for dense
layers, so importing a ``.h5`` is a plain copy. BatchNorm uses Keras's epsilon 1e-3 and momentum 0.99.
Inputs are NHWC.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator

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
        x = x.astype(kernel.dtype)  # compute in the weights' dtype (bfloat16 copies: mixed precision)
        if self.kernel_size == 1:
            # A 1x1 convolution is a matmul over channels; XLA's CPU backend runs that far faster.
            y = jnp.einsum("nhwc,cd->nhwd", x, kernel[0, 0])
            return y + self.bias[...] if self.bias is not None else y
        if _use_chunked_conv() and _worth_chunking(x, kernel):
            bias = self.bias[...] if self.bias is not None else jnp.zeros(kernel.shape[-1], kernel.dtype)
            return conv2d_chunked(x, kernel, bias, self.padding)
        y = _conv(x, kernel, self.padding)
        if self.bias is not None:
            y = y + self.bias[...]
        return y


# ---------------------------------------------------------------------------------------------------
# CPU convolution: batch chunks that stay in cache
# ---------------------------------------------------------------------------------------------------
# XLA's CPU convolutions slow down sharply once an operand outgrows the caches: a 3x3 32->32 conv on
# 31x31 maps runs at ~135 GFLOP/s for 8 images but ~15 GFLOP/s for 128 (measured on the 2-core dev
# machine), and its kernel-gradient convolution is slower still. ``conv2d_chunked`` computes exactly the
# same convolution (+ bias) but maps it over batch chunks of about ``FORWARD_CHUNK_BYTES`` of operands,
# with a hand-written backward: the input gradient is one plain convolution (fast at any batch), the
# kernel gradient is an im2col matmul per chunk. On accelerators the plain convolution is used.
#
# XLA itself stays fast for up to 16 output channels while the batch's operands are small, so those
# convolutions keep the plain path below ``WHOLE_BATCH_BYTES`` (at 32 MB, SSR-Net's 16-channel kernel
# gradient on 31x31 maps took ~10 % of its step; chunked, it is a few ms).
FORWARD_CHUNK_BYTES = 2 << 20
KERNEL_GRAD_CHUNK_BYTES = 4 << 20
WHOLE_BATCH_BYTES = 8 << 20
_CONV_IMPLS = ("auto", "chunked", "xla")
_conv_impl = os.environ.get("AGECOMPACT_CONV", "auto")


@contextlib.contextmanager
def conv_implementation(name: str) -> Iterator[None]:
    """Trace with ``"auto"`` (chunked on CPU, XLA's convolution elsewhere), ``"chunked"`` or ``"xla"``
    inside the block; the previous choice comes back after it, also on errors. The choice is read while
    a function is traced, so it is fixed into what is compiled inside (benchmarks and the gradient test
    compare the two). ``AGECOMPACT_CONV`` sets the default."""
    global _conv_impl
    if name not in _CONV_IMPLS:
        raise ValueError(f"conv implementation must be one of {_CONV_IMPLS}, got {name!r}")
    previous, _conv_impl = _conv_impl, name
    try:
        yield
    finally:
        _conv_impl = previous


def _use_chunked_conv() -> bool:
    if _conv_impl == "auto":
        from agecompact.envinfo import default_platform

        return default_platform() == "cpu"
    return _conv_impl == "chunked"


def _worth_chunking(x: jax.Array, kernel: jax.Array) -> bool:
    n, h, w, cin = x.shape
    cout = kernel.shape[-1]
    return cout >= 32 or x.dtype.itemsize * n * h * w * (cin + cout) > WHOLE_BATCH_BYTES


def _conv(x: jax.Array, kernel: jax.Array, padding) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, window_strides=(1, 1), padding=padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _chunk_size(batch: int, bytes_per_image: int, budget: int) -> int:
    """A divisor of ``batch`` near ``budget / bytes_per_image`` (the whole batch if that fits, or if no
    divisor is within a factor of two, e.g. a prime batch)."""
    want = max(1, budget // max(bytes_per_image, 1))
    if want >= batch:
        return batch
    for c in range(want, max(want // 2, 1) - 1, -1):
        if batch % c == 0:
            return c
    return batch


def _map_chunks(fn: Callable, chunk: int, *arrays: jax.Array):
    """``fn`` over leading-axis chunks of ``arrays``; outputs are stacked (chunks, ...)."""
    b = arrays[0].shape[0]
    split = tuple(a.reshape(b // chunk, chunk, *a.shape[1:]) for a in arrays)
    return jax.lax.map(lambda t: fn(*t), split)


def _pad_same(x: jax.Array, kh: int, kw: int, padding: str) -> jax.Array:
    if padding == "SAME":  # odd kernels only (3x3 here): symmetric padding
        return jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    return x


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def conv2d_chunked(x: jax.Array, kernel: jax.Array, bias: jax.Array, padding: str) -> jax.Array:
    """``conv(x, kernel, padding) + bias`` (stride 1, NHWC/HWIO), evaluated in cache-sized batch chunks."""
    return _conv_chunked_fwd(x, kernel, bias, padding)[0]


def _conv_chunked_fwd(x, kernel, bias, padding):
    kh, kw, ci, co = kernel.shape
    xp = _pad_same(x, kh, kw, padding)
    n, h, w, _ = xp.shape
    ho, wo = h - kh + 1, w - kw + 1
    chunk = _chunk_size(n, xp.dtype.itemsize * (h * w * ci + ho * wo * co), FORWARD_CHUNK_BYTES)

    def one(xc):
        return _conv(xc, kernel, "VALID") + bias

    if chunk == n:
        y = one(xp)
    else:
        y = _map_chunks(one, chunk, xp).reshape(n, ho, wo, co)
    return y, (x, kernel)


def _conv_chunked_bwd(padding, res, dy):
    x, kernel = res
    kh, kw, ci, co = kernel.shape
    xp = _pad_same(x, kh, kw, padding)
    n, ho, wo, _ = dy.shape
    # dx: the "full" correlation of dy with the flipped, in/out-swapped kernel (one plain convolution)
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv(dy, flipped, "SAME" if padding == "SAME" else ((kh - 1, kh - 1), (kw - 1, kw - 1)))

    # dkernel: patches (im2col) of x times dy, summed over the chunks
    def kernel_grad(xc, dyc):
        cols = jnp.concatenate([xc[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)], axis=-1)
        return jnp.einsum("nhwk,nhwd->kd", cols, dyc)

    chunk = _chunk_size(n, dy.dtype.itemsize * ho * wo * (kh * kw * ci + co), KERNEL_GRAD_CHUNK_BYTES)
    if chunk == n:
        dk = kernel_grad(xp, dy)
    else:
        dk = _map_chunks(kernel_grad, chunk, xp, dy).sum(axis=0)
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype), dy.sum(axis=(0, 1, 2)).astype(kernel.dtype)


conv2d_chunked.defvjp(_conv_chunked_fwd, _conv_chunked_bwd)


class Dense(nnx.Module):
    """Fully connected layer with an (in, out) kernel."""

    def __init__(self, in_features: int, out_features: int, *, kernel_init: Callable = glorot_uniform,
                 rngs: nnx.Rngs):
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features), jnp.float32))
        self.bias = nnx.Param(zeros(rngs.params(), (out_features,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        return x.astype(kernel.dtype) @ kernel + self.bias[...]


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
