"""C3AE's label-distribution target (``label_distribution = "gaussian"``): the encoding, the loss and the
options that are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from agecompact.errors import UsageError
from agecompact.training.config import TrainConfig, resolve

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402


def test_gaussian_encoding_is_a_distribution_centred_on_the_age():
    from agecompact.training.losses import gaussian_encode

    ages = np.array([0.0, 22.0, 35.0, 64.0, 110.0], np.float32)
    p = np.asarray(gaussian_encode(ages, 5.0))
    assert p.shape == (5, 12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(p.argmax(axis=1), [0, 2, 3, 6, 11])  # the nearest anchor holds the most
    np.testing.assert_allclose(p[2, 3], p[2, 4], rtol=1e-5)  # 35 lies halfway between 30 and 40
    centres = 10.0 * np.arange(12)
    np.testing.assert_allclose((p * centres).sum(axis=1)[1:4], ages[1:4], atol=0.5)  # its mean is the age
    sharp = np.asarray(gaussian_encode(ages, 0.5))
    assert sharp[1, 2] > 0.99  # a narrow Gaussian is the nearest anchor's one-hot
    wide = np.asarray(gaussian_encode(ages, 20.0))
    assert (wide > 1e-3).sum() > (p > 1e-3).sum()  # a wide one spreads over more bins


def test_the_gaussian_target_changes_the_kl_term_only():
    import jax
    import jax.numpy as jnp

    from agecompact.training.losses import loss_for

    rng = np.random.default_rng(0)
    out = {"pred": jnp.asarray(rng.uniform(10, 70, 8), jnp.float32),
           "distribution": jax.nn.softmax(jnp.asarray(rng.normal(size=(8, 12)), jnp.float32))}
    y = {"y": jnp.asarray(rng.uniform(5, 80, 8), jnp.float32)}
    _, two = loss_for("c3ae")(out, y)
    _, gauss = loss_for("c3ae", label_distribution="gaussian", label_sigma=5.0)(out, y)
    assert float(two["l1"]) == pytest.approx(float(gauss["l1"]))
    assert abs(float(two["kl"]) - float(gauss["kl"])) > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "aec", "label_distribution": "gaussian"}, "shapes C3AE's bin target"),
    ({"model": "c3ae", "label_distribution": "poisson"}, "unknown label_distribution"),
    ({"model": "c3ae", "label_distribution": "gaussian", "label_sigma": 0.0}, "label_sigma must be"),
])
def test_bad_label_distribution_options_are_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        resolve(TrainConfig(db="x", **kwargs))


def test_c3ae_trains_on_the_gaussian_target(tmp_path):
    from agecompact.training.loop import train_and_evaluate

    npz = write_synthetic_npz(tmp_path / "syn.npz", 192, seed=1)
    cfg = TrainConfig(db=str(npz), model="c3ae", epochs=2, batch_size=32, label_distribution="gaussian",
                      label_sigma=4.0)
    summary = train_and_evaluate(cfg, tmp_path / "run")
    assert np.isfinite(summary["val_mae"]) and summary["epochs"] == 2
