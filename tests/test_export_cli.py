"""``agecompact export``: success paths and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnx")

from agecompact.api import AgeModel  # noqa: E402
from agecompact.models.registry import create_model  # noqa: E402
from agecompact.weights.modelfile import ModelMeta  # noqa: E402


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.msgpack"
    AgeModel(create_model("c3ae"), ModelMeta.for_arch("c3ae", name="tiny-c3ae", margin=0.3)).save(path)
    return path


def one_error_line(result, code: int) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_export_json(cli, model_file, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "tiny.onnx"
    result = cli("export", model_file, "--format", "onnx", "--out", out, "--opset", "18", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["path"] == str(out) and out.stat().st_size == doc["bytes"]
    assert doc["input"] == {"name": "images", "dtype": "uint8", "shape": ["N", 64, 64, 3]}
    assert doc["outputs"] == {"pred": ["N"], "distribution": ["N", 12]}
    assert doc["metadata"]["name"] == "tiny-c3ae" and doc["metadata"]["margin"] == "0.3"
    assert doc["opset"] == 18 and doc["metadata"]["opset"] == "18"
    assert max(doc["verify_max_abs_diff"].values()) <= 1e-3


def test_export_into_folder_without_verify(cli, model_file, tmp_path):
    result = cli("export", model_file, "--out", f"{tmp_path}/new/", "--input-dtype", "float32", "--no-verify")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "new" / "tiny-c3ae.onnx").is_file()
    assert "tiny-c3ae" in result.stdout
    import onnx

    graph = onnx.load(str(tmp_path / "new" / "tiny-c3ae.onnx")).graph  # --input-dtype float32 is the graph's type
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_missing_model(cli, tmp_path):
    one_error_line(cli("export", tmp_path / "nope.msgpack", "--out", tmp_path / "x.onnx"), 3)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("args", [
    ("--format", "tflite"),
    ("--input-dtype", "int8"),
    ("--opset", "7"),
])
def test_bad_options(cli, model_file, tmp_path, args):
    one_error_line(cli("export", model_file, "--out", tmp_path / "x.onnx", *args), 2)
    assert not list(tmp_path.iterdir())


def test_unwritable_out_path(cli, model_file, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("export", model_file, "--out", blocker / "x.onnx", "--no-verify")
    one_error_line(result, 1)
    assert "cannot write" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_without_the_onnx_package(cli, model_file, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    result = cli("export", model_file, "--out", tmp_path / "x.onnx")
    one_error_line(result, 2)
    assert "pip install 'agecompact[onnx]'" in result.stderr


def test_model_as_option_like_eval_and_predict(cli, model_file, tmp_path):
    r = cli("export", "--model", model_file, "--out", tmp_path / "m.onnx", "--no-verify")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "m.onnx").is_file()
    one_error_line(cli("export", model_file, "--model", model_file, "--out", tmp_path / "x.onnx"), 2)
    one_error_line(cli("export", "--out", tmp_path / "x.onnx"), 2)
    assert not (tmp_path / "x.onnx").exists()
