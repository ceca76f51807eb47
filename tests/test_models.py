"""Architectures: pinned sizes (Keras convention), output shapes, determinism of initialisation."""

import jax
import numpy as np
import pytest
from flax import nnx

from agecompact.models import MODELS, create_model, param_counts

# Params + BatchNorm statistics, as Keras counts them (spec §0.1).
PINNED_TOTALS = {
    "ssrnet": 40_915,
    "ssrnet_gender": 40_915,
    "c3ae": 36_345,
    "c3ae_full": 48_633,
    "c3ae_full_se": 53_993,
    "aec": 20_014,
    "aec_nosharpen": 19_930,
    "aec_pair": 39_944,  # aec + aec_nosharpen
}
PINNED_NON_TRAINABLE = {"ssrnet": 384, "ssrnet_gender": 384, "c3ae": 256, "c3ae_full": 256,
                        "c3ae_full_se": 256, "aec": 256,
                        "aec_nosharpen": 256, "aec_pair": 512}


def test_every_registered_model_is_pinned():
    assert set(MODELS) == set(PINNED_TOTALS)


@pytest.mark.parametrize("name", sorted(PINNED_TOTALS))
def test_parameter_totals(name):
    counts = param_counts(create_model(name))
    assert counts["total"] == PINNED_TOTALS[name]
    assert counts["non_trainable"] == PINNED_NON_TRAINABLE[name]
    assert counts["trainable"] + counts["non_trainable"] == counts["total"]
    assert MODELS[name].num_params == PINNED_TOTALS[name]


def _forward(model, x):
    # Batch statistics: an untrained network in eval mode sees raw 0..255 activations, which saturate
    # SSR-Net's tanh Δ at exactly -1 and make its (faithful, unguarded) stage denominator zero.
    model.train()
    return model(x, rngs=nnx.Rngs(dropout=0))


@pytest.mark.parametrize("name", sorted(PINNED_TOTALS))
def test_output_shapes(name):
    model = create_model(name)
    x = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    out = _forward(model, x)
    assert out["pred"].shape == (3,)
    assert np.all(np.isfinite(np.asarray(out["pred"])))
    if name.startswith("ssrnet"):
        for k in (1, 2, 3):
            assert out[f"pred_age_stage{k}"].shape == (3, 3)
            assert out[f"delta_s{k}"].shape == (3, 1)
    elif name.startswith("aec"):
        assert out["probs_20y"].shape == (3, 5) and out["probs_1y"].shape == (3, 4)
        np.testing.assert_allclose(np.asarray(out["probs_4y"]).sum(-1), 1.0, rtol=1e-5)
    else:
        assert out["distribution"].shape == (3, 12)
        np.testing.assert_allclose(np.asarray(out["distribution"]).sum(-1), 1.0, rtol=1e-5)


def test_context_model_single_crop_equals_three_identical_crops():
    model = create_model("c3ae_full")
    x = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    single = np.asarray(model(x)["pred"])
    triple = np.asarray(model(np.repeat(x[:, None], 3, axis=1))["pred"])
    np.testing.assert_allclose(single, triple, rtol=1e-6)


def test_context_model_uses_all_three_crops():
    model = create_model("c3ae_full")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (2, 3, 64, 64, 3), dtype=np.uint8)
    y = x.copy()
    y[:, 2] = rng.integers(0, 256, y[:, 2].shape, dtype=np.uint8)  # change only the inner crop
    assert not np.allclose(np.asarray(model(x)["pred"]), np.asarray(model(y)["pred"]))


def test_plain_c3ae_rejects_context_input():
    model = create_model("c3ae")
    with pytest.raises(ValueError):
        model(np.zeros((1, 3, 64, 64, 3), np.uint8))


def test_initialisation_is_seeded():
    a = nnx.to_pure_dict(nnx.state(create_model("aec", seed=3), nnx.Param))
    b = nnx.to_pure_dict(nnx.state(create_model("aec", seed=3), nnx.Param))
    c = nnx.to_pure_dict(nnx.state(create_model("aec", seed=4), nnx.Param))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c), strict=True))


def test_aec_sharpen_kernel_starts_as_the_published_filter():
    kernel = np.asarray(create_model("aec").sharpen.kernel[...])
    expected = np.zeros((3, 3, 3, 3), np.float32)
    expected[:, :, 0, 0] = 1.0
    expected[1, 1, 0, 0] = -7.0
    np.testing.assert_array_equal(kernel, expected)


def test_aec_bin0_quirk_is_an_option():
    quirk = create_model("aec", seed=5)
    plain = create_model("aec", seed=5, bin0_quirk=False)
    x = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    q, p = quirk(x), plain(x)
    bonus = sum(np.asarray(q[k])[:, 0] for k in ("probs_20y", "probs_4y", "probs_1y"))
    np.testing.assert_allclose(np.asarray(q["pred"]) - np.asarray(p["pred"]), bonus, rtol=1e-5, atol=1e-5)


def test_ssrnet_merge_matches_the_published_formula():
    """ŷ = V Σ_k Σ_i (i + λ η_k[i]) p_k[i] / Π_{j≤k} s_j (1 + λ_d Δ_j), written out by hand."""
    model = create_model("ssrnet", seed=7)
    x = np.random.default_rng(4).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    out = {k: np.asarray(v, np.float64) for k, v in model(x).items()}
    expected = np.zeros(5)
    for n in range(5):
        denom, total = 1.0, 0.0
        for k in (1, 2, 3):
            denom *= 3 * (1 + out[f"delta_s{k}"][n, 0])
            total += sum((i + out[f"local_delta_stage{k}"][n, i]) * out[f"pred_age_stage{k}"][n, i]
                         for i in range(3)) / denom
        expected[n] = 101 * total
    np.testing.assert_allclose(out["pred"], expected, rtol=1e-5)


def test_two_point_encoding():
    from agecompact.models.c3ae import two_point_encode

    v = np.asarray(two_point_encode(np.array([22.0, 0.0, 110.0, 35.5])))
    assert v.shape == (4, 12)
    np.testing.assert_allclose(v.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(v[0, 2:4], [0.8, 0.2], rtol=1e-6)
    assert v[1, 0] == 1.0 and v[2, 11] == 1.0
    np.testing.assert_allclose(v[3, 3:5], [0.45, 0.55], rtol=1e-5)
    # the anchors' expectation recovers the age
    np.testing.assert_allclose(v @ (10.0 * np.arange(12)), [22.0, 0.0, 110.0, 35.5], rtol=1e-5)


def test_aec_pair_is_the_mean_of_its_members():
    """Every output of the pair is its members' mean; a pair state built from two trained files loads."""
    from agecompact.api import model_from_state
    from agecompact.models.aec import pair_state
    from agecompact.weights.modelfile import ModelMeta

    a, b = create_model("aec", seed=2), create_model("aec_nosharpen", seed=3)
    keep = nnx.Any(nnx.Param, nnx.BatchStat)
    state = pair_state([nnx.to_pure_dict(nnx.state(m, keep)) for m in (a, b)])
    pair = model_from_state(ModelMeta.for_arch("aec_pair"), state)
    pair.eval()
    x = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    got, oa, ob = pair(x), a(x), b(x)
    assert set(got) == set(oa)
    for k in got:
        np.testing.assert_allclose(np.asarray(got[k]), (np.asarray(oa[k]) + np.asarray(ob[k])) / 2, rtol=1e-5,
                                   atol=1e-5)
    assert not np.allclose(np.asarray(oa["pred"]), np.asarray(ob["pred"]))  # the members differ


def test_aec_pair_has_no_keras_counterpart():
    from agecompact.errors import InputError
    from agecompact.models.registry import keras_layer_map

    with pytest.raises(InputError, match="no Keras counterpart"):
        keras_layer_map("aec_pair", create_model("aec_pair"))


def test_every_family_entry_resolves():
    """The family registry's hooks name real functions, and every architecture's family has an entry."""
    import importlib

    from agecompact.models.families import FAMILIES, hook
    from agecompact.training.config import RECIPES

    assert {spec.family for spec in MODELS.values()} == set(FAMILIES) == set(RECIPES)
    for family in FAMILIES.values():
        refs = [family.loss, family.onnx_builder, family.age_std] + ([family.init_hook] if family.init_hook else [])
        for ref in refs:
            assert callable(hook(ref)), ref
        assert callable(importlib.import_module(family.models).keras_layer_map)
        assert RECIPES[family.name].epochs == family.recipe["epochs"]
