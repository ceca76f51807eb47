"""``agecompact fetch``: download datasets, released weights and detectors, or generate the demo data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors


@app.command(no_args_is_help=False)
@handle_errors
def fetch(
    names: Annotated[list[str] | None, typer.Argument(help="What to fetch (see --list), e.g. demo, wiki, "
                                                           "ssrnet-wiki, yunet.", show_default=False)] = None,
    list_: Annotated[bool, typer.Option("--list", help="Show everything that can be fetched.")] = False,
    dest: Annotated[Path | None, typer.Option(help="Folder to put it in (datasets: data/, demo: demo/, "
                                                   "weights: the .h5 download folder).")] = None,
    url: Annotated[str | None, typer.Option(help="Mirror URL to download from instead (http, https or "
                                                 "file://); a known checksum is still verified.")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", metavar="HEX", help="With --url: the mirror's "
                                               "sha256, to accept a build that differs from the published "
                                               "one on purpose (the default stays strict).",
                                               show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Download / regenerate even if present.")] = False,
    count: Annotated[int | None, typer.Option(min=1, help="demo: number of images (default 3200).")] = None,
    seed: Annotated[int, typer.Option(help="demo: random seed (same seed, same files).")] = 0,
    keep_archive: Annotated[bool, typer.Option("--keep-archive", help="imdb/wiki: keep the .tar after "
                                                                      "extracting it.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """Download a dataset, released weights or a face detector (resumable; weights and detector checksum-verified, archives checked when extracted), or
    generate the offline demo dataset.

    Examples:

        agecompact fetch --list

        agecompact fetch demo                 # synthetic WIKI-layout data in demo/wiki_crop

        agecompact fetch ssrnet-wiki yunet    # then --model ssrnet-wiki works offline

        agecompact fetch wiki --url file:///mnt/mirror/wiki_crop.tar

        agecompact fetch ssrnet-wiki --url https://mirror/ssrnet.h5 --sha256 HEX   # a different build, on purpose
    """
    from agecompact.console import print_json, stdout_console
    from agecompact.errors import UsageError
    from agecompact.fetch.sources import get_source, sources

    if list_ or not names:
        rows = [_describe(s) for s in sources().values()] + _zoo_rows()
        if json_:
            print_json(rows)
        else:
            stdout_console().print(_table(rows))
            if not list_:
                stdout_console().print("Fetch one with `agecompact fetch NAME`.")
        return
    if url is not None and len(names) > 1:
        raise UsageError("--url needs exactly one NAME")
    from agecompact.fetch.fetcher import fetch as fetch_one
    from agecompact.zoo import entries as zoo_entries

    shipped = [n for n in names if n in zoo_entries()]
    selected = [get_source(n) for n in names if n not in shipped]
    reports = [{"name": n, "status": "present", "path": str(zoo_entries()[n].path), "shipped": True}
               for n in shipped]
    for r in reports:
        if not json_:
            _print_report(r)
    for source in selected:
        report = fetch_one(source, dest=dest, url=url, force=force, quiet=quiet, count=count, seed=seed,
                           keep_archive=keep_archive, sha256=sha256)
        reports.append(report)
        if not json_:
            _print_report(report)
    if json_:
        print_json(reports if len(reports) > 1 else reports[0])


def _zoo_rows() -> list[dict]:
    """The models shipped inside the package: nothing to download, listed so users find them."""
    from agecompact.zoo import entries

    return [{"name": e.name, "kind": "zoo model", "description": f"{e.arch}: {e.description} (shipped; "
             f"{e.info.get('num_params', 0):,} values)", "url": None, "size": e.info.get("bytes"),
             "sha256": e.sha256, "licence": "; ".join(e.info.get("datasets", {}).values()),
             "destination": str(e.path)} for e in entries().values()]


def _describe(source) -> dict:
    return {"name": source.name, "kind": source.kind, "description": source.description, "url": source.url,
            "size": source.size, "sha256": source.sha256, "licence": source.licence,
            "destination": str(source.destination())}


def _table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="agecompact fetch targets")
    for col in ("name", "kind", "size", "sha256", "goes to", "description"):
        table.add_column(col, overflow="fold", no_wrap=col in ("name", "kind"))
    for r in rows:
        size = f"{r['size'] / 1024:,.0f} KiB" if r["size"] else "-"
        sha = f"{r['sha256'][:12]}…" if r["sha256"] else "-"
        table.add_row(r["name"], r["kind"], size, sha, r["destination"], r["description"])
    return table


def _print_report(report: dict) -> None:
    from agecompact.console import markup, stdout_console

    console = stdout_console()
    status, name, path = report["status"], report["name"], report["path"]
    if status == "manual":
        console.print(markup("[bold]{}[/]: {}", name, report["instructions"]))
        if report.get("present"):
            console.print(f"{path} already exists.")
    elif status == "present" and report.get("shipped"):
        console.print(f"{name}: shipped inside the package ({path}); nothing to fetch")
    elif status == "present":
        console.print(f"{name}: already present at {path} (use --force to fetch again)")
    elif status == "generated":
        console.print(f"{name}: generated {report['count']} images (seed {report['seed']}) in {path}")
        console.print(f"next: agecompact filter --db wiki --root {Path(path).parent}  (then `agecompact preprocess "
                      f"--db wiki --root {Path(path).parent}`)")
    else:
        console.print(f"{name}: fetched and verified -> {path}")
