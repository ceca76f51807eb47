"""``agecompact eval``: MAE, CA(3), CA(5) and friends of a model on a dataset split."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors
from agecompact.cli._choices import BACKEND_METAVAR, TTA, Detector, backend_option


class SplitName(StrEnum):
    auto = "auto"
    val = "val"
    test = "test"
    train = "train"
    all = "all"


@app.command("eval")
@handle_errors
def eval_(
    model: Annotated[str, typer.Option("--model", "-m", help="Model file, run folder, Keras .h5 or pretrained "
                                       "name.", show_default=False)],
    db: Annotated[str | None, typer.Option("--db", help="Dataset: a name in data/ or a .npz path; with --root, a "
                                           "dataset kind (utkface, aaf, megaage, wiki, imdb).",
                                           show_default=False)] = None,
    split: Annotated[SplitName, typer.Option(case_sensitive=False, help="Rows to evaluate: val (a run's "
                                             "validation rows), test (split==1), train, all; auto = val for a "
                                             "run, else test if the dataset has a split, else all.")
                     ] = SplitName.auto,
    backend: Annotated[str, typer.Option(metavar=BACKEND_METAVAR, callback=backend_option,
                                         help="Inference engine (ort / onnxruntime: onnx).")] = "auto",
    quantize: Annotated[str | None, typer.Option(
        "--quantize", metavar="int8", help="int8: run the statically quantised graph on onnxruntime (built once per weights and cached "
        "beside the float export; see `agecompact export --quantize`).")] = None,
    tta: Annotated[TTA, typer.Option(case_sensitive=False, help="Test-time augmentation: flip = average each "
                                     "face with its mirror image (twice the compute).")] = TTA.none,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 256,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write an error-by-age chart (PNG) here.",
                                              show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON result to this file.",
                                             show_default=False)] = None,
    photos: Annotated[bool, typer.Option("--photos", help="Score the original photos through detection and "
                                         "the model's own crop (the predict pipeline) instead of the 64x64 "
                                         "chips: the .npz rows' files, --root or --labels.")] = False,
    root: Annotated[Path | None, typer.Option(help="Photos: a dataset folder in its original layout (with "
                                              "--db KIND), or the folder --labels paths are relative to.",
                                              show_default=False)] = None,
    labels: Annotated[Path | None, typer.Option(help="Photos: a CSV with 'file' and 'age' columns.",
                                                show_default=False)] = None,
    detector: Annotated[Detector, typer.Option(case_sensitive=False, help="Photos: face detector (auto = YuNet "
                                               "if available, else Haar).")] = Detector.auto,
    detector_model: Annotated[Path | None, typer.Option("--detector-model", help="Photos: YuNet .onnx file.",
                                                        show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate a model (file, run, Keras .h5 or pretrained name) on a preprocessed dataset.

    A run folder's result is also saved as <run>/eval/<db>-<split>.json (read by `bench table`).

    Examples:

      agecompact eval --model runs/ssrnet-wiki --db wiki
      agecompact eval --model ssrnet-wiki --db data/utkface.npz --split all --json

      agecompact eval --model default --db data/utkface.npz --split test --photos

      agecompact eval --model default --db aaf --root "All-Age-Faces Dataset" --photos
    """
    from agecompact.console import make_progress, print_json, stdout_console
    from agecompact.errors import UsageError
    from agecompact.evaluation.evaluate import evaluate
    from agecompact.fileio import atomic_write_json

    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot must name a .png file, got {plot}")
    if quantize is not None and (photos or root is not None or labels is not None):
        raise UsageError("--quantize applies to .npz evaluation, not to --photos")
    if photos or root is not None or labels is not None:
        _eval_photos(model, db, split.value, root, labels, detector.value, detector_model, backend,
                     batch_size, json_out=json_out, out=out, quiet=quiet, tta=tta.value)
        return
    if db is None:
        raise UsageError("missing --db (a dataset name in data/ or a .npz path)")
    with make_progress(quiet=quiet or json_out, transient=True) as progress:
        result = evaluate(model, db, split=split.value, backend=backend, batch_size=batch_size,
                          progress=progress, quantize=quantize, tta=tta.value)
    summary = result.summary
    if out is not None:
        atomic_write_json(out, summary)
    if plot is not None and summary["task"] == "age":
        from agecompact.plotting import error_by_age

        error_by_age(result.pred, result.true, plot, title=f"{summary['model']} on {summary['dataset']['name']}")
    if json_out:
        print_json(summary)
        return
    stdout_console().print(_table(summary))


def _eval_photos(model, db, split, root, labels, detector, detector_model, backend, batch_size, *, json_out, out,
                 quiet, tta="none") -> None:
    from agecompact.console import make_progress, print_json, stdout_console
    from agecompact.errors import UsageError
    from agecompact.evaluation import photos as P
    from agecompact.fileio import atomic_write_json
    from agecompact.runfolder import is_run_folder

    if labels is not None:
        if db is not None:
            raise UsageError("give either --labels or --db, not both")
        photo_set = P.from_labels(labels, root)
    elif db is None:
        raise UsageError("--photos needs --db (a .npz, or a dataset kind with --root) or --labels")
    elif root is not None:
        photo_set = P.from_root(db, root, split)
    else:
        photo_set = P.from_npz(db, split, Path(model) if is_run_folder(model) else None)
    with make_progress(quiet=quiet or json_out, transient=True) as progress:
        summary = P.evaluate_photos(model, photo_set, detector=detector, detector_model=detector_model,
                                    backend=backend, batch_size=min(batch_size, 256), progress=progress, tta=tta)
    if out is not None:
        atomic_write_json(out, summary)
    if json_out:
        print_json(summary)
        return
    table = _table(summary)
    d = summary["detection"]
    table.add_row("faces found", f"{d['found']} of {d['photos']} photos ({d['rate']:.1%}, {d['detector']})")
    stdout_console().print(table)


def _table(summary: dict):
    from rich.table import Table

    m = summary["metrics"]
    ds = summary["dataset"]
    t = Table(title=f"{summary['model']} on {ds['name']} ({ds['split']}, {ds['count']} faces, {summary['backend']})")
    t.add_column("metric")
    t.add_column("value", justify="right")

    def fmt(v, digits=3):
        return "-" if v is None else f"{v:.{digits}f}"

    if summary["task"] == "gender":
        t.add_row("MAE (score)", fmt(m["mae"], 4))
        t.add_row("accuracy", fmt(m["accuracy"]))
    else:
        t.add_row("MAE", fmt(m["mae"]))
        t.add_row("CA(3)", fmt(m["ca3"]))
        t.add_row("CA(5)", fmt(m["ca5"]))
        t.add_row("RMSE", fmt(m["rmse"]))
        for label, d in m["mae_by_decade"].items():
            t.add_row(f"  MAE age {label}", f"{d['mae']:.3f} (n={d['count']})")
    t.add_row("count", str(m["count"]))
    return t
