"""A small builder over ``onnx.helper`` that turns our Keras-layout weights into NCHW ONNX nodes.

Why by hand: the networks are tiny and fixed, so writing the graph from the parameters gives an exact,
transpose-free hot path that onnxruntime's CPU kernels (and its NCHWc layout pass) run at full speed:
the input is transposed once to NCHW, BatchNorm is folded into the convolution before it, and dense
layers that read a flattened feature map get their rows permuted so that no NCHW -> NHWC transpose is
needed before the flatten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from agecompact.models.layers import KERAS_BN_EPSILON


def fold_batch_norm(kernel: np.ndarray, bias: np.ndarray | None, bn: Mapping[str, np.ndarray],
                    *, eps: float = KERAS_BN_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """Conv (HWIO kernel) followed by inference BatchNorm, as one conv: computed in float64, then float32."""
    k = np.asarray(kernel, np.float64)
    b = np.zeros(k.shape[-1]) if bias is None else np.asarray(bias, np.float64)
    scale = np.asarray(bn["scale"], np.float64) / np.sqrt(np.asarray(bn["var"], np.float64) + eps)
    folded_k = k * scale  # broadcasts over the output-channel (last) axis
    folded_b = (b - np.asarray(bn["mean"], np.float64)) * scale + np.asarray(bn["bias"], np.float64)
    return folded_k.astype(np.float32), folded_b.astype(np.float32)


def nhwc_rows_to_nchw(kernel: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """Reorder a dense kernel's rows from NHWC-flatten order (Keras) to NCHW-flatten order (ours)."""
    kernel = np.asarray(kernel)
    if kernel.shape[0] != channels * height * width:
        raise ValueError(f"dense kernel has {kernel.shape[0]} rows, the feature map {channels}x{height}x{width}")
    order = np.arange(height * width * channels).reshape(height, width, channels).transpose(2, 0, 1).ravel()
    return kernel[order]


class GraphBuilder:
    """Collects nodes and initializers with unique names; every method returns its output's name."""

    def __init__(self, *, quantizable: bool = False) -> None:
        # quantizable: the same function written with ops that int8 kernels run well (see ``quantize``)
        self.quantizable = quantizable
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._counts: Counter[str] = Counter()

    def fresh(self, prefix: str) -> str:
        self._counts[prefix] += 1
        return f"{prefix}_{self._counts[prefix]}"

    def const(self, value: Any, prefix: str = "const", dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], *, out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        name = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=f"{op_type}:{name}", **attrs))
        return name

    # -- layers ------------------------------------------------------------------------------------
    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray | None, *, pad: int = 0,
             bn: Mapping[str, np.ndarray] | None = None, prefix: str = "conv") -> str:
        """Stride-1 convolution from a Keras (kh, kw, in, out) kernel, BatchNorm folded in when given."""
        if bn is not None:
            kernel, bias = fold_batch_norm(kernel, bias, bn)
        w = self.const(np.asarray(kernel, np.float32).transpose(3, 2, 0, 1), f"{prefix}_w")
        inputs = [x, w]
        if bias is not None:
            inputs.append(self.const(bias, f"{prefix}_b"))
        kh, kw = int(np.shape(kernel)[0]), int(np.shape(kernel)[1])
        return self.op("Conv", inputs, kernel_shape=[kh, kw], pads=[pad] * 4, strides=[1, 1])

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray | None, *, prefix: str = "dense") -> str:
        """Fully connected layer from an (in, out) kernel: one Gemm."""
        inputs = [x, self.const(kernel, f"{prefix}_w")]
        if bias is not None:
            inputs.append(self.const(bias, f"{prefix}_b"))
        return self.op("Gemm", inputs)

    def pool(self, kind: str, x: str, size: int, *, channels: int | None = None) -> str:
        """Non-overlapping VALID pooling (stride = size, floor), as in the Keras models.

        In a quantizable graph an average pool over ``channels`` channels is written as the equivalent
        depthwise convolution (weights 1/size²): onnxruntime's int8 depthwise convolution is several
        times faster than its QLinearAveragePool.
        """
        if kind == "avg" and self.quantizable and channels:
            w = self.const(np.full((channels, 1, size, size), 1.0 / (size * size), np.float32), "avg_w")
            return self.op("Conv", [x, w], kernel_shape=[size, size], strides=[size, size], group=channels)
        op = {"avg": "AveragePool", "max": "MaxPool"}[kind]
        return self.op(op, [x], kernel_shape=[size, size], strides=[size, size])

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def tanh(self, x: str) -> str:
        return self.op("Tanh", [x])

    def flatten(self, x: str) -> str:
        return self.op("Flatten", [x], axis=1)

    def squeeze_last(self, x: str, *, out: str) -> str:
        """(N, 1) -> (N,)."""
        return self.op("Squeeze", [x, self.const([1], "axes", np.int64)], out=out)

    def identity(self, x: str, *, out: str) -> str:
        return self.op("Identity", [x], out=out)
