"""benchmarks/gpu_check.py: the extrapolation and output parsing (the full --cpu-dry-run is a manual check)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extrapolation_takes_the_best_batch_and_the_slower_of_step_and_augmentation(gpu_check):
    speed = [
        {"arch": "ssrnet", "batch": 128, "dtype": "float32", "images_per_s": 20_000},
        {"arch": "ssrnet", "batch": 1024, "dtype": "float32", "images_per_s": 100_000},
        {"arch": "ssrnet", "batch": 1024, "dtype": "bfloat16", "images_per_s": 10_000},
        {"arch": "aec", "error": "bench speed failed"},
    ]
    rows = {(r["arch"], r["dtype"]): r for r in gpu_check.extrapolate(speed, augment_ips=50_000, compile_s=60)}
    fast = rows[("ssrnet", "float32")]
    assert fast["batch"] == 1024 and fast["bound_by"].startswith("augmentation")
    assert fast["epoch_s"] == pytest.approx(170_000 / 50_000, abs=0.05)
    assert fast["run_90_epochs_min"] == pytest.approx((90 * 3.4 + 60) / 60, abs=0.05)
    slow = rows[("ssrnet", "bfloat16")]
    assert slow["bound_by"] == "train step" and slow["epoch_s"] == pytest.approx(17.0)
    assert ("aec", None) not in rows


def test_last_json_line(gpu_check):
    assert gpu_check.last_json('noise\n{"a": 1}\n') == {"a": 1}
    assert gpu_check.last_json('{\n  "b": 2\n}') == {"b": 2}
    assert gpu_check.last_json("nothing") is None


def test_script_is_runnable_as_is():
    text = (SCRIPT.parent / "gpu_check.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash") and "gpu_check.py" in text and "PYTHONPATH" in text
