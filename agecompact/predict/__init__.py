"""Prediction on user files: find faces, crop them exactly as the model was trained, estimate, draw.

``agecompact.predict(source, model=...)`` is the one-call entry point (:func:`agecompact.predict.api.predict`):
this package is itself callable, so ``agecompact.predict(...)`` works however it was imported.
``Predictor`` handles batches of in-memory images; ``PredictRun`` walks files, folders and videos and
writes annotated copies and JSON records.
"""

import sys
import types

from agecompact.predict.api import FaceRecord, clear_cache, predict
from agecompact.predict.pipeline import FaceResult, Predictor
from agecompact.predict.run import PredictRun, Tally

__all__ = ["FaceRecord", "FaceResult", "PredictRun", "Predictor", "Tally", "clear_cache", "predict"]


class _CallablePackage(types.ModuleType):
    """``agecompact.predict`` is both this package and the function: importing a submodule sets the
    package attribute ``agecompact.predict`` to the package, so the package forwards calls."""

    def __call__(self, *args, **kwargs):
        return predict(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
__wrapped__ = predict  # inspect.signature(agecompact.predict) shows predict's signature
