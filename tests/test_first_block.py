"""The chunked first block (conv → BatchNorm → activation → pool in CPU training) equals the plain layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from agecompact.models import first_block, layers


def _block(cin: int, cout: int, padding: str, seed: int = 0):
    rngs = nnx.Rngs(seed)
    conv = layers.Conv2D(cin, cout, 3, padding=padding, rngs=rngs)
    bn = layers.batch_norm(cout, rngs=rngs)
    rng = np.random.default_rng(seed)
    conv.bias[...] = jnp.asarray(rng.normal(size=cout).astype(np.float32))
    bn.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, cout).astype(np.float32))
    bn.bias[...] = jnp.asarray(rng.normal(size=cout).astype(np.float32))
    bn.mean[...] = jnp.asarray(rng.normal(size=cout).astype(np.float32))
    bn.var[...] = jnp.asarray(rng.uniform(1, 2, cout).astype(np.float32))
    return conv, bn


def _run(impl: str, x, ct, act, pool, input_grad, padding, cout):
    """Output, gradients (x, kernel, conv bias, scale, offset) and the updated running statistics of a
    fresh block (the same seed every time)."""
    conv, bn = _block(x.shape[-1], cout, padding)
    conv.kernel[...] = conv.kernel[...] * 0.02  # keep tanh out of saturation for most values
    bn.train()
    graphdef, state = nnx.split((conv, bn))
    with layers.conv_implementation(impl):
        def loss(x, state):
            c, b = nnx.merge(graphdef, state)
            out = first_block.conv_bn_act_pool(c, b, x, act=act, pool=pool, input_grad=input_grad)
            return jnp.sum(out * ct), (out, b.mean[...], b.var[...])

        (_, (out, mean, var)), (gx, gs) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, state)
    grads = (gx, gs[0]["kernel"][...], gs[0]["bias"][...], gs[1]["scale"][...], gs[1]["bias"][...])
    return out, grads, mean, var


@pytest.mark.parametrize("act, pool, padding, input_grad, hw", [
    ("relu", "avg", "VALID", False, 17),  # SSR-Net's x stream and C3AE (odd size: the pool floors)
    ("tanh", "max", "VALID", False, 16),  # SSR-Net's s stream
    ("relu", None, "SAME", True, 16),  # AEC after its trainable sharpen convolution
    ("tanh", "avg", "SAME", True, 15),
])
def test_chunked_first_block_matches_the_plain_layers(monkeypatch, act, pool, padding, input_grad, hw):
    rng = np.random.default_rng(1)
    n, cin, cout = 12, 3, 8
    x = jnp.asarray(rng.uniform(0, 255, (n, hw, hw, cin)).astype(np.float32))
    ho = hw - 2 if padding == "VALID" else hw
    out_hw = ho // 2 if pool else ho
    ct = jnp.asarray(rng.normal(size=(n, out_hw, out_hw, cout)).astype(np.float32))
    ref = _run("xla", x, ct, act, pool, input_grad, padding, cout)  # "xla": the plain composition
    monkeypatch.setattr(first_block, "CHUNK_BYTES", 4 * (hw + 2) ** 2 * (cin + 10 * cout) * 3)  # 3 a chunk
    calls = []
    fused = first_block._fused
    monkeypatch.setattr(first_block, "_fused", lambda *a: calls.append(1) or fused(*a))
    got = _run("chunked", x, ct, act, pool, input_grad, padding, cout)
    assert calls, "the chunked path was not taken"
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=2e-5)
    names = ["x", "kernel", "conv bias", "scale", "offset"]
    for name, g, g_ref in zip(names, got[1], ref[1], strict=True):
        if name == "conv bias" or (name == "x" and not input_grad):
            continue  # a bias before BatchNorm has zero gradient (rounding noise); no input gradient asked
        scale = float(jnp.max(jnp.abs(g_ref)))
        np.testing.assert_allclose(g, g_ref, rtol=0, atol=2e-5 * scale, err_msg=name)
    if not input_grad:
        assert not np.any(np.asarray(got[1][0]))
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-5)  # running mean and variance, momentum 0.99
    np.testing.assert_allclose(got[3], ref[3], rtol=1e-5)
    _, fresh_bn = _block(cin, cout, padding)
    assert not np.allclose(got[2], fresh_bn.mean[...])  # and they did move


def test_max_pool_ties_share_the_gradient_like_jax():
    a = jnp.asarray(np.array([[1.0, 1.0], [0.5, 1.0]], np.float32))[None, :, :, None]
    dp = jnp.ones((1, 1, 1, 1), jnp.float32)
    got = first_block._unpool(dp, a, "max")
    want = jax.grad(lambda a: jnp.sum(layers.max_pool(a, 2)))(a)
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(got[0, :, :, 0], [[1 / 3, 1 / 3], [0, 1 / 3]], rtol=1e-6)


def test_inference_and_other_layers_take_the_plain_path(monkeypatch):
    calls = []
    monkeypatch.setattr(first_block, "_fused", lambda *a: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    conv, bn = _block(3, 8, "VALID")
    x = jnp.ones((2, 8, 8, 3), jnp.float32)
    with layers.conv_implementation("chunked"):
        bn.eval()  # running statistics: nothing to fuse
        first_block.conv_bn_act_pool(conv, bn, x, act="relu", pool="avg")
        wide_conv, wide_bn = _block(16, 8, "VALID")
        wide_bn.train()  # 16 input channels: the plain layers
        first_block.conv_bn_act_pool(wide_conv, wide_bn, jnp.ones((2, 8, 8, 16)), act="relu", pool=None)
    with layers.conv_implementation("xla"):
        bn.train()
        first_block.conv_bn_act_pool(conv, bn, x, act="tanh", pool="max")
    assert calls == []
    with pytest.raises(ValueError, match="act must be one of"):
        first_block.conv_bn_act_pool(conv, bn, x, act="gelu", pool=None)
