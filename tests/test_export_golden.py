"""ONNX parity on the golden faces for every released weight set in ../shared/weights.

onnxruntime (through ``get_engine(model, "onnx")``, so the cache and the single-crop path of the C3AE
context models are exercised too) must agree with JAX to 1e-3 years, and with the original Keras
outputs where ../shared/reference has them. Skips without ../shared or onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import agecompact  # noqa: E402
from agecompact.export.onnx_export import max_abs_diff  # noqa: E402
from agecompact.inference import get_engine  # noqa: E402

TOL = 1e-3

# weight file -> (golden file, prefix of the Keras outputs in it or None, Keras key of the age)
WEIGHTS = {
    "ssrnet/ssrnet_imdb.h5": ("ssrnet_golden_keras.npz", "imdb/pred_a"),
    "ssrnet/ssrnet_wiki.h5": ("ssrnet_golden_keras.npz", "wiki/pred_a"),
    "ssrnet/ssrnet_morph2.h5": ("ssrnet_golden_keras.npz", "morph2/pred_a"),
    "ssrnet/ssrnet_megaface_asian.h5": ("ssrnet_golden_keras.npz", "megaface_asian/pred_a"),
    "ssrnet/ssrnet_gender_imdb.h5": ("ssrnet_golden_keras.npz", None),
    "ssrnet/ssrnet_gender_wiki.h5": ("ssrnet_golden_keras.npz", None),
    "ssrnet/ssrnet_gender_morph.h5": ("ssrnet_golden_keras.npz", None),
    "ssrnet_megaage/ssrnet_megaage_asian.h5": ("ssrnet_golden_keras.npz", None),
    "aec/aec_weights.hdf5": ("aec_golden_keras.npz", "pred_a"),
    "c3ae/c3ae_imdb_v89.h5": ("c3ae_golden_keras__c3ae_imdb_v89.npz", "out0"),
    "c3ae/imdb_focal_loss_c3ae_v84.h5": ("c3ae_golden_keras__imdb_focal_loss_c3ae_v84.npz", "out0"),
}


def test_every_released_weight_file_is_covered(shared):
    present = {str(p.relative_to(shared / "weights")) for p in (shared / "weights").rglob("*.h*5")}
    assert present <= set(WEIGHTS), f"weights without an ONNX parity test: {sorted(present - set(WEIGHTS))}"


@pytest.mark.parametrize("weights", sorted(WEIGHTS))
def test_onnx_matches_jax_and_keras_on_golden_faces(weights, shared_path):
    golden_file, keras_key = WEIGHTS[weights]
    golden = np.load(shared_path(f"reference/{golden_file}"))
    model = agecompact.load_model(shared_path(f"weights/{weights}"))
    engine = get_engine(model, "onnx")
    assert engine.name == "onnxruntime-cpu"
    x = golden["inputs_bgr_uint8"]  # single crops; context models get them on all three branches
    got, ref = engine.outputs(x), model.outputs(x)
    assert set(got) == set(ref)
    for name in ref:
        assert max_abs_diff(got[name], ref[name]) <= TOL, name
    if keras_key is not None:
        assert max_abs_diff(got["pred"], golden[keras_key][:, 0]) <= 1e-3
