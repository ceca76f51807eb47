"""The backend switch: backend choice, the ONNX export cache, input handling and micro-batching."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import agecompact
from agecompact.api import AgeModel
from agecompact.errors import InputError, NotAvailableError, UsageError
from agecompact.inference import get_engine, resolve_backend
from agecompact.models.registry import create_model
from agecompact.weights.modelfile import ModelMeta

needs_ort = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="onnx and onnxruntime are not installed (pip install 'agecompact[onnx]')",
)


def make_model(arch: str = "c3ae", seed: int = 0) -> AgeModel:
    return AgeModel(create_model(arch, seed=seed), ModelMeta.for_arch(arch, name=f"test-{arch}"))


def faces(n: int, seed: int = 0, context: bool = False) -> np.ndarray:
    shape = (n, 3, 64, 64, 3) if context else (n, 64, 64, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def no_onnxruntime(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError


def test_jax_engine_is_the_model():
    model = make_model()
    engine = get_engine(model, "jax")
    assert engine.name == "jax-cpu" and engine.backend == "jax"
    x = faces(5)
    np.testing.assert_array_equal(engine.predict(x), model.predict(x))
    np.testing.assert_allclose(engine.predict(x, batch_size=2), model.predict(x), atol=1e-5, rtol=0)


def test_unknown_backend_and_option():
    with pytest.raises(UsageError, match="unknown backend"):
        get_engine(make_model(), "tensorrt")
    with pytest.raises(UsageError, match="unknown engine option"):
        get_engine(make_model(), "jax", thread=2)


def test_without_onnxruntime(no_onnxruntime):
    assert resolve_backend("auto") == "jax"
    assert get_engine(make_model(), "auto").backend == "jax"
    with pytest.raises(NotAvailableError, match=r"pip install 'agecompact\[onnx\]'"):
        get_engine(make_model(), "onnx")


@needs_ort
def test_auto_is_onnxruntime_on_cpu():
    engine = get_engine(make_model(), "auto")
    assert engine.backend == "onnx" and engine.name == "onnxruntime-cpu"
    assert get_engine(make_model(), "onnxruntime").backend == "onnx"


@needs_ort
def test_cache_beside_model_file_and_reuse(tmp_path, monkeypatch):
    make_model("aec").save(tmp_path / "best.msgpack")
    model = agecompact.load_model(tmp_path)  # a run folder -> best.msgpack
    engine = get_engine(model, "onnx")
    assert engine.path == tmp_path / "best.onnx" and engine.path.is_file()
    x = faces(6)
    np.testing.assert_allclose(engine.predict(x), model.predict(x), atol=1e-3, rtol=0)

    import agecompact.export.onnx_export as onnx_export

    def no_export(*a, **k):
        raise AssertionError("exported again although the cached graph is valid")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    again = get_engine(agecompact.load_model(tmp_path / "best.msgpack"), "onnx")
    assert again.path == engine.path


@needs_ort
def test_stale_or_corrupt_cache_is_rebuilt(tmp_path):
    path = tmp_path / "best.msgpack"
    make_model("c3ae", seed=0).save(path)
    first = get_engine(agecompact.load_model(path), "onnx")
    before = first.path.read_bytes()

    make_model("c3ae", seed=1).save(path)  # new weights under the same name
    model = agecompact.load_model(path)
    second = get_engine(model, "onnx")
    assert second.path == first.path and second.path.read_bytes() != before
    x = faces(4)
    np.testing.assert_allclose(second.predict(x), model.predict(x), atol=1e-3, rtol=0)

    second.path.write_bytes(b"not an onnx file")
    third = get_engine(model, "onnx")
    np.testing.assert_allclose(third.predict(x), model.predict(x), atol=1e-3, rtol=0)


@needs_ort
def test_models_without_a_model_file_use_the_cache_home(isolated_home):
    from agecompact.export import export_fingerprint

    model = make_model("c3ae")
    engine = get_engine(model, "onnx")
    assert engine.path == isolated_home / "onnx" / f"{export_fingerprint(model)}.onnx"


@needs_ort
def test_unwritable_model_folder_falls_back_to_cache_home(tmp_path, isolated_home, monkeypatch):
    import agecompact.export.onnx_export as onnx_export
    from agecompact.errors import AgecompactError

    make_model("c3ae").save(tmp_path / "m.msgpack")
    real_write = onnx_export.write_onnx

    def write(proto, path):
        if tmp_path in path.parents:
            raise AgecompactError(f"cannot write {path}: Permission denied")
        return real_write(proto, path)

    monkeypatch.setattr(onnx_export, "write_onnx", write)
    engine = get_engine(agecompact.load_model(tmp_path / "m.msgpack"), "onnx")
    assert engine.path.parent == isolated_home / "onnx"
    assert not (tmp_path / "m.onnx").exists()


@needs_ort
def test_context_model_single_and_three_crops():
    model = make_model("c3ae_full_se")
    engine = get_engine(model, "onnx")
    one, three = faces(5), faces(5, seed=1, context=True)
    np.testing.assert_allclose(engine.predict(one), model.predict(one), atol=1e-3, rtol=0)
    np.testing.assert_allclose(engine.predict(three), model.predict(three), atol=1e-3, rtol=0)


@needs_ort
def test_float_input_is_exact_and_outputs_have_every_head():
    model = make_model("aec")
    engine = get_engine(model, "onnx")
    x = faces(3).astype(np.float64) + 0.25  # not representable in a uint8 graph
    np.testing.assert_allclose(engine.predict(x), model.predict(x), atol=1e-3, rtol=0)
    out = engine.outputs(faces(2))
    assert set(out) == {"pred", "pre_4", "probs_20y", "probs_4y", "probs_1y"}
    assert out["probs_4y"].shape == (2, 5)
    empty = engine.outputs(faces(0))
    assert empty["pred"].shape == (0,) and empty["probs_1y"].shape == (0, 4)
    assert engine.predict(faces(0)).shape == (0,)


@needs_ort
def test_micro_batches_over_threads_give_the_same_answer():
    model = make_model("c3ae")
    x = faces(11)
    serial = get_engine(model, "onnx", threads=1, micro_batch=64).outputs(x)
    with get_engine(model, "onnx", threads=1, workers=2, micro_batch=3) as engine:
        parallel = engine.outputs(x, batch_size=5)
    intra = get_engine(model, "onnx", threads=2, micro_batch=4).outputs(x)
    for name in serial:
        np.testing.assert_array_equal(parallel[name], serial[name])
        np.testing.assert_allclose(intra[name], serial[name], atol=1e-5, rtol=0)
    with pytest.raises(UsageError, match="at least 1"):
        get_engine(model, "onnx", workers=0)


@needs_ort
def test_bad_inputs_and_foreign_onnx_file(tmp_path):
    model = make_model("c3ae")
    engine = get_engine(model, "onnx")
    with pytest.raises(UsageError, match="expects"):
        engine.predict(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(UsageError, match="not exported from these weights"):
        get_engine(make_model("c3ae", seed=5), "onnx", onnx_path=engine.path)
    with pytest.raises(InputError, match="not found"):
        get_engine(model, "onnx", onnx_path=tmp_path / "missing.onnx")
    same = get_engine(model, "onnx", onnx_path=engine.path)
    assert same.path == engine.path


@needs_ort
def test_without_the_onnx_package(monkeypatch, tmp_path):
    make_model("c3ae").save(tmp_path / "m.msgpack")
    model = agecompact.load_model(tmp_path / "m.msgpack")
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert get_engine(model, "auto").backend == "jax"  # nothing cached yet and no exporter
    with pytest.raises(NotAvailableError, match="onnx package"):
        get_engine(model, "onnx")
    monkeypatch.delitem(sys.modules, "onnx")
    get_engine(model, "onnx")  # exports m.onnx
    monkeypatch.setitem(sys.modules, "onnx", None)
    engine = get_engine(model, "auto")  # a valid cached graph needs onnxruntime only
    assert engine.backend == "onnx" and engine.path == tmp_path / "m.onnx"


def test_auto_prefers_jax_on_an_accelerator(monkeypatch):
    import agecompact.inference as inference

    monkeypatch.setattr(inference, "_accelerator", lambda: True)
    assert resolve_backend("auto") == "jax"
    assert get_engine(make_model(), "auto").backend == "jax"
