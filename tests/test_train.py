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
