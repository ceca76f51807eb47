"""Evaluation: age metrics (MAE, CA(n), RMSE, per-decade MAE) and ``evaluate`` for models on datasets."""

from agecompact.evaluation.metrics import age_metrics, gender_metrics

__all__ = ["age_metrics", "gender_metrics"]
