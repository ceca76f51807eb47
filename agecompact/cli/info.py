"""``agecompact info``: versions and devices, or what a model file says about itself."""

from __future__ import annotations

from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors


@app.command()
@handle_errors
def info(
    model: Annotated[str | None, typer.Argument(help="A model file, Keras .h5, run folder or pretrained name.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Show package versions and JAX devices, or a model's metadata and parameter counts."""
    from rich.table import Table

    from agecompact.console import print_json, stdout_console

    if model is None:
        from agecompact.envinfo import device_info, package_versions

        data = {"versions": package_versions(), "devices": device_info()}
        rows = [*data["versions"].items(), *data["devices"].items()]
    else:
        from agecompact.api import load_model

        m = load_model(model)
        data = {**m.meta.to_dict(), "param_counts": m.param_counts, "path": str(m.path) if m.path else None}
        rows = [(k, v) for k, v in data.items() if k != "param_counts"] + list(m.param_counts.items())
    if json_out:
        print_json(data)
        return
    table = Table(show_header=False, title=model or "agecompact")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(str(k), "—" if v is None else str(v))
    stdout_console().print(table)
