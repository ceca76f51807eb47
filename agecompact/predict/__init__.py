"""Prediction on user files: find faces, crop them exactly as the model was trained, estimate, draw.

``Predictor`` handles batches of in-memory images; ``PredictRun`` walks files, folders and videos and
writes annotated copies and JSON records.
"""

from agecompact.predict.pipeline import FaceResult, Predictor
from agecompact.predict.run import PredictRun, Tally

__all__ = ["FaceResult", "PredictRun", "Predictor", "Tally"]
