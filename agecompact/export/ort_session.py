"""Opening onnxruntime sessions: ``export`` verifies the graphs it writes with one, the ONNX engine
(``agecompact.inference``) runs them. Kept here, below both, so neither imports the other's back."""

from __future__ import annotations

import os


def session_options(threads: int = 1):
    """``threads`` intra-op threads, sequential execution, every graph optimisation (NCHWc layout, fusions)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # the graph is a chain: nothing to overlap
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: no optimizer chatter on stderr
    return so


def open_session(source: str | os.PathLike | bytes, threads: int = 1):
    import onnxruntime as ort

    data = source if isinstance(source, bytes) else str(source)
    return ort.InferenceSession(data, session_options(threads), providers=["CPUExecutionProvider"])
