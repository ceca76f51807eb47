"""``predict --csv``, ``--camera`` (a fake capture), ``.onnx`` models, the default model, the acceptance
photo, and the README's Python examples run as written."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agecompact.api import AgeModel
from agecompact.models.registry import create_model
from agecompact.weights.modelfile import ModelMeta

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "c3ae.msgpack"
    AgeModel(create_model("c3ae", seed=1), ModelMeta.for_arch("c3ae", name="c3ae-out")).save(path)
    return path


def _noise(seed: int, h: int = 80, w: int = 72) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_csv_has_one_row_per_face(cli, model_file, tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _noise(i))
    out = tmp_path / "ages.csv"
    r = cli("predict", tmp_path, "--model", model_file, "--detector", "none", "--json", "--csv", out, "-q")
    assert r.exit_code == 0, r.stderr
    recs = _jsonl(r.stdout)
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "frame", "face", "x", "y", "w", "h", "score", "age", "age_std", "gender",
                             "gender_score"]
    assert [row["file"] for row in rows] == [rec["file"] for rec in recs]
    assert [float(row["age"]) for row in rows] == [rec["age"] for rec in recs]
    assert all(float(row["age_std"]) >= 0 and row["w"] == "72.0" for row in rows)  # C3AE: bin spread
    assert not list(tmp_path.glob(".*tmp*"))


def test_csv_onto_a_folder_is_refused(cli, model_file, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), _noise(0))
    (tmp_path / "d").mkdir()
    r = cli("predict", tmp_path / "a.png", "--model", model_file, "--csv", tmp_path / "d")
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "not a regular file" in r.stderr


class FakeCapture:
    def __init__(self, frames):
        self.frames, self.released = list(frames), False

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        self.released = True


@pytest.mark.parametrize("how", [("--camera", "1"), ("1",)])
def test_camera_without_display_writes_annotated_frames(cli, model_file, tmp_path, monkeypatch, how):
    import agecompact.predict.camera as camera

    fake = FakeCapture([_noise(i, 90, 120) for i in range(5)])
    opened = []
    monkeypatch.setattr(camera, "open_capture", lambda index: opened.append(index) or fake)
    monkeypatch.setattr(camera, "display_available", lambda: False)
    out = tmp_path / "frames"
    r = cli("predict", *how, "--model", model_file, "--detector", "none", "--every", "2", "--out", out,
            "--json", "--csv", tmp_path / "cam.csv")
    assert r.exit_code == 0, r.stderr
    assert opened == [1] and fake.released
    recs = _jsonl(r.stdout)
    assert [rec["frame"] for rec in recs] == [0, 2, 4] and {rec["file"] for rec in recs} == {"camera:1"}
    assert sorted(p.name for p in (out / "camera1").iterdir()) == [
        "frame_000000.jpg", "frame_000002.jpg", "frame_000004.jpg"]
    assert cv2.imread(str(out / "camera1" / "frame_000002.jpg")).shape == (90, 120, 3)
    assert len((tmp_path / "cam.csv").read_text().splitlines()) == 4


def test_camera_limits_and_errors(cli, model_file, tmp_path, monkeypatch):
    import agecompact.predict.camera as camera

    monkeypatch.setattr(camera, "display_available", lambda: False)
    monkeypatch.setattr(camera, "open_capture", lambda index: FakeCapture([_noise(i) for i in range(9)]))
    r = cli("predict", "--camera", "0", "--model", model_file, "--detector", "none", "--frames", "3", "--json")
    assert r.exit_code == 0, r.stderr
    assert [rec["frame"] for rec in _jsonl(r.stdout)] == [0, 1, 2]
    r = cli("predict", "--camera", "0", "--model", model_file)
    assert r.exit_code == 2 and "no display for a live window: pass --out" in r.stderr

    class Closed(FakeCapture):
        def isOpened(self):  # noqa: N802
            return False

    monkeypatch.setattr(camera, "open_capture", lambda index: Closed([]))
    r = cli("predict", "--camera", "3", "--model", model_file, "--json", "--detector", "none")
    assert r.exit_code == 3 and r.stderr.strip() == "error: cannot open camera 3 (is it connected, and free?)"
    r = cli("predict", tmp_path, "--camera", "0", "--model", model_file)
    assert r.exit_code == 2 and "either INPUT files or --camera" in r.stderr


def test_default_model_with_an_empty_zoo_is_one_line(cli, tmp_path, monkeypatch):
    from agecompact import zoo

    monkeypatch.setattr(zoo, "entries", lambda: {})
    cv2.imwrite(str(tmp_path / "a.png"), _noise(0))
    r = cli("predict", tmp_path / "a.png")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: no model given and the zoo has no 'default' model; pass --model")
    assert len(r.stderr.strip().splitlines()) == 1


def test_predict_takes_an_exported_onnx_file(cli, model_file, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cv2.imwrite(str(tmp_path / "a.png"), _noise(0))
    onnx_path = tmp_path / "exported.onnx"
    r = cli("export", model_file, "--out", onnx_path)
    assert r.exit_code == 0, r.stderr
    a = cli("predict", tmp_path / "a.png", "--model", onnx_path, "--detector", "none", "--json")
    b = cli("predict", tmp_path / "a.png", "--model", model_file, "--detector", "none", "--json", "--backend", "onnx")
    assert a.exit_code == 0 and b.exit_code == 0, a.stderr + b.stderr
    assert abs(_jsonl(a.stdout)[0]["age"] - _jsonl(b.stdout)[0]["age"]) < 1e-3
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"nope")
    r = cli("predict", tmp_path / "a.png", "--model", bad)
    assert r.exit_code == 3 and r.stderr.startswith("error: ") and "not a loadable ONNX model" in r.stderr


# -- acceptance and README ---------------------------------------------------------------------------

def test_flash_cast_has_six_faces(shared_path, isolated_home):
    photo = shared_path("images/the_flash_cast.png")
    yunet = shared_path("detectors/yunet/face_detection_yunet_2026may.onnx")
    # no --model: the zoo's "default"
    r = subprocess.run([sys.executable, "-m", "agecompact", "predict", str(photo), "--detector-model", str(yunet),
                        "--json", "-q"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    recs = _jsonl(r.stdout)
    assert len(recs) == 6 and all(rec["faces"] == 6 for rec in recs)
    assert all(0 < rec["age"] < 100 and rec["age_std"] > 0 for rec in recs)


def _readme_blocks() -> list[tuple[str, bool]]:
    text = (REPO / "README.md").read_text()
    blocks = []
    for m in re.finditer(r"(<!-- readme-test: skip[^>]*-->\n)?```python\n(.*?)```", text, re.S):
        blocks.append((m.group(2), m.group(1) is not None))
    return blocks


def test_readme_python_examples_run_as_written(shared_path, tmp_path, monkeypatch):
    from agecompact.faces.detector import default_yunet_path
    from agecompact.pretrained import cached_model_path
    from agecompact.weights.keras import import_keras

    blocks = _readme_blocks()
    assert blocks and "agecompact.predict(" in blocks[0][0]  # the first snippet is the one call
    assert sum(skip for _, skip in blocks) <= 1  # only the training example (needs data, minutes)
    shutil.copy(shared_path("images/the_flash_cast.png"), tmp_path / "photo.jpg")
    for name in ("ssrnet_wiki.h5", "ssrnet_gender_wiki.h5"):
        shutil.copy(shared_path(f"weights/ssrnet/{name}"), tmp_path / name)
    module, meta = import_keras(tmp_path / "ssrnet_wiki.h5")
    AgeModel(module, meta).save(cached_model_path("ssrnet-wiki"))  # what `agecompact fetch ssrnet-wiki` leaves
    default_yunet_path().parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_path("detectors/yunet/face_detection_yunet_2026may.onnx"), default_yunet_path())
    monkeypatch.chdir(tmp_path)
    for code, skip in blocks:
        if not skip:
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})  # noqa: S102
