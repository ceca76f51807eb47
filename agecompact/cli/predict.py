"""``agecompact predict``: find faces, crop them as in training, estimate ages, draw the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, handle_errors
from agecompact.cli._choices import BACKEND_METAVAR, TTA, Detector, backend_option

SUMMARY_ROWS = 50


@app.command()
@handle_errors
def predict(
    inputs: Annotated[list[Path] | None, typer.Argument(
        help="Images, folders (searched for images and videos) or videos (.mp4, .avi, ...); 0, 1, ... "
        "for a camera (as --camera).", metavar="INPUT", show_default=False)] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Age model: a model file, a run folder, a Keras .h5, an .onnx from "
        "`agecompact export`, a pretrained name (e.g. ssrnet-wiki after `agecompact fetch ssrnet-wiki`) "
        "or a zoo model.")] = "default",
    gender_model: Annotated[str | None, typer.Option(
        "--gender-model", help="Also estimate gender with this SSR-Net gender model.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write annotated copies here (names mirror the inputs).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON line per face on stdout.")] = False,
    csv_out: Annotated[Path | None, typer.Option(
        "--csv", help="Write one CSV row per face here (file, frame, face, x, y, w, h, score, age, "
        "age_std, gender, gender_score).", show_default=False)] = None,
    camera: Annotated[int | None, typer.Option(
        "--camera", min=0, help="Estimate on webcam N: a live window where a display exists, else annotated "
        "frames in --out. Stop with q, Esc or Ctrl-C.", show_default=False)] = None,
    max_frames: Annotated[int, typer.Option(
        "--frames", min=0, help="Camera: stop after this many frames (0: until stopped).")] = 0,
    detector: Annotated[Detector, typer.Option(case_sensitive=False,
        help="auto (YuNet if its model is available, else Haar), yunet, haar, or none for "
        "already-cropped faces.")] = Detector.auto,
    detector_model: Annotated[Path | None, typer.Option(
        help="YuNet ONNX file (default: the one `agecompact fetch yunet` stores).")] = None,
    min_score: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Minimum YuNet detection score.")] = 0.8,
    margin: Annotated[float | None, typer.Option(
        min=0.0, help="Override the crop margin stored in the model file (fraction of the box per side).",
        show_default="from the model")] = None,
    color_order: Annotated[str | None, typer.Option(metavar="BGR|RGB",
        help="Override the channel order stored in the model file (BGR or RGB).",
        show_default="from the model")] = None,
    every: Annotated[int, typer.Option(min=1, help="Videos: estimate on every Nth frame.")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Faces per forward pass.")] = 64,
    backend: Annotated[str, typer.Option(metavar=BACKEND_METAVAR, callback=backend_option,
        help="Inference backend: auto (JAX on an accelerator, else onnxruntime if installed, else JAX), "
        "jax or onnx.")] = "auto",
    quantize: Annotated[str | None, typer.Option(
        "--quantize", metavar="int8", help="int8: run the statically quantised graph on onnxruntime (built once per weights and cached "
        "beside the float export; see `agecompact export --quantize`).")] = None,
    tta: Annotated[TTA, typer.Option(case_sensitive=False,
        help="Test-time augmentation: flip = average each face with its mirror image (twice the compute).")
    ] = TTA.none,
    strict: Annotated[bool, typer.Option(
        help="Fail (exit 3) if any input is unreadable, or (exit 4) if any image has no face.")] = False,
    recursive: Annotated[bool, typer.Option(help="Search folders recursively.")] = True,
    resume: Annotated[bool, typer.Option(
        "--resume", help="With --out: skip inputs whose annotated copy is already there (finishes an "
        "interrupted run; their JSON lines are not printed again, so append: >> faces.jsonl).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or notes on stderr.")] = False,
) -> None:
    """Estimate the age of every face in images, folders, videos or a camera (--camera N, or INPUT 0).

    Records go to stdout with --json (one line per face) and to a file with --csv (one row per face);
    age_std is the spread of the model's own age distribution, gender_score P(male).

    Faces are cropped the way the model's training crops were made (margin, colour order and input size
    come from the model file). C3AE context models get three crops (outer, middle, inner) built around YuNet's
    nose landmark; with Haar or --detector none they get the single margin crop three times. Exit codes: 0 done (bad files among good ones are reported on stderr and
    skipped; images without faces are reported with 0 faces), 2 bad option, 3 model or inputs missing or
    nothing readable (or any bad input with --strict), 4 an image without a face with --strict.
    """
    from agecompact.console import err_console, make_progress
    from agecompact.errors import InputError, NoFaceError, UsageError
    from agecompact.fileio import check_replaceable
    from agecompact.inference import resolve_backend
    from agecompact.predict.camera import camera_index
    from agecompact.predict.inputs import discover

    detector = str(detector)
    resolve_backend(backend)  # an unknown or unavailable backend fails here, before any work
    from agecompact.export.quantize import check_mode
    from agecompact.inference.tta import check_tta

    quantize, tta = check_mode(quantize), check_tta(tta)
    if quantize is not None and resolve_backend(backend) != "onnx":
        raise UsageError(f"--quantize {quantize} runs on onnxruntime: use --backend onnx (or auto on a CPU)")
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    inputs = list(inputs or [])
    if camera is None and len(inputs) == 1 and camera_index(str(inputs[0])) is not None:
        camera, inputs = camera_index(str(inputs[0])), []
    if camera is not None and inputs:
        raise UsageError("give either INPUT files or --camera, not both")
    if camera is None and not inputs:
        raise UsageError("nothing to do: give INPUT files or folders, or --camera N")
    if csv_out is not None:
        check_replaceable(csv_out)
        if any(csv_out.resolve() == p.resolve() for p in inputs):
            raise UsageError(f"--csv {csv_out} would overwrite an input")
    if camera is not None:
        return _camera(camera, model=model, gender_model=gender_model, out=out, json_out=json_out,
                       csv_out=csv_out, detector=detector, detector_model=detector_model, min_score=min_score,
                       margin=margin, color_order=color_order, every=every, batch_size=batch_size,
                       backend=backend, max_frames=max_frames, quiet=quiet, quantize=quantize, tta=tta)

    items, problems = discover(inputs, recursive=recursive)
    if not items:
        if len(problems) == 1:
            raise InputError(f"{problems[0].path}: {problems[0].message}")
        raise InputError(f"nothing to process: {'; '.join(f'{p.path}: {p.message}' for p in problems)}")

    if out is not None:
        from agecompact.predict.run import output_path

        inputs_by_path = {it.path.resolve(): it.path for it in items}
        clash = next((inputs_by_path[o] for o in (output_path(out, it).resolve() for it in items)
                      if o in inputs_by_path), None)
        if clash is not None:
            raise UsageError(f"--out {out} would overwrite the input {clash}; choose another folder")

    def note(message: str) -> None:
        if not quiet:
            err_console.print(message, markup=False, soft_wrap=True)

    if resume:
        if out is None:
            raise UsageError("--resume needs --out: it skips inputs whose annotated copy is already there")
        todo = [it for it in items if not output_path(out, it).exists()]  # copies appear only when complete
        if len(todo) < len(items):
            note(f"--resume: {len(items) - len(todo)} of {len(items)} input(s) already done in {out}")
        if not todo:
            return
        items = todo

    def warn(path, message: str) -> None:
        text = message if message.startswith(str(path)) else f"{path}: {message}"
        err_console.print(f"skipped: {text}", markup=False, soft_wrap=True)

    for p in problems:
        warn(p.path, p.message)

    from agecompact.predict import PredictRun
    from agecompact.predict.csvout import CsvRows
    from agecompact.predict.run import count_work

    predictor = _predictor(model, gender_model, detector, detector_model, min_score, margin, color_order,
                           backend, batch_size, note, quantize=quantize, tta=tta)
    rows = CsvRows() if csv_out is not None else None
    single = len(items) == 1 and not problems
    with predictor, make_progress(quiet=quiet, transient=True) as progress:
        task = progress.add_task("predict", total=count_work(items))
        run = PredictRun(
            predictor, out_dir=out, every=every, on_record=_record_sink(json_out, rows),
            on_problem=None if single else (lambda p: warn(p.path, p.message)),
            advance=lambda n: progress.advance(task, n),
        )
        tally = run(items)
    problems += tally.problems
    if rows is not None and tally.outcomes:
        rows.write(csv_out)

    if not tally.outcomes:
        if len(problems) == 1:
            raise InputError(problems[0].message if problems[0].message.startswith(str(problems[0].path))
                             else f"{problems[0].path}: {problems[0].message}")
        raise InputError(f"none of the {len(problems)} inputs could be processed")
    failure: Exception | None = None
    faceless = tally.faceless()
    if strict and problems:
        failure = InputError(f"{len(problems)} input(s) could not be processed (--strict)")
    elif strict and faceless:
        failure = NoFaceError(f"no face found in {len(faceless)} input(s), e.g. {faceless[0].item.path} (--strict)")
    if not json_out:
        _print_summary(tally, predictor, out)
    elif failure is None:
        note(_summary_line(tally, predictor))
    if failure is not None:
        raise failure


def _predictor(model, gender_model, detector, detector_model, min_score, margin, color_order, backend,
               batch_size, note, quantize=None, tta="none"):
    from agecompact.faces.detector import create_detector
    from agecompact.predict import Predictor
    from agecompact.predict.models import load_predict_model

    age_model = load_predict_model(model)  # lazy: JAX only if the engine needs it (no cached ONNX export)
    sex_model = load_predict_model(gender_model, flag="--gender-model") if gender_model else None
    kind = "yunet" if detector == "auto" and detector_model is not None else detector
    face_detector = create_detector(kind, model_path=detector_model, score_threshold=min_score)
    predictor = Predictor(age_model, detector=face_detector, gender_model=sex_model, backend=backend,
                          batch_size=batch_size, margin=margin, color_order=color_order, min_score=min_score,
                          quantize=quantize, tta=tta)
    if detector == "auto" and face_detector.name == "haar":
        note("note: YuNet model not found (run `agecompact fetch yunet` or pass --detector-model); "
             "using OpenCV's Haar cascade")
    return predictor


def _record_sink(json_out: bool, rows):
    from agecompact.console import print_jsonl

    sinks = ([print_jsonl] if json_out else []) + ([rows] if rows is not None else [])
    if not sinks:
        return None

    def sink(rec) -> None:
        for s in sinks:
            s(rec)

    return sink


def _camera(index: int, *, model, gender_model, out, json_out, csv_out, detector, detector_model, min_score,
            margin, color_order, every, batch_size, backend, max_frames, quiet, quantize=None, tta="none") -> None:
    from agecompact.console import err_console, make_progress
    from agecompact.errors import UsageError
    from agecompact.predict.camera import display_available, run_camera
    from agecompact.predict.csvout import CsvRows

    def note(message: str) -> None:
        if not quiet:
            err_console.print(message, markup=False, soft_wrap=True)

    show = display_available()
    if not show and out is None and not (json_out or csv_out):
        raise UsageError("no display for a live window: pass --out to save annotated frames (or --json / --csv)")
    predictor = _predictor(model, gender_model, detector, detector_model, min_score, margin, color_order,
                           backend, batch_size, note, quantize=quantize, tta=tta)
    rows = CsvRows() if csv_out is not None else None
    with predictor, make_progress(quiet=quiet, transient=True) as progress:
        task = progress.add_task(f"camera {index}", total=max_frames or None)
        tally = run_camera(predictor, index, out_dir=out, show=show, every=every, max_frames=max_frames,
                           on_record=_record_sink(json_out, rows), advance=lambda n: progress.advance(task, n))
    if rows is not None:
        rows.write(csv_out)
    note(_summary_line(tally, predictor) + (f"; annotated frames in {out}" if out is not None else ""))


def _summary_line(tally, predictor) -> str:
    parts = [f"{tally.images} image(s)"] if tally.images or not tally.frames else []
    if tally.frames:
        parts.append(f"{tally.frames} video frame(s)")
    text = f"{', '.join(parts)}, {tally.faces} face(s) in {tally.seconds:.1f} s"
    done = tally.images + tally.frames
    if tally.seconds > 0 and done:
        text += f" ({done / tally.seconds:.1f}/s)"
    text += f"; detector {predictor.detector.name}, backend {predictor.backend}, model {predictor.age.model.name}"
    if tally.problems:
        text += f"; {len(tally.problems)} skipped"
    return text


def _print_summary(tally, predictor, out: Path | None) -> None:
    from rich.table import Table

    from agecompact.console import stdout_console

    table = Table(title=f"ages by {predictor.age.model.name} (margin {predictor.age.crop.margin:g}, "
                        f"{predictor.age.crop.color_order})")
    table.add_column("file", overflow="fold")
    table.add_column("faces", justify="right")
    table.add_column("age" + (" / gender" if predictor.gender else ""))
    for outcome in tally.outcomes[:SUMMARY_ROWS]:
        faces = [f for frame in outcome.faces for f in frame]
        name = str(outcome.item.path)
        if outcome.frames is not None:
            name += f" ({len(outcome.frames)} frames)"
            ages = f"{min(f.age for f in faces):.0f}–{max(f.age for f in faces):.0f}" if faces else ""
        else:
            ages = ", ".join(f"{f.age:.0f}" + (f" {f.gender}" if f.gender else "") for f in faces)
        table.add_row(name, str(len(faces)), ages)
    if len(tally.outcomes) > SUMMARY_ROWS:
        table.add_row(f"… {len(tally.outcomes) - SUMMARY_ROWS} more", "", "")
    console = stdout_console()
    console.print(table)
    console.print(_summary_line(tally, predictor), markup=False)
    if out is not None:
        console.print(f"annotated copies in {out}", markup=False)
