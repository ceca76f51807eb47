"""Knowledge distillation (``train --teacher``): the blended loss, the student following its teacher,
the run folder's record of the teacher, and the teachers that are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact.training.config import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402

MARGIN = 0.2


def _teacher_file(path, arch: str = "c3ae", seed: int = 3, **meta):
    """A seeded, untrained model saved as a model file: its ages are arbitrary but fixed (C3AE's anchor
    read-out keeps them finite, in [0, 110], near the middle)."""
    from agecompact.api import AgeModel
    from agecompact.models.registry import create_model
    from agecompact.training.setup import c3ae_anchor_init
    from agecompact.weights.modelfile import ModelMeta

    fields = {"margin": MARGIN, "name": f"teacher-{arch}-{seed}"} | meta
    module = create_model(arch, seed=seed)
    if arch.startswith("c3ae"):
        c3ae_anchor_init(module, TrainConfig())
    model = AgeModel(module, ModelMeta.for_arch(arch, **fields))
    return model.save(path)


@pytest.fixture
def syn(tmp_path):
    return write_synthetic_npz(tmp_path / "syn.npz", 192, seed=1, db="syn", margin=MARGIN)


@pytest.mark.parametrize("arch", ["ssrnet", "aec", "c3ae"])
def test_the_blend_is_the_family_loss_against_label_and_teacher(arch):
    import jax
    import jax.numpy as jnp

    from agecompact.training.distill import distilled
    from agecompact.training.losses import loss_for

    rng = np.random.default_rng(0)
    pred = jnp.asarray(rng.uniform(10, 70, 8), jnp.float32)
    out = {"pred": pred, "pre_4": 4.0 * jnp.floor(pred / 4.0) + 1.0,  # what each family's loss reads
           "distribution": jax.nn.softmax(jnp.asarray(rng.normal(size=(8, 12)), jnp.float32))}
    y = jnp.asarray(np.linspace(5, 80, 8), jnp.float32)
    t = jnp.asarray(np.linspace(30, 40, 8), jnp.float32)
    base = loss_for(arch)
    hard, soft = base(out, {"y": y})[0], base(out, {"y": t})[0]
    assert abs(float(hard) - float(soft)) > 1e-3  # the two targets give different losses
    for w in (0.0, 0.3, 1.0):
        loss, aux = distilled(base, w)(out, {"y": y, "teacher": t})
        np.testing.assert_allclose(float(loss), (1 - w) * float(hard) + w * float(soft), rtol=1e-5)
        np.testing.assert_allclose(float(aux["teacher_l1"]), float(jnp.mean(jnp.abs(out["pred"] - t))), rtol=1e-5)


def test_weight_zero_trains_exactly_like_no_teacher(tmp_path, syn):
    from agecompact.training.loop import train_and_evaluate

    teacher = _teacher_file(tmp_path / "teacher.msgpack")
    common = {"db": str(syn), "model": "ssrnet", "epochs": 2, "batch_size": 32, "lr": 3e-3}
    plain = train_and_evaluate(TrainConfig(**common), tmp_path / "plain")
    zero = train_and_evaluate(TrainConfig(**common, teacher=str(teacher), distill_weight=0.0), tmp_path / "zero")
    assert zero["val_mae"] == pytest.approx(plain["val_mae"], abs=1e-5)
    assert zero["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)


def test_the_student_follows_its_teacher(tmp_path, syn):
    """With weight 1 the labels are ignored: the student ends closer to the teacher's ages than to them."""
    from agecompact.api import load_model
    from agecompact.data.npz import load_npz
    from agecompact.training.distill import teacher_ages
    from agecompact.training.loop import train_and_evaluate

    teacher_path = _teacher_file(tmp_path / "teacher.msgpack")
    cfg = TrainConfig(db=str(syn), model="aec", epochs=4, batch_size=32, lr=3e-3, teacher=str(teacher_path),
                      distill_weight=1.0, teacher_tta="none")
    train_and_evaluate(cfg, tmp_path / "run")
    ds = load_npz(syn)
    t = teacher_ages(load_model(teacher_path), ds.images, tta="none")
    student = load_model(tmp_path / "run" / "last.msgpack").predict(ds.images)
    assert np.mean(np.abs(t - ds.age)) > 10  # the untrained teacher's ages are nothing like the labels
    assert np.mean(np.abs(student - t)) < 0.5 * np.mean(np.abs(student - ds.age))

    record = json.loads((tmp_path / "run" / "teacher.json").read_text())
    assert record["source"] == str(teacher_path) and record["weight"] == 1.0 and record["count"] == len(ds)
    import hashlib

    assert record["file_sha256"] == hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    assert record["ages_sha256"] == hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest()
    terms = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["terms"]
    assert {"l1", "teacher_l1"} <= set(terms)


def test_resume_refuses_a_changed_teacher(tmp_path, syn, cli):
    teacher = _teacher_file(tmp_path / "teacher.msgpack")
    run = tmp_path / "run"
    args = ["train", "--db", syn, "--model", "ssrnet", "--batch-size", "32", "--quiet", "--teacher", teacher]
    first = cli(*args, "--epochs", "1", "--out", run)
    assert first.exit_code == 0, first.output
    ok = cli("train", "--resume", "--out", run, "--epochs", "2", "--quiet")
    assert ok.exit_code == 0, ok.output
    _teacher_file(teacher, seed=4)  # the same path now holds another network
    bad = cli("train", "--resume", "--out", run, "--epochs", "3", "--quiet")
    assert bad.exit_code != 0
    assert "predicts other ages than the teacher the run was started with" in bad.output
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # nothing trained with the other teacher


@pytest.mark.parametrize("make, message", [
    (lambda p: _teacher_file(p, arch="c3ae_full"), "takes context crops"),
    (lambda p: _teacher_file(p, arch="ssrnet", margin=0.4), "margin 0.4"),
    (lambda p: _teacher_file(p, input_size=96), "takes 96x96 faces"),
    (lambda p: _teacher_file(p, margin=0.4), "margin 0.4"),
    (lambda p: _teacher_file(p, arch="ssrnet_gender"), "is a gender model"),
])
def test_unsuitable_teachers_are_one_error_line(tmp_path, syn, cli, make, message):
    teacher = make(tmp_path / "teacher.msgpack")
    r = cli("train", "--db", syn, "--model", "ssrnet", "--epochs", "1", "--quiet", "--teacher", teacher,
            "--out", tmp_path / "run")
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


@pytest.mark.parametrize("extra, message", [
    (["--teacher", "no-such-model"], "no-such-model"),
    (["--teacher", "TEACHER", "--distill-weight", "1.5"], "--distill-weight must lie in [0, 1]"),
    (["--teacher", "TEACHER", "--model", "ssrnet_gender"], "distils ages"),
])
def test_bad_distillation_options_are_one_error_line(tmp_path, syn, cli, extra, message):
    teacher = _teacher_file(tmp_path / "teacher.msgpack")
    extra = [str(teacher) if a == "TEACHER" else a for a in extra]
    r = cli("train", "--db", syn, "--epochs", "1", "--quiet", *extra, "--out", tmp_path / "run")
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output
    assert not (tmp_path / "run").exists()
