"""`agecompact bench table`: published values beside measurements, run folders, the JSON schema."""

import json

import numpy as np
import pytest

from agecompact.api import AgeModel
from agecompact.models import create_model
from agecompact.weights.modelfile import ModelMeta

FAST = ["--timing-runs", "3", "--large-batch", "4", "--backend", "jax"]


def _fake_run(root, arch="aec", mae_wiki=5.43, mae_imdb=None):
    """A run folder as `agecompact train` + `agecompact eval` leave it (model file + eval results)."""
    run = root / "aec-demo"
    (run / "eval").mkdir(parents=True)
    AgeModel(create_model(arch, seed=1), ModelMeta.for_arch(arch, name="aec-demo", dataset="wiki")).save(
        run / "best.msgpack")
    for db, mae in (("wiki", mae_wiki), ("imdb", mae_imdb)):
        if mae is None:
            continue
        (run / "eval" / f"{db}-val.json").write_text(json.dumps({
            "model": "aec-demo", "arch": arch,
            "dataset": {"name": db, "path": f"data/{db}.npz", "split": "val", "count": 40},
            "metrics": {"mae": mae, "ca3": 0.4, "ca5": 0.6, "rmse": 7.0, "count": 40, "mae_by_decade": {}},
            "backend": "jax-cpu", "created": "2026-11-23T00:00:00+00:00",
        }))
    return run


def test_table_without_runs_shows_published_and_measured(cli):
    result = cli("bench", "table", *FAST)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for text in ("ssrnet", "c3ae_full", "aec", "40,915", "36,345", "20,014", "6.94", "6.76", "6.28", "6.19",
                 "2.9 (RTX 2070)", "published"):
        assert text in out, text


def test_json_schema(cli):
    result = cli("bench", "table", "--json", *FAST)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    assert {"device", "backend", "timing", "rows"} <= set(doc)
    rows = {r["model"]: r for r in doc["rows"]}
    assert set(rows) == {"ssrnet", "c3ae", "c3ae_full", "aec"}
    ssr = rows["ssrnet"]
    assert ssr["kind"] == "architecture" and ssr["arch"] == "ssrnet"
    m = ssr["measured"]
    assert m["params"] == 40_915 and m["imdb_mae"] is None and m["wiki_mae"] is None
    assert 160 < m["file_kb"] < 170
    lat = m["latency_ms"]
    assert lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"] and lat["runs"] >= 3
    assert m["throughput_fps"] > 0 and m["throughput_batch"] == 4
    assert ssr["published"] == {"label": "SSR-Net", "imdb_mae": 6.94, "wiki_mae": 6.76, "params": 40_915,
                                "size_kb": 319, "time_ms": 2.9, "device": "RTX 2070",
                                "note": ssr["published"]["note"]}
    assert rows["c3ae_full"]["published"] is None  # nothing published for the context model in the seed table


def test_run_folder_mae_shows_up(cli, tmp_path):
    run = _fake_run(tmp_path, mae_wiki=5.43, mae_imdb=6.02)
    result = cli("bench", "table", "--runs", str(run), "--json", "--no-timing")
    assert result.exit_code == 0, result.stderr
    rows = {r["model"]: r for r in json.loads(result.stdout)["rows"]}
    r = rows["aec-demo"]
    assert r["kind"] == "run" and r["arch"] == "aec" and r["published"] is None
    assert r["measured"]["wiki_mae"] == 5.43 and r["measured"]["imdb_mae"] == 6.02
    assert r["measured"]["file_bytes"] == (run / "best.msgpack").stat().st_size
    assert "latency_ms" not in r["measured"]
    table = cli("bench", "table", "--runs", str(run), "--no-timing")
    assert "5.43" in table.stdout and "aec-demo" in table.stdout


def test_other_datasets_never_fill_the_imdb_wiki_columns(cli, tmp_path):
    run = _fake_run(tmp_path, mae_wiki=None)
    (run / "eval" / "demo-val.json").write_text(json.dumps({
        "model": "aec-demo", "dataset": {"name": "demo", "split": "val"}, "metrics": {"mae": 4.2, "count": 9}}))
    result = cli("bench", "table", "--runs", str(run), "--json", "--no-timing")
    row = next(r for r in json.loads(result.stdout)["rows"] if r["kind"] == "run")
    assert row["measured"]["wiki_mae"] is None and row["measured"]["imdb_mae"] is None
    assert row["measured"]["other_mae"] == {"demo": 4.2}
    assert "demo 4.20" in cli("bench", "table", "--runs", str(run), "--no-timing").stdout


def test_training_split_results_never_fill_a_column(cli, tmp_path):
    import os

    run = _fake_run(tmp_path, mae_wiki=9.5)
    for name, split, mae in (("wiki-train.json", "train", 3.1), ("wiki-all.json", "all", 7.0),
                             ("demo-train.json", "train", 1.0)):
        (run / "eval" / name).write_text(json.dumps({
            "model": "aec-demo", "dataset": {"name": name.split("-")[0], "split": split},
            "metrics": {"mae": mae, "count": 9}}))
    os.utime(run / "eval" / "wiki-val.json", (1, 1))  # the val result is the oldest file
    row = next(r for r in json.loads(cli("bench", "table", "--runs", str(run), "--json", "--no-timing").stdout)
               ["rows"] if r["kind"] == "run")
    assert row["measured"]["wiki_mae"] == 9.5  # held-out beats newer; train is never used
    assert row["measured"]["other_mae"] == {}


def test_markdown_output(cli, tmp_path):
    run = _fake_run(tmp_path)
    md = tmp_path / "table.md"
    result = cli("bench", "table", "--runs", str(run), "--no-timing", "--markdown", str(md))
    assert result.exit_code == 0, result.stderr
    text = md.read_text()
    assert "| aec-demo |" in text and "5.43" in text and "6.28 / 6.19" in text


def test_weights_rows_take_mae_from_results_files(cli, tmp_path):
    run = _fake_run(tmp_path)
    result = cli("bench", "table", "--model", str(run / "best.msgpack"),
                 "--results", str(run / "eval" / "wiki-val.json"), "--no-timing", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [r for r in json.loads(result.stdout)["rows"] if r["kind"] == "weights"]
    assert rows and rows[0]["measured"]["wiki_mae"] == 5.43


def test_row_names_are_unique(cli, tmp_path):
    """Weights named like an architecture, or the same file twice, still get rows one can tell apart."""
    path = tmp_path / "aec.msgpack"
    AgeModel(create_model("aec", seed=1), ModelMeta.for_arch("aec", name="aec")).save(path)
    result = cli("bench", "table", "--model", str(path), "--model", str(path), "--no-timing", "--json")
    assert result.exit_code == 0, result.stderr
    names = [r["model"] for r in json.loads(result.stdout)["rows"]]
    assert len(set(names)) == len(names) == 6
    assert {"aec", "aec (weights)", "aec (weights) 2"} <= set(names)


@pytest.mark.parametrize("args,code", [
    (["--runs", "/no/such/run"], 3),
    (["--model", "/no/such/model.msgpack"], 3),
    (["--device", "tpu"], 2),
    (["--backend", "tensorrt"], 2),  # refused even though --no-timing never builds an engine
])
def test_bad_input(cli, args, code):
    result = cli("bench", "table", "--no-timing", *args)
    assert result.exit_code == code
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["onnx", "ort", "ONNXRuntime"])
def test_gpu_timing_is_never_onnxruntime(cli, name):
    """Also under an alias: the refusal compares the canonical backend name, not the string typed."""
    result = cli("bench", "table", "--no-timing", "--device", "gpu", "--backend", name)
    assert result.exit_code == 2 and "onnxruntime backend runs on the CPU" in result.stderr


def test_corrupt_eval_result_is_one_line(cli, tmp_path):
    run = _fake_run(tmp_path)
    (run / "eval" / "wiki-val.json").write_text("{not json")
    result = cli("bench", "table", "--runs", str(run), "--no-timing")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_timing_excludes_compilation():
    """The first call (compilation) is a warm-up: the timed median stays far below it."""
    import time

    from agecompact.bench.timing import time_call

    calls = []

    def fn():
        calls.append(time.perf_counter())
        if len(calls) == 1:
            time.sleep(0.2)  # stands in for jit compilation

    stats = time_call(fn, runs=5, warmup=1)
    assert len(calls) == 6 and stats["runs"] == 5 and stats["max_ms"] < 100


def test_timing_stats_are_ordered():
    from agecompact.bench.timing import timing_stats

    s = timing_stats([0.003, 0.001, 0.002, 0.010])
    assert s["min_ms"] == pytest.approx(1.0) and s["max_ms"] == pytest.approx(10.0)
    assert s["median_ms"] == pytest.approx(2.5)
    assert s["min_ms"] <= s["p10_ms"] <= s["median_ms"] <= s["p90_ms"] <= s["max_ms"]
    assert np.isclose(s["runs"], 4)


def test_eval_then_bench_table_on_a_real_run(cli, tmp_path):
    """The contract between `train`, `eval` and `bench table`: the MAE eval writes is the one the table reads,
    from a run folder as the commands leave it (no hand-written result files)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from train_data_helpers import write_synthetic_npz

    npz = write_synthetic_npz(tmp_path / "wiki.npz", 64, seed=3, db="wiki")
    run = tmp_path / "run"
    r = cli("train", "--db", str(npz), "--model", "aec", "--epochs", "1", "--batch-size", "16", "--out", str(run),
            "--quiet")
    assert r.exit_code == 0, r.output
    r = cli("eval", "--model", str(run), "--db", str(npz), "--split", "val", "--json")
    assert r.exit_code == 0, r.output
    mae = json.loads(r.stdout)["metrics"]["mae"]
    r = cli("bench", "table", "--runs", str(run), "--json", "--no-timing")
    assert r.exit_code == 0, r.output
    rows = [row for row in json.loads(r.stdout)["rows"] if row["kind"] == "run"]
    assert len(rows) == 1 and rows[0]["arch"] == "aec"
    assert rows[0]["measured"]["wiki_mae"] == pytest.approx(mae, abs=5e-3)
    assert rows[0]["measured"]["imdb_mae"] is None
