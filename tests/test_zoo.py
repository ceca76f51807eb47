"""The model zoo shipped inside the package: offline by name, verified, pinned, re-trainable."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact import zoo
from agecompact.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402

# What was shipped (benchmarks/accuracy.py ship): a change to a zoo file must be deliberate.
# "tiny" is AEC without its sharpen convolution: 19,674 trainable values + 256 BatchNorm statistics;
# "default" is plain C3AE (one 60-epoch cycle).
PINNED = {
    "default": {"sha256": "f4dfe514a96a79e463d64ed2b81c4074ad33b41c3277156ddcc19d571b7d5c8d",
                "arch": "c3ae", "num_params": 36345, "max_values": 50_000},
    "tiny": {"sha256": "cdbfa6247b0333b0a8066b6273f83c92c7a41e9f5671525753e96381096f0655",
                "arch": "aec_nosharpen", "num_params": 19930, "max_values": 20_000},
    "ssrnet-utk-aaf": {"sha256": "9359cad92ba4ce191a329a7df353cfc878ef6be5a8c58a9a40685d4383337437",
                "arch": "ssrnet", "num_params": 40915, "max_values": 50_000},
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_zoo_model_loads_offline_and_matches_its_manifest(name):
    import agecompact

    entry = zoo.entries()[name]
    pin = PINNED[name]
    data = entry.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry.sha256 == pin["sha256"]
    assert len(data) <= 250_000 and entry.info["bytes"] == len(data)
    model = agecompact.load_model(name)
    assert model.arch == entry.arch == pin["arch"]
    assert model.num_params == entry.info["num_params"] == pin["num_params"] <= pin["max_values"]
    assert model.meta.margin == entry.info["margin"] and model.meta.color_order == entry.info["color_order"] == "BGR"
    assert model.meta.name == f"agecompact-{name}" and model.meta.source["type"] == "zoo"
    for key in ("commands", "train_rows", "wall_seconds"):
        assert key in entry.info["training"]
    assert "non-commercial" in " ".join(entry.info["datasets"].values())
    ages = model.predict(zoo.probe_faces())
    assert np.all(np.isfinite(ages)) and np.all((ages > -5) & (ages < 120))
    assert np.allclose(ages, entry.info["probe_ages"], atol=1e-3), ages.tolist()


def test_a_damaged_zoo_file_is_one_clear_error(tmp_path, monkeypatch):
    entry = zoo.entries()["default"]
    bad = tmp_path / entry.file
    bad.write_bytes(entry.path.read_bytes()[:-10] + b"0123456789")
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path)
    with pytest.raises(InputError, match="does not match its manifest"):
        zoo.zoo_model_path("default")


def test_fetch_lists_the_zoo(cli):
    r = cli("fetch", "--list", "--json")
    assert r.exit_code == 0, r.output
    kinds = {row["name"]: row["kind"] for row in json.loads(r.stdout)}
    assert kinds["default"] == kinds["tiny"] == kinds["ssrnet-utk-aaf"] == "zoo model"
    r = cli("fetch", "tiny")
    assert r.exit_code == 0 and "shipped inside the package" in r.output


@pytest.mark.parametrize("name", sorted(PINNED))
def test_the_zoo_training_command_runs_on_small_data(name, tmp_path, cli):
    """The manifest's exact (last) training command, on tiny synthetic data for two epochs instead of the real
    sets; a pair's chain ends with the assembly of its members, checked here against the manifest."""
    info = zoo.entries()[name].info["training"]
    trains = [c for c in info["commands"] if c.startswith("agecompact train")]
    if info.get("members"):
        assert info["commands"][-1].startswith("python benchmarks/accuracy.py pair --pair ")
        for member in info["members"]:  # every member's run is trained by the chain
            assert any(c.endswith(f"--out runs/accuracy/zoo-{member}") for c in trains), member
    a = write_synthetic_npz(tmp_path / "a.npz", 96, seed=4, db="utkface", margin=0.1, with_split=True)
    b = write_synthetic_npz(tmp_path / "b.npz", 64, seed=5, db="aaf", margin=0.1, with_split=True)
    command = shlex.split(trains[-1])
    assert command[:2] == ["agecompact", "train"]
    args = command[1:]
    for flag, value in (("--db", f"{a},{b}"), ("--epochs", "2"), ("--out", str(tmp_path / "run"))):
        args[args.index(flag) + 1] = value
    if "--init-from" in args:  # a second cycle: start from weights of the same architecture
        from agecompact.api import AgeModel
        from agecompact.models.registry import create_model
        from agecompact.weights.modelfile import ModelMeta

        arch = args[args.index("--model") + 1]
        start = AgeModel(create_model(arch, seed=1), ModelMeta.for_arch(arch, name="start")).save(tmp_path / "s.msgpack")
        args[args.index("--init-from") + 1] = str(start)
    if "--teacher" in args:  # distillation: any age model on the same crops teaches (C3AE's anchors keep it finite)
        from agecompact.api import AgeModel
        from agecompact.models.registry import create_model
        from agecompact.training.config import TrainConfig
        from agecompact.training.setup import c3ae_anchor_init
        from agecompact.weights.modelfile import ModelMeta

        module = create_model("c3ae", seed=2)
        c3ae_anchor_init(module, TrainConfig())
        teacher = AgeModel(module, ModelMeta.for_arch("c3ae", name="teacher", margin=0.1)).save(tmp_path / "t.msgpack")
        args[args.index("--teacher") + 1] = str(teacher)
    r = cli(*args, "--batch-size", "32", "--quiet", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["epochs"] == 2 and np.isfinite(summary["val_mae"])
