"""Age-estimation metrics as the papers define them.

* MAE: mean |ŷ − y| in years; RMSE: sqrt(mean (ŷ − y)²).
* CA(n): the fraction of faces with |ŷ − y| ≤ n, on the continuous prediction (not rounded), as
  MegaAge-Asian's ``CA.py`` computes it (spec §6.4); reported for n = 3 and 5.
* MAE per decade of the true age: "0-9", "10-19", ..., with the count of faces in each.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def decade_label(decade: int) -> str:
    return f"{decade * 10}-{decade * 10 + 9}"


def age_metrics(pred: Any, true: Any) -> dict[str, Any]:
    """MAE, CA(3), CA(5), RMSE, count and MAE by decade; NaN metrics (None) for an empty set."""
    pred = np.asarray(pred, np.float64).reshape(-1)
    true = np.asarray(true, np.float64).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {true.shape[0]} labels")
    n = int(true.size)
    if n == 0:
        return {"mae": None, "ca3": None, "ca5": None, "rmse": None, "count": 0, "mae_by_decade": {}}
    err = np.abs(pred - true)
    by_decade: dict[str, dict[str, float | int]] = {}
    decades = np.floor(np.clip(true, 0, None) / 10).astype(int)
    for d in np.unique(decades):
        sel = decades == d
        by_decade[decade_label(int(d))] = {"mae": float(err[sel].mean()), "count": int(sel.sum())}
    return {
        "mae": float(err.mean()),
        "ca3": float(np.mean(err <= 3.0)),
        "ca5": float(np.mean(err <= 5.0)),
        "rmse": float(np.sqrt(np.mean(np.square(pred - true)))),
        "count": n,
        "mae_by_decade": by_decade,
    }


def gender_metrics(score: Any, gender: Any) -> dict[str, Any]:
    """For V = 1 gender regressors: MAE of the 0..1 score, accuracy at 0.5 (1 = male), count."""
    score = np.asarray(score, np.float64).reshape(-1)
    gender = np.asarray(gender, np.float64).reshape(-1)
    n = int(gender.size)
    if n == 0:
        return {"mae": None, "accuracy": None, "count": 0}
    return {
        "mae": float(np.mean(np.abs(score - gender))),
        "accuracy": float(np.mean((score >= 0.5) == (gender >= 0.5))),
        "count": n,
    }


def task_metrics(task: str, pred: Any, y: Any) -> dict[str, Any]:
    """The metrics of a model's task: ``gender_metrics`` for gender models, ``age_metrics`` otherwise (the
    one choice shared by the training loop's validation and ``agecompact eval``)."""
    return gender_metrics(pred, y) if task == "gender" else age_metrics(pred, y)
