"""``agecompact export``: write a model as an ONNX graph for fast CPU inference."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors

FORMATS = ("onnx",)
VERIFY_TOLERANCE = 1e-3  # years (or gender score); observed differences are ~1e-5


@app.command()
@handle_errors
def export(
    model: Annotated[str | None, typer.Argument(help="Model file, Keras .h5, run folder or pretrained name.",
                                                show_default=False)] = None,
    model_option: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL", help="The same as the MODEL argument, as eval and predict take it.",
        show_default=False)] = None,
    format: Annotated[str, typer.Option("--format", "-f", metavar="onnx", help="Output format: onnx.")] = "onnx",
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="Output file (a folder: <name>.onnx inside it). Default: ./<model name>.onnx.")] = None,
    input_dtype: Annotated[str, typer.Option(
        "--input-dtype", metavar="uint8|float32", help="Pixel type of the graph's input: uint8 or float32 (both BGR 0..255).")] = "uint8",
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (13 or newer; default 17).")] = None,
    quantize: Annotated[str | None, typer.Option(
        "--quantize", metavar="int8", help="int8: static int8 quantisation (per-channel weights; heads and decoders stay "
        "float32), checked against the float graph on the calibration faces.")] = None,
    calibration: Annotated[str | None, typer.Option(
        "--calibration", help="Faces to calibrate int8 on: a .npz (image array) or a folder of face crops. "
        "Default: 256 synthetic demo faces.")] = None,
    verify: Annotated[bool, typer.Option(
        "--verify/--no-verify", help="Check onnxruntime against JAX on 16 random faces before writing.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Export a model to ONNX (for onnxruntime on CPU).

    With --quantize int8 the graph is statically quantised (default file <name>.int8.onnx, float32 input)
    and its ages are compared with the float graph's on the calibration faces before it is written.

    The graph takes BGR NHWC batches of any size, (N, 64, 64, 3), or (N, 3, 64, 64, 3) crops for the C3AE context models, and returns pred (N,) plus the model's stage outputs. The model's metadata (name, arch, margin, colour order, input size, crops, task, version, source) is in metadata_props.
    """
    from agecompact.errors import AgecompactError, UsageError

    if model is not None and model_option is not None:
        raise UsageError("give the model once: as MODEL or as --model")
    model = model if model is not None else model_option
    if model is None:
        raise UsageError("missing the model to export (MODEL or --model)")
    if format.lower() not in FORMATS:
        raise UsageError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    from agecompact.export.onnx_export import (
        DEFAULT_OPSET,
        RECORD_ONLY,
        build_onnx,
        check_options,
        max_differences,
        sample_inputs,
        write_onnx,
    )

    opset = DEFAULT_OPSET if opset is None else opset
    check_options(input_dtype, opset)  # also fails early when the onnx package is missing
    from agecompact.export.quantize import check_mode

    mode = check_mode(quantize)
    if calibration is not None and mode is None:
        raise UsageError("--calibration is only used with --quantize int8")

    from agecompact.api import load_model
    from agecompact.console import log, print_json, stdout_console
    from agecompact.inference import onnxruntime_available

    age_model = load_model(model)
    filename = f"{age_model.name}.{mode}.onnx" if mode else f"{age_model.name}.onnx"
    target = Path(out) if out else Path(filename)
    if target.is_dir() or (out and out.endswith(("/", os.sep))):
        target = target / filename
    diffs = check = None
    if mode is not None:
        from agecompact.export.quantize import build_int8, load_calibration

        if input_dtype != "uint8":
            log("--input-dtype is ignored with --quantize: the int8 graph takes float32 (uint8 values work)",
                style="yellow")
        input_dtype = "float32"
        proto, check = build_int8(age_model, load_calibration(calibration, age_model), opset=opset)
    else:
        proto = build_onnx(age_model, input_dtype=input_dtype, opset=opset)

    if mode is None and verify and onnxruntime_available():
        try:
            diffs = max_differences(age_model, proto, sample_inputs(age_model))
        except AgecompactError:
            raise
        except Exception as e:  # an onnxruntime too old for the opset, typically
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AgecompactError(f"onnxruntime cannot run the exported graph (opset {opset}): {first} "
                                  "(nothing written; try a lower --opset or --no-verify)") from None
        worst = max(v for k, v in diffs.items() if k not in RECORD_ONLY)
        if not worst <= VERIFY_TOLERANCE:
            raise AgecompactError(f"the ONNX graph disagrees with JAX by {worst:.3g} on random faces "
                                  "(nothing written; --no-verify writes it anyway)")
    elif verify and mode is None:
        log("onnxruntime is not installed: the export is not verified", style="yellow")
    path = write_onnx(proto, target)

    graph = proto.graph
    result = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "format": "onnx",
        "opset": opset,
        "input": {"name": graph.input[0].name, "dtype": input_dtype,
                  "shape": [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]},
        "outputs": {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output},
        "metadata": {p.key: p.value for p in proto.metadata_props},
        "verify_max_abs_diff": diffs,
        "quantization": None if mode is None else {"mode": mode, **check},
    }
    if json_out:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"{age_model.name} → {path}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("size", f"{result['bytes']:,} bytes")
    table.add_row("input", f"{result['input']['name']}: {input_dtype} {result['input']['shape']} (BGR 0..255)")
    table.add_row("outputs", ", ".join(result["outputs"]))
    table.add_row("opset", str(opset))
    if check is not None:
        table.add_row("quantization", f"{mode}: |int8 − float| mean {check['mean_abs_diff']:.3f}, p99 "
                      f"{check['p99_abs_diff']:.2f}, max {check['max_abs_diff']:.2f} on {check['faces']} "
                      f"calibration faces ({check['calibration']})")
    else:
        table.add_row("verified", "skipped" if diffs is None else
                      f"max |onnxruntime − JAX| = {max(diffs.values()):.2g} on 16 random faces")
    stdout_console().print(table)
