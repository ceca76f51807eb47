"""Detect, crop as in training, and estimate ages for a batch of images in one forward pass per model.

The batch is padded to one of a few fixed sizes so that a run compiles the network at most once per
size (two sizes: a small one for single pictures, ``batch_size`` for folders and videos).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agecompact.errors import UsageError
from agecompact.faces.crop import CropSpec, network_input
from agecompact.faces.detector import Face
from agecompact.inference import get_engine

SMALL_BUCKET = 8


@dataclass(frozen=True)
class FaceResult:
    index: int
    box: tuple[float, float, float, float]  # x, y, w, h in pixels of the input image
    score: float | None  # detector confidence; None for detectors without one (Haar, none)
    age: float
    gender: str | None = None  # "M" / "F" when a gender model is given
    gender_score: float | None = None  # P(male) in [0, 1] from the gender model (IMDB-WIKI: 1 = male)
    age_std: float | None = None  # spread of the model's own age distribution, years (predict.uncertainty)


def male_probability(score: float, calibration: dict | None = None) -> float:
    """The gender model's output as P(male). SSR-Net's V = 1 regressor targets 0 (female) / 1 (male) and
    can overshoot, so the score is clipped to [0, 1]; a model whose header carries a Platt calibration
    (``{"method": "platt", "a", "b"}``, fitted on labelled faces by benchmarks/gender_calibration.py) then
    maps it through ``1 / (1 + exp(-(a * score + b)))``, a probability that matches observed frequencies."""
    if not np.isfinite(score):
        return float("nan")
    s = float(np.clip(score, 0.0, 1.0))
    if calibration and calibration.get("method") == "platt":
        return float(1.0 / (1.0 + np.exp(-(float(calibration["a"]) * s + float(calibration["b"])))))
    return s


def batch_buckets(batch_size: int) -> tuple[int, ...]:
    return tuple(sorted({min(SMALL_BUCKET, batch_size), batch_size}))


class ModelRunner:
    """A model, the engine that runs it, and how its inputs are cut."""

    def __init__(self, model, *, backend: str, batch_size: int, margin: float | None = None,
                 color_order: str | None = None, quantize: str | None = None, tta: str | None = None):
        self.model = model
        self.engine = get_engine(model, backend, quantize=quantize, tta=tta)
        self.crop = CropSpec.from_meta(model.meta, margin=margin, color_order=color_order)
        self.batch_size = batch_size
        self.buckets = batch_buckets(batch_size)
        # JAX compiles once per batch shape, so batches are padded to a fixed size; ONNX Runtime
        # takes any batch size at no compile cost, so padding would only waste work there.
        self.pads = getattr(self.engine, "backend", "jax") == "jax"

    def inputs(self, image: np.ndarray, faces: Sequence[Face]) -> list[np.ndarray]:
        return [network_input(image, f.box, self.crop, landmarks=f.landmarks) for f in faces]

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``pred`` and the age spread (None where the model has none) for ``x``, in chunks of
        ``batch_size`` padded to a fixed bucket."""
        from agecompact.batching import padded_batches
        from agecompact.predict.uncertainty import age_std

        preds, spreads = [], []
        for part, n in padded_batches(x, self.batch_size, self.buckets if self.pads else None):
            heads = {k: np.asarray(v)[:n] for k, v in self.engine.outputs(part, batch_size=len(part)).items()}
            preds.append(np.asarray(heads["pred"], np.float32))
            spreads.append(age_std(self.model.meta, heads) if self.model.meta.task == "age" else None)
        if not preds:
            return np.zeros((0,), np.float32), None
        spread = None if any(s is None for s in spreads) else np.concatenate(spreads)
        return np.concatenate(preds), spread


class Predictor:
    """Faces, crops and ages for batches of BGR images; the images themselves are never modified."""

    def __init__(self, age_model, *, detector, gender_model=None, backend: str = "auto", batch_size: int = 64,
                 margin: float | None = None, color_order: str | None = None, min_score: float = 0.0,
                 quantize: str | None = None, tta: str | None = None):
        if batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if age_model.meta.task != "age":
            raise UsageError(f"--model {age_model.name} is a {age_model.meta.task} model, not an age model "
                             "(give it as --gender-model)")
        if gender_model is not None and gender_model.meta.task != "gender":
            raise UsageError(f"--gender-model {gender_model.name} is a {gender_model.meta.task} model, "
                             "not a gender model")
        self.detector = detector
        self.min_score = min_score
        kw = {"backend": backend, "batch_size": batch_size, "margin": margin, "color_order": color_order,
              "quantize": quantize, "tta": tta}
        self.age = ModelRunner(age_model, **kw)
        self.gender = ModelRunner(gender_model, **kw) if gender_model is not None else None

    @property
    def backend(self) -> str:
        return self.age.engine.name

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = self.detector.detect(image)
        if getattr(self.detector, "scored", True):
            faces = [f for f in faces if f.score >= self.min_score]
        return faces

    def estimate(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[FaceResult]]:
        """All faces of all images through each model in one batched pass."""
        counts = [len(f) for f in faces]
        if sum(counts) == 0:
            return [[] for _ in images]
        ages, spreads = self._outputs(self.age, images, faces)
        genders = self._outputs(self.gender, images, faces)[0] if self.gender is not None else None
        scored = getattr(self.detector, "scored", True) or getattr(self.detector, "reports_score", False)
        calibration = self.gender.model.meta.calibration if self.gender is not None else None
        results: list[list[FaceResult]] = []
        k = 0
        for image_faces in faces:
            row = []
            for i, f in enumerate(image_faces):
                g = male_probability(genders[k], calibration) if genders is not None else None
                row.append(FaceResult(
                    index=i, box=tuple(float(v) for v in f.box), score=float(f.score) if scored else None,
                    age=float(ages[k]), gender=None if g is None else ("M" if g >= 0.5 else "F"), gender_score=g,
                    age_std=None if spreads is None else float(spreads[k])))
                k += 1
            results.append(row)
        return results

    def close(self) -> None:
        """Release engine resources (onnxruntime worker threads)."""
        for runner in (self.age, self.gender):
            close = getattr(getattr(runner, "engine", None), "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[FaceResult]]:
        return self.estimate(images, [self.detect(im) for im in images])

    @staticmethod
    def _outputs(runner: ModelRunner, images, faces) -> tuple[np.ndarray, np.ndarray | None]:
        crops = [c for image, fs in zip(images, faces, strict=True) for c in runner.inputs(image, fs)]
        return runner.run(np.stack(crops))
