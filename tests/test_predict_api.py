"""``agecompact.predict(...)``: one call on paths, arrays and lists; model resolution; start-up without JAX."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import agecompact
from agecompact.api import AgeModel, load_model
from agecompact.errors import InputError, UsageError
from agecompact.faces.crop import resize_to_input
from agecompact.models.registry import MODELS, create_model, param_counts
from agecompact.weights import modelfile
from agecompact.weights.modelfile import ModelMeta


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "aec.msgpack"
    AgeModel(create_model("aec", seed=1), ModelMeta.for_arch("aec", name="aec-api")).save(path)
    return path


def _noise(seed: int, h: int = 80, w: int = 72) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_predict_on_paths_arrays_and_lists(model_file, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), _noise(i))
    recs = agecompact.predict(folder, model=model_file, detector="none")
    assert [Path(r.file).name for r in recs] == ["0.png", "1.png", "2.png"]
    assert [r.image for r in recs] == [0, 1, 2] and all(r.face == 0 and r.score is None for r in recs)
    chips = np.stack([resize_to_input(_noise(i)) for i in range(3)])
    np.testing.assert_allclose([r.age for r in recs], load_model(model_file).predict(chips), atol=0.006)
    assert all(r.age_std is not None and r.age_std >= 0 for r in recs)  # AEC has distributions

    mixed = agecompact.predict([_noise(0), str(folder / "1.png"), _noise(2)[..., 0]], model=model_file,
                               detector="none")
    assert [r.file for r in mixed] == [None, str(folder / "1.png"), None]
    assert [r.image for r in mixed] == [0, 1, 2]
    np.testing.assert_allclose(mixed[0].age, recs[0].age, atol=1e-4)
    assert mixed[0].to_dict()["box"] == [0.0, 0.0, 72.0, 80.0]


def test_predict_is_the_callable_package(model_file):
    import inspect

    from agecompact import predict
    from agecompact.predict.api import predict as fn

    assert callable(agecompact.predict) and predict is agecompact.predict
    assert inspect.signature(agecompact.predict) == inspect.signature(fn)
    assert len(predict(_noise(5), model=model_file, detector="none")) == 1


def test_predict_errors_are_clear(model_file, tmp_path, monkeypatch):
    with pytest.raises(InputError, match="no such file"):
        agecompact.predict(tmp_path / "missing.jpg", model=model_file)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InputError, match="not a readable image"):
        agecompact.predict(tmp_path / "bad.jpg", model=model_file)
    with pytest.raises(UsageError, match="uint8"):
        agecompact.predict(_noise(0).astype(np.float32), model=model_file)
    with pytest.raises(UsageError, match="unknown detector"):
        agecompact.predict(_noise(0), model=model_file, detector="mtcnn")
    from agecompact import zoo
    from agecompact.predict import api as predict_api

    monkeypatch.setattr(zoo, "entries", lambda: {})
    monkeypatch.setattr(predict_api, "_cache", type(predict_api._cache)())  # no predictor kept from other tests
    with pytest.raises(UsageError, match="the zoo has no 'default' model; pass model="):
        agecompact.predict(_noise(0))


def test_exported_onnx_file_is_a_model(model_file, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from agecompact.export.onnx_export import export_onnx

    model = load_model(model_file)
    onnx_path = export_onnx(model, tmp_path / "aec.onnx")
    faces = [_noise(i) for i in range(3)]
    from_onnx = agecompact.predict(faces, model=onnx_path, detector="none")
    from_file = agecompact.predict(faces, model=model_file, detector="none", backend="onnx")
    np.testing.assert_allclose([r.age for r in from_onnx], [r.age for r in from_file], atol=1e-4)
    np.testing.assert_allclose([r.age_std for r in from_onnx], [r.age_std for r in from_file], atol=1e-4)
    from agecompact.predict.models import load_onnx_model

    meta = load_onnx_model(onnx_path).meta
    assert (meta.arch, meta.margin, meta.color_order, meta.input_size, meta.name) == \
        ("aec", 0.0, "BGR", 64, "aec-api")
    with pytest.raises(UsageError, match="onnx backend only"):
        agecompact.predict(faces, model=onnx_path, detector="none", backend="jax")


# -- start-up: no random initialisers, no JAX on the cached ONNX path -------------------------------

def test_loading_compiles_nothing(model_file, shared_path):
    import jax

    compiles = []

    def listen(event, *args, **kwargs):
        if "backend_compile" in event:
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        load_model(model_file)
        load_model(shared_path("weights/ssrnet/ssrnet_wiki.h5"))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []


@pytest.mark.parametrize("arch", list(MODELS))
def test_lazy_model_counts_and_weights_match_the_module(arch, tmp_path):
    model = AgeModel(create_model(arch, seed=2), ModelMeta.for_arch(arch))
    path = model.save(tmp_path / "m.msgpack")
    lazy = load_model(path, lazy=True)
    assert lazy._module is None and lazy.param_counts == param_counts(model.module)
    assert modelfile._pack_state(lazy.state_dict()) == modelfile._pack_state(model.state_dict())
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(lazy.predict(x), model.predict(x))  # built on first JAX use


def test_model_file_codec_is_flax_compatible(tmp_path):
    from flax import serialization

    state = AgeModel(create_model("c3ae"), ModelMeta.for_arch("c3ae")).state_dict()
    body = modelfile._pack_state(state)
    assert body == serialization.msgpack_serialize(state)
    back = modelfile._unpack_state(body)
    restored = serialization.msgpack_restore(body)
    assert back.keys() == restored.keys()
    np.testing.assert_array_equal(back["feat"]["kernel"], restored["feat"]["kernel"])


def test_cached_export_runs_without_jax(model_file, tmp_path, isolated_home):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), _noise(7))
    env = {**os.environ, "AGECOMPACT_HOME": str(isolated_home)}
    model = tmp_path / "m.msgpack"
    model.write_bytes(model_file.read_bytes())
    code = ("import sys, agecompact; r = agecompact.predict(sys.argv[1], model=sys.argv[2], detector='none'); "
            "print(len(r), 'jax' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", code, str(image), str(model)], env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert model.with_suffix(".onnx").is_file()  # the export is cached beside the model file
    second = subprocess.run([sys.executable, "-c", code, str(image), str(model)], env=env, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["1", "False"]
    cli = subprocess.run([sys.executable, "-X", "importtime", "-m", "agecompact", "predict", str(image),
                          "--model", str(model), "--detector", "none", "--json", "-q"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in cli.stderr.splitlines() if "|" in line}
    assert "jax" not in imported and "flax" not in imported
