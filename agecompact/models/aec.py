"""AEC compact model (Soyuen, 2021): 20,014 values, three softmax heads over 20/4/1-year bins.

A trainable 3x3 "sharpen" convolution comes first; eight SAME 3x3 convolutions of 16 channels in
groups of 3/1/2/2, each group followed by a 2x2 average pool, form the trunk (the order of the layer
names in the released file suggests 2/2/2/2; only 3/1/2/2 reproduces its outputs). The released decoder adds each stage's bin-0 probability to the age
(``bin0_quirk``, on by default because the released weights were trained with it).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from agecompact.errors import InputError
from agecompact.models.first_block import conv_bn_act_pool
from agecompact.models.layers import Conv2D, Dense, avg_pool, batch_norm, flatten, he_uniform, to_float


def sharpen_init(key, shape, dtype=jnp.float32):
    """All ones with -7 at the centre, only from input channel 0 to output channel 0 (sums to 1)."""
    del key
    k = np.zeros(shape, np.float32)
    k[:, :, 0, 0] = 1.0
    k[shape[0] // 2, shape[1] // 2, 0, 0] = -7.0
    return jnp.asarray(k, dtype)


class _Head(nnx.Module):
    def __init__(self, features: int, sizes: tuple[int, int, int], *, rngs: nnx.Rngs):
        a, b, c = sizes
        self.fc1 = Dense(features, a, kernel_init=he_uniform, rngs=rngs)
        self.fc2 = Dense(a, b, kernel_init=he_uniform, rngs=rngs)
        self.fc3 = Dense(b, c, kernel_init=he_uniform, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return jax.nn.softmax(self.fc3(x), axis=-1)


class AEC(nnx.Module):
    """AEC for 64x64x3 BGR uint8; returns ``pred`` (B,), ``pre_4`` and the three bin distributions."""

    def __init__(self, *, block_sizes: Sequence[int] = (3, 1, 2, 2), bin0_quirk: bool = True,
                 dropout: float = 0.2, sharpen: bool = True, rngs: nnx.Rngs):
        self.block_sizes = tuple(int(b) for b in block_sizes)
        self.bin0_quirk = bool(bin0_quirk)
        # sharpen=False drops the 84-value front convolution: 19,930 values, under the 20,000 of a "tiny" model
        self.sharpen = Conv2D(3, 3, 3, padding="SAME", kernel_init=sharpen_init, rngs=rngs) if sharpen else None
        n = sum(self.block_sizes)
        self.convs = nnx.List([Conv2D(3 if i == 0 else 16, 16, 3, padding="SAME", rngs=rngs) for i in range(n)])
        self.bns = nnx.List([batch_norm(16, rngs=rngs) for _ in range(n)])
        self.reduce = Conv2D(16, 10, 1, kernel_init=he_uniform, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)
        self.head_20y = _Head(160, (5, 10, 5), rngs=rngs)
        self.head_4y = _Head(160, (5, 10, 5), rngs=rngs)
        self.head_1y = _Head(160, (4, 8, 4), rngs=rngs)

    def __call__(self, images: jax.Array, *, rngs=None) -> dict[str, jax.Array]:
        x = to_float(images)
        if self.sharpen is not None:
            x = self.sharpen(x)
        i = 0
        for size in self.block_sizes:
            for _ in range(size):
                # the first conv (3 input channels) runs as a chunked block in CPU training
                x = conv_bn_act_pool(self.convs[i], self.bns[i], x, act="relu", pool=None,
                                     input_grad=self.sharpen is not None)
                i += 1
            x = avg_pool(x, 2)
        x = jax.nn.relu(self.reduce(x))
        f = self.dropout(flatten(x), rngs=rngs)
        p20, p4, p1 = self.head_20y(f), self.head_4y(f), self.head_1y(f)
        coarse = self._expect(p4, 4.0) + self._expect(p20, 20.0)
        return {
            "pred": coarse + self._expect(p1, 1.0),
            "pre_4": coarse,
            "probs_20y": p20,
            "probs_4y": p4,
            "probs_1y": p1,
        }

    def _expect(self, p: jax.Array, width: float) -> jax.Array:
        value = jnp.sum(p * (width * jnp.arange(p.shape[-1], dtype=jnp.float32)), axis=-1)
        return value + p[:, 0] if self.bin0_quirk else value


def aec(*, rngs: nnx.Rngs, **kwargs) -> AEC:
    """The AEC compact model as released (bin-0 quirk on)."""
    return AEC(rngs=rngs, **kwargs)


def aec_nosharpen(*, rngs: nnx.Rngs, **kwargs) -> AEC:
    """AEC without the sharpen convolution (19,930 values): the zoo's ``tiny`` architecture."""
    return AEC(rngs=rngs, **{"sharpen": False, **kwargs})


class AECPair(nnx.Module):
    """Two AEC networks whose outputs are averaged: an ensemble inside one model file.

    The members are trained on their own (independent runs decorrelate their errors) and joined with
    ``pair_state``; training ``aec_pair`` directly fits the average with AEC's loss. Every output is the
    members' mean, so ``pred`` is also the mean of their ages (the decoding is linear in the bins) and the
    bins are the mixture of their distributions. ``sharpen`` gives each member's front convolution.
    """

    def __init__(self, *, sharpen: Sequence[bool] = (True, False), rngs: nnx.Rngs, **member_kwargs):
        self.members = nnx.List([AEC(sharpen=bool(s), rngs=rngs, **member_kwargs) for s in sharpen])
        if len(self.members) < 2:
            raise TypeError("an AEC pair needs at least two members")
        self.block_sizes = self.members[0].block_sizes
        self.bin0_quirk = self.members[0].bin0_quirk

    def __call__(self, images: jax.Array, *, rngs=None) -> dict[str, jax.Array]:
        outs = [m(images, rngs=rngs) for m in self.members]
        return {k: sum(o[k] for o in outs) / len(outs) for k in outs[0]}


def aec_pair(*, rngs: nnx.Rngs, **kwargs) -> AECPair:
    """AEC and AEC-without-sharpen averaged (39,944 values): the zoo's earlier ``default`` architecture."""
    return AECPair(rngs=rngs, **kwargs)


def pair_state(states: Sequence[dict]) -> dict:
    """The ``aec_pair`` state (nested arrays, as model files hold them) of trained AEC members, in order."""
    return {"members": {str(i): s for i, s in enumerate(states)}}


def keras_layer_map(model: AEC) -> dict[str, str]:
    if isinstance(model, AECPair):
        raise InputError("aec_pair has no Keras counterpart: import its members as aec / aec_nosharpen")
    m = {"conv2d_1": "sharpen", "conv2d_10": "reduce"}
    for i in range(len(model.convs)):
        m[f"conv2d_{i + 2}"] = f"convs.{i}"
        m[f"batch_normalization_{i + 1}"] = f"bns.{i}"
    for j, head in enumerate(("head_20y", "head_4y", "head_1y")):
        for k in range(3):
            m[f"dense_{3 * j + k + 1}"] = f"{head}.fc{k + 1}"
    return m
