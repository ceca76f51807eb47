"""AEC as ONNX: sharpen conv, SAME-padded trunk, three softmax heads and the released bin-0 decoding."""

from __future__ import annotations

from typing import Any

import numpy as np

from agecompact.export.graph import GraphBuilder, nhwc_rows_to_nchw


def _head(g: GraphBuilder, f: str, head: dict[str, Any], side: int, *, out: str) -> str:
    h = g.relu(g.dense(f, nhwc_rows_to_nchw(head["fc1"]["kernel"], 10, side, side), head["fc1"]["bias"]))
    h = g.relu(g.dense(h, head["fc2"]["kernel"], head["fc2"]["bias"]))
    return g.op("Softmax", [g.dense(h, head["fc3"]["kernel"], head["fc3"]["bias"])], axis=-1, out=out)


def _expect(g: GraphBuilder, p: str, bins: int, width: float, bin0_quirk: bool) -> str:
    """Σ_i width·i·p_i (+ p_0 with the quirk) as one (N, bins) @ (bins, 1) product."""
    weights = width * np.arange(bins, dtype=np.float32)
    if bin0_quirk:
        weights[0] += 1.0
    return g.op("MatMul", [p, g.const(weights[:, None])])


def build(g: GraphBuilder, x: str, state: dict[str, Any], module) -> list[str]:
    """Add AEC to ``g`` reading the NCHW float image ``x``; returns the graph's output names."""
    if "sharpen" in state:
        x = g.conv(x, state["sharpen"]["kernel"], state["sharpen"]["bias"], pad=1, prefix="sharpen")
    i = 0
    for size in module.block_sizes:
        for _ in range(size):
            conv, bn = state["convs"][str(i)], state["bns"][str(i)]
            x = g.relu(g.conv(x, conv["kernel"], conv["bias"], pad=1, bn=bn, prefix=f"conv{i + 1}"))
            i += 1
        x = g.pool("avg", x, 2, channels=int(np.shape(state["convs"][str(i - 1)]["kernel"])[-1]))
    f = g.flatten(g.relu(g.conv(x, state["reduce"]["kernel"], state["reduce"]["bias"], prefix="reduce")))
    side = 64 >> len(module.block_sizes)
    p20 = _head(g, f, state["head_20y"], side, out="probs_20y")
    p4 = _head(g, f, state["head_4y"], side, out="probs_4y")
    p1 = _head(g, f, state["head_1y"], side, out="probs_1y")
    quirk = module.bin0_quirk
    coarse = g.op("Add", [_expect(g, p4, 5, 4.0, quirk), _expect(g, p20, 5, 20.0, quirk)])
    g.squeeze_last(coarse, out="pre_4")
    g.squeeze_last(g.op("Add", [coarse, _expect(g, p1, 4, 1.0, quirk)]), out="pred")
    return ["pred", "pre_4", "probs_20y", "probs_4y", "probs_1y"]
