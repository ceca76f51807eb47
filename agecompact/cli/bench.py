"""``agecompact bench``: parameters and FLOPs, speed, and the seed comparison table."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors
from agecompact.cli._choices import BACKEND_METAVAR, DTYPE_METAVAR, backend_option
from agecompact.cli._command import App
from agecompact.errors import UsageError

bench_app = App(
    help="Measure models: parameters and FLOPs, speed, and the seed comparison table.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


@bench_app.command("params")
@handle_errors
def bench_params(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")] = False,
) -> None:
    """Parameters (trainable, non-trainable, total), model-file size and forward FLOPs of every model."""
    from rich.table import Table

    from agecompact.bench.params import params_rows
    from agecompact.console import print_json, stdout_console

    rows = params_rows()
    if json_out:
        print_json({"models": rows})
        return
    table = Table(title="agecompact models (Keras convention: params + BatchNorm statistics)")
    for col in ("model", "trainable", "non-trainable", "total", "file (bytes)", "file (KB)", "MFLOPs/face"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        flops = "—" if r["flops"] is None else f"{r['flops'] / 1e6:.1f}"
        table.add_row(r["model"], f"{r['trainable']:,}", f"{r['non_trainable']:,}", f"{r['total']:,}",
                      f"{r['file_bytes']:,}", f"{r['file_kb']:.1f}", flops)
    stdout_console().print(table)



class Device(StrEnum):
    cpu = "cpu"
    gpu = "gpu"


def _select_device(device: Device | None) -> dict:
    """Make the requested JAX platform the default; a GPU request without a GPU is an error."""
    import jax

    from agecompact.envinfo import device_info

    if device is Device.gpu:
        try:
            jax.config.update("jax_default_device", jax.devices("gpu")[0])
        except RuntimeError:
            raise UsageError("--device gpu: JAX sees no GPU here (install agecompact[cuda])") from None
    elif device is Device.cpu:
        jax.config.update("jax_default_device", jax.devices("cpu")[0])
    return device_info()


@bench_app.command("table")
@handle_errors
def bench_table(
    runs: Annotated[list[Path] | None, typer.Option("--runs", help="Training run folders to add as rows (their eval/*.json give the MAE).")] = None,
    models: Annotated[list[str] | None, typer.Option("--model", help="Other models to add (Keras .h5, model file, pretrained name).")] = None,
    results: Annotated[list[Path] | None, typer.Option("--results", help="Eval result JSON files for --model rows.")] = None,
    device: Annotated[Device | None, typer.Option(help="Where to time: cpu (onnxruntime when installed) or gpu (JAX).")] = None,
    backend: Annotated[str, typer.Option(metavar=BACKEND_METAVAR, callback=backend_option,
                                         help="Inference backend for the timing (ort / onnxruntime: onnx).")] = "auto",
    quantize: Annotated[str | None, typer.Option(
        "--quantize", metavar="int8", help="int8: time the statically quantised onnxruntime graph.")] = None,
    no_timing: Annotated[bool, typer.Option("--no-timing", help="Skip the speed columns.")] = False,
    timing_runs: Annotated[int, typer.Option("--timing-runs", min=3, help="Timed batch-1 calls per model.")] = 200,
    large_batch: Annotated[int, typer.Option("--large-batch", min=1, help="Batch for the throughput column.")] = 256,
    json_out: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the table as Markdown here.")] = None,
) -> None:
    """The seed comparison table: MAE on IMDB and WIKI, parameters, size and speed, beside the published values.

    MAE columns come only from eval results (`agecompact eval` writes them into run folders); without
    them they show "—". Published values are labelled as such and never mixed with measurements.
    """
    from agecompact.bench.table import SpeedProbe, build_rows, render_markdown, render_rich, table_document
    from agecompact.console import print_json, stdout_console
    from agecompact.fileio import atomic_write_text
    from agecompact.inference import backend_name, resolve_backend

    resolve_backend(backend)  # an unknown backend fails now, also with --no-timing
    from agecompact.export.quantize import check_mode

    quantize = check_mode(quantize)
    if quantize is not None and (device is Device.gpu or resolve_backend(backend) != "onnx"):
        raise UsageError(f"--quantize {quantize} times onnxruntime on the CPU: use --backend onnx")
    if device is Device.gpu and backend_name(backend) == "onnx":
        raise UsageError("--device gpu times JAX; the onnxruntime backend runs on the CPU (use --device cpu)")
    info = _select_device(device)  # "auto" then means JAX on a GPU, onnxruntime on the CPU
    probe = None if no_timing else SpeedProbe(backend=backend, runs=timing_runs, large_batch=large_batch,
                                               max_seconds=20.0, quantize=quantize)
    rows = build_rows(runs=runs or [], models=models or [], results=results or [], probe=probe)
    doc = table_document(rows, probe, info)
    if markdown is not None:
        atomic_write_text(markdown, render_markdown(doc))
    if json_out:
        print_json(doc)
    else:
        stdout_console().print(render_rich(doc))


@bench_app.command("speed")
@handle_errors
def bench_speed(
    models: Annotated[list[str] | None, typer.Option("--model", help="Architectures to time (default: all age models).")] = None,
    batch_sizes: Annotated[list[int] | None, typer.Option("--batch-size", min=1, help="Batch sizes (repeatable).")] = None,
    dtypes: Annotated[list[str] | None, typer.Option("--dtype", metavar=DTYPE_METAVAR, help="float32 and/or bfloat16.")] = None,
    what: Annotated[list[str] | None, typer.Option("--what", metavar="forward|train", help="forward and/or train (the optimiser step).")] = None,
    device: Annotated[Device | None, typer.Option(help="cpu or gpu (default: JAX's default device).")] = None,
    runs: Annotated[int, typer.Option(min=3, help="Timed runs per configuration (after warm-up).")] = 30,
    max_seconds: Annotated[float, typer.Option(help="Stop timing one configuration after this long.")] = 10.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Latency and throughput of the JAX forward pass and train step: warm-up excluded, median and spread."""
    from rich.table import Table

    from agecompact.bench.speed import forward_speed, train_step_speed
    from agecompact.choices import COMPUTE_DTYPES as DTYPES
    from agecompact.console import make_progress, print_json, stdout_console
    from agecompact.models.registry import MODELS, get_spec

    names = models or [n for n, s in MODELS.items() if s.task == "age"]
    for n in names:
        get_spec(n)
    dtypes = dtypes or ["float32"]
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise UsageError(f"unknown dtype {bad[0]!r}: choose float32 or bfloat16")
    what = what or ["forward", "train"]
    if set(what) - {"forward", "train"}:
        raise UsageError("--what takes forward or train")
    info = _select_device(device)
    configs = [(w, n, b, d) for w in what for n in names for b in (batch_sizes or [1, 128]) for d in dtypes]
    rows = []
    with make_progress(quiet=json_out) as progress:
        task = progress.add_task("timing", total=len(configs))
        for w, n, b, d in configs:
            fn = forward_speed if w == "forward" else train_step_speed
            progress.update(task, description=f"{w} {n} b={b} {d}")
            rows.append(fn(n, b, d, runs=runs, max_seconds=max_seconds))
            progress.advance(task)
    if json_out:
        print_json({"device": info, "results": rows})
        return
    table = Table(title=f"JAX speed on {info['device_kind']} ({info['backend']})")
    for col in ("what", "model", "batch", "dtype", "median ms", "min ms", "max ms", "ms/image", "images/s", "runs"):
        table.add_column(col, justify="left" if col in ("what", "model", "dtype") else "right")
    for r in rows:
        table.add_row(r["what"], r["arch"], str(r["batch"]), r["dtype"], f"{r['median_ms']:.3f}",
                      f"{r['min_ms']:.3f}", f"{r['max_ms']:.3f}", f"{r['ms_per_image']:.4f}",
                      f"{r['images_per_s']:,.0f}", str(r["runs"]))
    stdout_console().print(table)
