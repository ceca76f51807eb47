"""``agecompact train`` / ``agecompact eval`` through the CLI: JSON output, run folders, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    write_synthetic_npz(d / "syn.npz", 160, seed=1)
    write_synthetic_npz(d / "other.npz", 40, seed=2, with_split=True, db="other")
    return d


def _one_error_line(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_train_then_eval(cli, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AGECOMPACT_DATA", str(data_dir))
    monkeypatch.chdir(tmp_path)
    r = cli("train", "--db", "syn", "--model", "c3ae", "--epochs", "2", "--batch-size", "32", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    run = Path(summary["run"])
    assert run == (tmp_path / "runs" / "c3ae-syn").absolute() and summary["epochs"] == 2
    assert "epoch   2/2" in r.stderr and "val MAE" in r.stderr
    # the default folder is taken now: the next run gets a numbered one
    r2 = cli("train", "--db", "syn", "--model", "c3ae", "--epochs", "1", "--batch-size", "32", "--json", "-q")
    assert r2.exit_code == 0, r2.stderr
    assert Path(json.loads(r2.stdout)["run"]).name == "c3ae-syn-2" and r2.stderr == ""

    # --resume with more epochs continues the first run
    r3 = cli("train", "--resume", "--out", str(run), "--epochs", "3", "--json", "-q")
    assert r3.exit_code == 0, r3.stderr
    assert json.loads(r3.stdout)["epochs"] == 3
    assert json.loads((run / "config.json").read_text())["epochs"] == 3  # the resume's new length is recorded

    # a config file on resume: its epochs apply, its other keys are said to be ignored (never dropped silently)
    (tmp_path / "more.json").write_text(json.dumps({"epochs": 4, "batch_size": 8, "seed": 5}))
    r4 = cli("train", "--resume", "--out", str(run), "--config", str(tmp_path / "more.json"), "--json")
    assert r4.exit_code == 0, r4.stderr
    assert json.loads(r4.stdout)["epochs"] == 4
    said = " ".join(r4.stderr.split())
    assert "ignoring batch_size (in more.json), seed (in more.json)" in said, r4.stderr
    assert json.loads((run / "config.json").read_text())["batch_size"] == 32

    r = cli("eval", "--model", str(run), "--db", "syn", "--json", "--backend", "jax")
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["dataset"]["split"] == "val" and res["dataset"]["name"] == "syn"
    assert res["dataset"]["count"] == 32 and res["metrics"]["count"] == 32
    assert set(res["metrics"]) == {"mae", "ca3", "ca5", "rmse", "count", "mae_by_decade"}
    saved = json.loads((run / "eval" / "syn-val.json").read_text())
    assert saved["metrics"] == res["metrics"] and saved["arch"] == "c3ae" and saved["backend"] == res["backend"]
    best = min(json.loads(x)["val_mae"] for x in (run / "metrics.jsonl").read_text().splitlines())
    assert res["metrics"]["mae"] == pytest.approx(best, abs=1e-3)

    plot = tmp_path / "err.png"
    r = cli("eval", "--model", str(run / "last.msgpack"), "--db", str(data_dir / "other.npz"), "--plot", str(plot))
    assert r.exit_code == 0, r.stderr
    assert "MAE" in r.stdout and "CA(3)" in r.stdout and "(test, 8 faces" in r.stdout
    assert plot.stat().st_size > 1000

    # the run's validation rows belong to its own dataset
    r = cli("eval", "--model", str(run), "--db", str(data_dir / "other.npz"), "--split", "val")
    _one_error_line(r, 2, "--split val")
    r = cli("eval", "--model", str(run / "best.msgpack"), "--db", "syn", "--split", "test")
    _one_error_line(r, 2, "no split column")


def test_train_config_file(cli, data_dir, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'db = "{data_dir / "syn.npz"}"\nmodel = "c3ae"\nepochs = 1\nbatch_size = 64\nseed = 3\n')
    r = cli("train", "--config", str(cfg), "--lr", "0.001", "--out", str(tmp_path / "run"), "--json", "-q")
    assert r.exit_code == 0, r.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["seed"], saved["batch_size"], saved["lr"], saved["epochs"]) == (3, 64, 0.001, 1)


@pytest.mark.parametrize(
    "args, code, needle, one_line",
    [
        (["train", "--db", "nothere.npz"], 3, "not found", True),
        (["train", "--db", "nothere"], 3, "preprocess", True),
        (["train", "--model", "ssrnet"], 2, "--db", True),
        (["train", "--db", "x.npz", "--val-fraction", "2"], 2, "val-fraction", True),
        (["train", "--resume", "--out", "."], 3, "not a run folder", True),
        (["eval", "--model", "nothere.msgpack", "--db", "x.npz"], 3, "not found", True),
        # option types and ranges are checked by Typer: its usage box, exit code 2
        (["train", "--db", "x.npz", "--model", "resnet"], 2, "resnet", False),
        (["train", "--db", "x.npz", "--batch-size", "0"], 2, "batch-size", False),
        (["eval", "--model", "ssrnet-wiki", "--db", "x.npz", "--split", "sideways"], 2, "sideways", False),
    ],
)
def test_bad_input(cli, tmp_path, monkeypatch, args, code, needle, one_line):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path))
    r = cli(*args)
    assert r.exit_code == code, (r.exit_code, r.stderr)
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    if one_line:
        _one_error_line(r, code, needle)


def test_batch_larger_than_data(cli, data_dir, tmp_path):
    r = cli("train", "--db", str(data_dir / "other.npz"), "--model", "c3ae", "--batch-size", "64", "--out",
            str(tmp_path / "r"))
    _one_error_line(r, 2, "larger than the training set")


def test_corrupt_npz(cli, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    r = cli("train", "--db", str(bad), "--out", str(tmp_path / "r"))
    _one_error_line(r, 3, "cannot read dataset")
    np.savez(tmp_path / "noimg.npz", age=np.zeros(3))
    r = cli("eval", "--model", "ssrnet-wiki", "--db", str(tmp_path / "noimg.npz"))
    assert r.exit_code == 3


@pytest.mark.parametrize("config", ['{"epochs": "3"}', '{"lr": "1e-3"}', '{"decay_epochs": 30}',
                                    '{"decay_epochs": ["a"]}', '{"val_fraction": "0.3"}', '{"seed": -1}',
                                    '{"seed": 99999999999999999999}', '{"augment": "yes"}'])
def test_bad_config_values_are_one_line(cli, data_dir, tmp_path, config):
    (tmp_path / "c.json").write_text(config)
    r = cli("train", "--config", str(tmp_path / "c.json"), "--db", str(data_dir / "syn.npz"),
            "--out", str(tmp_path / "r"))
    _one_error_line(r, 2, "")
    assert not (tmp_path / "r").exists()  # nothing made before the options are known to be good


def test_bad_label_columns_are_one_line(cli, tmp_path):
    img = np.zeros((40, 64, 64, 3), np.uint8)
    for name, age in (("scalar", np.float32(3)), ("text", np.array(["a"] * 40)), ("pairs", np.ones((40, 2)))):
        np.savez(tmp_path / f"{name}.npz", image=img, age=age)
        r = cli("train", "--db", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / f"r-{name}"))
        _one_error_line(r, 3, "'age' must be one number per image")
        assert not (tmp_path / f"r-{name}").exists()
    np.savez(tmp_path / "ok.npz", image=img, age=np.arange(40.0))
    # the sidecar sets the dataset's name and crop margin: one that is not ours, or unreadable, is refused
    for text, needle in (("[1, 2]", "not an agecompact sidecar"), ("{not json", "unreadable sidecar")):
        (tmp_path / "ok.npz.json").write_text(text)
        r = cli("train", "--db", str(tmp_path / "ok.npz"), "--epochs", "1", "--batch-size", "8", "--json", "-q",
                "--model", "c3ae", "--out", str(tmp_path / "r-ok"))
        _one_error_line(r, 3, needle)
        assert not (tmp_path / "r-ok").exists()
    (tmp_path / "ok.npz.json").unlink()
    r = cli("train", "--db", str(tmp_path / "ok.npz"), "--epochs", "1", "--batch-size", "8", "--json", "-q",
            "--model", "c3ae", "--out", str(tmp_path / "r-ok"))
    assert r.exit_code == 0, r.stderr


def test_eval_out_that_is_a_folder(cli, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("train", "--db", str(data_dir / "syn.npz"), "--model", "c3ae", "--epochs", "1", "--batch-size", "32",
            "-q", "--out", "run")
    assert r.exit_code == 0, r.stderr
    (tmp_path / "a_folder").mkdir()
    r = cli("eval", "--model", "run", "--db", str(data_dir / "syn.npz"), "--out", "a_folder", "--backend", "jax")
    _one_error_line(r, 2, "not a regular file")
