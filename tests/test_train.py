"""Training on tiny synthetic data: every family learns, the run folder is complete, resume is exact."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact.training.config import TrainConfig
from agecompact.training.loop import TrainingDiverged, train_and_evaluate

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import mean_baseline_mae, write_synthetic_npz  # noqa: E402


@pytest.fixture(scope="module")
def syn_npz(tmp_path_factory):
    return write_synthetic_npz(tmp_path_factory.mktemp("data") / "syn.npz", 320, seed=0, db="syn", margin=0.25)


def _baseline(npz, run) -> float:
    split = json.loads((run / "split.json").read_text())
    age = np.load(npz)["age"]
    val = np.asarray(split["val_indices"])
    train = np.setdiff1d(np.arange(len(age)), val)
    return mean_baseline_mae(age, train, val)


@pytest.mark.parametrize("model", ["ssrnet", "c3ae", "aec"])
def test_each_family_beats_the_mean_baseline(syn_npz, tmp_path, model):
    cfg = TrainConfig(db=str(syn_npz), model=model, epochs=5, batch_size=32, lr=3e-3, schedule="cosine")
    run = tmp_path / "run"
    summary = train_and_evaluate(cfg, run)
    baseline = _baseline(syn_npz, run)
    assert baseline > 12  # the synthetic ages spread over 5..75
    assert summary["epochs"] == 5
    assert summary["val_mae"] < 0.5 * baseline, (summary, baseline)


def test_run_folder_contents(syn_npz, tmp_path):
    from agecompact.api import load_model
    from agecompact.evaluation.metrics import age_metrics

    run = tmp_path / "run"
    cfg = TrainConfig(db=str(syn_npz), model="c3ae", epochs=3, batch_size=32, lr=3e-3)
    summary = train_and_evaluate(cfg, run)

    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "c3ae" and config["epochs"] == 3 and config["schedule"] == "plateau"
    assert config["batch_size"] == 32 and config["seed"] == 0
    env = json.loads((run / "env.json").read_text())
    assert env["packages"]["jax"] and env["devices"]["device_count"] >= 1
    split = json.loads((run / "split.json").read_text())
    assert split["method"] == "random" and split["val_fraction"] == 0.2
    assert split["n_train"] + split["n_val"] == 320 and len(split["val_indices"]) == split["n_val"] == 64
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]  # numbered from 1, as on the console
    for key in ("step", "lr", "train_loss", "train_mae", "val_mae", "val_ca3", "val_ca5", "epoch_seconds",
                "images_per_second"):
        assert all(r[key] is not None for r in lines), key
    assert lines[-1]["step"] == 3 * (256 // 32)
    csv = (run / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,step,lr,train_loss") and len(csv) == 4
    assert (run / "curves.png").stat().st_size > 1000

    best = min(lines, key=lambda r: r["val_mae"])
    best_epoch = best["epoch"]
    assert summary["best_epoch"] == best_epoch
    assert summary["best_val_mae"] == pytest.approx(best["val_mae"])

    # best.msgpack is the best epoch: its predictions reproduce the logged validation MAE
    best = load_model(run / "best.msgpack")
    assert best.meta.source == {"type": "run", "run": str(run.absolute()), "epoch": best_epoch, "seed": 0}
    assert best.meta.dataset == "syn" and best.meta.margin == 0.25 and best.arch == "c3ae"
    assert best.meta.metrics["val_mae"] == pytest.approx(lines[best_epoch - 1]["val_mae"])
    data = np.load(syn_npz)
    val = np.asarray(split["val_indices"])
    m = age_metrics(best.predict(data["image"][val]), data["age"][val])
    assert m["mae"] == pytest.approx(lines[best_epoch - 1]["val_mae"], abs=1e-3)
    last = load_model(run / "last.msgpack")
    assert last.meta.source["epoch"] == 3
    assert load_model(run).meta.source["epoch"] == best_epoch  # a run folder loads its best model

    # orbax keeps the latest epoch and the best one (the retention pitfall: latest must survive)
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == sorted({3, best_epoch})


def test_resume_equals_uninterrupted(syn_npz, tmp_path):
    # SSR-Net with augmentation and dropout: every random draw must come back the same after a resume.
    cfg = TrainConfig(db=str(syn_npz), model="ssrnet", epochs=3, batch_size=32, lr=2e-3, schedule="step",
                      decay_epochs=[2])
    full = train_and_evaluate(cfg, tmp_path / "full")

    def stop_after_two(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg, tmp_path / "cut", on_epoch_end=stop_after_two)
    assert (tmp_path / "cut" / "metrics.jsonl").read_text().count("\n") == 2
    resumed = train_and_evaluate(TrainConfig(), tmp_path / "cut", resume=True)

    a = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b, strict=True):
        for key in ("step", "lr", "train_loss", "train_mae", "val_mae", "val_ca3", "val_ca5"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-6, abs=1e-6), (key, ra, rb)
    assert resumed["val_mae"] == pytest.approx(full["val_mae"], rel=1e-6)

    from agecompact.weights.modelfile import read

    _, sa = read(tmp_path / "full" / "last.msgpack")
    _, sb = read(tmp_path / "cut" / "last.msgpack")
    import jax

    for x, y in zip(jax.tree.leaves(sa), jax.tree.leaves(sb), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_nan_guard_keeps_last_good_checkpoint(syn_npz, tmp_path):
    from agecompact.api import load_model

    # epoch 0 trains normally; at epoch 1 the rate becomes infinite and the first update is refused
    cfg = TrainConfig(db=str(syn_npz), model="c3ae", epochs=3, batch_size=64, lr=1e-3, schedule="step",
                      decay_epochs=[1], decay_factor=1e300)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="NaN/inf at epoch 2, step 1"):
        train_and_evaluate(cfg, run)
    steps = [int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    assert steps == [1]
    model = load_model(run / "last.msgpack")
    assert model.meta.source["epoch"] == 1
    assert np.all(np.isfinite(model.predict(np.load(syn_npz)["image"][:8])))
    assert (run / "curves.png").is_file()


def test_fresh_run_in_used_folder_starts_over(syn_npz, tmp_path):
    run = tmp_path / "run"
    cfg = TrainConfig(db=str(syn_npz), model="c3ae", epochs=1, batch_size=64)
    train_and_evaluate(cfg, run)
    train_and_evaluate(cfg, run)
    assert (run / "metrics.jsonl").read_text().count("\n") == 1
    assert math.isfinite(json.loads((run / "metrics.jsonl").read_text())["val_mae"])


def test_interrupt_while_an_epoch_is_written_loses_nothing(syn_npz, tmp_path, monkeypatch):
    """A kill while epoch 2's model files are written: the resume redoes epoch 2, no record goes missing."""
    from agecompact.training.loop import Trainer

    cfg = TrainConfig(db=str(syn_npz), model="c3ae", epochs=3, batch_size=64)
    full = train_and_evaluate(cfg, tmp_path / "full")
    real_export = Trainer.export

    def export(self, path, epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt
        real_export(self, path, epoch, metrics)

    monkeypatch.setattr(Trainer, "export", export)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg, tmp_path / "cut")
    monkeypatch.setattr(Trainer, "export", real_export)
    resumed = train_and_evaluate(TrainConfig(), tmp_path / "cut", resume=True)
    rows = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert resumed["best_epoch"] == full["best_epoch"]
    assert resumed["val_mae"] == pytest.approx(full["val_mae"], rel=1e-6)


def _write_npz(path: Path, images: np.ndarray, age: np.ndarray, gender: np.ndarray) -> Path:
    np.savez(path, image=images, age=age, gender=gender, img_size=np.int64(64))
    return path


def test_gender_model_learns_a_visible_cue(tmp_path):
    """SSR-Net's V = 1 gender regressor, trained and then evaluated: accuracy on a cue it can see."""
    from train_data_helpers import synthetic_faces

    from agecompact.evaluation.evaluate import evaluate

    images, age, gender = synthetic_faces(320, seed=7)
    images = images.astype(np.int16)
    images[gender == 1, :, :, 0] += 90  # "male" faces are bluer
    npz = _write_npz(tmp_path / "g.npz", np.clip(images, 0, 255).astype(np.uint8), age, gender)
    run = tmp_path / "run"
    cfg = TrainConfig(db=str(npz), model="ssrnet_gender", epochs=6, batch_size=32, lr=3e-3, schedule="cosine")
    summary = train_and_evaluate(cfg, run)
    assert summary["val_accuracy"] >= 0.9, summary
    result = evaluate(run, npz, split="val", backend="jax")
    assert result.summary["task"] == "gender" and result.summary["metrics"]["count"] == 64
    assert result.summary["metrics"]["accuracy"] >= 0.9
    assert np.all((result.pred > -0.5) & (result.pred < 1.5))


def test_context_model_trains_on_five_dimensional_crops(tmp_path):
    """c3ae_full on an .npz of (N, 3, 64, 64, 3) outer/middle/inner crops (preprocess --crops context)."""
    from train_data_helpers import synthetic_faces

    images, age, gender = synthetic_faces(192, seed=8)
    crops = np.stack([images, images, images], axis=1)  # (N, 3, S, S, 3)
    crops[:, 0] = (crops[:, 0] * 0.8).astype(np.uint8)  # the outer crop differs from the inner ones
    npz = _write_npz(tmp_path / "ctx.npz", crops, age, gender)
    cfg = TrainConfig(db=str(npz), model="c3ae_full", epochs=4, batch_size=32, lr=3e-3, schedule="cosine")
    summary = train_and_evaluate(cfg, tmp_path / "run")
    assert summary["epochs"] == 4 and math.isfinite(summary["val_mae"])
    from agecompact.api import load_model

    model = load_model(tmp_path / "run" / "last.msgpack")
    assert model.meta.crops == "context"
    assert model.predict(crops[:5]).shape == (5,)


def test_bfloat16_through_the_trainer(syn_npz, tmp_path):
    """--dtype bfloat16 trains (float32 master weights), records its dtype and still learns."""
    cfg = TrainConfig(db=str(syn_npz), model="aec", epochs=4, batch_size=32, lr=3e-3, schedule="cosine",
                      compute_dtype="bfloat16")
    run = tmp_path / "run"
    summary = train_and_evaluate(cfg, run)
    assert json.loads((run / "config.json").read_text())["compute_dtype"] == "bfloat16"
    assert summary["val_mae"] < 0.7 * _baseline(syn_npz, run), summary
    from agecompact.weights import modelfile

    _, state = modelfile.read(run / "last.msgpack")
    leaves = []

    def walk(tree):
        for v in tree.values():
            walk(v) if isinstance(v, dict) else leaves.append(np.asarray(v))

    walk(state)
    assert all(leaf.dtype == np.float32 for leaf in leaves)


def test_resume_refuses_a_different_split(tmp_path):
    """check_split on resume: the dataset changed under the run, so it would train on other rows — refused."""
    from agecompact.errors import UsageError

    npz = write_synthetic_npz(tmp_path / "d.npz", 160, seed=0)
    run = tmp_path / "run"
    cfg = TrainConfig(db=str(npz), model="aec", epochs=2, batch_size=32)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(cfg, run, on_epoch_end=_stop_after_first)
    write_synthetic_npz(npz, 150, seed=0)  # ten rows fewer: another split
    with pytest.raises(UsageError, match="split.json does not match"):
        train_and_evaluate(cfg, run, resume=True)


def _stop_after_first(epoch, record):
    if epoch == 1:
        raise KeyboardInterrupt
