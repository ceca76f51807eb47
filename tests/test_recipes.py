"""The accuracy work: the modern recipe (AdamW, warm-up, EMA, strong augmentation), training on several
datasets at once, the hash hold-out and the detect crop of ``preprocess``, and evaluation through photos."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact.errors import InputError, UsageError
from agecompact.training.config import TrainConfig, resolve

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402

# -- recipes ---------------------------------------------------------------------------------------

def test_modern_recipe_fills_its_defaults_and_paper_keeps_the_published_ones():
    modern = resolve(TrainConfig(db="x.npz", model="c3ae", recipe="modern"))
    assert (modern.optimizer, modern.schedule, modern.augment_policy) == ("adamw", "cosine", "strong")
    assert modern.ema_decay == 0.999 and modern.weight_decay == 0.01 and modern.warmup_epochs == 2.0
    assert modern.lr == 2e-3 and modern.batch_size == 50  # the family's rate and batch stay
    paper = resolve(TrainConfig(db="x.npz", model="c3ae"))
    assert (paper.optimizer, paper.schedule, paper.augment_policy, paper.ema_decay) == ("adam", "plateau", "ssrnet", 0.0)
    assert paper.epochs == 160
    # an explicit value wins over the recipe
    assert resolve(TrainConfig(db="x.npz", recipe="modern", ema_decay=0.0, epochs=3)).ema_decay == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"recipe": "fancy"}, "unknown recipe"),
    ({"optimizer": "sgd"}, "unknown optimizer"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"augment_policy": "wild"}, "augment_policy"),
    ({"db": "a.npz,"}, "empty dataset name"),
    ({"db": ",a.npz"}, "empty dataset name"),
    ({"db": "a.npz,b.npz", "db_repeat": [1]}, "one per file"),
    ({"db": "a.npz,b.npz", "db_repeat": [1, 0]}, ">= 1"),
])
def test_bad_recipe_options_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        resolve(TrainConfig(**{"db": "x.npz", **kwargs}))


def test_cli_refuses_unknown_recipe_and_empty_db_name(cli, tmp_path):
    npz = write_synthetic_npz(tmp_path / "a.npz", 64)
    r = cli("train", "--db", npz, "--recipe", "fancy", "--out", tmp_path / "run")
    assert r.exit_code == 2 and "fancy" in r.output
    r = cli("train", "--db", f"{npz},", "--epochs", "1", "--out", tmp_path / "run2")
    assert r.exit_code == 2 and "empty dataset name" in r.output
    assert not (tmp_path / "run2").exists()


def test_warmup_ramps_the_rate_linearly_then_follows_the_schedule():
    from agecompact.training.schedules import lr_at

    cfg = resolve(TrainConfig(db="x.npz", recipe="modern", epochs=10, lr=1e-3))
    steps = 100
    assert lr_at(cfg, 0, 0, steps, 1.0) == pytest.approx(1e-3 * 1 / 200 * 0.5 * (1 + np.cos(0)))
    assert lr_at(cfg, 0, 99, steps, 1.0) < lr_at(cfg, 1, 99, steps, 1.0)
    t = 2 * steps
    expected = 1e-3 * 0.5 * (1 + np.cos(np.pi * t / (10 * steps)))
    assert lr_at(cfg, 2, 0, steps, 1.0) == pytest.approx(expected)


def test_adamw_decays_kernels_only():
    import jax.numpy as jnp

    from agecompact.training.steps import make_optimizer

    params = {"kernel": jnp.ones((3, 3)), "bias": jnp.ones((3,))}
    zeros = {"kernel": jnp.zeros((3, 3)), "bias": jnp.zeros((3,))}
    tx = make_optimizer(1e-8, weight_decay=0.5)
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert np.allclose(updates["kernel"], 0.5) and np.allclose(updates["bias"], 0.0)


def test_strong_augmentation_is_seeded_and_leaves_the_paper_stream_alone():
    from agecompact.training.augment import AugmentSpec, augment_batch, make_augmenter

    rng_images = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    strong = make_augmenter("radians", "strong")
    a = strong(rng_images, np.random.default_rng(5))
    b = strong(rng_images, np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.shape == rng_images.shape and np.array_equal(a, b)
    paper = make_augmenter("radians", "ssrnet")(rng_images, np.random.default_rng(5))
    assert np.array_equal(paper, augment_batch(rng_images, np.random.default_rng(5), AugmentSpec()))
    assert not np.array_equal(a, paper)  # the photometric draws changed something
    # context crops (N, 3, S, S, 3) keep their shape
    ctx = np.repeat(rng_images[:4, None], 3, axis=1)
    assert strong(ctx, np.random.default_rng(1)).shape == ctx.shape


def test_modern_recipe_trains_and_exports_the_ema(tmp_path):
    from agecompact.api import load_model
    from agecompact.training.loop import Trainer

    npz = write_synthetic_npz(tmp_path / "syn.npz", 192, seed=1, db="syn", margin=0.2)
    cfg = TrainConfig(db=str(npz), model="aec", recipe="modern", epochs=2, batch_size=32, lr=3e-3)
    trainer = Trainer(cfg, tmp_path / "run")
    summary = trainer.run()
    assert summary["epochs"] == 2 and np.isfinite(summary["val_mae"])
    state = trainer.state
    assert "ema_params" in state
    import jax

    ema = jax.tree.leaves(jax.device_get(state["ema_params"]))
    raw = jax.tree.leaves(jax.device_get(state["params"]))
    assert any(not np.allclose(e, r) for e, r in zip(ema, raw, strict=True))
    exported = load_model(tmp_path / "run" / "last.msgpack").state_dict()
    leaves = jax.tree.leaves(exported)
    assert sum(x.size for x in leaves) > 0
    # the exported kernels are the EMA's, not the raw weights'
    flat_ema = sorted(np.round(float(np.sum(e)), 3) for e in ema)
    flat_out = [np.round(float(np.sum(x)), 3) for x in leaves]
    assert all(v in flat_out for v in flat_ema)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"] == "modern" and config["optimizer"] == "adamw"


# -- several datasets ------------------------------------------------------------------------------

def test_training_on_two_datasets_splits_each_by_its_own_rule(tmp_path, cli):
    a = write_synthetic_npz(tmp_path / "a.npz", 120, seed=2, db="alpha", margin=0.2, with_split=True)
    b = write_synthetic_npz(tmp_path / "b.npz", 80, seed=3, db="beta", margin=0.2)
    r = cli("train", "--db", f"{a},{b}", "--model", "c3ae", "--epochs", "1", "--batch-size", "32",
            "--out", tmp_path / "run", "--quiet", "--json")
    assert r.exit_code == 0, r.output
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    parts = split["dataset"]["parts"]
    assert [p["name"] for p in parts] == ["alpha", "beta"] and [p["offset"] for p in parts] == [0, 120]
    val = np.asarray(split["val_indices"])
    official = np.flatnonzero(np.load(a)["split"] == 1)
    assert np.array_equal(val[val < 120], official)  # alpha: its own split column
    assert len(val[val >= 120]) == 16  # beta: the seeded random 20 %
    # evaluating one part of the run: exactly its validation rows
    r = cli("eval", "--model", tmp_path / "run", "--db", b, "--split", "val", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dataset"]["count"] == 16


def test_db_repeat_oversamples_training_rows_only(tmp_path, cli):
    a = write_synthetic_npz(tmp_path / "a.npz", 120, seed=2, db="alpha", margin=0.2, with_split=True)
    b = write_synthetic_npz(tmp_path / "b.npz", 80, seed=3, db="beta", margin=0.2)
    runs = {}
    for name, extra in (("once", []), ("thrice", ["--db-repeat", "1,3"])):
        r = cli("train", "--db", f"{a},{b}", *extra, "--model", "aec", "--epochs", "1", "--batch-size", "32",
                "--out", tmp_path / name, "--quiet", "--json")
        assert r.exit_code == 0, r.output
        runs[name] = json.loads((tmp_path / name / "split.json").read_text())
    once, thrice = runs["once"], runs["thrice"]
    assert once["val_indices"] == thrice["val_indices"]  # validation is never repeated
    n_a = sum(1 for i in range(120) if i not in set(once["val_indices"]))
    assert thrice["n_train"] == n_a + 3 * (once["n_train"] - n_a)
    assert json.loads((tmp_path / "thrice" / "config.json").read_text())["db_repeat"] == [1, 3]
    r = cli("train", "--db", f"{a},{b}", "--db-repeat", "1,x", "--out", tmp_path / "bad")
    assert r.exit_code == 2 and "whole numbers" in r.output and not (tmp_path / "bad").exists()


def test_datasets_that_disagree_are_refused(tmp_path):
    from agecompact.data.npz import load_datasets

    a = write_synthetic_npz(tmp_path / "a.npz", 40, seed=2, db="alpha", margin=0.2)
    b = write_synthetic_npz(tmp_path / "b.npz", 40, seed=3, db="beta", margin=0.4)
    with pytest.raises(InputError, match="margin differs"):
        load_datasets([a, b])
    with pytest.raises(UsageError, match="twice"):
        load_datasets([a, a])
    small = tmp_path / "c.npz"
    np.savez(small, image=np.zeros((4, 32, 32, 3), np.uint8), age=np.ones(4, np.float32))
    with pytest.raises(InputError, match="together"):
        load_datasets([a, small])


# -- preprocess: hold-out, detect crops, source files ----------------------------------------------

def _utk_folder(root: Path, n: int = 30) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for i in range(n):
        img = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"{10 + i}_{i % 2}_0_2017010{i % 9}.jpg.chip.jpg"), img)
    return root


def test_holdout_split_depends_only_on_file_names(tmp_path, cli):
    from agecompact.data.build import holdout_split

    names = [f"{i}_0_0_x.jpg" for i in range(2000)]
    s = holdout_split(names, 0.1)
    assert 150 < s.sum() < 250
    shuffled = list(reversed(names))
    assert np.array_equal(holdout_split(shuffled, 0.1)[::-1], s)
    assert np.array_equal(holdout_split(["sub/" + n for n in names], 0.1), s)

    root = _utk_folder(tmp_path / "UTKFace")
    r = cli("preprocess", "--db", "utkface", "--root", root, "--holdout", "0.3", "--out", tmp_path / "u.npz",
            "--quiet", "--json")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "u.npz") as z:
        files = [str(f) for f in z["source_file"]]
        assert np.array_equal(z["split"], holdout_split(files, 0.3))
        assert sorted(files) == sorted(p.name for p in root.iterdir())
    side = json.loads((tmp_path / "u.npz.json").read_text())
    assert side["split_names"] == {"0": "train", "1": "holdout"} and side["source"]["holdout"]["fraction"] == 0.3


@pytest.mark.parametrize("args, message", [
    (["--holdout", "1.5"], "--holdout"),
    (["--margin", "0.2"], "--margin only applies"),
    (["--method", "detect", "--margin", "-1"], "--margin must"),
])
def test_preprocess_refuses_bad_holdout_and_margin(tmp_path, cli, args, message):
    root = _utk_folder(tmp_path / "UTKFace", 3)
    r = cli("preprocess", "--db", "utkface", "--root", root, *args, "--out", tmp_path / "u.npz", "--quiet")
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "u.npz").exists()


def test_detect_crop_is_the_predict_crop(shared_path, tmp_path):
    import cv2

    from agecompact.data.transforms import OK, DetectCrop
    from agecompact.faces.crop import CropSpec, network_input
    from agecompact.faces.detector import create_detector

    yunet = shared_path("detectors/yunet/face_detection_yunet_2026may.onnx")
    photo = cv2.imread(str(shared_path("images/the_flash_cast.png")))
    crop = DetectCrop(64, "yunet", str(yunet), margin=0.25)
    status, face = crop(photo)
    assert status == OK
    faces = create_detector("yunet", model_path=yunet).detect(photo)
    largest = max(faces, key=lambda f: f.box[2] * f.box[3])
    assert np.array_equal(face, network_input(photo, largest.box, CropSpec(margin=0.25)))


# -- evaluation through photos ---------------------------------------------------------------------

def _model_file(tmp_path: Path, margin: float) -> Path:
    from agecompact.api import AgeModel
    from agecompact.models import create_model
    from agecompact.weights.modelfile import ModelMeta

    path = tmp_path / "m.msgpack"
    AgeModel(create_model("c3ae", seed=0), ModelMeta.for_arch("c3ae", margin=margin, name="t")).save(path)
    return path


def test_photos_without_detection_score_exactly_like_the_chips(tmp_path, cli):
    root = _utk_folder(tmp_path / "UTKFace")
    r = cli("preprocess", "--db", "utkface", "--root", root, "--out", tmp_path / "u.npz", "--quiet")
    assert r.exit_code == 0, r.output
    model = _model_file(tmp_path, margin=0.1)
    chips = cli("eval", "--model", model, "--db", tmp_path / "u.npz", "--split", "all", "--backend", "jax", "--json")
    photos = cli("eval", "--model", model, "--db", tmp_path / "u.npz", "--split", "all", "--photos", "--detector",
                 "none", "--backend", "jax", "--json")
    assert chips.exit_code == 0 and photos.exit_code == 0, photos.output
    c, p = json.loads(chips.stdout), json.loads(photos.stdout)
    assert p["detection"]["rate"] == 1.0 and p["detection"]["photos"] == 30
    assert p["metrics"]["mae"] == pytest.approx(c["metrics"]["mae"], abs=1e-4)
    # the same photos from the raw folder, and from a labels CSV
    raw = cli("eval", "--model", model, "--db", "utkface", "--root", root, "--detector", "none", "--backend", "jax",
              "--json")
    assert raw.exit_code == 0, raw.output
    assert json.loads(raw.stdout)["metrics"]["mae"] == pytest.approx(c["metrics"]["mae"], abs=1e-4)
    with np.load(tmp_path / "u.npz") as z:
        rows = ["file,age"] + [f"{f},{a}" for f, a in zip(z["source_file"], z["age"], strict=True)]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    lab = cli("eval", "--model", model, "--labels", root / "labels.csv", "--detector", "none", "--backend", "jax",
              "--json")
    assert lab.exit_code == 0, lab.output
    assert json.loads(lab.stdout)["metrics"]["mae"] == pytest.approx(c["metrics"]["mae"], abs=1e-4)


def test_photos_bad_input_is_one_error_line(tmp_path, cli):
    model = _model_file(tmp_path, margin=0.1)
    old = write_synthetic_npz(tmp_path / "old.npz", 8)
    r = cli("eval", "--model", model, "--db", old, "--photos", "--detector", "none")
    assert r.exit_code == 3 and "source_file" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("name,years\nx.jpg,3\n")
    r = cli("eval", "--model", model, "--labels", bad, "--detector", "none")
    assert r.exit_code == 3 and "'file' and 'age'" in r.output
    bad.write_text("file,age\nx.jpg,old\n")
    r = cli("eval", "--model", model, "--labels", bad, "--detector", "none")
    assert r.exit_code == 3 and "not a number" in r.output
    bad.write_text("file,age\nmissing.jpg,30\n")
    r = cli("eval", "--model", model, "--labels", bad, "--detector", "none")
    assert r.exit_code == 3 and "no face" in r.output
    r = cli("eval", "--model", model, "--photos", "--detector", "none")
    assert r.exit_code == 2
    for result in (r,):
        assert "Traceback" not in result.output
