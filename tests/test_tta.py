"""Flip test-time augmentation (``--tta flip``) and the sub-20,000-value AEC (``aec_nosharpen``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact.errors import UsageError
from agecompact.inference import get_engine
from agecompact.inference.tta import FlipEngine, check_tta, mirrored

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402


@pytest.fixture(scope="module")
def aec_model():
    from agecompact.api import AgeModel
    from agecompact.models.registry import create_model
    from agecompact.weights.modelfile import ModelMeta

    return AgeModel(create_model("aec_nosharpen", seed=3), ModelMeta.for_arch("aec_nosharpen", name="tiny-test"))


def test_mirror_flips_the_width_axis_of_chips_and_context_crops():
    x = np.arange(2 * 4 * 5 * 3).reshape(2, 4, 5, 3)
    np.testing.assert_array_equal(mirrored(x)[:, :, 0], x[:, :, -1])
    c = np.arange(2 * 3 * 4 * 5 * 3).reshape(2, 3, 4, 5, 3)
    np.testing.assert_array_equal(mirrored(c)[:, :, :, 0], c[:, :, :, -1])
    with pytest.raises(UsageError, match="batch of faces"):
        mirrored(np.zeros((4, 5, 3)))


def test_flip_engine_is_the_mean_of_the_face_and_its_mirror(aec_model):
    x = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    plain = get_engine(aec_model, "jax")
    flip = get_engine(aec_model, "jax", tta="flip")
    assert isinstance(flip, FlipEngine) and flip.name.endswith("+flip")
    a, b = plain.predict(x), plain.predict(x[:, :, ::-1])
    assert np.abs(a - b).max() > 1e-3  # the mirror really is another view for this random model
    np.testing.assert_allclose(flip.predict(x), (a + b) / 2, rtol=1e-5, atol=1e-4)
    out = flip.outputs(x)
    np.testing.assert_allclose(out["probs_20y"].sum(-1), 1.0, rtol=1e-5)  # still distributions
    np.testing.assert_allclose(out["pred"], flip.predict(x), rtol=1e-5, atol=1e-4)
    sym = np.concatenate([x[:, :, :32], x[:, :, :32][:, :, ::-1]], axis=2)  # mirror-symmetric faces
    np.testing.assert_allclose(flip.predict(sym), plain.predict(sym), rtol=1e-5, atol=1e-4)


def test_unknown_tta_is_a_usage_error(aec_model):
    assert check_tta(None) == "none" and check_tta("FLIP") == "flip"
    with pytest.raises(UsageError, match="test-time augmentation"):
        get_engine(aec_model, "jax", tta="rotate")


def test_eval_cli_records_the_tta_and_it_changes_the_predictions(cli, tmp_path, aec_model):
    npz = write_synthetic_npz(tmp_path / "faces.npz", 40)
    model = tmp_path / "m.msgpack"
    aec_model.save(model)
    runs = {}
    for mode in ("none", "flip"):
        r = cli("eval", "--model", model, "--db", npz, "--split", "all", "--backend", "jax", "--tta", mode, "--json")
        assert r.exit_code == 0, r.output
        runs[mode] = json.loads(r.stdout)
        assert runs[mode]["tta"] == mode
    assert runs["none"]["metrics"]["mae"] != runs["flip"]["metrics"]["mae"]
    r = cli("eval", "--model", model, "--db", npz, "--tta", "rotate")
    assert r.exit_code == 2 and "rotate" in r.output


def test_predict_cli_refuses_an_unknown_tta_in_one_line(cli, tmp_path):
    import cv2

    img = tmp_path / "face.png"
    cv2.imwrite(str(img), np.full((64, 64, 3), 128, np.uint8))
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "agecompact", "predict", str(img), "--detector", "none", "--tta",
                        "rotate"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: Invalid value for '--tta'") and "'rotate' is not one of 'none', 'flip'" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_tiny_aec_drops_only_the_sharpen_convolution(aec_model):
    from agecompact.models.registry import create_model, param_counts

    full, tiny = create_model("aec"), aec_model.module
    assert param_counts(full)["total"] - param_counts(tiny)["total"] == 84  # 3x3x3x3 kernel + 3 biases
    assert param_counts(tiny)["total"] <= 20_000 and tiny.sharpen is None


def test_train_cli_offers_every_registered_architecture():
    from agecompact.cli._choices import ArchName
    from agecompact.models.registry import MODELS

    assert {m.value for m in ArchName} == set(MODELS)
