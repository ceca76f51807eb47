"""``train_and_evaluate(config, workdir)``: the training loop behind ``agecompact train``.

It fills a run folder (its files: ``agecompact.runfolder``); schedules are in ``training.schedules``,
the model and targets a run starts from in ``training.setup``. The ``Trainer`` stays one class of ~300
lines: its steps (restore, compile, epoch, end of epoch, export) share the state they advance.

Everything random derives from ``config.seed``: the initial weights, the split, each epoch's batch
order, each batch's augmentation and each step's dropout key, so resuming from a checkpoint reproduces
the uninterrupted run exactly (on the same machine and device count).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import AgecompactError, InputError, UsageError
from agecompact.fileio import atomic_write_json
from agecompact.runfolder import (
    BEST,
    CHECKPOINTS,
    CONFIG,
    CURVES,
    ENV,
    LAST,
    METRICS,
    SPLIT,
    TEACHER,
    EpochRecord,
    TrainSummary,
    clear_run,
    read_records,
    read_split,
    write_records,
)
from agecompact.training.config import TrainConfig, resolve
from agecompact.training.schedules import lr_at, update_plateau
from agecompact.training.setup import initial_model, training_targets

# What --resume may change; anything else would make the resumed run a different run.
RESUMABLE_OVERRIDES = ("epochs", "lr", "clip_norm")


class TrainingDiverged(AgecompactError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def load_run_config(workdir: Path) -> TrainConfig:
    path = workdir / CONFIG
    if not path.is_file():
        raise InputError(f"{workdir}: not a run folder (no {CONFIG}); nothing to resume")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except ValueError as e:
        raise InputError(f"{path}: unreadable run configuration ({e})") from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------
def train_and_evaluate(config: TrainConfig, workdir: str | Path, *, resume: bool = False, quiet: bool = True,
                       on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train ``config`` into ``workdir`` (fresh, or continuing its latest checkpoint); returns a summary.

    ``on_epoch_end(epoch, record)`` runs after each epoch (numbered from 1) is saved (tests use it to interrupt a run).
    Raises ``TrainingDiverged`` on a non-finite loss and lets ``KeyboardInterrupt`` through after the
    in-flight checkpoint is finalised, so the folder is always resumable.
    """
    trainer = Trainer(config, workdir, resume=resume, log=log)
    return trainer.run(quiet=quiet, on_epoch_end=on_epoch_end)


class _EpochSums:
    """Host-side sums of one epoch's step metrics."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.abs_err = 0.0
        self.terms: dict[str, float] = {}
        self.steps = 0

    def add(self, m: dict[str, Any]) -> None:
        self.loss += float(m["loss"])
        self.abs_err += float(m["abs_err_sum"])
        for k, v in m.items():
            if k not in ("loss", "abs_err_sum", "finite"):
                self.terms[k] = self.terms.get(k, 0.0) + float(v)
        self.steps += 1


class Trainer:
    """One run: data, model, compiled steps, checkpoints and the epoch loop (see ``train_and_evaluate``)."""

    def __init__(self, config: TrainConfig, workdir: str | Path, *, resume: bool = False,
                 log: Callable[[str], None] | None = None):
        self.say = log or (lambda _msg: None)
        self.workdir = Path(workdir).absolute()
        self.resume = resume
        config = self._effective_config(config)
        resolve(config)  # bad option values fail before any data is read or any folder is touched
        self._load_data(config)
        self._prepare_folder()
        self._build_steps()
        # loop state (restored on resume)
        self.start_epoch = 0
        self.global_step = 0
        self.best: dict[str, Any] = {"val_mae": math.inf, "epoch": None}
        self.plateau: dict[str, Any] = {"best": math.inf, "wait": 0, "scale": 1.0}
        self.records: list[dict[str, Any]] = []

    def _effective_config(self, config: TrainConfig) -> TrainConfig:
        """A resumed run keeps its saved settings; only ``RESUMABLE_OVERRIDES`` may change (noted in
        ``changed``)."""
        self.changed: dict[str, Any] = {}
        if not self.resume:
            return config
        saved = load_run_config(self.workdir)
        self.changed = {k: getattr(config, k) for k in RESUMABLE_OVERRIDES
                        if getattr(config, k) is not None and getattr(config, k) != getattr(saved, k)}
        return dataclasses.replace(saved, **self.changed)

    def _load_data(self, config: TrainConfig) -> None:
        """The datasets, the complete config, the targets and the split (checked against a resumed run's)."""
        from agecompact.models.registry import get_spec
        from agecompact.training.data import check_split, load_datasets, make_split, repeat_parts

        self.ds = ds = load_datasets([self._dataset_path(db.strip()) for db in config.db.split(",")])
        self.cfg = cfg = resolve(config, db_kind=ds.kind)
        self.spec = spec = get_spec(cfg.model)
        if ds.images.ndim == 5 and spec.crops != "context":
            raise InputError(f"{ds.path} holds context crops (N, 3, S, S, 3); {cfg.model} takes single crops")
        if ds.images.shape[-2] != 64:
            raise InputError(f"{ds.path}: images are {ds.images.shape[-2]} px; the models take 64x64")
        self.targets, keep = training_targets(cfg, ds, spec.task)
        self.split = repeat_parts(ds, make_split(ds, seed=cfg.seed, val_fraction=cfg.val_fraction, keep=keep),
                                  cfg.db_repeat)
        if self.resume and (self.workdir / SPLIT).is_file():
            check_split(read_split(self.workdir), self.split)
        self.margin = ds.margin if ds.margin is not None else spec.margin
        self.teacher = self._teacher_targets() if cfg.teacher else None

    def _teacher_targets(self) -> dict[str, Any]:
        """``--teacher``: its ages for every row become ``targets["teacher"]``; returns what teacher.json
        records (a resumed run must get the same ages)."""
        from agecompact.training import distill

        cfg = self.cfg
        if self.spec.task != "age":
            raise UsageError(f"--teacher distils ages; {cfg.model} is a {self.spec.task} model")
        teacher = distill.load_teacher(cfg.teacher, self.ds, crops=self.spec.crops)
        self.say(f"teacher {teacher.name}: predicting {len(self.ds)} faces (tta {cfg.teacher_tta})")
        ages = distill.teacher_ages(teacher, self.ds.images, tta=cfg.teacher_tta)
        self.targets["teacher"] = ages
        record = distill.teacher_record(cfg.teacher, teacher, ages, tta=cfg.teacher_tta, weight=cfg.distill_weight)
        if self.resume and (self.workdir / TEACHER).is_file():
            distill.check_teacher(self.workdir / TEACHER, record)
        return record

    def _prepare_folder(self) -> None:
        """Devices and batch checks; only once the inputs are valid is an old run cleared or the folder made."""
        import jax

        from agecompact.training import steps as S
        from agecompact.training.data import steps_per_epoch

        self.par = par = S.make_parallel()
        par.check_batch(self.cfg.batch_size)
        workdir = self.workdir
        if not self.resume and ((workdir / CHECKPOINTS).exists() or (workdir / METRICS).exists()):
            clear_run(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.eval_bs = -(-self.cfg.eval_batch_size // par.num_devices) * par.num_devices
        self.spe = steps_per_epoch(len(self.split.train), self.cfg.batch_size)
        self.is_main = jax.process_index() == 0

    def _build_steps(self) -> None:
        """The network, the optimiser state and the compiled train/eval steps, the augmenter."""
        from flax import nnx

        from agecompact.training import steps as S
        from agecompact.training.augment import make_augmenter
        from agecompact.training.losses import loss_for

        cfg, par = self.cfg, self.par
        model = initial_model(cfg)
        model.train()
        with S.bn_momentum_zero(model) if cfg.bn_momentum_warmup else contextlib.nullcontext() as momentum:
            self.graphdef, params, stats = S.split_model(model)
        model.eval()
        self.graphdef_eval = nnx.split(model, nnx.Param, nnx.BatchStat, ...)[0]
        tx = S.make_optimizer(cfg.adam_eps, cfg.clip_norm, cfg.weight_decay if cfg.optimizer == "adamw" else 0.0)
        self.state = par.replicate(S.init_state(params, stats, tx, ema=bool(cfg.ema_decay)))
        loss_fn = loss_for(cfg.model, kl_weight=cfg.kl_weight, label_distribution=cfg.label_distribution,
                           label_sigma=cfg.label_sigma)
        if self.teacher is not None:
            from agecompact.training.distill import distilled

            loss_fn = distilled(loss_fn, cfg.distill_weight)
        self._train_step = S.make_train_step(self.graphdef, loss_fn, tx, par,
                                             bn_momentum=momentum, compute_dtype=cfg.compute_dtype,
                                             ema_decay=cfg.ema_decay)
        self._predict = S.make_eval_step(self.graphdef_eval, par)
        self.key_data = par.replicate(S.seed_key_data(cfg.seed))
        self.augment = make_augmenter(cfg.shear_units, cfg.augment_policy) if cfg.augment else None

    # ------------------------------------------------------------------------------------------------
    def _dataset_path(self, db: str) -> Path:
        """``db`` resolved; a resumed run falls back to the absolute path its split.json recorded (the
        name or relative path it was started with may not resolve from another folder)."""
        from agecompact.data.locate import resolve_npz

        try:
            return resolve_npz(db)
        except InputError:
            recorded = None
            if self.resume and (self.workdir / SPLIT).is_file():
                recorded = read_split(self.workdir).dataset.get("path")
            if recorded and Path(recorded).is_file():
                return Path(recorded)
            raise

    def _write_run_files(self) -> None:
        import jax

        from agecompact.envinfo import device_info, package_versions

        if not self.is_main:
            return
        if not self.resume or self.changed:  # a resume with new epochs/lr records them
            atomic_write_json(self.workdir / CONFIG, self.cfg.to_dict())
        if not self.resume:
            atomic_write_json(self.workdir / SPLIT, self.split.saved(self.ds).to_json())
        if self.teacher is not None and not (self.workdir / TEACHER).is_file():
            atomic_write_json(self.workdir / TEACHER, self.teacher)
        atomic_write_json(self.workdir / ENV, {"created": _now(), "packages": package_versions(),
                                               "devices": device_info(), "process_count": jax.process_count()})

    def _restore(self, ckpts) -> None:
        latest = ckpts.latest_step()
        if latest is not None:
            self.state, loop = ckpts.restore(latest, self.state)
            # runs written before epochs were numbered from 1 store the last epoch's 0-based index
            zero_based = "epochs_done" not in loop
            self.start_epoch = int(loop["epoch"]) + 1 if zero_based else int(loop["epochs_done"])
            self.global_step = int(loop["global_step"])
            best_epoch = loop["best"]["epoch"]
            if zero_based and best_epoch is not None:
                best_epoch = int(best_epoch) + 1
            self.best = {"val_mae": _inf_if_none(loop["best"]["val_mae"]), "epoch": best_epoch}
            self.plateau = {**loop["plateau"], "best": _inf_if_none(loop["plateau"]["best"])}
            self.say(f"resuming {self.workdir.name} after epoch {self.start_epoch} of {self.cfg.epochs}")
            records = read_records(self.workdir)
            if zero_based:
                records = [{**r, "epoch": r["epoch"] + 1} for r in records if "epoch" in r]
        else:
            records = []
        self.records = [r for r in records if r.get("epoch", 1 << 30) <= self.start_epoch]
        if self.is_main:
            write_records(self.workdir, self.records)

    def _compile(self) -> float:
        """Compile the train and eval steps once, ahead of the loop; a shape change then fails loudly."""
        import jax

        from agecompact.training import steps as S

        t0 = time.perf_counter()
        par, cfg, ds = self.par, self.cfg, self.ds

        def spec_of(a, sharding):
            return jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=sharding)

        replicated = lambda tree: jax.tree.map(lambda a: spec_of(a, par.replicated), tree)  # noqa: E731
        batch = (cfg.batch_size, *ds.images.shape[1:])
        self.step_fn = self._train_step.lower(
            replicated(self.state), jax.ShapeDtypeStruct(batch, np.uint8, sharding=par.data),
            {k: jax.ShapeDtypeStruct((cfg.batch_size,), np.float32, sharding=par.data) for k in self.targets},
            np.float32(0), np.int32(0), self.key_data,
        ).compile()
        self.predict_fn = self._predict.lower(
            replicated(S.eval_params(self.state)), replicated(self.state["batch_stats"]),
            jax.ShapeDtypeStruct((self.eval_bs, *ds.images.shape[1:]), np.uint8, sharding=par.data),
        ).compile()
        return time.perf_counter() - t0

    def evaluate_val(self) -> dict[str, Any]:
        from agecompact.batching import padded_batches
        from agecompact.evaluation.metrics import task_metrics
        from agecompact.training.steps import eval_params

        preds = []
        # one shape: every batch padded to eval_bs (the step was compiled for it)
        for images, n in padded_batches(self.ds.images, self.eval_bs, (self.eval_bs,), rows=self.split.val):
            local = images[self.par.local_rows(len(images))]
            out = self.predict_fn(eval_params(self.state), self.state["batch_stats"], self.par.put_batch(local))
            preds.append(self.par.to_host(out)[:n])
        m = task_metrics(self.spec.task, np.concatenate(preds), self.targets["y"][self.split.val])
        keys = ("mae", "accuracy") if self.spec.task == "gender" else ("mae", "ca3", "ca5", "rmse")
        return {f"val_{k}": m[k] for k in keys}

    def export(self, path: Path, epoch: int, metrics: dict[str, Any]) -> None:
        """The current weights as a model file (the project format that ``load_model`` reads)."""
        import jax
        from flax import nnx

        from agecompact.api import AgeModel
        from agecompact.weights.modelfile import ModelMeta

        cfg = self.cfg
        from agecompact.training.steps import eval_params

        module = nnx.merge(self.graphdef_eval, jax.device_get(eval_params(self.state)),
                           jax.device_get(self.state["batch_stats"]))
        meta = ModelMeta.for_arch(cfg.model, arch_kwargs=dict(cfg.arch_kwargs), dataset=self.ds.name,
                                  margin=self.margin, name=f"{cfg.model}-{self.ds.name}", metrics=metrics,
                                  source={"type": "run", "run": str(self.workdir), "epoch": epoch, "seed": cfg.seed})
        AgeModel(module, meta).save(path)

    def _local_rows(self, batch):
        """Under several processes each feeds its own slice of the global batch (the whole batch is
        gathered and augmented on every host, so the data does not depend on the number of hosts)."""
        step, images, tg = batch
        rows = self.par.local_rows(len(images))
        return step, images[rows], {n: v[rows] for n, v in tg.items()}

    def _check(self, epoch: int, step: int, lr: float, m: dict[str, Any], sums: _EpochSums) -> None:
        import jax

        m = jax.device_get(m)
        if not bool(m["finite"]):
            raise TrainingDiverged(
                f"loss became NaN/inf at epoch {epoch + 1}, step {step + 1} (lr {lr:.3g}); stopped, "
                + (f"the last good checkpoint (epoch {epoch}) is kept in {self.workdir / CHECKPOINTS}"
                   if epoch > 0 else "before the first checkpoint")
                + " (lower --lr and train again)")
        sums.add(m)

    def train_epoch(self, epoch: int, progress) -> tuple[_EpochSums, float, float]:
        """One pass of ``steps_per_epoch`` batches; returns the sums, the last lr and the seconds."""
        from agecompact.training.data import Prefetcher, train_batches

        cfg, par = self.cfg, self.par
        task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=self.spe)
        batches = (self._local_rows(b) for b in train_batches(
            self.ds, self.targets, self.split.train, batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch,
            augment=self.augment))
        sums, lr, pending = _EpochSums(), cfg.lr, None
        t0 = time.perf_counter()
        with Prefetcher(batches, depth=max(cfg.prefetch, 1),
                        transfer=lambda b: (b[0], par.put_batch(b[1]), par.put_batch(b[2]))) as stream:
            for step, x, tg in stream:
                lr = lr_at(cfg, epoch, step, self.spe, self.plateau["scale"])
                with np.errstate(over="ignore"):  # an absurd rate becomes inf; the step refuses it
                    lr32 = np.float32(lr)
                self.state, m = self.step_fn(self.state, x, tg, par.scalar(lr32),
                                             par.scalar(np.int32(self.global_step)), self.key_data)
                self.global_step += 1
                if pending is not None:  # read the previous step's metrics while this one runs
                    self._check(epoch, *pending, sums)
                    progress.update(task, advance=1)
                pending = (step, lr, m)
            if pending is not None:
                self._check(epoch, *pending, sums)
                progress.update(task, advance=1)
        progress.remove_task(task)
        return sums, lr, time.perf_counter() - t0

    def end_epoch(self, epoch: int, sums: _EpochSums, lr: float, train_s: float, ckpts) -> dict[str, Any]:
        t0 = time.perf_counter()
        cfg = self.cfg
        val = self.evaluate_val()
        if cfg.schedule == "plateau":
            self.plateau = update_plateau(cfg, self.plateau, val["val_mae"])
        improved = val["val_mae"] < self.best["val_mae"]
        number = epoch + 1  # epochs are numbered from 1 in every file and message
        if improved:
            self.best = {"val_mae": val["val_mae"], "epoch": number}
        images = sums.steps * cfg.batch_size
        rec = EpochRecord(
            epoch=number, step=self.global_step, lr=lr, train_loss=sums.loss / max(sums.steps, 1),
            train_mae=sums.abs_err / max(images, 1), val_mae=val["val_mae"], val_ca3=val.get("val_ca3"),
            val_ca5=val.get("val_ca5"), val_rmse=val.get("val_rmse"), val_accuracy=val.get("val_accuracy"),
            epoch_seconds=train_s + (time.perf_counter() - t0),
            images_per_second=images / train_s if train_s > 0 else float("nan"),
            terms={k: v / max(sums.steps, 1) for k, v in sums.terms.items()},
        ).to_json()
        loop = {"epochs_done": number, "global_step": self.global_step,
                "best": {"val_mae": _none_if_inf(self.best["val_mae"]), "epoch": self.best["epoch"]},
                "plateau": {**self.plateau, "best": _none_if_inf(self.plateau["best"])}}
        self.records.append(rec)
        if self.is_main:
            metrics = {k: v for k, v in val.items() if v is not None}
            self.export(self.workdir / LAST, number, metrics)
            if improved:
                self.export(self.workdir / BEST, number, metrics)
            write_records(self.workdir, self.records)
        # The checkpoint commits the epoch, so it comes last: interrupted before it, a resume redoes this
        # epoch (deterministically) and rewrites the files above; after it, they are already complete.
        ckpts.save(number, self.state, loop, {"val_mae": val["val_mae"]})
        line = (f"epoch {number:>3}/{cfg.epochs}  loss {rec['train_loss']:.4f}  train MAE {rec['train_mae']:.3f}"
                f"  val MAE {rec['val_mae']:.3f}")
        if rec["val_ca3"] is not None:
            line += f"  CA3 {rec['val_ca3']:.3f}  CA5 {rec['val_ca5']:.3f}"
        if rec["val_accuracy"] is not None:
            line += f"  acc {rec['val_accuracy']:.3f}"
        self.say(line + f"  lr {lr:.2g}  {rec['epoch_seconds']:.1f}s  {rec['images_per_second']:.0f} img/s"
                 + ("  *" if improved else ""))
        return rec

    def run(self, *, quiet: bool = True, on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None
            ) -> dict[str, Any]:
        import jax

        from agecompact.console import make_progress
        from agecompact.training.checkpoint import RunCheckpoints

        cfg, ds, split = self.cfg, self.ds, self.split
        self._write_run_files()
        ckpts = RunCheckpoints(self.workdir / CHECKPOINTS, keep_best=cfg.keep_best)
        t_start = time.perf_counter()
        try:
            if self.resume:
                self._restore(ckpts)
            compile_s = self._compile()
            self.say(f"{cfg.model} on {ds.name}: {len(split.train)} train / {len(split.val)} val images, batch "
                     f"{cfg.batch_size}, {self.spe} steps/epoch, {self.par.num_devices} {jax.default_backend()} "
                     f"device(s), compiled in {compile_s:.1f}s")
            with make_progress(quiet=quiet, transient=True) as progress:
                for epoch in range(self.start_epoch, cfg.epochs):
                    sums, lr, train_s = self.train_epoch(epoch, progress)
                    rec = self.end_epoch(epoch, sums, lr, train_s, ckpts)
                    if on_epoch_end is not None:
                        on_epoch_end(epoch + 1, rec)
        finally:
            ckpts.close()  # finalise the in-flight save, whatever happened
            if self.is_main and self.records:
                _plot_curves(self.workdir, self.records, self.say)
        last = self.records[-1] if self.records else {}
        return TrainSummary(
            run=str(self.workdir), model=cfg.model, dataset=ds.name, epochs=len(self.records),
            best_epoch=self.best["epoch"], best_val_mae=_none_if_inf(self.best["val_mae"]),
            **{k: last.get(k) for k in TrainSummary.FROM_LAST_EPOCH},
            n_train=int(len(split.train)), n_val=int(len(split.val)), seconds=round(time.perf_counter() - t_start, 3),
            compile_seconds=round(compile_s, 3), devices=self.par.num_devices,
        ).to_json()


def _inf_if_none(v: float | None) -> float:
    return math.inf if v is None else float(v)


def _none_if_inf(v: float) -> float | None:
    return None if math.isinf(v) else v


def _plot_curves(workdir: Path, records: list[dict[str, Any]], say: Callable[[str], None]) -> None:
    try:
        from agecompact.plotting import training_curves

        training_curves(records, workdir / CURVES)
    except Exception as e:  # a plot must never turn a finished run into a failure, but it is said
        say(f"warning: {CURVES} was not written ({type(e).__name__}: {e})")
