"""ONNX export: graph structure, metadata, and parity with JAX for every registered architecture.

Models are randomly initialised and their BatchNorm statistics randomised, so BN folding is really
exercised; no ../shared needed. Skips cleanly without onnx / onnxruntime.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from agecompact.api import AgeModel  # noqa: E402
from agecompact.errors import UsageError  # noqa: E402
from agecompact.export import build_onnx, export_fingerprint, export_onnx, weights_sha256  # noqa: E402
from agecompact.export.onnx_export import max_abs_diff, sample_inputs  # noqa: E402
from agecompact.models.registry import MODELS, create_model  # noqa: E402
from agecompact.weights.modelfile import ModelMeta  # noqa: E402

TOL = 1e-3  # years; the acceptance bound


def random_model(arch: str, seed: int = 0) -> AgeModel:
    """A fresh model whose BatchNorm statistics and affine terms are far from their identity init."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    module = create_model(arch, seed=seed)
    rng = np.random.default_rng(seed)
    state = nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat))
    pure = nnx.to_pure_dict(state)

    def perturb(path, value):
        names = [str(getattr(p, "key", p)) for p in path]
        shape = np.shape(value)
        if "delta" in names and names[-1] == "kernel":
            # keep SSR-Net's Δ = tanh(.) away from -1, where 1 / (1 + Δ) makes the age ill-conditioned
            return value * 0.01
        if "bn" not in names and "bns" not in names:
            return value
        new = {"var": lambda: rng.uniform(0.3, 3.0, shape), "mean": lambda: rng.normal(0.0, 2.0, shape),
               "scale": lambda: rng.uniform(0.5, 1.5, shape), "bias": lambda: rng.normal(0.0, 0.2, shape)}
        return jnp.asarray(new[names[-1]](), jnp.float32)

    nnx.replace_by_pure_dict(state, jax.tree_util.tree_map_with_path(perturb, pure))
    nnx.update(module, state)
    meta = ModelMeta.for_arch(arch, name=f"random-{arch}", dataset="none", source={"kind": "test"})
    return AgeModel(module, meta)


def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def run(sess, x):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"images": x}), strict=True))


@pytest.mark.parametrize("arch", list(MODELS))
def test_parity_with_jax_every_arch(arch):
    model = random_model(arch)
    x = sample_inputs(model, 8, seed=1)
    ref = model.outputs(x)
    assert np.isfinite(ref["pred"]).all() and np.std(ref["pred"]) > 0, "degenerate test model"
    for dtype in ("uint8", "float32"):
        sess = session(build_onnx(model, input_dtype=dtype))
        xin = x.astype(dtype)
        for batch in (xin[:1], xin):  # batch 1 and a larger batch through the same dynamic graph
            got = run(sess, batch)
            assert set(got) == set(ref)
            for name, value in got.items():
                want = ref[name][: len(batch)]
                assert value.shape == want.shape and value.dtype == np.float32, name
                assert max_abs_diff(value, want) <= TOL, (arch, dtype, len(batch), name)


def test_fractional_float_input_is_not_rounded():
    model = random_model("ssrnet", seed=3)
    x = sample_inputs(model, 4, seed=2).astype(np.float32) + 0.37
    got = run(session(build_onnx(model, input_dtype="float32")), x)
    assert max_abs_diff(got["pred"], model.predict(x)) <= TOL


def test_graph_is_lean_nchw_with_folded_batchnorm():
    proto = build_onnx(random_model("ssrnet"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Transpose") == 1 and ops[0] == "Transpose"
    assert "BatchNormalization" not in ops
    assert ops.count("Conv") == 8 + 6  # two 4-conv streams and two 1x1 convs per stage
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [64, 64, 3]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert proto.opset_import[0].version == 17
    onnx.checker.check_model(proto, full_check=True)


def test_context_model_takes_three_crops():
    model = random_model("c3ae_full_se")
    proto = build_onnx(model)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 64, 64, 3]
    # distinct crops must matter: swapping them changes the prediction
    x = sample_inputs(model, 2, seed=4)
    sess = session(proto)
    a, b = run(sess, x)["pred"], run(sess, x[:, ::-1].copy())["pred"]
    assert not np.allclose(a, b)


def test_metadata_props():
    model = random_model("aec")
    proto = build_onnx(model, input_dtype="float32", opset=15)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["name"] == "random-aec" and props["arch"] == "aec"
    assert float(props["margin"]) == 0.0 and props["color_order"] == "BGR"
    assert props["input_size"] == "64" and props["crops"] == "single" and props["task"] == "age"
    assert props["input_dtype"] == "float32" and props["opset"] == "15"
    assert json.loads(props["source"]) == {"kind": "test"}
    assert props["agecompact_version"]
    assert props["weights_sha256"] == weights_sha256(model)
    assert props["export_fingerprint"] == export_fingerprint(model)
    assert proto.opset_import[0].version == 15


def test_fingerprint_follows_weights_and_options():
    a, b = random_model("ssrnet", seed=0), random_model("ssrnet", seed=1)
    assert weights_sha256(a) == weights_sha256(random_model("ssrnet", seed=0))
    assert export_fingerprint(a) != export_fingerprint(b)
    a2 = random_model("ssrnet", seed=0)
    a2.meta.arch_kwargs = {"lambda_local": 0.5}
    assert export_fingerprint(a2) != export_fingerprint(a)


@pytest.mark.parametrize("kwargs,match", [
    ({"input_dtype": "int16"}, "input dtype"),
    ({"opset": 11}, "opset"),
    ({"opset": 999}, "opset"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(UsageError, match=match):
        build_onnx(random_model("c3ae"), **kwargs)


def test_export_writes_atomically(tmp_path):
    model = random_model("c3ae")
    path = export_onnx(model, tmp_path / "sub" / "m.onnx")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["m.onnx"]
    onnx.checker.check_model(onnx.load(str(path)))


def _ssrnet_with_delta_near_minus_one() -> AgeModel:
    """Stage 3's Δ pinned near -1, where SSR-Net's age is ill-conditioned (as after short training)."""
    from flax import nnx

    model = random_model("ssrnet", seed=5)
    state = nnx.state(model.module, nnx.Param)
    bias = state["stages"][2]["delta"]["bias"]
    bias[...] = bias[...] - 4.2
    nnx.update(model.module, state)
    return AgeModel(model.module, model.meta)


def test_verify_checks_ssrnet_age_through_its_heads():
    from agecompact.export.onnx_export import RECORD_ONLY, max_differences

    model = _ssrnet_with_delta_near_minus_one()
    x = sample_inputs(model, 16, seed=6)
    assert np.all(model.outputs(x)["delta_s3"] < -0.99), "test model is not in the ill-conditioned regime"
    proto = build_onnx(model)
    diffs = max_differences(model, proto, x)
    assert set(RECORD_ONLY) <= set(diffs)
    assert max(v for k, v in diffs.items() if k not in RECORD_ONLY) <= TOL, diffs

    # a wrong merge in the graph is still caught: scale V = 101 by 1%
    (v_const,) = [t for t in proto.graph.initializer if onnx.numpy_helper.to_array(t).size == 1
                  and onnx.numpy_helper.to_array(t).item() == 101.0]
    v_const.CopyFrom(onnx.numpy_helper.from_array(np.asarray(102.01, np.float32).reshape(
        onnx.numpy_helper.to_array(v_const).shape), v_const.name))
    assert max_differences(model, proto, x)["pred"] > TOL
