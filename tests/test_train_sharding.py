"""Data parallelism: a train step sharded over two (forced host) devices equals the one-device step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np, optax
    from agecompact.models import create_model
    from agecompact.training import steps as S
    from agecompact.training.losses import loss_for

    assert len(jax.devices()) == 2, jax.devices()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    y = rng.uniform(5, 75, 16).astype(np.float32)
    results = {}
    for n in (1, 2):
        par = S.make_parallel(jax.devices()[:n])
        model = create_model("ssrnet", seed=0)
        model.train()
        with S.bn_momentum_zero(model) as momentum:
            graphdef, params, stats = S.split_model(model)
        model.eval()
        graphdef_eval = S.split_model(model)[0]
        # plain gradient steps: Adam's first update is lr * sign(g), which turns rounding noise in a
        # near-zero gradient into an lr-sized difference and would hide what is being compared
        tx = optax.identity()
        state = par.replicate(S.init_state(params, stats, tx))
        step = S.make_train_step(graphdef, loss_for("ssrnet"), tx, par, bn_momentum=momentum)
        key = par.replicate(S.seed_key_data(0))
        losses = []
        for i in range(2):
            state, m = step(state, par.put_batch(images), par.put_batch({"y": y}), np.float32(1e-4),
                            np.int32(i), key)
            losses.append(float(m["loss"]))
        pred = S.make_eval_step(graphdef_eval, par)(state["params"], state["batch_stats"], par.put_batch(images))
        assert len(pred.sharding.device_set) == n
        leaves = [np.asarray(x).ravel() for x in jax.tree.leaves((state["params"], state["batch_stats"]))]
        results[n] = {"losses": losses, "pred": np.asarray(pred).tolist(),
                      "weights": np.concatenate(leaves).tolist()}
    print(json.dumps(results))
""")


def test_two_device_step_equals_one_device_step():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    import numpy as np

    one, two = res["1"], res["2"]
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    np.testing.assert_allclose(two["pred"], one["pred"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(two["weights"], one["weights"], rtol=1e-4, atol=1e-5)
    assert one["losses"][1] != one["losses"][0]  # the first step did update the weights
