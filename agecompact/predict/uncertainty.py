"""An age spread per face, from the distribution each model already computes (numpy, no JAX).

``age_std`` is the standard deviation, in years, of the age under the model's own output
distribution. It says how spread out the evidence the network gives is, not how far the estimate is
from the truth (it is not calibrated against errors); larger means the network is less decided.

* **C3AE**: the 12-bin distribution over the anchors 0, 10, ..., 110 years:
  ``sqrt(sum_i p_i (10 i - m)^2)`` with ``m = sum_i p_i 10 i``.
* **AEC**: its three softmax heads over 20-, 4- and 1-year bins, taken as independent:
  ``sqrt(20^2 Var(p20) + 4^2 Var(p4) + Var(p1))``, each variance over the bin indices.
* **SSR-Net**: the stage-wise soft bins. Stage k puts weight ``p_k[i]`` on the bin value
  ``V (i + eta_k[i]) / prod_{j<=k} s_j (1 + delta_j)``; its spread is the weighted standard deviation of
  those values scaled by the stage's total weight, and the stages' variances add. It is how much the age
  would move if each stage committed to single bins in proportion to its weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

C3AE_BIN_YEARS = 10.0
SSRNET_DEFAULTS = {"stage_num": (3, 3, 3), "lambda_local": 1.0, "lambda_d": 1.0, "v": 101.0}


def _weighted_var(p: np.ndarray, values: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 0.0, None)
    total = p.sum(axis=-1, keepdims=True)
    w = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    mean = (w * values).sum(axis=-1, keepdims=True)
    return (w * (values - mean) ** 2).sum(axis=-1), total[..., 0]


def c3ae_std(outputs: dict[str, np.ndarray], meta=None) -> np.ndarray:
    dist = np.asarray(outputs["distribution"], np.float64)
    anchors = C3AE_BIN_YEARS * np.arange(dist.shape[-1])
    var, _ = _weighted_var(dist, anchors)
    return np.sqrt(var)


def aec_std(outputs: dict[str, np.ndarray], meta=None) -> np.ndarray:
    var = 0.0
    for key, width in (("probs_20y", 20.0), ("probs_4y", 4.0), ("probs_1y", 1.0)):
        p = np.asarray(outputs[key], np.float64)
        v, _ = _weighted_var(p, width * np.arange(p.shape[-1]))
        var = var + v
    return np.sqrt(var)


def ssrnet_std(outputs: dict[str, np.ndarray], arch_kwargs: dict[str, Any], *, v_default: float) -> np.ndarray:
    opts = {**SSRNET_DEFAULTS, "v": v_default, **(arch_kwargs or {})}
    stages = [int(s) for s in opts["stage_num"]]
    denom = 1.0
    var = 0.0
    for k, s in enumerate(stages, start=1):
        delta = np.asarray(outputs[f"delta_s{k}"], np.float64).reshape(-1)
        eta = np.asarray(outputs[f"local_delta_stage{k}"], np.float64)
        p = np.asarray(outputs[f"pred_age_stage{k}"], np.float64)
        denom = denom * (s * (1.0 + float(opts["lambda_d"]) * delta))
        values = float(opts["v"]) * (np.arange(s) + float(opts["lambda_local"]) * eta) / denom[:, None]
        v, total = _weighted_var(p, values)
        var = var + v * total ** 2
    return np.sqrt(var)


def ssrnet_spread(outputs: dict[str, np.ndarray], meta) -> np.ndarray:
    return ssrnet_std(outputs, meta.arch_kwargs, v_default=1.0 if meta.arch == "ssrnet_gender" else 101.0)


def age_std(meta, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
    """Per-face spread in years (see the module docstring), or None when the outputs lack what it needs."""
    from agecompact.models.families import hook
    from agecompact.models.registry import family_of

    try:
        out = hook(family_of(meta.arch).age_std)(outputs, meta)
    except KeyError:
        return None
    return np.asarray(out, np.float32)
