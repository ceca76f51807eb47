"""Age metrics against hand computation, and ``evaluate`` against the model's own predictions."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact.evaluation.metrics import age_metrics, gender_metrics

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402


def test_age_metrics_by_hand():
    true = [20, 25, 30, 3, 99, 50]
    pred = [23, 25.5, 24.9, 8.0, 90, 50]
    # errors: 3, 0.5, 5.1, 5, 9, 0
    m = age_metrics(pred, true)
    assert m["count"] == 6
    assert m["mae"] == pytest.approx((3 + 0.5 + 5.1 + 5 + 9 + 0) / 6)
    assert m["ca3"] == pytest.approx(3 / 6)  # |err| <= 3: 3 (exactly), 0.5, 0
    assert m["ca5"] == pytest.approx(4 / 6)  # + 5 (exactly); 5.1 is out
    assert m["rmse"] == pytest.approx(math.sqrt((9 + 0.25 + 26.01 + 25 + 81 + 0) / 6))
    assert m["mae_by_decade"] == {
        "0-9": {"mae": pytest.approx(5.0), "count": 1},
        "20-29": {"mae": pytest.approx(1.75), "count": 2},
        "30-39": {"mae": pytest.approx(5.1), "count": 1},
        "50-59": {"mae": pytest.approx(0.0), "count": 1},
        "90-99": {"mae": pytest.approx(9.0), "count": 1},
    }
    assert list(m["mae_by_decade"]) == ["0-9", "20-29", "30-39", "50-59", "90-99"]
    assert age_metrics([], [])["count"] == 0 and age_metrics([], [])["mae"] is None
    with pytest.raises(ValueError):
        age_metrics([1, 2], [1])


def test_gender_metrics_by_hand():
    g = gender_metrics([0.9, 0.2, 0.6, 0.4], [1, 0, 0, 0])
    assert g == {"mae": pytest.approx((0.1 + 0.2 + 0.6 + 0.4) / 4), "accuracy": 0.75, "count": 4}


def test_evaluate_matches_predict(tmp_path):
    from agecompact.api import AgeModel, load_model
    from agecompact.evaluation.evaluate import evaluate
    from agecompact.models import create_model
    from agecompact.weights.modelfile import ModelMeta

    npz = write_synthetic_npz(tmp_path / "d.npz", 30, seed=5, with_split=True, db="demo")
    path = AgeModel(create_model("aec", seed=1), ModelMeta.for_arch("aec", name="aec-x")).save(tmp_path / "m.msgpack")
    data = np.load(npz)
    model = load_model(path)
    res = evaluate(path, npz, split="auto", backend="jax", batch_size=7)
    test_rows = np.flatnonzero(data["split"] == 1)
    assert res.summary["dataset"] == {"name": "demo", "path": str(npz.resolve()), "split": "test", "count": 6}
    expected = age_metrics(model.predict(data["image"][test_rows]), data["age"][test_rows])
    assert res.summary["metrics"]["mae"] == pytest.approx(expected["mae"], rel=1e-5)
    assert res.summary["metrics"]["ca5"] == expected["ca5"] and res.summary["backend"].startswith("jax")
    assert res.summary["run"] is None and res.summary["model"] == "aec-x"
    every = evaluate(path, npz, split="all", backend="jax")
    assert every.summary["metrics"]["count"] == 30
    train = evaluate(path, npz, split="train", backend="jax")
    assert train.summary["metrics"]["count"] == 24
    json.dumps(res.summary)  # the result is plain JSON
