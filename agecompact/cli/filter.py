"""``agecompact filter``: apply the IMDB-WIKI label-quality rules to the .mat metadata."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors


class Db(StrEnum):
    imdb = "imdb"
    wiki = "wiki"


class Rules(StrEnum):
    ssrnet = "ssrnet"
    aec = "aec"


@app.command("filter")
@handle_errors
def filter_(
    db: Annotated[Db, typer.Option("--db", case_sensitive=False, help="Which metadata: imdb or wiki.")],
    root: Annotated[Path | None, typer.Option(help="Folder holding <db>.mat (the <db>_crop folder or its "
                                                   "parent). Default: data/<db>_crop.")] = None,
    mat: Annotated[Path | None, typer.Option(help="The .mat file itself (image paths are relative to its "
                                                  "folder unless --root is given).")] = None,
    rules: Annotated[Rules, typer.Option(case_sensitive=False, help="ssrnet: drop second faces scored > 0; "
                                         "aec: drop any second face.")] = Rules.ssrnet,
    min_score: Annotated[float, typer.Option("--min-score", help="Drop rows with face_score below this.")] = 1.0,
    out: Annotated[Path | None, typer.Option(help="CSV of kept rows. Default: data/<db>_filtered.csv.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Filter IMDB or WIKI metadata (.mat) with the SSR-Net or AEC rules and write the kept rows as CSV.

    Age = photo_taken - birth year (from the MATLAB datenum dob), one less for births from July on.
    Rules, in order: face_score < --min-score; second face; age outside 0..100; unknown gender.

    Example: agecompact filter --db wiki --root demo
    """
    from agecompact.console import print_json, stdout_console
    from agecompact.data.imdbwiki import run_filter

    summary = run_filter(db.value, root=root, mat=mat, rules=rules.value, min_score=min_score, out=out)
    if json_:
        print_json(summary)
        return
    from rich.table import Table

    table = Table(title=f"{db.value}.mat: {rules.value} rules (min score {min_score:g})")
    table.add_column("rule")
    table.add_column("drops")
    table.add_column("dropped", justify="right")
    table.add_column("remaining", justify="right")
    table.add_row("(all rows)", "", "", f"{summary['total']:,}")
    for step in summary["steps"]:
        table.add_row(step["rule"], step["description"], f"{step['dropped']:,}", f"{step['remaining']:,}")
    console = stdout_console()
    console.print(table)
    console.print(f"kept {summary['kept']:,} of {summary['total']:,} rows -> {summary['csv']}")
