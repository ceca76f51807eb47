"""Training configuration: one dataclass, the published recipes as defaults, files + CLI overrides.

Resolution order (later wins): the model's published recipe (``RECIPES``), a ``--config`` file (JSON or
TOML, keys = field names), then explicit command-line options. ``resolve`` fills every ``None`` so the
``config.json`` written into a run folder is complete and re-runnable.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agecompact.choices import COMPUTE_DTYPES, TTA_MODES
from agecompact.errors import InputError, UsageError
from agecompact.fieldtypes import typed_fields
from agecompact.models.families import FAMILIES

SCHEDULES = ("step", "constant", "cosine", "plateau")
RECIPE_NAMES = ("paper", "modern")
OPTIMIZERS = ("adam", "adamw")
AUGMENT_POLICIES = ("ssrnet", "strong")
SHEAR_UNITS = ("radians", "degrees")
LABEL_DISTRIBUTIONS = ("two_point", "gaussian")  # C3AE's KL target (training.losses.make_c3ae_loss)


@dataclass
class TrainConfig:
    """Everything that determines a run; ``None`` means "the model's published recipe"."""

    db: str = ""  # one .npz/name, or several joined by commas (each keeps its own split rule)
    model: str = "ssrnet"
    # "paper": the family's published recipe; "modern": AdamW, warm-up + cosine, an EMA of the weights
    # (used for validation and export), photometric augmentation and random erasing (see MODERN)
    recipe: str = "paper"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    schedule: str | None = None  # step | constant | cosine | plateau
    decay_epochs: list[int] | None = None  # step schedule: lr *= decay_factor once this many epochs are done
    # ...or, when decay_epochs is None, these fractions of the run (30 and 60 of 90), so the schedule
    # follows --epochs, also when a saved config.json is re-run or a run is resumed with more epochs
    decay_fractions: list[float] = field(default_factory=lambda: [1 / 3, 2 / 3])
    decay_factor: float = 0.1
    plateau_patience: int = 10  # plateau schedule: epochs without val-MAE improvement before decaying
    min_lr: float = 1e-5  # plateau schedule floor
    adam_eps: float | None = None
    clip_norm: float | None = None  # optional global-norm gradient clipping (off in the recipes)
    optimizer: str | None = None  # adam | adamw (decoupled weight decay on kernels, scaled by the lr)
    weight_decay: float | None = None
    warmup_epochs: float | None = None  # linear warm-up of the lr over this many epochs (any schedule)
    ema_decay: float | None = None  # 0 = off; else validation and exported weights are this EMA
    augment_policy: str | None = None  # ssrnet (the paper's geometric set) | strong (+ colour, erasing)
    seed: int = 0
    val_fraction: float | None = None  # None: the dataset's own split if it has one, else 0.2
    # with ``--db a.npz,b.npz``: how often each file's training rows appear per epoch (oversampling a small
    # dataset); validation rows are never repeated. None: once each
    db_repeat: list[int] | None = None
    augment: bool = True
    shear_units: str | None = None  # SSR-Net's Keras helper: radians; AEC's keras_preprocessing: degrees
    kl_weight: float = 10.0  # C3AE: alpha in alpha * KL(two-point || softmax) + L1
    # C3AE's KL target: the published "two_point" code, or "gaussian" (a label distribution of
    # label_sigma years over the 12 bins)
    label_distribution: str = "two_point"
    label_sigma: float = 5.0
    init_from: str | None = None  # model file, run folder or pretrained name to start from
    # knowledge distillation (training/distill.py): a trained age model whose ages on the un-augmented
    # faces are a second target, blended in with weight distill_weight; teacher_tta "flip" averages the
    # teacher's ages on each face and its mirror
    teacher: str | None = None
    distill_weight: float = 0.5
    teacher_tta: str = "flip"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    # BatchNorm running averages use momentum min(0.99, (1 + t) / (10 + t)) at step t (TensorFlow's
    # num_updates schedule) instead of a flat 0.99: identical from step 890 on, but unbiased early, so a
    # short run evaluates sensibly. Training itself always uses batch statistics and is unaffected.
    bn_momentum_warmup: bool = True
    # C3AE from scratch: W2 (Dense 12 -> 1) starts as the bin anchors 0, 10, ..., 110 (the expectation
    # read-out) instead of glorot noise, which Adam at lr 2e-3 needs ~10^5 steps to scale up to ages.
    c3ae_anchor_init: bool = True
    # "bfloat16": mixed precision (bf16 forward/backward, float32 weights, optimiser state and loss); for
    # GPUs, where it roughly halves memory traffic. CPUs gain nothing from it.
    compute_dtype: str = "float32"
    eval_batch_size: int = 256
    prefetch: int = 2  # batches prepared ahead by the background thread
    keep_best: int = 1  # orbax: best-by-val-MAE checkpoints kept (the latest is always kept too)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        norm = {str(k).replace("-", "_"): v for k, v in d.items()}
        unknown = sorted(set(norm) - known)
        if unknown:
            raise UsageError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**typed_fields(cls, norm, UsageError, "training option"))


@dataclass(frozen=True)
class Recipe:
    """A model family's published training settings (see the spec: §1.6, §3.5, §4.6)."""

    epochs: int
    lr: float
    schedule: str
    adam_eps: float
    batch_imdb: int
    batch_other: int
    shear_units: str
    note: str


# the published settings of each family, from its entry in models/families.py (the one place to change them)
RECIPES: dict[str, Recipe] = {name: Recipe(**f.recipe) for name, f in FAMILIES.items()}


# The "modern" recipe, on top of the family's learning rate and batch size: what the recent age-estimation
# and small-CNN literature finds helps, measured in benchmarks/accuracy.py (README: "Accuracy").
MODERN: dict[str, Any] = {"epochs": 60, "schedule": "cosine", "optimizer": "adamw", "weight_decay": 0.01,
                          "warmup_epochs": 2.0, "ema_decay": 0.999, "augment_policy": "strong"}
PAPER: dict[str, Any] = {"optimizer": "adam", "weight_decay": 0.0, "warmup_epochs": 0.0, "ema_decay": 0.0,
                         "augment_policy": "ssrnet"}


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a ``.json`` or ``.toml`` file (a ``[train]`` table is also accepted in TOML)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"config file not found: {p}") from None
    except OSError as e:
        raise InputError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        if p.suffix.lower() == ".toml":
            data = tomllib.loads(text.decode("utf-8"))
            data = data.get("train", data)
        else:
            data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"config file {p} is not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: "
                         f"{e}") from None
    if not isinstance(data, dict):
        raise InputError(f"config file {p} must hold a table/object of options")
    return data


def build_config(file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """File values, then non-None keyword overrides; unknown keys are a usage error."""
    base: dict[str, Any] = load_config_file(file) if file else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(base)


def resolve(cfg: TrainConfig, *, db_kind: str | None = None) -> TrainConfig:
    """Fill the recipe defaults and validate; returns a new, complete config. ``db_kind`` is the source
    dataset the preprocessed file records (``Dataset.kind``): the published batch size is IMDB's for
    "imdb" only."""
    from agecompact.models.registry import get_spec

    spec = get_spec(cfg.model)
    r = RECIPES[spec.family]
    out = dataclasses.replace(cfg)
    if out.recipe not in RECIPE_NAMES:
        raise UsageError(f"unknown recipe {out.recipe!r}; choose one of: {', '.join(RECIPE_NAMES)}")
    extra = MODERN if out.recipe == "modern" else PAPER
    for key, value in {**PAPER, **extra}.items():
        if getattr(out, key) is None:
            setattr(out, key, value)
    if out.epochs is None:
        out.epochs = r.epochs
    if out.batch_size is None:
        out.batch_size = r.batch_imdb if db_kind == "imdb" else r.batch_other
    if out.lr is None:
        out.lr = r.lr
    if out.schedule is None:
        out.schedule = r.schedule
    if out.adam_eps is None:
        out.adam_eps = r.adam_eps
    if out.shear_units is None:
        out.shear_units = r.shear_units
    _validate(out)
    if out.label_distribution != "two_point" and spec.family != "c3ae":
        raise UsageError(f"label_distribution {out.label_distribution!r} shapes C3AE's bin target; {out.model} "
                         "has no such output")
    return out


def step_decay_epochs(cfg: TrainConfig) -> list[int]:
    """The epochs at which the step schedule decays: ``decay_epochs`` as given, else ``decay_fractions``
    of ``epochs`` (never epoch 0: a one-epoch run trains at the full rate)."""
    if cfg.decay_epochs is not None:
        return sorted(int(e) for e in cfg.decay_epochs)
    return sorted({e for e in (round(f * cfg.epochs) for f in cfg.decay_fractions) if 0 < e < cfg.epochs})


def _validate(c: TrainConfig) -> None:
    if not c.db:
        raise UsageError("no dataset given (--db NAME or PATH.npz)")
    if c.epochs is None or c.epochs < 1:
        raise UsageError("--epochs must be >= 1")
    if c.batch_size is None or c.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if c.lr is None or not 0 < c.lr < math.inf:
        raise UsageError("--lr must be a positive number")
    if not 0 <= c.seed < 2**32:
        raise UsageError("--seed must be between 0 and 4294967295")
    if any(not 0 < f < 1 for f in c.decay_fractions):
        raise UsageError("decay_fractions must lie between 0 and 1")
    if c.schedule not in SCHEDULES:
        raise UsageError(f"unknown schedule {c.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if c.shear_units not in SHEAR_UNITS:
        raise UsageError(f"shear_units must be one of: {', '.join(SHEAR_UNITS)}")
    if c.optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {c.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if c.augment_policy not in AUGMENT_POLICIES:
        raise UsageError(f"unknown augment_policy {c.augment_policy!r}; choose one of: {', '.join(AUGMENT_POLICIES)}")
    if not 0.0 <= c.weight_decay < math.inf or not 0.0 <= c.warmup_epochs < math.inf:
        raise UsageError("weight_decay and warmup_epochs must be >= 0")
    if not 0.0 <= c.ema_decay < 1.0:
        raise UsageError("ema_decay must lie in [0, 1)")
    if any(not part.strip() for part in c.db.split(",")):
        raise UsageError(f"--db {c.db!r}: empty dataset name in the comma-separated list")
    if c.db_repeat is not None:
        n_db = len(c.db.split(","))
        if len(c.db_repeat) != n_db:
            raise UsageError(f"--db-repeat gives {len(c.db_repeat)} count(s) for {n_db} --db file(s); give one per file")
        if any(int(r) < 1 for r in c.db_repeat):
            raise UsageError("--db-repeat counts must be whole numbers >= 1")
    if c.compute_dtype not in COMPUTE_DTYPES:
        raise UsageError(f"unknown compute dtype {c.compute_dtype!r}; choose one of: {', '.join(COMPUTE_DTYPES)}")
    if c.val_fraction is not None and not 0.0 < c.val_fraction < 1.0:
        raise UsageError("--val-fraction must be between 0 and 1 (exclusive)")
    if c.decay_epochs is not None and any(int(e) < 0 for e in c.decay_epochs):
        raise UsageError("decay epochs must be >= 0")
    if c.eval_batch_size < 1 or c.prefetch < 0 or c.keep_best < 1:
        raise UsageError("eval_batch_size and keep_best must be >= 1, prefetch >= 0")
    if c.label_distribution not in LABEL_DISTRIBUTIONS:
        raise UsageError(f"unknown label_distribution {c.label_distribution!r}; choose one of: "
                         f"{', '.join(LABEL_DISTRIBUTIONS)}")
    if not 0.0 < c.label_sigma < math.inf:
        raise UsageError("label_sigma must be a positive number of years")
    if not 0.0 <= c.distill_weight <= 1.0:
        raise UsageError("--distill-weight must lie in [0, 1]")
    if c.teacher_tta not in TTA_MODES:
        raise UsageError(f"unknown teacher_tta {c.teacher_tta!r}; choose one of: {', '.join(TTA_MODES)}")
    if c.teacher is not None and not str(c.teacher).strip():
        raise UsageError("--teacher is empty; give a model file, run folder or zoo name")
    if not isinstance(c.arch_kwargs, dict):
        raise UsageError("arch_kwargs must be a table/object")
