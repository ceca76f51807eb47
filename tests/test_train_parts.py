"""Training building blocks: config + recipes, schedules, split, batches, augmentation, losses, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact.errors import InputError, UsageError
from agecompact.training import config as C
from agecompact.training.schedules import lr_at, update_plateau

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402


# -- config -----------------------------------------------------------------------------------------
def test_the_imdb_batch_follows_the_recorded_source_not_the_file_name(tmp_path):
    from agecompact.training.loop import Trainer

    named = write_synthetic_npz(tmp_path / "imdb.npz", 160)  # no sidecar: the name alone says nothing
    recorded = write_synthetic_npz(tmp_path / "faces.npz", 160, db="imdb")
    assert Trainer(C.TrainConfig(db=str(named), epochs=1), tmp_path / "a").cfg.batch_size == 50
    assert Trainer(C.TrainConfig(db=str(recorded), epochs=1), tmp_path / "b").cfg.batch_size == 128
    joined = Trainer(C.TrainConfig(db=f"{recorded},{named}", epochs=1), tmp_path / "c")
    assert joined.ds.kind is None and joined.cfg.batch_size == 50


def test_recipes_resolve_to_the_published_settings():
    ssr = C.resolve(C.TrainConfig(db="x", model="ssrnet"), db_kind="imdb")
    assert (ssr.epochs, ssr.batch_size, ssr.lr, ssr.schedule, C.step_decay_epochs(ssr), ssr.adam_eps) == (
        90, 128, 1e-3, "step", [30, 60], 1e-8)
    assert ssr.shear_units == "radians"
    wiki = C.resolve(C.TrainConfig(db="x", model="ssrnet_gender"), db_kind="wiki")
    assert wiki.batch_size == 50
    aec = C.resolve(C.TrainConfig(db="x", model="aec"), db_kind="imdb")
    assert (aec.batch_size, aec.adam_eps, aec.shear_units, C.step_decay_epochs(aec)) == (
        128, 1e-7, "degrees", [30, 60])
    c3 = C.resolve(C.TrainConfig(db="x", model="c3ae_full"), db_kind="imdb")
    assert (c3.epochs, c3.batch_size, c3.lr, c3.schedule) == (160, 50, 2e-3, "plateau")
    short = C.resolve(C.TrainConfig(db="x", model="ssrnet", epochs=15))
    assert C.step_decay_epochs(short) == [5, 10]  # the drops scale with a shorter run
    assert C.step_decay_epochs(C.resolve(C.TrainConfig(db="x", epochs=1))) == []  # one epoch at the full rate
    assert C.step_decay_epochs(C.resolve(C.TrainConfig(db="x", epochs=2))) == [1]
    # a saved config (as config.json holds it) re-run with another length follows that length
    saved = C.TrainConfig.from_dict(json.loads(json.dumps(C.resolve(C.TrainConfig(db="x", epochs=90)).to_dict())))
    assert C.step_decay_epochs(C.resolve(dataclasses.replace(saved, epochs=20))) == [7, 13]
    assert C.step_decay_epochs(C.resolve(C.TrainConfig(db="x", epochs=20, decay_epochs=[3]))) == [3]


def test_config_file_and_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[train]\nmodel = "aec"\nepochs = 7\nbatch-size = 16\n')
    cfg = C.build_config(toml, epochs=3, db="wiki", lr=None)
    assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.db) == ("aec", 3, 16, "wiki")
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"model": "c3ae", "seed": 5}))
    assert C.build_config(js).seed == 5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"modle": "c3ae"}))
    with pytest.raises(UsageError, match="modle"):
        C.build_config(bad)
    (tmp_path / "broken.toml").write_text("epochs = = 3")
    with pytest.raises(InputError, match="not valid TOML"):
        C.build_config(tmp_path / "broken.toml")
    with pytest.raises(InputError, match="not found"):
        C.build_config(tmp_path / "missing.json")
    with pytest.raises(UsageError, match="val-fraction"):
        C.resolve(C.TrainConfig(db="x", val_fraction=1.5))


def test_schedules():
    cfg = C.resolve(C.TrainConfig(db="x", model="ssrnet"))
    assert lr_at(cfg, 29, 10, 100, 1.0) == pytest.approx(1e-3)
    assert lr_at(cfg, 30, 0, 100, 1.0) == pytest.approx(1e-4)
    assert lr_at(cfg, 89, 0, 100, 1.0) == pytest.approx(1e-5)
    cos = C.resolve(C.TrainConfig(db="x", model="ssrnet", schedule="cosine", epochs=10))
    assert lr_at(cos, 0, 0, 10, 1.0) == pytest.approx(1e-3)
    assert lr_at(cos, 5, 0, 10, 1.0) == pytest.approx(5e-4)
    pl = C.resolve(C.TrainConfig(db="x", model="c3ae", plateau_patience=2))
    st = {"best": math.inf, "wait": 0, "scale": 1.0}
    for mae in (10.0, 9.0, 9.5, 9.2):  # two epochs without improvement -> x0.1
        st = update_plateau(pl, st, mae)
    assert st["scale"] == pytest.approx(0.1) and st["best"] == 9.0
    assert lr_at(pl, 3, 0, 10, st["scale"]) == pytest.approx(2e-4)
    for _ in range(20):
        st = update_plateau(pl, st, 99.0)
    assert lr_at(pl, 3, 0, 10, st["scale"]) == pytest.approx(1e-5)  # the floor


# -- data --------------------------------------------------------------------------------------------
def test_split_and_batches(tmp_path):
    from agecompact.data.npz import load_npz
    from agecompact.training.data import epoch_order, make_split, train_batches

    ds = load_npz(write_synthetic_npz(tmp_path / "a.npz", 100))
    s1 = make_split(ds, seed=3, val_fraction=None)
    s2 = make_split(ds, seed=3, val_fraction=None)
    assert s1.method == "random" and len(s1.val) == 20 and len(s1.train) == 80
    assert np.array_equal(s1.val, s2.val) and not np.intersect1d(s1.train, s1.val).size
    assert not np.array_equal(make_split(ds, seed=4, val_fraction=None).val, s1.val)

    official = load_npz(write_synthetic_npz(tmp_path / "b.npz", 100, with_split=True))
    s = make_split(official, seed=0, val_fraction=None)
    assert s.method == "dataset" and np.array_equal(s.val, np.flatnonzero(official.split == 1))
    assert make_split(official, seed=0, val_fraction=0.5).method == "random"  # explicit fraction wins

    targets = {"y": ds.age}
    batches = list(train_batches(ds, targets, s1.train, batch_size=32, seed=0, epoch=0))
    assert [b[0] for b in batches] == [0, 1]  # 80 // 32 = 2 steps, the remainder is dropped
    assert all(b[1].shape == (32, 64, 64, 3) and b[1].dtype == np.uint8 for b in batches)
    again = list(train_batches(ds, targets, s1.train, batch_size=32, seed=0, epoch=0, start_step=1))
    assert np.array_equal(again[0][1], batches[1][1])  # a step's batch does not depend on the ones before
    assert not np.array_equal(epoch_order(s1.train, 0, 0), epoch_order(s1.train, 0, 1))


def test_bad_datasets(tmp_path):
    from agecompact.data.npz import load_npz

    np.savez(tmp_path / "noage.npz", image=np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="missing age"):
        load_npz(tmp_path / "noage.npz")
    np.savez(tmp_path / "float.npz", image=np.zeros((2, 64, 64, 3), np.float32), age=np.zeros(2))
    with pytest.raises(InputError, match="uint8"):
        load_npz(tmp_path / "float.npz")
    np.savez(tmp_path / "nan.npz", image=np.zeros((2, 64, 64, 3), np.uint8), age=np.array([1.0, np.nan]))
    with pytest.raises(InputError, match="NaN"):
        load_npz(tmp_path / "nan.npz")
    (tmp_path / "trunc.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="cannot read"):
        load_npz(tmp_path / "trunc.npz")


def test_prefetcher_passes_items_and_errors():
    from agecompact.training.data import Prefetcher

    with Prefetcher(iter(range(5)), depth=2, transfer=lambda x: x * 10) as p:
        assert list(p) == [0, 10, 20, 30, 40]

    def broken():
        yield 1
        raise ValueError("boom")

    with Prefetcher(broken(), depth=1) as p, pytest.raises(ValueError, match="boom"):
        list(p)


# -- augmentation ------------------------------------------------------------------------------------
def test_augmentation_is_seeded_and_follows_the_recipe():
    from agecompact.training.augment import AugmentSpec, augment_batch, draw_params

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    a = augment_batch(images, np.random.default_rng(7))
    b = augment_batch(images, np.random.default_rng(7))
    assert a.dtype == np.uint8 and a.shape == images.shape and np.array_equal(a, b)
    assert not np.array_equal(a, augment_batch(images, np.random.default_rng(8)))
    p = draw_params(np.random.default_rng(1), 20000, AugmentSpec())
    assert p["flip"].mean() == pytest.approx(0.5, abs=0.02)
    assert (p["rotation"] != 0).mean() == pytest.approx(0.25, abs=0.02)
    assert np.abs(p["rotation"]).max() <= np.deg2rad(20) + 1e-9
    assert np.abs(p["shear"]).max() <= 0.2 + 1e-9
    assert (p["zoom"] != 1).any(axis=1).mean() == pytest.approx(0.25, abs=0.02)
    assert p["zoom"].min() >= 0.8 and p["zoom"].max() <= 1.2
    deg = draw_params(np.random.default_rng(1), 1000, AugmentSpec(shear_units="degrees"))
    assert np.abs(deg["shear"]).max() <= np.deg2rad(0.2) + 1e-12
    # an image no transform fires on is returned unchanged; a flip-only one is mirrored
    never = AugmentSpec(flip_p=0.0, affine_p=0.0)
    assert np.array_equal(augment_batch(images, np.random.default_rng(0), never), images)
    always_flip = AugmentSpec(flip_p=1.0, affine_p=0.0)
    assert np.array_equal(augment_batch(images, np.random.default_rng(0), always_flip), images[:, :, ::-1])
    ctx = np.stack([images[:4]] * 3, axis=1)  # (N, 3, S, S, 3): one transform for all three crops
    out = augment_batch(ctx, np.random.default_rng(3))
    assert np.array_equal(out[:, 0], out[:, 1]) and np.array_equal(out[:, 0], out[:, 2])


# -- losses ------------------------------------------------------------------------------------------
def test_losses_match_hand_computation():
    import jax.numpy as jnp

    from agecompact.training.losses import aec_loss, kl_two_point, make_c3ae_loss, ssrnet_loss

    y = jnp.array([22.0, 40.0, 7.0])
    pred = jnp.array([20.0, 41.0, 7.0])
    loss, _ = ssrnet_loss({"pred": pred}, {"y": y})
    assert float(loss) == pytest.approx(1.0)

    # a distribution with exact zeros: KL stays finite (Keras's eps clip), and equals the hand value
    dist = jnp.zeros((3, 12)).at[:, 2].set(1.0)
    kl = float(kl_two_point(dist, y))
    assert math.isfinite(kl)
    eps = 1e-7
    p0 = np.clip(np.array([[0] * 2 + [0.8, 0.2] + [0] * 8]), eps, 1)
    q = np.clip(np.array(dist[0]), eps, 1)
    assert float(kl_two_point(dist[:1], y[:1])) == pytest.approx(float(np.sum(p0 * np.log(p0 / q))), rel=1e-4)
    total, aux = make_c3ae_loss(10.0)({"pred": pred, "distribution": dist}, {"y": y})
    assert float(total) == pytest.approx(10 * kl + 1.0, rel=1e-5)

    out = {"pred": pred, "pre_4": jnp.array([20.0, 40.0, 4.0])}
    l_aec, aux = aec_loss(out, {"y": y})
    mae = 1.0
    # the coarse target is 4*floor(age / 4): 20, 40, 4 for ages 22, 40, 7 -> pre_4 is exact
    assert float(aux["coarse_l1"]) == pytest.approx(0.0, abs=1e-6)
    r = np.sum((np.array(y) - np.array(pred)) ** 2) / np.sum((np.array(y) - np.mean(np.array(y))) ** 2)
    assert float(l_aec) == pytest.approx(15 * mae + 18 * r, rel=1e-5)
    off = {"pred": pred, "pre_4": jnp.array([24.0, 36.0, 4.0])}  # 4 and 4 and 0 years off the coarse target
    l_off, aux = aec_loss(off, {"y": y})
    assert float(aux["coarse_l1"]) == pytest.approx(8.0 / 3.0, rel=1e-6)
    assert float(l_off) == pytest.approx(15 * mae + 8.5 * 8.0 / 3.0 + 18 * r, rel=1e-5)
    same, _ = aec_loss({"pred": jnp.full(3, 30.0), "pre_4": jnp.full(3, 28.0)}, {"y": jnp.full(3, 30.0)})
    assert math.isfinite(float(same))  # a batch of equal ages: 1 - R^2 guarded


# -- checkpoints --------------------------------------------------------------------------------------
def test_checkpoints_keep_latest_and_best(tmp_path):
    import jax.numpy as jnp

    from agecompact.training.checkpoint import RunCheckpoints

    with RunCheckpoints(tmp_path / "ck", keep_best=1) as ck:
        for step, mae in enumerate([10.0, 8.0, 9.0, 7.5, 12.0, 13.0]):
            ck.save(step, {"w": jnp.full(3, float(step))}, {"epoch": step}, {"val_mae": mae})
        ck.wait()
        assert ck.all_steps() == [3, 5] and ck.latest_step() == 5 and ck.best_step() == 3
        state, loop = ck.restore(5, {"w": jnp.zeros(3)})
        assert loop == {"epoch": 5} and np.array_equal(state["w"], np.full(3, 5.0))


def test_checkpoints_keep_the_two_best(tmp_path):
    import jax.numpy as jnp

    from agecompact.training.checkpoint import RunCheckpoints

    with RunCheckpoints(tmp_path / "ck", keep_best=2) as ck:
        for step, mae in enumerate([10.0, 8.0, 9.0, 7.5, 12.0, 13.0]):
            ck.save(step, {"w": jnp.full(3, float(step))}, {"epoch": step}, {"val_mae": mae})
        ck.wait()
        # the two lowest val_mae (steps 3 and 1) plus the latest
        assert ck.all_steps() == [1, 3, 5] and ck.best_step() == 3 and ck.latest_step() == 5


def test_a_torn_last_metrics_line_is_ignored(tmp_path):
    """A kill mid-write leaves half a JSON line: the records before it are read, the fragment is dropped."""
    from agecompact.runfolder import METRICS, read_records

    (tmp_path / METRICS).write_text('{"epoch": 1, "val_mae": 9.5}\n{"epoch": 2, "val_mae": 8.1}\n{"epoch": 3, "va')
    assert [r["epoch"] for r in read_records(tmp_path)] == [1, 2]
    (tmp_path / METRICS).write_text('{"epoch": 1}\n\n{"epoch": 2}\n')
    assert [r["epoch"] for r in read_records(tmp_path)] == [1, 2]


def test_init_from_copies_weights_and_checks_the_architecture(tmp_path):
    import jax

    from agecompact.api import AgeModel
    from agecompact.models import create_model
    from agecompact.training.setup import initial_model
    from agecompact.weights.modelfile import ModelMeta

    src = create_model("aec", seed=42)
    path = AgeModel(src, ModelMeta.for_arch("aec")).save(tmp_path / "aec.msgpack")
    model = initial_model(C.TrainConfig(db="x", model="aec", seed=0, init_from=str(path)))
    for a, b in zip(jax.tree.leaves(AgeModel(src, ModelMeta.for_arch("aec")).state_dict()),
                    jax.tree.leaves(AgeModel(model, ModelMeta.for_arch("aec")).state_dict()), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UsageError, match="do not fit"):
        initial_model(C.TrainConfig(db="x", model="ssrnet", init_from=str(path)))


def test_the_summary_takes_its_epoch_fields_from_the_record():
    """TrainSummary's copied fields exist on EpochRecord (a rename in one is caught here)."""
    import dataclasses

    from agecompact.runfolder import EpochRecord, TrainSummary

    record = {f.name for f in dataclasses.fields(EpochRecord)}
    summary = {f.name for f in dataclasses.fields(TrainSummary)}
    assert set(TrainSummary.FROM_LAST_EPOCH) <= record & summary


def test_a_foreign_split_json_is_one_input_error(tmp_path):
    from agecompact.errors import InputError
    from agecompact.runfolder import SPLIT, read_split

    (tmp_path / SPLIT).write_text('{"method": "random", "seed": 0}')
    with pytest.raises(InputError, match="unreadable .*needs method, seed"):
        read_split(tmp_path)
    (tmp_path / SPLIT).write_text("[1, 2]")
    with pytest.raises(InputError, match="unreadable"):
        read_split(tmp_path)
