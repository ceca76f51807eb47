"""The model file: bit-identical round trip, small size, and clear errors for bad files."""

import msgpack
import numpy as np
import pytest

import agecompact
from agecompact.api import AgeModel
from agecompact.errors import InputError
from agecompact.models import create_model
from agecompact.weights import modelfile
from agecompact.weights.modelfile import ModelMeta


def _model(arch="ssrnet", seed=0, **meta):
    return AgeModel(create_model(arch, seed=seed), ModelMeta.for_arch(arch, **meta))


@pytest.fixture
def faces():
    return np.random.default_rng(0).integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("arch", ["ssrnet", "c3ae_full_se", "aec"])
def test_round_trip_is_bit_identical(arch, tmp_path, faces):
    model = _model(arch, seed=1, dataset="wiki", metrics={"val_mae": 6.5})
    path = model.save(tmp_path / "m.msgpack")
    loaded = agecompact.load_model(path)
    assert loaded.arch == arch and loaded.num_params == model.num_params
    assert loaded.meta.dataset == "wiki" and loaded.meta.metrics == {"val_mae": 6.5}
    assert loaded.path == path
    np.testing.assert_array_equal(loaded.predict(faces), model.predict(faces))
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert type(a) is type(b)


def test_round_trip_of_imported_keras_weights(tmp_path, shared_path, faces):
    keras_model = agecompact.load_model(shared_path("weights/ssrnet/ssrnet_wiki.h5"))
    path = keras_model.save(tmp_path / "wiki.msgpack")
    loaded = agecompact.load_model(path)
    np.testing.assert_array_equal(loaded.predict(faces), keras_model.predict(faces))
    assert loaded.meta.source["sha256"].startswith("f8b677f1")
    assert loaded.meta.margin == 0.4 and loaded.meta.color_order == "BGR"


def test_file_size_is_close_to_raw_float32(tmp_path):
    for arch in ("ssrnet", "aec", "c3ae"):
        model = _model(arch)
        size = model.save(tmp_path / f"{arch}.msgpack").stat().st_size
        raw = model.num_params * 4
        assert raw < size < raw * 1.05 + 4096, (arch, size, raw)


def test_header_carries_preprocessing_metadata(tmp_path):
    path = _model("aec").save(tmp_path / "aec.msgpack")
    meta, _ = modelfile.read(path)
    assert meta.arch == "aec" and meta.margin == 0.0 and meta.input_size == 64
    assert meta.color_order == "BGR" and meta.pixel_range == (0, 255) and meta.num_params == 20_014
    doc = msgpack.unpackb(path.read_bytes(), raw=False)
    assert doc["format"] == "agecompact-model" and doc["format_version"] == 1
    assert doc["header"]["package_version"] == agecompact.__version__


def test_truncated_file_is_a_clear_error(tmp_path):
    path = _model().save(tmp_path / "m.msgpack")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt or truncated"):
        agecompact.load_model(path)


def test_flipped_weight_byte_is_a_checksum_error(tmp_path):
    path = _model().save(tmp_path / "m.msgpack")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        agecompact.load_model(path)


def test_wrong_shape_is_a_clear_error(tmp_path):
    model = _model("ssrnet")
    state = model.state_dict()
    state["stages"]["0"]["pred"]["kernel"] = np.zeros((6, 4), np.float32)
    path = modelfile.write(tmp_path / "m.msgpack", model.meta, state)
    with pytest.raises(InputError, match=r"stages/0/pred/kernel has shape \(6, 4\)"):
        agecompact.load_model(path)


def test_weights_of_another_architecture_are_rejected(tmp_path):
    model = _model("aec")
    meta = ModelMeta.for_arch("ssrnet")
    path = modelfile.write(tmp_path / "m.msgpack", meta, model.state_dict())
    with pytest.raises(InputError, match="do not fit ssrnet"):
        agecompact.load_model(path)


@pytest.mark.parametrize("field,value", [("pixel_range", 255), ("input_size", "64"), ("arch_kwargs", [1]),
                                         ("margin", "wide")])
def test_header_fields_of_the_wrong_type_are_rejected(tmp_path, field, value):
    path = _model("c3ae").save(tmp_path / "m.msgpack")
    doc = msgpack.unpackb(path.read_bytes(), raw=False)
    doc["header"][field] = value
    path.write_bytes(msgpack.packb(doc, use_bin_type=True))
    with pytest.raises(InputError, match=f"bad model file header.*{field}"):
        agecompact.load_model(path)


def test_an_arch_that_contradicts_the_file_is_refused(tmp_path):
    path = _model("c3ae").save(tmp_path / "best.msgpack")
    assert agecompact.load_model(path, arch="c3ae").arch == "c3ae"
    for source in (path, tmp_path):  # the file, and the run folder holding it
        with pytest.raises(InputError, match="holds a c3ae model, not aec"):
            agecompact.load_model(source, arch="aec")


def test_unknown_architecture_in_header(tmp_path):
    model = _model("aec")
    model.meta.arch = "resnet50"
    path = model.save(tmp_path / "m.msgpack")
    with pytest.raises(agecompact.errors.AgecompactError, match="unknown model 'resnet50'"):
        agecompact.load_model(path)


def test_unknown_keras_architecture(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("dense_1").create_group("dense_1")
        g["kernel:0"] = np.zeros((4, 2), np.float32)
        g["bias:0"] = np.zeros((2,), np.float32)
    with pytest.raises(InputError, match="unrecognised Keras architecture"):
        agecompact.load_model(path)


def test_keras_file_with_a_missing_layer(tmp_path, shared_path):
    import h5py

    src = shared_path("weights/aec/aec_weights.hdf5")
    dst = tmp_path / "aec_broken.h5"
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        del f["dense_5"]
    with pytest.raises(InputError, match="'dense_5' expected by aec is missing"):
        agecompact.load_model(dst)


def test_truncated_keras_file(tmp_path, shared_path):
    src = shared_path("weights/ssrnet/ssrnet_wiki.h5").read_bytes()
    dst = tmp_path / "cut.h5"
    dst.write_bytes(src[:50_000])
    with pytest.raises(InputError):
        agecompact.load_model(dst)


def test_missing_sources(tmp_path):
    with pytest.raises(InputError, match="model not found"):
        agecompact.load_model(tmp_path / "nope.msgpack")
    with pytest.raises(InputError, match="not in the cache; run `agecompact fetch ssrnet-wiki`"):
        agecompact.load_model("ssrnet-wiki")
    with pytest.raises(InputError, match="unknown model 'no-such-model'"):
        agecompact.load_model("no-such-model")
    with pytest.raises(InputError, match="no best.msgpack"):
        agecompact.load_model(tmp_path)


def test_run_folder_prefers_best(tmp_path, faces):
    best, last = _model(seed=1, name="best"), _model(seed=2, name="last")
    last.save(tmp_path / "last.msgpack")
    assert agecompact.load_model(tmp_path).name == "last"
    best.save(tmp_path / "best.msgpack")
    assert agecompact.load_model(tmp_path).name == "best"


def test_pretrained_name_loads_from_the_cache(faces):
    from agecompact.pretrained import cached_model_path

    model = _model("aec", seed=3, name="aec")
    model.save(cached_model_path("aec"))
    np.testing.assert_array_equal(agecompact.load_model("aec").predict(faces), model.predict(faces))


def test_predict_validates_its_input():
    model = _model("ssrnet")
    with pytest.raises(agecompact.errors.UsageError, match=r"expects \(N, 64, 64, 3\)"):
        model.predict(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(agecompact.errors.UsageError, match="uint8"):
        model.predict(np.zeros((2, 64, 64, 3), np.int64))
    assert model.predict(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0,)


def test_predict_batches_beyond_the_batch_size(faces):
    model = _model("aec")
    whole = model.predict(faces, batch_size=256)
    np.testing.assert_allclose(model.predict(faces, batch_size=2), whole, rtol=1e-5, atol=1e-4)
