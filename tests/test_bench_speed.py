"""`agecompact bench speed`: forward and train-step timing, float32 and bfloat16."""

import json

import numpy as np


def test_speed_json_forward_and_train(cli):
    result = cli("bench", "speed", "--model", "aec", "--batch-size", "4", "--dtype", "float32",
                 "--dtype", "bfloat16", "--runs", "3", "--max-seconds", "2", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    rows = {(r["what"], r["dtype"]): r for r in doc["results"]}
    assert set(rows) == {(w, d) for w in ("forward", "train_step") for d in ("float32", "bfloat16")}
    for r in rows.values():
        assert r["arch"] == "aec" and r["batch"] == 4 and r["runs"] >= 3
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        assert np.isclose(r["images_per_s"], 4 / (r["median_ms"] / 1e3))
    assert doc["device"]["backend"] == "cpu"


def test_speed_bad_options(cli):
    assert cli("bench", "speed", "--dtype", "float16").exit_code == 2
    assert cli("bench", "speed", "--what", "backward").exit_code == 2
    bad = cli("bench", "speed", "--model", "resnet")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: unknown model 'resnet'")


def test_mixed_precision_step_tracks_float32():
    """A bfloat16 step computes nearly the float32 loss, keeps float32 weights and really uses bf16."""
    import jax

    from agecompact.models import create_model
    from agecompact.training import steps as S
    from agecompact.training.losses import loss_for

    par = S.make_parallel()
    rng = np.random.default_rng(0)
    images = par.put_batch(rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8))
    targets = par.put_batch({"y": rng.uniform(1, 90, 8).astype(np.float32)})
    key = S.seed_key_data(0)
    results = {}
    for dtype in ("float32", "bfloat16"):
        model = create_model("ssrnet", seed=0)
        model.train()
        graphdef, params, stats = S.split_model(model)
        tx = S.make_optimizer(1e-8)
        step = S.make_train_step(graphdef, loss_for("ssrnet"), tx, par, compute_dtype=dtype)
        lowered = step.lower(S.init_state(params, stats, tx), images, targets, np.float32(1e-3), np.int32(0), key)
        state, metrics = step(S.init_state(params, stats, tx), images, targets, np.float32(1e-3), np.int32(0), key)
        assert bool(metrics["finite"])
        assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(state["params"]))
        results[dtype] = (float(metrics["loss"]), "bf16" in lowered.as_text())
    assert not results["float32"][1] and results["bfloat16"][1]
    assert abs(results["bfloat16"][0] - results["float32"][0]) < 0.05 * results["float32"][0] + 0.5
