"""``agecompact preprocess``: turn a dataset into the 64x64 BGR uint8 ``.npz`` training schema."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors
from agecompact.cli._choices import FaceDetector as Detector


class Db(StrEnum):
    imdb = "imdb"
    wiki = "wiki"
    megaage = "megaage"
    utkface = "utkface"
    aaf = "aaf"


class Method(StrEnum):
    ssrnet = "ssrnet"
    aec = "aec"
    detect = "detect"


@app.command()
@handle_errors
def preprocess(
    db: Annotated[Db, typer.Option("--db", case_sensitive=False, help="Dataset to pack.")],
    root: Annotated[Path | None, typer.Option(help="Dataset folder. Defaults: data/<db>_crop (imdb, wiki), "
                                                   "data/megaage_asian, data/UTKFace, "
                                                   "'data/All-Age-Faces Dataset'.")] = None,
    method: Annotated[Method, typer.Option(case_sensitive=False, help="ssrnet: resize the dataset's own crops; "
                                           "aec: re-detect one face and crop it tightly; detect: the largest "
                                           "detected face with --margin, exactly as predict crops.")] = Method.ssrnet,
    margin: Annotated[float | None, typer.Option(help="detect: margin per side as a fraction of the box "
                                                 "(default: the dataset's own, e.g. 0.1 UTKFace).")] = None,
    holdout: Annotated[float | None, typer.Option(help="Datasets without an official split: mark this fraction "
                                                  "as a held-out split, chosen by a hash of each file name "
                                                  "(stable across machines and file orders).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output .npz. Default: data/<db>.npz.")] = None,
    csv: Annotated[Path | None, typer.Option(help="imdb/wiki: the filter CSV to read. Default: "
                                                  "data/<db>_filtered.csv (made by `filter` if missing).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Decoding threads. Default: all cores.")] = None,
    resume: Annotated[bool, typer.Option("--resume/--restart", help="Continue an interrupted run, or start "
                                                                    "over.")] = True,
    detector: Annotated[Detector, typer.Option(case_sensitive=False, help="aec/detect: face detector (auto = YuNet if "
                                               "its file is available, else Haar).")] = Detector.auto,
    detector_model: Annotated[Path | None, typer.Option("--detector-model", help="aec: YuNet .onnx file "
                                                        "(default: the one `agecompact fetch yunet` gets).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or notes.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="The sidecar summary as JSON on stdout.")] = False,
) -> None:
    """Crop, resize and pack IMDB, WIKI, MegaAge-Asian, UTKFace or All-Age-Faces into an .npz.

    Writes image (uint8 N x 64 x 64 x 3, BGR), age, gender (1 male, 0 female, -1 unknown), img_size and,
    for datasets with official splits (megaage, aaf), split; plus <out>.json with counts, skipped files,
    margin and colour order. Interrupted runs resume from <out>.partial/.

    Examples:

        agecompact preprocess --db wiki --root demo

        agecompact preprocess --db utkface --root ../shared/datasets/UTKFace --out data/utkface.npz
    """
    from agecompact.data.build import build

    summary = build(db.value, root=root, method=method.value, out=out, csv=csv, workers=workers,
                    restart=not resume, quiet=quiet, detector=detector.value, detector_model=detector_model,
                    margin=margin, holdout=holdout)
    if json_:
        from agecompact.console import print_json

        print_json({k: v for k, v in summary.items() if k not in ("skipped_files", "unlabelled_files")}
                   | {"skipped_files": summary.get("skipped_files", {}),
                      "unlabelled_files": summary.get("unlabelled_files", [])})
        return
    _print_summary(summary)


def _print_summary(s: dict) -> None:
    from rich.table import Table

    from agecompact.console import stdout_console
    from agecompact.data.locate import sidecar_path

    table = Table(title=f"preprocess {s['db']} ({s['method']})", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row("images written", f"{s['count']:,} of {s['listed']:,} listed")
    for reason, n in s.get("skipped", {}).items():
        table.add_row(f"skipped: {reason}", f"{n:,}")
    if s.get("unlabelled_files"):
        table.add_row("unlabelled files", f"{len(s['unlabelled_files']):,}")
    if s.get("split_counts"):
        table.add_row("split", ", ".join(f"{k} {v:,}" for k, v in s["split_counts"].items()))
    if s.get("age_stats"):
        a = s["age_stats"]
        table.add_row("age", f"{a['min']}..{a['max']} (mean {a['mean']})")
    if s.get("detector"):
        table.add_row("detector", s["detector"])
    table.add_row("margin", f"{s['margin']} ({s.get('margin_note', '')})")
    if s.get("status") == "up to date":
        table.add_row("status", "up to date (inputs unchanged; --restart to redo)")
    else:
        rate = s.get("images_per_second")
        table.add_row("time", f"{s['seconds']:.1f} s" + (f", {rate:,.0f} images/s" if rate else ""))
    table.add_row("output", f"{s['path']} (+ {sidecar_path(s['path']).name})")
    stdout_console().print(table)
