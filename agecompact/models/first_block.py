"""A network's first block in training on CPU: conv → BatchNorm (batch statistics) → activation → 2×2 pool,
evaluated in cache-sized batch chunks so that its full-resolution maps never exist at full batch.

Why: the first convolution's outputs (62×62 or 64×64 maps) are the largest tensors of these networks —
63 MB per 32-channel stream at batch 128, against 32 MB of last-level cache on the dev machine — and the
plain graph writes and rereads them in every elementwise stage (BatchNorm's centring, its scale, the
activation, the pool, and as many again in the backward pass), at memory speed. That was most of an
SSR-Net training step. Here each pass recomputes the map from its chunk of the (small, 3-channel) input,
which costs a few MFLOP per image and stays in cache:

* forward: pass 1 sums y and y² per channel (the batch mean and variance, Flax's fast variance), pass 2
  normalises, activates and pools; only the pooled map is written;
* backward: pass 1 sums dz and dz·x̂ (BatchNorm's backward needs both over the whole batch), pass 2 forms
  dy and accumulates the kernel gradient (an im2col matmul) and, if asked, the input gradient.

The convolution of a ≤ 4-channel input is written as 9·C broadcast multiply-adds, which XLA fuses into
one loop, about twice as fast here as its convolution for such inputs. The result equals the plain
composition to float tolerance (``tests/test_train_conv.py`` compares whole-model gradients).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from agecompact.models import layers

CHUNK_BYTES = 8 << 20  # per chunk: input + conv output + im2col columns (fits the 32 MB L3 with room)
MAX_INPUT_CHANNELS = 4
ACTIVATIONS = ("relu", "tanh", None)
POOLS = ("avg", "max", None)


def conv_bn_act_pool(conv: layers.Conv2D, bn: nnx.BatchNorm, x: jax.Array, *, act: str | None,
                     pool: str | None, input_grad: bool = True) -> jax.Array:
    """``pool(act(bn(conv(x))))`` with 2×2 pools; also updates ``bn``'s running statistics in training.

    The chunked path is taken in training (``bn`` on batch statistics) on CPU for float32 3×3
    convolutions of ≤ 4 input channels; everything else runs the plain layers. ``input_grad=False``
    says nothing upstream of ``x`` is trained (the image itself), so ``x``'s gradient is not computed.
    """
    if act not in ACTIVATIONS or pool not in POOLS:
        raise ValueError(f"act must be one of {ACTIVATIONS} and pool one of {POOLS}, got {act!r}, {pool!r}")
    if not _fusable(conv, bn, x):
        return _pool(_activate(bn(conv(x)), act), pool)
    kernel = conv.kernel[...]
    bias = conv.bias[...] if conv.bias is not None else jnp.zeros(kernel.shape[-1], kernel.dtype)
    x = layers._pad_same(x.astype(kernel.dtype), 3, 3, conv.padding)
    out, mean, var = _fused(x, kernel, bias, bn.scale[...], bn.bias[...], act, pool, input_grad, bn.epsilon)
    momentum = bn.momentum
    bn.mean[...] = jax.lax.stop_gradient(momentum * bn.mean[...] + (1 - momentum) * mean)
    bn.var[...] = jax.lax.stop_gradient(momentum * bn.var[...] + (1 - momentum) * var)
    return out


def _fusable(conv: layers.Conv2D, bn: nnx.BatchNorm, x: jax.Array) -> bool:
    return (not bn.use_running_average and layers._use_chunked_conv() and conv.kernel_size == 3
            and x.shape[-1] <= MAX_INPUT_CHANNELS and conv.kernel[...].dtype == jnp.float32
            and bn.scale is not None and bn.bias is not None and bn.axis_name is None
            and bn.axis in (-1, x.ndim - 1) and x.ndim == 4)


def _activate(z: jax.Array, act: str | None) -> jax.Array:
    if act == "relu":
        return jax.nn.relu(z)
    return jnp.tanh(z) if act == "tanh" else z


def _pool(a: jax.Array, pool: str | None) -> jax.Array:
    if pool == "avg":
        return layers.avg_pool(a, 2)
    return layers.max_pool(a, 2) if pool == "max" else a


def _pool_fwd(a: jax.Array, pool: str | None) -> jax.Array:
    """``_pool`` as elementwise ops on the four strided slices: XLA fuses them into the activation's loop,
    where a window reduction would be a separate, slower kernel. Forward only (``_unpool`` is the gradient)."""
    if pool is None:
        return a
    hp, wp = a.shape[1] // 2, a.shape[2] // 2
    q = [a[:, i:hp * 2:2, j:wp * 2:2, :] for i in (0, 1) for j in (0, 1)]
    if pool == "avg":
        return ((q[0] + q[1]) + (q[2] + q[3])) * 0.25
    return jnp.maximum(jnp.maximum(q[0], q[1]), jnp.maximum(q[2], q[3]))


def _conv_small(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """'VALID' 3×3 convolution of a few-channel input as broadcast multiply-adds (one fused loop)."""
    ho, wo = x.shape[1] - 2, x.shape[2] - 2
    y = bias
    for i in range(3):
        for j in range(3):
            for c in range(x.shape[-1]):
                y = y + x[:, i:i + ho, j:j + wo, c, None] * kernel[i, j, c]
    return y


def _chunks(x: jax.Array, cout: int, *others: jax.Array) -> tuple[jax.Array, ...]:
    n, h, w, cin = x.shape
    per_image = x.dtype.itemsize * (h * w * cin + (h - 2) * (w - 2) * (cout + 9 * cin))
    c = layers._chunk_size(n, per_image, CHUNK_BYTES)
    return tuple(a.reshape(n // c, c, *a.shape[1:]) for a in (x, *others))


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _fused(x, kernel, bias, gamma, beta, act, pool, input_grad, eps):
    """(pooled output, batch mean, batch variance) of a 'VALID' conv → BN → act → pool on padded ``x``."""
    return _fused_fwd(x, kernel, bias, gamma, beta, act, pool, input_grad, eps)[0]


def _fused_fwd(x, kernel, bias, gamma, beta, act, pool, input_grad, eps):
    n, h, w, _ = x.shape
    (xs,) = _chunks(x, kernel.shape[-1])

    def sums(xc):
        y = _conv_small(xc, kernel, bias)
        return y.sum((0, 1, 2)), (y * y).sum((0, 1, 2))

    s1, s2 = jax.lax.map(sums, xs)
    count = n * (h - 2) * (w - 2)
    mean = s1.sum(0) / count
    var = jnp.maximum(s2.sum(0) / count - mean * mean, 0.0)  # Flax's fast variance, clipped the same way
    inv = jax.lax.rsqrt(var + eps)

    def output(xc):
        y = _conv_small(xc, kernel, bias)
        return _pool_fwd(_activate((y - mean) * (inv * gamma) + beta, act), pool)

    out = jax.lax.map(output, xs)
    return (out.reshape(n, *out.shape[2:]), mean, var), (x, kernel, bias, gamma, beta, mean, inv)


def _unpool(dp: jax.Array, a: jax.Array, pool: str | None) -> jax.Array:
    """The pool's gradient on the full map ``a`` (floor semantics: cropped rows get zero). Max pool shares
    a window's gradient equally among tied maxima, as JAX's gradient of ``max`` does."""
    if pool is None:
        return dp
    n, hp, wp, c = dp.shape
    g = dp[:, :, None, :, None, :]
    if pool == "avg":
        g = jnp.broadcast_to(g * 0.25, (n, hp, 2, wp, 2, c))
    else:
        win = a[:, :hp * 2, :wp * 2, :].reshape(n, hp, 2, wp, 2, c)
        hit = (win == win.max((2, 4), keepdims=True)).astype(dp.dtype)
        g = hit * (g / hit.sum((2, 4), keepdims=True))
    g = g.reshape(n, hp * 2, wp * 2, c)
    return jnp.pad(g, ((0, 0), (0, a.shape[1] - hp * 2), (0, a.shape[2] - wp * 2), (0, 0)))


def _fused_bwd(act, pool, input_grad, eps, res, cts):
    x, kernel, bias, gamma, beta, mean, inv = res
    dout = cts[0]  # the batch statistics only feed the (stop-gradient) running averages
    n, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    ho, wo = h - 2, w - 2
    count = n * ho * wo
    xs, douts = _chunks(x, cout, dout)

    def xhat_dz(xc, dc):
        xhat = (_conv_small(xc, kernel, bias) - mean) * inv
        z = xhat * gamma + beta
        if act == "relu":
            dz = jnp.where(z > 0, _unpool(dc, jnp.maximum(z, 0.0), pool), 0.0)
        elif act == "tanh":
            a = jnp.tanh(z)
            dz = _unpool(dc, a, pool) * (1.0 - a * a)
        else:
            dz = _unpool(dc, z, pool)
        return xhat, dz

    def columns(xc):
        return jnp.concatenate([xc[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)], axis=-1)

    def sums(t):
        xhat, dz = xhat_dz(*t)
        return dz.sum((0, 1, 2)), (dz * xhat).sum((0, 1, 2))

    g_beta, g_gamma = (s.sum(0) for s in jax.lax.map(sums, (xs, douts)))
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)

    def grads(t):
        xc = t[0]
        xhat, dz = xhat_dz(*t)
        dy = (gamma * inv) * (dz - g_beta / count - xhat * (g_gamma / count))
        out = (jnp.einsum("nhwk,nhwd->kd", columns(xc), dy), dy.sum((0, 1, 2)))
        if input_grad:
            out += (layers._conv(dy, flipped, ((kh - 1, kh - 1), (kw - 1, kw - 1))),)
        return out

    r = jax.lax.map(grads, (xs, douts))
    dx = r[2].reshape(x.shape) if input_grad else jnp.zeros_like(x)
    return dx, r[0].sum(0).reshape(kernel.shape), r[1].sum(0), g_gamma, g_beta


_fused.defvjp(_fused_fwd, _fused_bwd)
