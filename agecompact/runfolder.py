"""A training run's folder: every file name in it and its per-epoch records, in one place.

``agecompact train`` writes it (``training.loop``); ``load_model(run)``, ``eval`` (split, results) and
``bench table`` (results) read it through these names, so a rename cannot leave a reader behind::

    config.json     the resolved configuration (re-runnable with --config)
    env.json        package versions and devices
    split.json      how the data was split (method, seed, counts, index hashes, validation indices)
    teacher.json    with --teacher: the teacher, its file's sha256 and the sha256 of its ages
    metrics.jsonl   one EpochRecord per line; metrics.csv the same as a table (its columns: the record's)
    checkpoints/    orbax: the latest epoch (resume) and the best by validation MAE
    best.msgpack    model file of the best epoch; last.msgpack the latest epoch
    curves.png      training curves, written at the end
    eval/           ``agecompact eval`` results, one JSON per dataset and split
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agecompact.errors import InputError
from agecompact.fileio import atomic_write_text

CONFIG, ENV, SPLIT, METRICS, METRICS_CSV = "config.json", "env.json", "split.json", "metrics.jsonl", "metrics.csv"
CHECKPOINTS, BEST, LAST, CURVES, EVAL_DIR = "checkpoints", "best.msgpack", "last.msgpack", "curves.png", "eval"
TEACHER = "teacher.json"
MODEL_FILES = (BEST, LAST)  # what loading a run folder as a model opens, first found wins


@dataclass
class EpochRecord:
    """One line of ``metrics.jsonl``. ``epoch`` counts from 1, as on the console and in model headers."""

    epoch: int
    step: int
    lr: float
    train_loss: float
    train_mae: float
    val_mae: float
    val_ca3: float | None
    val_ca5: float | None
    val_rmse: float | None
    val_accuracy: float | None
    epoch_seconds: float
    images_per_second: float
    terms: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainSummary:
    """What ``train_and_evaluate`` returns and ``agecompact train --json`` prints (as a dict): the run, its
    best epoch and the last epoch's validation metrics (from its ``EpochRecord``)."""

    run: str
    model: str
    dataset: str
    epochs: int
    best_epoch: int | None
    best_val_mae: float | None
    val_mae: float | None
    val_ca3: float | None
    val_ca5: float | None
    val_rmse: float | None
    val_accuracy: float | None
    train_loss: float | None
    train_mae: float | None
    images_per_second: float | None
    n_train: int
    n_val: int
    seconds: float
    compile_seconds: float
    devices: int

    # the fields copied from the last EpochRecord
    FROM_LAST_EPOCH = ("val_mae", "val_ca3", "val_ca5", "val_rmse", "val_accuracy", "train_loss", "train_mae",
                       "images_per_second")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# metrics.csv: the record's scalar fields, in order (the loss terms stay in the JSON lines)
CSV_FIELDS = tuple(f.name for f in dataclasses.fields(EpochRecord) if f.name != "terms")


@dataclass
class EvalResult:
    """What ``agecompact eval`` prints with ``--json`` and keeps in a run's ``eval/<dataset>-<split>.json``;
    ``bench table`` reads these files back through ``read``. ``metrics`` is ``age_metrics`` (mae, ca3, ca5,
    rmse, count, mae_by_decade) or ``gender_metrics`` (mae, accuracy, count) as ``task`` says."""

    # every field has a default so that results written by older versions (or by hand) still read; the
    # readers need metrics.mae and dataset.name, which ``read`` checks
    model: str | None = None
    arch: str | None = None
    run: str | None = None
    model_path: str | None = None
    dataset: dict[str, Any] | None = None  # name, path (or root), split, count
    metrics: dict[str, Any] | None = None
    task: str = "age"
    backend: str | None = None
    tta: str = "none"
    created: str | None = None
    seconds: float | None = None
    mode: str = "chips"  # "chips" (the .npz crops) or "photos" (through detection, ``eval --photos``)
    detection: dict[str, Any] | None = None  # photos: detector, photos, found, unreadable, rate, margin

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        if doc["detection"] is None:
            del doc["detection"]
        return doc

    @property
    def mae(self) -> float:
        return float(self.metrics["mae"])

    @property
    def dataset_name(self) -> str:
        return str(self.dataset["name"]).lower()

    @classmethod
    def read(cls, path: str | Path) -> EvalResult:
        """An eval result file; a missing or foreign one is one input error."""
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            doc = json.loads(Path(path).read_text())
            result = cls(**{k: v for k, v in doc.items() if k in known})
            result.mae, result.dataset_name  # noqa: B018 -- the two fields every reader needs
        except FileNotFoundError:
            raise InputError(f"eval result not found: {path}") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise InputError(f"{path}: not an agecompact eval result (needs metrics.mae and dataset.name)") from None
        return result


def eval_result_path(run: Path, dataset: str, split: str) -> Path:
    return run / EVAL_DIR / f"{dataset}-{split}.json"


def is_run_folder(source: str | Path) -> bool:
    p = Path(source)
    return p.is_dir() and (p / CONFIG).is_file()


@dataclass
class SavedSplit:
    """``split.json``: how a run's data was split. ``dataset`` is ``{name, path, count}`` plus, for a run
    on several files, ``parts`` (each with its ``offset``); the hashes let a resume check its rows."""

    method: str  # "dataset" (the npz's split column), "random", or both joined by "+"
    seed: int
    val_fraction: float | None
    dataset: dict[str, Any]
    n_train: int
    n_val: int
    train_sha256: str
    val_sha256: str
    val_indices: list[int]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Any) -> SavedSplit:
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(d, dict) or any(k not in d for k in names) or not isinstance(d["dataset"], dict):
            raise ValueError(f"needs {', '.join(names)}")
        return cls(**{k: d[k] for k in names})


def read_split(run: Path) -> SavedSplit:
    """A run's ``split.json``; a missing or foreign file is one ``InputError``."""
    path = run / SPLIT
    try:
        return SavedSplit.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputError(f"{run}: no {SPLIT} in this run folder") from None
    except ValueError as e:
        raise InputError(f"{path}: unreadable ({e})") from None


def read_records(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / METRICS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a torn last line from a kill: ignore it
    return out


def write_records(workdir: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(workdir / METRICS, "".join(json.dumps(r) + "\n" for r in records))
    rows = [",".join(CSV_FIELDS)]
    for r in records:
        rows.append(",".join("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]))
                             for k in CSV_FIELDS))
    atomic_write_text(workdir / METRICS_CSV, "\n".join(rows) + "\n")


def clear_run(workdir: Path) -> None:
    """Remove what a previous run wrote into this folder (only our own files)."""
    for name in (CONFIG, ENV, SPLIT, METRICS, METRICS_CSV, BEST, LAST, CURVES):
        (workdir / name).unlink(missing_ok=True)
    shutil.rmtree(workdir / CHECKPOINTS, ignore_errors=True)
