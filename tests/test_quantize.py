"""int8 quantisation: every architecture, accuracy against float on the golden faces, the cache, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from agecompact.api import AgeModel  # noqa: E402
from agecompact.errors import InputError, UsageError  # noqa: E402
from agecompact.export.ort_session import open_session  # noqa: E402
from agecompact.export.quantize import (  # noqa: E402
    build_int8,
    check_mode,
    load_calibration,
    synthetic_faces,
)
from agecompact.inference.onnx_engine import OnnxEngine  # noqa: E402
from agecompact.models.registry import MODELS, create_model  # noqa: E402
from agecompact.weights.modelfile import ModelMeta  # noqa: E402

# Documented tolerance (README, "Fast CPU inference"): on the 192 golden faces the int8 ages of the
# released weights stay within these bounds of the float graph's (measured: mean 0.4-0.9 years, max
# 3.6-6.8 years) and the MAE against the labels moves by at most MAE_CHANGE years.
GOLDEN_MEAN_ABS = 1.5
GOLDEN_MAX_ABS = 10.0
GOLDEN_MAE_CHANGE = 0.5
GOLDEN = {
    "ssrnet": ("weights/ssrnet/ssrnet_wiki.h5", "reference/ssrnet_golden_keras.npz"),
    "aec": ("weights/aec/aec_weights.hdf5", "reference/aec_golden_keras.npz"),
    "c3ae_full": ("weights/c3ae/imdb_focal_loss_c3ae_v84.h5",
                  "reference/c3ae_golden_keras__imdb_focal_loss_c3ae_v84.npz"),
    "c3ae_full_se": ("weights/c3ae/c3ae_imdb_v89.h5", "reference/c3ae_golden_keras__c3ae_imdb_v89.npz"),
}


@pytest.fixture(scope="module")
def faces_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "faces.npz"
    np.savez(path, image=synthetic_faces(48, 64), age=np.arange(48))
    return path


def tiny(arch: str, seed: int = 0) -> AgeModel:
    model = AgeModel(create_model(arch, seed=seed), ModelMeta.for_arch(arch, name=f"tiny-{arch}"))
    if not arch.startswith("ssrnet"):
        return model
    # an untrained SSR-Net divides by Π s_j(1 + Δ_j) with Δ near -1 (inf/NaN ages in float already):
    # Δ = 0 keeps its ages finite, so int8 can be compared with float
    state = model.state_dict()
    for stage in state["stages"].values():
        stage["delta"]["kernel"] = np.zeros_like(stage["delta"]["kernel"])
        stage["delta"]["bias"] = np.zeros_like(stage["delta"]["bias"])
    return AgeModel.from_state(model.meta, state)


def run(session, model, faces: np.ndarray) -> np.ndarray:
    x = faces[:, None].repeat(3, axis=1) if model.meta.crops == "context" else faces
    return session.run(["pred"], {"images": x.astype(np.float32)})[0]


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_int8_export_every_architecture(arch, faces_npz):
    model = tiny(arch)
    proto, check = build_int8(model, load_calibration(faces_npz, model))
    ops = {n.op_type for n in proto.graph.node}
    assert "QLinearConv" in ops and "Gemm" in ops  # trunk int8, heads float
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["quantization"] == "int8" and meta["arch"] == arch and meta["input_dtype"] == "float32"
    assert json.loads(meta["int8_check"])["faces"] == 48 == check["faces"]
    got = run(open_session(proto.SerializeToString()), model, synthetic_faces(4, 64, seed=1))
    assert got.shape == (4,) and np.all(np.isfinite(got))


@pytest.mark.shared
@pytest.mark.parametrize("arch", sorted(GOLDEN))
def test_int8_ages_near_float_on_golden_faces(arch, shared_path):
    from agecompact.api import load_model
    from agecompact.export.onnx_export import build_onnx

    weights, golden = GOLDEN[arch]
    model = load_model(shared_path(weights))
    data = np.load(shared_path(golden))
    faces, ages = data["inputs_bgr_uint8"], np.asarray(data["ages"], np.float64)
    proto, _ = build_int8(model, load_calibration(None, model))  # the built-in default calibration
    ref = run(open_session(build_onnx(model, input_dtype="float32").SerializeToString()), model, faces)
    got = run(open_session(proto.SerializeToString()), model, faces)
    diff = np.abs(got.astype(np.float64) - ref)
    assert diff.mean() <= GOLDEN_MEAN_ABS and diff.max() <= GOLDEN_MAX_ABS, (diff.mean(), diff.max())
    mae_change = np.abs(got - ages).mean() - np.abs(ref - ages).mean()
    assert abs(mae_change) <= GOLDEN_MAE_CHANGE, mae_change


def test_cache_beside_the_model_file_follows_the_weights(tmp_path, faces_npz):
    path = tmp_path / "best.msgpack"
    tiny("c3ae").save(path)
    from agecompact.api import load_model

    with OnnxEngine(load_model(path), quantize="int8", calibration=faces_npz) as engine:
        assert engine.path == tmp_path / "best.int8.onnx" and engine.name == "onnxruntime-cpu-int8"
        first = engine.predict(synthetic_faces(2, 64))
    stamp = engine.path.read_bytes()
    with OnnxEngine(load_model(path), quantize="int8", calibration=faces_npz) as engine:  # reused as is
        assert engine.path.read_bytes() == stamp
    tiny("c3ae", seed=1).save(path)  # new weights: the int8 file must be rebuilt
    with OnnxEngine(load_model(path), quantize="int8", calibration=faces_npz) as engine:
        assert engine.path.read_bytes() != stamp
        assert not np.allclose(engine.predict(synthetic_faces(2, 64)), first)
    engine.path.write_bytes(b"not onnx")  # a corrupt cache file is rebuilt quietly
    with OnnxEngine(load_model(path), quantize="int8", calibration=faces_npz) as engine:
        assert open_session(engine.path) is not None


def test_foreign_and_float_files_are_refused(tmp_path, faces_npz):
    from agecompact.export.onnx_export import export_onnx, write_onnx

    model, other = tiny("c3ae"), tiny("c3ae", seed=3)
    foreign = write_onnx(build_int8(other, load_calibration(faces_npz, other))[0], tmp_path / "other.int8.onnx")
    with pytest.raises(UsageError, match="not exported from these weights"):
        OnnxEngine(model, onnx_path=foreign, quantize="int8")
    plain = export_onnx(model, tmp_path / "float.onnx")
    with pytest.raises(UsageError, match="not an int8 export"):
        OnnxEngine(model, onnx_path=plain, quantize="int8")
    (tmp_path / "bad.int8.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(InputError, match="not a loadable ONNX model"):
        OnnxEngine(model, onnx_path=tmp_path / "bad.int8.onnx", quantize="int8")


def test_options_and_calibration_errors(tmp_path):
    assert check_mode(None) is None and check_mode("none") is None and check_mode("INT8") == "int8"
    with pytest.raises(UsageError):
        check_mode("int4")
    model = tiny("aec")
    with pytest.raises(InputError, match="not found"):
        load_calibration(tmp_path / "missing.npz", model)
    np.savez(tmp_path / "floats.npz", image=np.zeros((3, 64, 64, 3), np.float32))
    with pytest.raises(InputError, match="uint8"):
        load_calibration(tmp_path / "floats.npz", model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no readable face images"):
        load_calibration(tmp_path / "empty", model)
    import cv2

    (tmp_path / "chips").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "chips" / f"{i}.png"), synthetic_faces(1, 100, seed=i)[0])
    cal = load_calibration(tmp_path / "chips", model)
    assert cal.faces.shape == (3, 64, 64, 3) and cal.identity.startswith("sha256:")
    with pytest.raises(UsageError, match="quantize"):
        OnnxEngine(model, calibration=tmp_path / "chips")


def one_error_line(result, code: int) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_export_and_errors(cli, tmp_path, faces_npz):
    model = tmp_path / "m.msgpack"
    tiny("ssrnet").save(model)
    result = cli("export", model, "--quantize", "int8", "--calibration", faces_npz, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["path"].endswith("tiny-ssrnet.int8.onnx") and doc["quantization"]["mode"] == "int8"
    one_error_line(cli("export", model, "--quantize", "int4"), 2)
    one_error_line(cli("export", model, "--calibration", faces_npz), 2)
    one_error_line(cli("export", model, "--quantize", "int8", "--calibration", tmp_path / "nope"), 3)
    one_error_line(cli("eval", "--model", model, "--db", faces_npz, "--backend", "jax", "--quantize", "int8"), 2)
    (tmp_path / "corrupt.int8.onnx").write_bytes(b"garbage")
    (tmp_path / "chips").mkdir()
    import cv2

    cv2.imwrite(str(tmp_path / "chips" / "a.png"), synthetic_faces(1, 64)[0])
    one_error_line(cli("predict", tmp_path / "chips", "--model", tmp_path / "corrupt.int8.onnx",
                       "--detector", "none", "--quantize", "int8"), 3)
