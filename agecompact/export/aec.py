"""AEC as ONNX: sharpen conv, SAME-padded trunk, three softmax heads and the released bin-0 decoding."""

from __future__ import annotations

from typing import Any

import numpy as np

from agecompact.export.graph import GraphBuilder, nhwc_rows_to_nchw


def _head(g: GraphBuilder, f: str, head: dict[str, Any], side: int) -> str:
    h = g.relu(g.dense(f, nhwc_rows_to_nchw(head["fc1"]["kernel"], 10, side, side), head["fc1"]["bias"]))
    h = g.relu(g.dense(h, head["fc2"]["kernel"], head["fc2"]["bias"]))
    return g.op("Softmax", [g.dense(h, head["fc3"]["kernel"], head["fc3"]["bias"])], axis=-1)


def _expect(g: GraphBuilder, p: str, bins: int, width: float, bin0_quirk: bool) -> str:
    """Σ_i width·i·p_i (+ p_0 with the quirk) as one (N, bins) @ (bins, 1) product."""
    weights = width * np.arange(bins, dtype=np.float32)
    if bin0_quirk:
        weights[0] += 1.0
    return g.op("MatMul", [p, g.const(weights[:, None])])


OUTPUTS = ("pred", "pre_4", "probs_20y", "probs_4y", "probs_1y")


def _member(g: GraphBuilder, x: str, state: dict[str, Any], module) -> dict[str, str]:
    """One AEC network reading ``x``: its outputs' tensor names (``pred``/``pre_4`` still (N, 1))."""
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
    p20 = _head(g, f, state["head_20y"], side)
    p4 = _head(g, f, state["head_4y"], side)
    p1 = _head(g, f, state["head_1y"], side)
    quirk = module.bin0_quirk
    coarse = g.op("Add", [_expect(g, p4, 5, 4.0, quirk), _expect(g, p20, 5, 20.0, quirk)])
    pred = g.op("Add", [coarse, _expect(g, p1, 4, 1.0, quirk)])
    return {"pred": pred, "pre_4": coarse, "probs_20y": p20, "probs_4y": p4, "probs_1y": p1}


def build(g: GraphBuilder, x: str, state: dict[str, Any], module) -> list[str]:
    """Add AEC (or an AEC pair: members' outputs averaged) to ``g`` reading the NCHW float image ``x``;
    returns the graph's output names."""
    members = getattr(module, "members", None)
    if members is None:
        outs = _member(g, x, state, module)
    else:
        parts = [_member(g, x, state["members"][str(i)], m) for i, m in enumerate(members)]
        scale = g.const(np.float32(1.0 / len(parts)), "mean_scale")
        outs = {k: g.op("Mul", [g.op("Sum", [p[k] for p in parts]), scale]) for k in OUTPUTS}
    g.squeeze_last(outs["pre_4"], out="pre_4")
    g.squeeze_last(outs["pred"], out="pred")
    for k in ("probs_20y", "probs_4y", "probs_1y"):
        g.identity(outs[k], out=k)
    return list(OUTPUTS)
