"""SSR-Net (Yang et al., IJCAI 2018): soft stagewise regression over two heterogeneous streams.

The (3,3,3) network with V = 101 has 40,915 values (params + BatchNorm statistics); the V = 1 variant
(``ssrnet_gender``) regresses a 0..1 gender score with the same layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from agecompact.models.first_block import conv_bn_act_pool
from agecompact.models.layers import (
    Conv2D,
    Dense,
    avg_pool,
    batch_norm,
    flatten,
    max_pool,
    to_float,
)


class _StreamBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, *, rngs: nnx.Rngs):
        self.conv = Conv2D(cin, cout, 3, rngs=rngs)
        self.bn = batch_norm(cout, rngs=rngs)


class _StageHead(nnx.Module):
    """One stage: 1x1 reductions of both streams, the Δ (scale) term and the p/η heads."""

    def __init__(self, s_channels: int, x_channels: int, pool: int, flat: int, bins: int, *,
                 dropout: float, rngs: nnx.Rngs):
        self.pool = pool
        self.conv_s = Conv2D(s_channels, 10, 1, rngs=rngs)
        self.conv_x = Conv2D(x_channels, 10, 1, rngs=rngs)
        self.dropout_s = nnx.Dropout(dropout)
        self.dropout_x = nnx.Dropout(dropout)
        self.mix_s = Dense(flat, bins, rngs=rngs)
        self.mix_x = Dense(flat, bins, rngs=rngs)
        self.fuse = Dense(bins, 2 * bins, rngs=rngs)
        self.pred = Dense(2 * bins, bins, rngs=rngs)
        self.local_delta = Dense(2 * bins, bins, rngs=rngs)
        self.delta = Dense(flat, 1, rngs=rngs)

    def __call__(self, s: jax.Array, x: jax.Array, rngs) -> dict[str, jax.Array]:
        s = jax.nn.relu(self.conv_s(s))
        x = jax.nn.relu(self.conv_x(x))
        if self.pool > 1:
            s = max_pool(s, self.pool)
            x = avg_pool(x, self.pool)
        fs, fx = flatten(s), flatten(x)
        delta = jnp.tanh(self.delta(fs * fx))  # no dropout on the Δ path
        ms = jax.nn.relu(self.mix_s(self.dropout_s(fs, rngs=rngs)))
        mx = jax.nn.relu(self.mix_x(self.dropout_x(fx, rngs=rngs)))
        f = jax.nn.relu(self.fuse(ms * mx))
        return {
            "p": jax.nn.relu(self.pred(f)),  # ReLU, not softmax: the released weights depend on it
            "eta": jnp.tanh(self.local_delta(f)),
            "delta": delta,
        }


class SSRNet(nnx.Module):
    """SSR-Net for 64x64x3 BGR uint8 inputs; returns ``pred`` (B,) and every stage head."""

    def __init__(
        self,
        *,
        stage_num: Sequence[int] = (3, 3, 3),
        lambda_local: float = 1.0,
        lambda_d: float = 1.0,
        v: float = 101.0,
        dropout: float = 0.2,
        rngs: nnx.Rngs,
    ):
        self.stage_num = tuple(int(s) for s in stage_num)
        self.lambda_local = float(lambda_local)
        self.lambda_d = float(lambda_d)
        self.v = float(v)
        self.x_blocks = nnx.List([_StreamBlock(c, 32, rngs=rngs) for c in (3, 32, 32, 32)])
        self.s_blocks = nnx.List([_StreamBlock(c, 16, rngs=rngs) for c in (3, 16, 16, 16)])
        # Stage 1 reads block 4 (4x4), stage 2 the block-2 pools (14x14 -> pool 4), stage 3 the
        # block-1 pools (31x31 -> pool 8); pooling floors, so both later stages see 3x3x10 = 90 values.
        s1, s2, s3 = self.stage_num
        self.stages = nnx.List([
            _StageHead(16, 32, 1, 160, s1, dropout=dropout, rngs=rngs),
            _StageHead(16, 32, 4, 90, s2, dropout=dropout, rngs=rngs),
            _StageHead(16, 32, 8, 90, s3, dropout=dropout, rngs=rngs),
        ])

    def __call__(self, images: jax.Array, *, rngs=None) -> dict[str, jax.Array]:
        img = to_float(images)
        x, s = img, img
        x_feats, s_feats = [], []
        for i, (xb, sb) in enumerate(zip(self.x_blocks, self.s_blocks, strict=True)):
            if i == 0:  # the image: its 62x62 maps go through the chunked first block in CPU training
                x = conv_bn_act_pool(xb.conv, xb.bn, x, act="relu", pool="avg", input_grad=False)
                s = conv_bn_act_pool(sb.conv, sb.bn, s, act="tanh", pool="max", input_grad=False)
            else:
                x = jax.nn.relu(xb.bn(xb.conv(x)))
                s = jnp.tanh(sb.bn(sb.conv(s)))
                if i < 3:
                    x = avg_pool(x, 2)
                    s = max_pool(s, 2)
            x_feats.append(x)
            s_feats.append(s)
        inputs = [(s_feats[3], x_feats[3]), (s_feats[1], x_feats[1]), (s_feats[0], x_feats[0])]
        out: dict[str, jax.Array] = {}
        heads = []
        for k, (stage, (s_in, x_in)) in enumerate(zip(self.stages, inputs, strict=True), start=1):
            h = stage(s_in, x_in, rngs)
            heads.append(h)
            out[f"pred_age_stage{k}"] = h["p"]
            out[f"local_delta_stage{k}"] = h["eta"]
            out[f"delta_s{k}"] = h["delta"]
        out["pred"] = self.merge(heads)
        return out

    def merge(self, heads: list[dict[str, jax.Array]]) -> jax.Array:
        """Soft stagewise regression: V · Σ_k Σ_i (i + λ_local η_k[i]) p_k[i] / Π_{j≤k} s_j (1 + λ_d Δ_j)."""
        total = 0.0
        denom = 1.0
        for s, h in zip(self.stage_num, heads, strict=True):
            denom = denom * (s * (1.0 + self.lambda_d * h["delta"][:, 0]))
            idx = jnp.arange(s, dtype=jnp.float32)
            total = total + jnp.sum((idx + self.lambda_local * h["eta"]) * h["p"], axis=-1) / denom
        return total * self.v

    def merge_outputs(self, outputs: dict) -> jax.Array:
        """``merge`` of the heads as named in the forward pass's outputs (e.g. an ONNX graph's)."""
        return self.merge([{"p": jnp.asarray(outputs[f"pred_age_stage{k}"]),
                            "eta": jnp.asarray(outputs[f"local_delta_stage{k}"]),
                            "delta": jnp.asarray(outputs[f"delta_s{k}"])}
                           for k in range(1, len(self.stage_num) + 1)])


def ssrnet(*, rngs: nnx.Rngs, **kwargs) -> SSRNet:
    """SSR-Net (3,3,3), λ_local = λ_d = 1, V = 101: the released age models."""
    return SSRNet(rngs=rngs, **kwargs)


def ssrnet_gender(*, rngs: nnx.Rngs, **kwargs) -> SSRNet:
    """SSR-Net with V = 1 (``SSR_net_general``): the released gender models, output in [0, 1]."""
    kwargs.setdefault("v", 1.0)
    return SSRNet(rngs=rngs, **kwargs)


def keras_layer_map(model: SSRNet) -> dict[str, str]:
    """Keras layer name -> attribute path in our module, for the released ``.h5`` files."""
    m: dict[str, str] = {}
    for i in range(4):
        m[f"conv2d_{i + 1}"] = f"x_blocks.{i}.conv"
        m[f"batch_normalization_{i + 1}"] = f"x_blocks.{i}.bn"
        m[f"conv2d_{i + 5}"] = f"s_blocks.{i}.conv"
        m[f"batch_normalization_{i + 5}"] = f"s_blocks.{i}.bn"
    pred = "pred_age_stage" if model.v != 1.0 else "pred_stage"
    for k in range(3):
        base = 9 + 2 * k
        m[f"conv2d_{base}"] = f"stages.{k}.conv_s"
        m[f"conv2d_{base + 1}"] = f"stages.{k}.conv_x"
        m[f"dense_{3 * k + 1}"] = f"stages.{k}.mix_s"
        m[f"dense_{3 * k + 2}"] = f"stages.{k}.mix_x"
        m[f"dense_{3 * k + 3}"] = f"stages.{k}.fuse"
        m[f"{pred}{k + 1}"] = f"stages.{k}.pred"
        m[f"local_delta_stage{k + 1}"] = f"stages.{k}.local_delta"
        m[f"delta_s{k + 1}"] = f"stages.{k}.delta"
    return m
