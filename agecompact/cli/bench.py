"""``agecompact bench``: parameters and FLOPs, speed, and the seed comparison table."""

from __future__ import annotations

from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors, not_available

bench_app = typer.Typer(
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


@bench_app.command("table")
@handle_errors
def bench_table() -> None:
    """The seed comparison table: MAE on IMDB and WIKI, parameters, size and speed, beside the published values."""
    not_available("bench table", "issue 7")


@bench_app.command("speed")
@handle_errors
def bench_speed() -> None:
    """Latency and throughput of the forward pass and the train step, timed properly."""
    not_available("bench speed", "issue 7")
