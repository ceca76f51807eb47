"""C3AE as ONNX: the plain trunk (optionally with squeeze-excitation), shared over the context crops."""

from __future__ import annotations

from typing import Any

import numpy as np

from agecompact.export.graph import GraphBuilder, nhwc_rows_to_nchw


def _squeeze_excite(g: GraphBuilder, x: str, se: dict[str, Any]) -> str:
    """Global average -> Dense -> ReLU -> Dense -> sigmoid -> channel scale, with 1x1 convs on (N, C, 1, 1)."""
    w = g.op("GlobalAveragePool", [x])
    w = g.relu(g.conv(w, se["reduce"]["kernel"][None, None], se["reduce"]["bias"], prefix="se_reduce"))
    w = g.op("Sigmoid", [g.conv(w, se["expand"]["kernel"][None, None], se["expand"]["bias"], prefix="se_expand")])
    return g.op("Mul", [x, w])


def build(g: GraphBuilder, x: str, state: dict[str, Any], module) -> list[str]:
    """Add C3AE to ``g``; ``x`` is (N * branches, 3, 64, 64) NCHW float, branches of one face adjacent."""
    trunk = state["trunk"]
    se = trunk.get("se")
    if module.trunk.white_norm:
        x = g.op("Div", [g.op("Sub", [x, g.const(127.5)]), g.const(128.0)])
    for i in range(4):
        conv, bn = trunk["convs"][str(i)], trunk["bns"][str(i)]
        x = g.relu(g.conv(x, conv["kernel"], conv.get("bias"), bn=bn, prefix=f"conv{i + 1}"))
        if i < 3:
            x = g.pool("avg", x, 2, channels=int(np.shape(conv["kernel"])[-1]))
        if se is not None:
            x = _squeeze_excite(g, x, se[str(i)])
    x = g.conv(x, trunk["conv5"]["kernel"], trunk["conv5"]["bias"], prefix="conv5")
    if se is not None:
        x = _squeeze_excite(g, x, se["4"])
    branches = module.branches
    # (N * branches, 32, 4, 4) -> (N, branches * 512): each branch's block keeps NCHW order, so the
    # rows of W1 are permuted block by block.
    feats = g.op("Reshape", [x, g.const([-1, branches * 512], "shape", np.int64)])
    kernel = np.asarray(state["feat"]["kernel"])
    kernel = np.concatenate([nhwc_rows_to_nchw(kernel[b * 512:(b + 1) * 512], 32, 4, 4) for b in range(branches)])
    dist = g.op("Softmax", [g.dense(feats, kernel, state["feat"]["bias"], prefix="w1")], axis=-1, out="distribution")
    g.squeeze_last(g.dense(dist, state["pred"]["kernel"], state["pred"]["bias"], prefix="w2"), out="pred")
    return ["pred", "distribution"]
