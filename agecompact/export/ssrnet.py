"""SSR-Net as ONNX: both streams in NCHW, the three stage heads, and the soft stagewise merge.

A quantizable graph (``GraphBuilder(quantizable=True)``) writes the s-stream's tanh as a sigmoid,
tanh(z) = 2 sigmoid(2z) - 1, with the factors folded into the neighbouring convolutions (all VALID, so
a conv over s = 2u - 1 is a conv over u with kernel 2K and bias b - ΣK; max-pooling commutes with the
increasing map). The function is the same to float32 rounding, but every op of the stream then has an
int8 kernel in onnxruntime (QLinearConv, QLinearSigmoid, uint8 MaxPool), so no float round trip is
needed between the convolutions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agecompact.export.graph import GraphBuilder, fold_batch_norm, nhwc_rows_to_nchw


def _over_sigmoid(kernel: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A VALID conv reading s = 2u - 1 rewritten to read u: kernel 2K, bias b - ΣK (float64, then float32)."""
    k = np.asarray(kernel, np.float64)
    b = np.zeros(k.shape[-1]) if bias is None else np.asarray(bias, np.float64)
    return (2 * k).astype(np.float32), (b - k.sum(axis=(0, 1, 2))).astype(np.float32)


def _s_block(g: GraphBuilder, s: str, sb: dict[str, Any], i: int) -> str:
    """tanh(BN(conv(s))), or in a quantizable graph u = sigmoid(2·BN(conv(·))) over the previous u."""
    if not g.quantizable:
        return g.tanh(g.conv(s, sb["conv"]["kernel"], sb["conv"]["bias"], bn=sb["bn"], prefix=f"s{i + 1}"))
    k, b = fold_batch_norm(sb["conv"]["kernel"], sb["conv"]["bias"], sb["bn"])
    if i > 0:
        k, b = _over_sigmoid(k, b)
    return g.op("Sigmoid", [g.conv(s, 2 * k, 2 * b, prefix=f"s{i + 1}")])


def build(g: GraphBuilder, x: str, state: dict[str, Any], module) -> list[str]:
    """Add SSR-Net to ``g`` reading the NCHW float image ``x``; returns the graph's output names."""
    xs, ss = state["x_blocks"], state["s_blocks"]
    x_feats, s_feats = [], []
    h = s = x
    size = 64
    for i in range(4):
        xb, sb = xs[str(i)], ss[str(i)]
        h = g.relu(g.conv(h, xb["conv"]["kernel"], xb["conv"]["bias"], bn=xb["bn"], prefix=f"x{i + 1}"))
        s = _s_block(g, s, sb, i)
        size -= 2
        if i < 3:
            h = g.pool("avg", h, 2, channels=int(np.shape(xb["conv"]["kernel"])[-1]))
            s = g.pool("max", s, 2)
            size //= 2
        x_feats.append((h, size))
        s_feats.append(s)
    # stage 1 reads block 4 (4x4), stage 2 the block-2 pools (14x14, pool 4), stage 3 the block-1 pools
    # (31x31, pool 8); the pools floor, so stages 2 and 3 both see 3x3x10 features.
    inputs = [(s_feats[3], *x_feats[3], 1), (s_feats[1], *x_feats[1], 4), (s_feats[0], *x_feats[0], 8)]
    outputs: list[str] = []
    stage_terms = []
    denom = None
    for k, (s_in, x_in, hw, pool) in enumerate(inputs, start=1):
        st = state["stages"][str(k - 1)]
        conv_s = (st["conv_s"]["kernel"], st["conv_s"]["bias"])
        if g.quantizable:
            conv_s = _over_sigmoid(*conv_s)
        fs = g.relu(g.conv(s_in, *conv_s, prefix=f"stage{k}_s"))
        fx = g.relu(g.conv(x_in, st["conv_x"]["kernel"], st["conv_x"]["bias"], prefix=f"stage{k}_x"))
        if pool > 1:
            fs = g.pool("max", fs, pool)
            fx = g.pool("avg", fx, pool, channels=int(np.shape(st["conv_x"]["kernel"])[-1]))
        side = hw // pool
        fs, fx = g.flatten(fs), g.flatten(fx)

        def rows(kernel, side=side):
            return nhwc_rows_to_nchw(kernel, 10, side, side)

        delta = g.op("Tanh", [g.dense(g.op("Mul", [fs, fx]), rows(st["delta"]["kernel"]), st["delta"]["bias"])],
                     out=f"delta_s{k}")
        ms = g.relu(g.dense(fs, rows(st["mix_s"]["kernel"]), st["mix_s"]["bias"]))
        mx = g.relu(g.dense(fx, rows(st["mix_x"]["kernel"]), st["mix_x"]["bias"]))
        f = g.relu(g.dense(g.op("Mul", [ms, mx]), st["fuse"]["kernel"], st["fuse"]["bias"]))
        p = g.op("Relu", [g.dense(f, st["pred"]["kernel"], st["pred"]["bias"])], out=f"pred_age_stage{k}")
        eta = g.op("Tanh", [g.dense(f, st["local_delta"]["kernel"], st["local_delta"]["bias"])],
                   out=f"local_delta_stage{k}")
        outputs += [p, eta, delta]

        # T_k = Σ_i (i + λ_local η_i) p_i / Π_{j≤k} s_j (1 + λ_d Δ_j)
        bins = module.stage_num[k - 1]
        shifted = g.op("Add", [g.op("Mul", [eta, g.const(module.lambda_local)]),
                               g.const(np.arange(bins, dtype=np.float32)[None, :])])
        num = g.op("ReduceSum", [g.op("Mul", [shifted, p]), g.const([1], "axes", np.int64)], keepdims=1)
        d_k = g.op("Mul", [g.op("Add", [g.op("Mul", [delta, g.const(module.lambda_d)]), g.const(1.0)]),
                           g.const(float(bins))])
        denom = d_k if denom is None else g.op("Mul", [denom, d_k])
        stage_terms.append(g.op("Div", [num, denom]))
    total = g.op("Add", [g.op("Add", [stage_terms[0], stage_terms[1]]), stage_terms[2]])
    g.squeeze_last(g.op("Mul", [total, g.const(module.v)]), out="pred")
    return ["pred", *outputs]
