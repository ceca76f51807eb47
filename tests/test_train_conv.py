"""The CPU convolution (cache-sized batch chunks, hand-written backward) equals XLA's convolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agecompact.models import layers


def _reference(x, k, b, padding):
    y = jax.lax.conv_general_dilated(x, k, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + b


@pytest.mark.parametrize("shape, cin, cout, padding, batch", [
    (31, 32, 32, "VALID", 16),  # several chunks (the 31x31x32 maps of SSR-Net)
    (64, 3, 16, "VALID", 12),
    (32, 16, 16, "SAME", 12),  # AEC's SAME convolutions
    (14, 32, 32, "VALID", 7),  # a prime batch: one chunk
])
def test_chunked_conv_matches_xla(shape, cin, cout, padding, batch):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, shape, shape, cin)).astype(np.float32))
    k = jnp.asarray(rng.normal(size=(3, 3, cin, cout)).astype(np.float32) * 0.2)
    b = jnp.asarray(rng.normal(size=(cout,)).astype(np.float32))
    y_ref = _reference(x, k, b, padding)
    ct = jnp.asarray(rng.normal(size=y_ref.shape).astype(np.float32))
    small = (layers.FORWARD_CHUNK_BYTES, layers.KERNEL_GRAD_CHUNK_BYTES)
    try:  # small budgets so that even these small tensors are split into chunks
        layers.FORWARD_CHUNK_BYTES = layers.KERNEL_GRAD_CHUNK_BYTES = 4 * shape * shape * (cin + cout) * 3
        y, vjp = jax.vjp(lambda x, k, b: layers.conv2d_chunked(x, k, b, padding), x, k, b)
        grads = vjp(ct)
    finally:
        layers.FORWARD_CHUNK_BYTES, layers.KERNEL_GRAD_CHUNK_BYTES = small
    _, vjp_ref = jax.vjp(lambda x, k, b: _reference(x, k, b, padding), x, k, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-4)
    for g, g_ref in zip(grads, vjp_ref(ct), strict=True):
        scale = float(jnp.max(jnp.abs(g_ref)))
        np.testing.assert_allclose(g, g_ref, rtol=0, atol=2e-5 * scale)


def test_chunk_sizes():
    assert layers._chunk_size(128, 1 << 20, 4 << 20) == 4
    assert layers._chunk_size(128, 1, 4 << 20) == 128  # everything fits
    assert layers._chunk_size(127, 1 << 20, 8 << 20) == 127  # prime: no useful divisor, one chunk
    assert layers._chunk_size(50, 1 << 20, 8 << 20) == 5  # 8 -> the nearest divisor within 2x


@pytest.mark.parametrize("arch", ["ssrnet", "c3ae", "aec"])
def test_model_gradients_do_not_depend_on_the_conv_implementation(arch):
    """The whole CPU path ("chunked": chunked convolutions and the chunked first block of
    ``models.first_block``) against the plain XLA graph: loss, every gradient and the new BatchNorm
    statistics. AEC covers a first block whose input is trained (its sharpen convolution)."""
    from flax import nnx

    from agecompact.models import create_model
    from agecompact.training.losses import loss_for

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    y = {"y": jnp.asarray(rng.uniform(5, 75, 16).astype(np.float32))}
    results = {}
    for impl in ("xla", "chunked"):
        with layers.conv_implementation(impl):
            model = create_model(arch, seed=0)
            model.train()
            graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)

            @jax.jit
            def f(params, stats, graphdef=graphdef):
                m = nnx.merge(graphdef, params, stats)
                loss_fn = loss_for(arch)
                loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x, rngs=jax.random.key(0)), y)[0])(m)
                return loss, grads, nnx.state(m, nnx.BatchStat)

            results[impl] = f(params, stats)
    (l0, g0, s0), (l1, g1, s1) = results["xla"], results["chunked"]
    assert float(l1) == pytest.approx(float(l0), rel=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g0), jax.tree.leaves(g1), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if "bias" in jax.tree_util.keystr(path) and "conv" in jax.tree_util.keystr(path):
            continue  # a bias before BatchNorm has zero gradient: both are rounding noise
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * float(np.abs(a).max()) + 1e-12,
                                   err_msg=jax.tree_util.keystr(path))
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(s0), jax.tree.leaves(s1), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_conv_implementation_is_scoped():
    before = layers._conv_impl
    with pytest.raises(RuntimeError), layers.conv_implementation("xla"):
        assert layers._conv_impl == "xla"
        raise RuntimeError
    assert layers._conv_impl == before
    with pytest.raises(ValueError, match="must be one of"), layers.conv_implementation("fast"):
        pass
