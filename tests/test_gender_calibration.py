"""Gender scores as probabilities: the Platt map, where its constants live (model header, ONNX metadata,
the pretrained registry via ``fetch``) and that an uncalibrated model keeps the clipped score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agecompact.api import AgeModel
from agecompact.models import create_model
from agecompact.predict.pipeline import male_probability
from agecompact.weights.modelfile import ModelMeta, read_header

PLATT = {"method": "platt", "a": 6.0, "b": -2.5}


def test_platt_maps_the_clipped_score_through_a_sigmoid():
    assert male_probability(0.7) == pytest.approx(0.7)
    assert male_probability(1.3) == 1.0 and male_probability(-0.2) == 0.0  # uncalibrated: clipped
    assert male_probability(0.7, PLATT) == pytest.approx(1 / (1 + math.exp(-(6.0 * 0.7 - 2.5))))
    assert male_probability(1.3, PLATT) == pytest.approx(male_probability(1.0, PLATT))  # clipped first
    assert math.isnan(male_probability(float("nan"), PLATT))
    probs = [male_probability(s, PLATT) for s in np.linspace(0, 1, 11)]
    assert all(0 < p < 1 for p in probs) and probs == sorted(probs)


def _gender_model(calibration=None) -> AgeModel:
    meta = ModelMeta.for_arch("ssrnet_gender", name="g")
    if calibration:
        meta.calibration = dict(calibration)
    return AgeModel(create_model("ssrnet_gender", seed=1), meta)  # seed 0 gives inf on flat images


def test_calibration_travels_in_the_header_and_the_onnx_metadata(tmp_path):
    from agecompact.export.onnx_export import metadata
    from agecompact.predict.models import _meta_from_onnx

    path = _gender_model(PLATT).save(tmp_path / "g.msgpack")
    assert read_header(path).calibration == PLATT
    assert read_header(_gender_model().save(tmp_path / "plain.msgpack")).calibration == {}
    props = metadata(_gender_model(PLATT), input_dtype="uint8", opset=17)
    assert _meta_from_onnx(props, "g.onnx").calibration == PLATT
    props.pop("calibration")  # an export from before calibration existed
    assert _meta_from_onnx(props, "old.onnx").calibration == {}


def test_predictor_uses_the_gender_models_calibration():
    import agecompact
    from agecompact.faces.detector import Face
    from agecompact.predict.pipeline import Predictor

    class OneFace:
        name, scored = "fixed", True

        def detect(self, image):
            return [Face(box=(8.0, 8.0, 48.0, 48.0), score=0.9)]

    image = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    age = agecompact.load_model("default")
    out = {}
    for key, cal in (("plain", {}), ("platt", PLATT)):
        # a freshly initialised SSR-Net is not finite on noise, so the trained zoo network stands in for a
        # gender regressor: only the header (task, calibration) matters to the pipeline
        gender = agecompact.load_model("default")
        gender.meta.task, gender.meta.calibration = "gender", dict(cal)
        with Predictor(age, detector=OneFace(), gender_model=gender, backend="jax") as p:
            out[key] = p.estimate([image], [p.detect(image)])[0][0].gender_score
    assert out["plain"] == 1.0  # an age of ~30 clipped
    assert out["platt"] == pytest.approx(male_probability(1.0, PLATT), abs=1e-6)
