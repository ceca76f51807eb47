"""``agecompact train``: train a model with its published recipe."""

from __future__ import annotations

import contextlib
import os
import signal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agecompact.cli._app import app, fail, handle_errors
from agecompact.cli._choices import DTYPE_METAVAR, TTA, ArchName

RUNS_DIR = Path("runs")


class RecipeName(StrEnum):
    paper = "paper"
    modern = "modern"


class Schedule(StrEnum):
    step = "step"
    constant = "constant"
    cosine = "cosine"
    plateau = "plateau"


def _db_label(db: str) -> str:
    p = Path(db)
    return p.stem if p.suffix == ".npz" else p.name


def _next_free(base: Path) -> Path:
    """``base`` if it is free (missing or empty), else ``base-2``, ``base-3``, ..."""
    if not base.exists() or (base.is_dir() and not any(base.iterdir())):
        return base
    i = 2
    while True:
        cand = base.with_name(f"{base.name}-{i}")
        if not cand.exists():
            return cand
        i += 1


def _check_explicit_out(out: Path, *, exist_ok: bool) -> None:
    """An explicit ``--out`` is used as given, never renumbered: a file (or a link, FIFO, ...) is refused, a
    folder that holds anything is refused unless ``--exist-ok`` starts it over (``--resume`` continues it)."""
    from agecompact.errors import UsageError

    if out.is_symlink() and not out.exists():
        raise UsageError(f"--out {out} is a dangling link; refusing to train into it")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; refusing to train into it")
    if out.is_dir() and not exist_ok and any(out.iterdir()):
        raise UsageError(f"--out {out} already holds files; pass --resume to continue the run in it or "
                         "--exist-ok to start it over")


def _latest_existing(base: Path) -> Path | None:
    found = [base] if base.is_dir() else []
    found += sorted((p for p in base.parent.glob(f"{base.name}-*") if p.name[len(base.name) + 1:].isdigit()),
                    key=lambda p: int(p.name[len(base.name) + 1:]))
    return found[-1] if found else None


def _init_distributed() -> None:
    """``jax.distributed.initialize()``: SLURM, Open MPI, Kubernetes and Cloud TPU are detected by JAX;
    elsewhere set JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID."""
    import jax

    from agecompact.errors import UsageError

    kwargs = {}
    try:
        for env, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
            if os.environ.get(env):
                kwargs[key] = int(os.environ[env])
    except ValueError:
        raise UsageError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers") from None
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts: cross-process all-reduce
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as e:
        raise UsageError(f"--distributed: jax.distributed.initialize() failed: {e}") from None


def _same_workdir_everywhere(workdir: Path) -> Path:
    """Process 0's run folder for every process: orbax's multi-host checkpoints wait on one shared folder, and
    the default ``runs/<model>-<db>-N`` numbering differs on a host that looks after process 0 created it."""
    import jax

    if jax.process_count() == 1:
        return workdir
    import numpy as np
    from jax.experimental import multihost_utils

    encoded = os.fsencode(workdir)
    buf = np.zeros(4096, np.uint8)
    if len(encoded) > buf.size:
        raise typer.BadParameter("run folder path too long for --distributed", param_hint="--out")
    buf[:len(encoded)] = np.frombuffer(encoded, np.uint8)
    chosen = Path(os.fsdecode(bytes(np.asarray(multihost_utils.broadcast_one_to_all(buf))).rstrip(b"\0")))
    if chosen != workdir:
        from agecompact.console import log

        log(f"process {jax.process_index()}: using process 0's run folder {chosen} (not {workdir})", style="yellow")
    return chosen


def _counts(text: str | None) -> list[int] | None:
    """``--db-repeat 1,3`` -> [1, 3]."""
    if text is None:
        return None
    from agecompact.errors import UsageError

    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--db-repeat {text!r}: give whole numbers separated by commas, e.g. 1,3") from None


@app.command()
@handle_errors
def train(
    db: Annotated[str | None, typer.Option("--db", help="Dataset: a name in data/ (see `preprocess`) or a .npz path; "
                                           "several joined by commas train on all of them (each keeps its own "
                                           "split rule).", show_default=False)] = None,
    db_repeat: Annotated[str | None, typer.Option("--db-repeat", metavar="N,N,...", help="With several --db "
                                                  "files: how often each one's training rows appear per epoch, "
                                                  "e.g. 1,3 to oversample a small second dataset.",
                                                  show_default=False)] = None,
    recipe: Annotated[RecipeName | None, typer.Option(case_sensitive=False, help="paper: the family's published "
                                                      "recipe (default); modern: AdamW, warm-up + cosine, weight "
                                                      "EMA, colour jitter and random erasing.",
                                                      show_default=False)] = None,
    model: Annotated[ArchName | None, typer.Option(case_sensitive=False, help="Architecture (default: ssrnet).",
                                                     show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Epochs (default: the model's recipe: 90 SSR-Net/AEC, "
                                                              "160 C3AE).", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Batch size (default: SSR-Net/AEC 128 on imdb, else 50; C3AE 50).",
                                                   show_default=False)] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Initial learning rate (default: 1e-3; C3AE 2e-3).",
                                             show_default=False)] = None,
    schedule: Annotated[Schedule | None, typer.Option(case_sensitive=False, help="Learning-rate schedule "
                                                      "(default: step (x0.1 at 1/3 and 2/3) for SSR-Net/AEC, "
                                                      "plateau for C3AE).", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for init, split, order, augmentation, dropout "
                                                  "(default: 0).", show_default=False)] = None,
    val_fraction: Annotated[float | None, typer.Option(help="Random validation share; by default the dataset's "
                                                            "own split, else 0.2.", show_default=False)] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="SSR-Net augmentation "
                                                 "(default: on).", show_default=False)] = None,
    init_from: Annotated[str | None, typer.Option(help="Start from these weights (model file, run folder, Keras .h5 or "
                                                       "pretrained name), e.g. IMDB -> WIKI.",
                                                  show_default=False)] = None,
    teacher: Annotated[str | None, typer.Option(help="Distil from this trained age model (zoo name, model file or "
                                                     "run folder): its ages on the faces become a second target.",
                                                show_default=False)] = None,
    distill_weight: Annotated[float | None, typer.Option(help="With --teacher: the teacher's share of the loss, "
                                                              "0..1 (default: 0.5).", show_default=False)] = None,
    teacher_tta: Annotated[TTA | None, typer.Option(case_sensitive=False, help="With --teacher: flip (default) "
                                                    "averages its ages on each face and its mirror.",
                                                    show_default=False)] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", metavar=DTYPE_METAVAR, help="Compute dtype: float32 (default) or bfloat16 "
                                              "(mixed precision, for GPUs).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its latest "
                                         "checkpoint.")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/<model>-<db>, numbered if taken; an "
                                                  "explicit --out is used as given, never renumbered).",
                                             show_default=False)] = None,
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Reuse --out even if it holds a run (starts it "
                                           "over).")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="JSON or TOML file of options (keys as in "
                                                "config.json); command-line options win.",
                                                show_default=False)] = None,
    distributed: Annotated[bool, typer.Option("--distributed", help="Multi-host: call jax.distributed.initialize() "
                                              "first (cluster settings from the environment); run the same "
                                              "command on every host.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-epoch lines.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the final metrics as JSON on stdout.")] = False,
) -> None:
    """Train SSR-Net, C3AE or AEC on a preprocessed .npz, resumably, into a run folder.

    Examples:

      agecompact train --db wiki --model ssrnet
      agecompact train --db data/utkface.npz --epochs 15 --out runs/utk
      agecompact train --resume --out runs/utk
    """
    from agecompact.console import err_console, native_stdout_to_stderr, print_json
    from agecompact.errors import UsageError
    from agecompact.training.config import build_config, load_config_file
    from agecompact.training.loop import RESUMABLE_OVERRIDES, load_run_config, train_and_evaluate

    def log(message: str, style: str | None = None) -> None:
        err_console.print(message, style=style, soft_wrap=True)

    with contextlib.ExitStack() as native_output:
        if distributed:
            native_output.enter_context(native_stdout_to_stderr())
            _init_distributed()
        overrides = {"db": db, "db_repeat": _counts(db_repeat), "model": model.value if model else None, "recipe": recipe.value if recipe else None,
                     "epochs": epochs, "batch_size": batch_size,
                     "lr": lr, "schedule": schedule.value if schedule else None, "seed": seed,
                     "val_fraction": val_fraction, "augment": augment, "init_from": init_from, "compute_dtype": dtype,
                     "teacher": teacher, "distill_weight": distill_weight,
                     "teacher_tta": teacher_tta.value if teacher_tta else None}
        cfg = build_config(config, **overrides)
        if resume:
            if out is None:
                if not cfg.db:
                    raise UsageError("--resume needs --out RUN_FOLDER (or --db/--model to find runs/<model>-<db>)")
                out = _latest_existing(RUNS_DIR / f"{cfg.model}-{_db_label(cfg.db)}")
                if out is None:
                    raise UsageError("no run to resume; pass --out RUN_FOLDER")
            workdir = out
        else:
            if not cfg.db:
                raise UsageError("missing --db (a dataset name in data/ or a .npz path)")
            if out is not None:
                _check_explicit_out(out, exist_ok=exist_ok)
                workdir = out
            else:
                base = RUNS_DIR / f"{cfg.model}-{_db_label(cfg.db)}"
                workdir = base if exist_ok else _next_free(base)
        if distributed:
            workdir = _same_workdir_everywhere(workdir)
        if resume:
            load_run_config(workdir)  # fails early with one line when it is not a run folder
            fixed = ["--" + k.replace("_", "-") for k, v in overrides.items()
                     if v is not None and k not in RESUMABLE_OVERRIDES]
            if config is not None:  # a file's keys are said too, never dropped silently
                fixed += [f"{k} (in {config.name})" for k in load_config_file(config) if k not in RESUMABLE_OVERRIDES]
            if fixed:
                log(f"--resume keeps the run's settings (only {', '.join(RESUMABLE_OVERRIDES)} may change); "
                    f"ignoring {', '.join(fixed)}", style="yellow")

        previous = signal.getsignal(signal.SIGTERM)

        def _terminate(signum, frame):  # a kill leaves a resumable run, like Ctrl-C
            raise KeyboardInterrupt

        try:
            signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread (e.g. some test runners): keep the default
            previous = None
        try:
            summary = train_and_evaluate(cfg, workdir, resume=resume, quiet=quiet,
                                         log=None if quiet else log)
        except KeyboardInterrupt:
            fail(f"interrupted; the run is resumable: agecompact train --resume --out {workdir}", 130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    if json_out:
        print_json(summary)
    elif not quiet and summary["best_val_mae"] is not None:
        log(f"run folder: {summary['run']}  best val MAE {summary['best_val_mae']:.3f} "
            f"(epoch {summary['best_epoch']})")
