"""C3AE (Zhang et al., CVPR 2019): a plain 5-conv trunk, optionally shared over three context crops.

* ``c3ae``: one branch, conv1 without bias (the StevenBanama build): 36,345 values.
* ``c3ae_full``: three weight-shared branches (outer, middle, inner crop) concatenated: 48,633.
* ``c3ae_full_se``: the same with squeeze-excitation (r = 2) after every block: 53,993.

The head is the cascade of the paper: W1 = Dense(12, softmax) predicts a two-point distribution over
age anchors 0, 10, ..., 110; W2 = Dense(1) maps it to the age.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from agecompact.models.first_block import conv_bn_act_pool
from agecompact.models.layers import Conv2D, Dense, avg_pool, batch_norm, flatten, to_float

NUM_BINS = 12
BIN_WIDTH = 10.0


class SqueezeExcite(nnx.Module):
    def __init__(self, channels: int, ratio: int, *, rngs: nnx.Rngs):
        self.reduce = Dense(channels, channels // ratio, rngs=rngs)
        self.expand = Dense(channels // ratio, channels, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        w = x.mean(axis=(1, 2))
        w = jax.nn.sigmoid(self.expand(jax.nn.relu(self.reduce(w))))
        return x * w[:, None, None, :]


class C3AETrunk(nnx.Module):
    """Conv(3x3,32) BN ReLU AvgPool ×3, Conv(3x3,32) BN ReLU, Conv(1x1,32): 64x64x3 -> 512 features."""

    def __init__(self, *, se: bool, se_ratio: int = 2, conv1_bias: bool = False, white_norm: bool = False,
                 rngs: nnx.Rngs):
        self.white_norm = white_norm
        self.convs = nnx.List([
            Conv2D(3, 32, 3, use_bias=conv1_bias, rngs=rngs),
            Conv2D(32, 32, 3, rngs=rngs),
            Conv2D(32, 32, 3, rngs=rngs),
            Conv2D(32, 32, 3, rngs=rngs),
        ])
        self.bns = nnx.List([batch_norm(32, rngs=rngs) for _ in range(4)])
        self.conv5 = Conv2D(32, 32, 1, rngs=rngs)
        self.se = nnx.List([SqueezeExcite(32, se_ratio, rngs=rngs) for _ in range(5)]) if se else None

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.white_norm:
            x = (x - 127.5) / 128.0
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i == 0:  # the image: chunked first block in CPU training
                x = conv_bn_act_pool(conv, bn, x, act="relu", pool="avg", input_grad=False)
            else:
                x = jax.nn.relu(bn(conv(x)))
                if i < 3:
                    x = avg_pool(x, 2)
            if self.se is not None:
                x = self.se[i](x)
        x = self.conv5(x)
        if self.se is not None:
            x = self.se[4](x)
        return flatten(x)


class C3AE(nnx.Module):
    """C3AE; ``branches=3`` takes (B, 3, 64, 64, 3) crops [outer, middle, inner].

    Given a single (B, 64, 64, 3) crop, a 3-branch model feeds it to all three branches (documented
    convenience for callers that have no context crops).
    """

    def __init__(self, *, branches: int = 1, se: bool = False, se_ratio: int = 2, conv1_bias: bool = False,
                 white_norm: bool = False, rngs: nnx.Rngs):
        if branches not in (1, 3):
            raise ValueError("branches must be 1 or 3")
        self.branches = branches
        self.trunk = C3AETrunk(se=se, se_ratio=se_ratio, conv1_bias=conv1_bias, white_norm=white_norm,
                               rngs=rngs)
        self.feat = Dense(512 * branches, NUM_BINS, rngs=rngs)  # W1
        self.pred = Dense(NUM_BINS, 1, rngs=rngs)  # W2

    def __call__(self, images: jax.Array, *, rngs=None) -> dict[str, jax.Array]:
        x = to_float(images)
        if self.branches == 3:
            if x.ndim == 4:
                x = jnp.broadcast_to(x[:, None], (x.shape[0], 3, *x.shape[1:]))
            b = x.shape[0]
            feats = self.trunk(x.reshape(b * 3, *x.shape[2:])).reshape(b, -1)
        else:
            if x.ndim != 4:
                raise ValueError(f"c3ae takes (B, 64, 64, 3) images, got shape {x.shape}")
            feats = self.trunk(x)
        dist = jax.nn.softmax(self.feat(feats), axis=-1)
        return {"pred": self.pred(dist)[:, 0], "distribution": dist}


def c3ae(*, rngs: nnx.Rngs, **kwargs) -> C3AE:
    """C3AE plain model (one branch, conv1 without bias, no SE)."""
    return C3AE(branches=1, rngs=rngs, **kwargs)


def c3ae_full(*, rngs: nnx.Rngs, **kwargs) -> C3AE:
    """C3AE with the context module: three crops through one shared trunk."""
    return C3AE(branches=3, rngs=rngs, **kwargs)


def c3ae_full_se(*, rngs: nnx.Rngs, **kwargs) -> C3AE:
    """C3AE context model with squeeze-excitation blocks (r = 2)."""
    kwargs.setdefault("se", True)
    return C3AE(branches=3, rngs=rngs, **kwargs)


def two_point_encode(age: jax.Array) -> jax.Array:
    """The two-point target: mass split between the two anchors around the age (22 -> 0.8@20, 0.2@30)."""
    age = jnp.clip(jnp.asarray(age, jnp.float32), 0.0, BIN_WIDTH * (NUM_BINS - 1))
    pos = age / BIN_WIDTH
    lo = jnp.floor(pos)
    right = pos - lo
    lo_i = lo.astype(jnp.int32)
    hi_i = jnp.minimum(lo_i + 1, NUM_BINS - 1)
    onehot_lo = jax.nn.one_hot(lo_i, NUM_BINS) * (1.0 - right)[..., None]
    onehot_hi = jax.nn.one_hot(hi_i, NUM_BINS) * right[..., None]
    return onehot_lo + onehot_hi


def keras_layer_map(model: C3AE) -> dict[str, str]:
    """Keras names (inside the shared ``model_1`` sub-model and at the top) -> our attribute paths."""
    m = {f"model_1/conv{i + 1}": f"trunk.convs.{i}" for i in range(4)}
    m.update({f"model_1/batch_normalization_{i + 1}": f"trunk.bns.{i}" for i in range(4)})
    m["model_1/conv5"] = "trunk.conv5"
    if model.trunk.se is not None:
        for i in range(5):
            m[f"model_1/dense_{2 * i + 1}"] = f"trunk.se.{i}.reduce"
            m[f"model_1/dense_{2 * i + 2}"] = f"trunk.se.{i}.expand"
        m["dense_11"] = "feat"
    else:
        m["conv2d_1"] = "feat"  # a 1x1 conv over the (1, 1, 1536) concat in the older C3 build
    m["age"] = "pred"
    return m
