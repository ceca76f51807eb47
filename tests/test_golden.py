"""Golden parity: released Keras weights in our Flax models reproduce the original Keras outputs.

Reads ../shared (or $AGECOMPACT_SHARED); skipped with a reason when it is absent. Tolerances sit ~10x
above what the ports reach on this CPU (ages <= 8.4e-5 years, heads <= 1e-6), so a regression shows.
"""

import numpy as np
import pytest

import agecompact

SSRNET_SETS = {
    "imdb": "weights/ssrnet/ssrnet_imdb.h5",
    "wiki": "weights/ssrnet/ssrnet_wiki.h5",
    "morph2": "weights/ssrnet/ssrnet_morph2.h5",
    "megaface_asian": "weights/ssrnet/ssrnet_megaface_asian.h5",
}
STAGE_HEADS = [f"{h}{k}" for h in ("pred_age_stage", "local_delta_stage", "delta_s") for k in (1, 2, 3)]


@pytest.fixture(scope="module")
def ssrnet_golden(shared_path):
    return np.load(shared_path("reference/ssrnet_golden_keras.npz"))


@pytest.mark.parametrize("weight_set", sorted(SSRNET_SETS))
def test_ssrnet_matches_keras(weight_set, ssrnet_golden, shared_path):
    model = agecompact.load_model(shared_path(SSRNET_SETS[weight_set]))
    assert model.arch == "ssrnet" and model.num_params == 40_915
    out = model.outputs(ssrnet_golden["inputs_bgr_uint8"])
    pred = model.predict(ssrnet_golden["inputs_bgr_uint8"])
    assert pred.dtype == np.float32 and pred.shape == (192,)
    assert np.abs(pred - ssrnet_golden[f"{weight_set}/pred_a"][:, 0]).max() <= 1e-3
    for head in STAGE_HEADS:
        ref = ssrnet_golden[f"{weight_set}/{head}"]
        np.testing.assert_allclose(out[head].reshape(ref.shape), ref, atol=1e-5, rtol=0, err_msg=head)


def test_aec_matches_keras(shared_path):
    golden = np.load(shared_path("reference/aec_golden_keras.npz"))
    model = agecompact.load_model(shared_path("weights/aec/aec_weights.hdf5"))
    assert model.arch == "aec" and model.num_params == 20_014
    x = golden["inputs_bgr_uint8"]
    out = model.outputs(x)
    assert np.abs(model.predict(x) - golden["pred_a"][:, 0]).max() <= 1e-3
    assert np.abs(out["pre_4"] - golden["pre_4"][:, 0]).max() <= 1e-3
    # dense_3 / dense_6 / dense_9 are the softmax outputs of the 20-, 4- and 1-year heads
    for ours, keras in (("probs_20y", "dense_3"), ("probs_4y", "dense_6"), ("probs_1y", "dense_9")):
        np.testing.assert_allclose(out[ours], golden[keras], atol=1e-5, rtol=0, err_msg=ours)


@pytest.mark.parametrize("stem,arch,total", [
    ("c3ae_imdb_v89", "c3ae_full_se", 53_993),
    ("imdb_focal_loss_c3ae_v84", "c3ae_full", 48_633),
])
def test_c3ae_matches_keras(stem, arch, total, shared_path):
    golden = np.load(shared_path(f"reference/c3ae_golden_keras__{stem}.npz"))
    model = agecompact.load_model(shared_path(f"weights/c3ae/{stem}.h5"))
    assert model.arch == arch and model.num_params == total
    x = golden["inputs_bgr_uint8"]  # the golden run fed the same crop to all three inputs
    out = model.outputs(x)
    assert np.abs(model.predict(x) - golden["out0"][:, 0]).max() <= 1e-3
    np.testing.assert_allclose(out["distribution"], golden["out1"], atol=1e-5, rtol=0)
    triple = model.predict(np.repeat(x[:8, None], 3, axis=1))
    np.testing.assert_allclose(triple, golden["out0"][:8, 0], atol=1e-3)


ALL_WEIGHTS = [
    ("weights/ssrnet/ssrnet_imdb.h5", "ssrnet"),
    ("weights/ssrnet/ssrnet_wiki.h5", "ssrnet"),
    ("weights/ssrnet/ssrnet_morph2.h5", "ssrnet"),
    ("weights/ssrnet/ssrnet_megaface_asian.h5", "ssrnet"),
    ("weights/ssrnet/ssrnet_gender_imdb.h5", "ssrnet_gender"),
    ("weights/ssrnet/ssrnet_gender_wiki.h5", "ssrnet_gender"),
    ("weights/ssrnet/ssrnet_gender_morph.h5", "ssrnet_gender"),
    ("weights/ssrnet_megaage/ssrnet_megaage_asian.h5", "ssrnet"),
    ("weights/aec/aec_weights.hdf5", "aec"),
    ("weights/c3ae/c3ae_imdb_v89.h5", "c3ae_full_se"),
    ("weights/c3ae/imdb_focal_loss_c3ae_v84.h5", "c3ae_full"),
]


@pytest.mark.parametrize("rel,arch", ALL_WEIGHTS)
def test_every_released_file_imports(rel, arch, shared_path):
    model = agecompact.load_model(shared_path(rel))
    assert model.arch == arch
    assert model.num_params == {"ssrnet": 40_915, "ssrnet_gender": 40_915, "aec": 20_014,
                                "c3ae_full": 48_633, "c3ae_full_se": 53_993}[arch]
    x = np.load(shared_path("reference/ssrnet_golden_keras.npz"))["inputs_bgr_uint8"][:16]
    pred = model.predict(x)
    assert np.all(np.isfinite(pred))
    if arch == "ssrnet_gender":
        assert np.all((pred >= -0.05) & (pred <= 1.05))  # V = 1: a 0..1 gender score
    else:
        assert 0 < np.median(pred) < 101


def test_gender_model_separates_utkface_genders(shared_path):
    """The V=1 gender weights import meaningfully: UTKFace gender 0 (male) scores above gender 1."""
    golden = np.load(shared_path("reference/ssrnet_golden_keras.npz"))
    model = agecompact.load_model(shared_path("weights/ssrnet/ssrnet_gender_wiki.h5"))
    utk = np.array([p.startswith("utkface/") for p in golden["paths"]])
    score = model.predict(golden["inputs_bgr_uint8"][utk])
    utk_gender = np.array([int(p.split("/")[-1].split("_")[1]) for p in golden["paths"][utk]])
    assert score[utk_gender == 0].mean() > score[utk_gender == 1].mean() + 0.2
