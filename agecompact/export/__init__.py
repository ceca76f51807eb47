"""Export models to ONNX graphs built directly from our parameters (see ``onnx_export``).

>>> from agecompact.export import export_onnx
>>> export_onnx(agecompact.load_model("ssrnet-wiki"), "ssrnet.onnx")            # uint8 input, opset 17
"""

from agecompact.export.onnx_export import (
    DEFAULT_OPSET,
    EXPORTER_VERSION,
    INPUT_DTYPES,
    build_onnx,
    export_fingerprint,
    export_onnx,
    weights_sha256,
)

__all__ = ["DEFAULT_OPSET", "EXPORTER_VERSION", "INPUT_DTYPES", "build_onnx", "export_fingerprint",
           "export_onnx", "weights_sha256"]
