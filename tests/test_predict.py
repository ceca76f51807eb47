"""``agecompact predict`` on generated data: outputs, JSON lines, video, batching and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from agecompact.api import AgeModel, load_model
from agecompact.faces.crop import crop_context, resize_to_input
from agecompact.faces.detector import Face, create_detector
from agecompact.models.registry import create_model
from agecompact.predict import Predictor, PredictRun
from agecompact.predict.annotate import draw_faces
from agecompact.predict.inputs import discover
from agecompact.pretrained import cached_model_path
from agecompact.weights.modelfile import ModelMeta


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    # AEC, because a freshly initialised SSR-Net divides by zero in eval mode; weights are random.
    path = tmp_path_factory.mktemp("models") / "aec.msgpack"
    AgeModel(create_model("aec", seed=1), ModelMeta.for_arch("aec", name="aec-test")).save(path)
    return path


def _noise(seed: int, h: int = 80, w: int = 72) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _folder(root: Path, n: int = 3) -> list[Path]:
    (root / "sub").mkdir(parents=True)
    paths = [root / "a.png", root / "b.jpg", root / "sub" / "c.png"][:n]
    for i, p in enumerate(paths):
        cv2.imwrite(str(p), _noise(i))
    return paths


def _jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- happy paths -----------------------------------------------------------------------------------

def test_folder_json_and_annotated_copies(cli, model_file, tmp_path):
    paths = _folder(tmp_path / "in")
    (tmp_path / "in" / "notes.txt").write_text("not an image")  # ignored: not an image extension
    out = tmp_path / "out"
    r = cli("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--json", "--out", out)
    assert r.exit_code == 0, r.stderr
    recs = _jsonl(r.stdout)
    assert [Path(rec["file"]).name for rec in recs] == ["a.png", "b.jpg", "c.png"]
    assert all(rec["faces"] == 1 and rec["face"] == 0 and rec["score"] is None for rec in recs)
    # the same crops through the model directly: one pipeline, no second preprocessing path
    model = load_model(model_file)
    chips = np.stack([resize_to_input(cv2.imread(str(p))) for p in paths])
    np.testing.assert_allclose([rec["age"] for rec in recs], model.predict(chips), atol=0.006)
    for rel in ("a.png", "b.jpg", "sub/c.png"):
        img = cv2.imread(str(out / rel))
        assert img is not None and img.shape == (80, 72, 3)
    assert not list(out.rglob(".*tmp*"))  # no temporary leftovers
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert (out / "a.png").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not owner-only


def test_rich_summary_without_json(cli, model_file, tmp_path):
    _folder(tmp_path / "in", n=2)
    r = cli("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert "a.png" in r.stdout and "2 image(s), 2 face(s)" in r.stdout
    assert r.stderr == ""


def test_no_recursive_skips_subfolders(cli, model_file, tmp_path):
    _folder(tmp_path / "in")
    r = cli("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--json", "--no-recursive")
    assert r.exit_code == 0, r.stderr
    assert sorted(Path(rec["file"]).name for rec in _jsonl(r.stdout)) == ["a.png", "b.jpg"]


def test_pretrained_name_from_cache(cli, model_file, tmp_path):
    cached = cached_model_path("ssrnet-wiki")
    load_model(model_file).save(cached)  # what `agecompact fetch ssrnet-wiki` leaves behind (different net)
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), _noise(5))
    r = cli("predict", img, "--model", "ssrnet-wiki", "--detector", "none", "--json")
    assert r.exit_code == 0, r.stderr
    assert len(_jsonl(r.stdout)) == 1


def test_video_annotated_and_per_frame_records(cli, model_file, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    assert writer.isOpened()
    for i in range(7):
        writer.write(_noise(i, 64, 96))
    writer.release()
    out = tmp_path / "out"
    r = cli("predict", video, "--model", model_file, "--detector", "none", "--every", "3", "--json",
            "--out", out)
    assert r.exit_code == 0, r.stderr
    recs = _jsonl(r.stdout)
    assert [rec["frame"] for rec in recs] == [0, 3, 6]
    assert all(rec["faces"] == 1 and np.isfinite(rec["age"]) for rec in recs)
    cap = cv2.VideoCapture(str(out / "clip.avi"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 7  # skipped frames are written too, with the latest annotation


# -- the pipeline itself ---------------------------------------------------------------------------

class _CountingEngine:
    name = "counting"

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def predict(self, images, *, batch_size=256):
        self.calls.append(len(images))
        return self.engine.predict(images, batch_size=batch_size)

    def outputs(self, images, *, batch_size=256):
        self.calls.append(len(images))
        return self.engine.outputs(images, batch_size=batch_size)


def test_all_faces_of_a_group_go_in_one_padded_pass(model_file, tmp_path):
    paths = _folder(tmp_path / "in")
    items, problems = discover([tmp_path / "in"])
    assert not problems
    predictor = Predictor(load_model(model_file), detector=create_detector("none"), batch_size=64,
                          backend="jax")
    spy = _CountingEngine(predictor.age.engine)
    predictor.age.engine = spy
    tally = PredictRun(predictor)(items)
    assert spy.calls == [8]  # 3 faces from 3 images, padded to the small bucket: one forward pass
    assert tally.images == 3 and tally.faces == 3
    spy.calls.clear()
    predictor.age.batch_size = 2
    predictor.age.buckets = (2,)
    PredictRun(predictor)(items)
    assert spy.calls == [2, 2]  # two groups of ≤ 2 faces, each padded to the same fixed size
    assert len(paths) == 3


def test_drawing_never_touches_the_image_that_is_cropped(model_file):
    img = _noise(3, 120, 120)
    before = img.copy()
    predictor = Predictor(load_model(model_file), detector=create_detector("none"))
    faces = predictor([img])[0]
    drawn = draw_faces(img, faces)
    np.testing.assert_array_equal(img, before)
    assert not np.array_equal(drawn, img)


class _FixedDetector:
    name, scored = "fixed", True

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return list(self.faces)


def test_context_model_gets_three_crops_from_landmarks(tmp_path):
    path = tmp_path / "c3ae.msgpack"
    AgeModel(create_model("c3ae_full"), ModelMeta.for_arch("c3ae_full")).save(path)
    model = load_model(path)
    img = _noise(4, 200, 200)
    lm = np.array([[80, 90], [120, 90], [100, 110], [85, 130], [115, 130]], np.float32)
    face = Face((70.0, 60.0, 60.0, 80.0), 0.95, lm)
    low = Face((10.0, 10.0, 30.0, 30.0), 0.5, lm)  # below --min-score
    predictor = Predictor(model, detector=_FixedDetector([face, low]), min_score=0.8)
    results = predictor([img])[0]
    assert len(results) == 1
    want = model.predict(crop_context(img, face.box, (100, 110))[None])
    assert results[0].age == pytest.approx(float(want[0]), abs=1e-5)


def test_gender_model_adds_gender(model_file, tmp_path):
    # Plumbing only: a C3AE net labelled as a gender model (real gender weights: test_predict_shared.py).
    path = tmp_path / "gender.msgpack"
    AgeModel(create_model("c3ae"), ModelMeta.for_arch("c3ae", task="gender")).save(path)
    predictor = Predictor(load_model(model_file), detector=create_detector("none"),
                          gender_model=load_model(path))
    (face,) = predictor([_noise(6)])[0]
    assert face.gender in ("M", "F") and 0.0 <= face.gender_score <= 1.0
    assert face.gender == ("M" if face.gender_score >= 0.5 else "F")


# -- bad input -------------------------------------------------------------------------------------

def test_one_bad_file_in_a_folder_is_skipped(cli, model_file, tmp_path):
    _folder(tmp_path / "in", n=2)
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    r = cli("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--json")
    assert r.exit_code == 0, r.stderr
    assert sorted(Path(rec["file"]).name for rec in _jsonl(r.stdout)) == ["a.png", "b.jpg"]
    assert "skipped:" in r.stderr and "broken.jpg" in r.stderr and "not a readable image" in r.stderr
    strict = cli("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--json", "--strict")
    assert strict.exit_code == 3
    assert "could not be processed (--strict)" in strict.stderr


@pytest.mark.parametrize("content", [b"", b"plain text, not a picture"])
def test_unreadable_file_alone_exits_3(cli, model_file, tmp_path, content):
    bad = tmp_path / "photo.png"
    bad.write_bytes(content)
    r = cli("predict", bad, "--model", model_file, "--detector", "none")
    assert r.exit_code == 3
    assert "photo.png" in _one_error_line(r)


def test_empty_folder_exits_3(cli, model_file, tmp_path):
    (tmp_path / "empty").mkdir()
    r = cli("predict", tmp_path / "empty", "--model", model_file)
    assert r.exit_code == 3
    assert "no images or videos found" in _one_error_line(r)


def test_missing_input_exits_3(cli, model_file, tmp_path):
    r = cli("predict", tmp_path / "nope.jpg", "--model", model_file)
    assert r.exit_code == 3
    assert "no such file or folder" in _one_error_line(r)


def test_no_face_is_zero_faces_unless_strict(cli, model_file, tmp_path):
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((160, 160, 3), 128, np.uint8))
    r = cli("predict", blank, "--model", model_file, "--detector", "haar", "--json")
    assert r.exit_code == 0, r.stderr
    assert _jsonl(r.stdout) == [{"file": str(blank), "faces": 0, "face": None}]
    strict = cli("predict", blank, "--model", model_file, "--detector", "haar", "--json", "--strict")
    assert strict.exit_code == 4
    assert "no face found" in _one_error_line(strict)


def test_missing_model_and_unknown_pretrained_name(cli, tmp_path):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), _noise(0))
    r = cli("predict", img, "--model", tmp_path / "missing.msgpack")
    assert r.exit_code == 3 and "not found" in _one_error_line(r)
    r = cli("predict", img, "--model", "ssrnet-nonsense")
    assert r.exit_code == 3 and "unknown model 'ssrnet-nonsense'" in _one_error_line(r)
    r = cli("predict", img, "--model", "ssrnet-wiki")  # known, but not fetched into this empty cache
    assert r.exit_code == 3 and "agecompact fetch ssrnet-wiki" in _one_error_line(r)


def test_bad_options_exit_2(cli, model_file, tmp_path):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), _noise(0))
    # choice options are checked by the CLI parser: the real entry point makes its error one line
    for args in (["--detector", "mtcnn"], ["--backend", "tpu"], ["--color-order", "HSV", "--detector", "none"]):
        r = subprocess.run([sys.executable, "-m", "agecompact", "predict", str(img), "--model", str(model_file), *args],
                           capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        _one_error_line(r)
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    r = cli("predict", img, "--model", model_file, "--out", not_a_folder)
    assert r.exit_code == 2


def test_out_folder_never_overwrites_inputs(cli, model_file, tmp_path):
    _folder(tmp_path / "in", n=1)
    before = (tmp_path / "in" / "a.png").read_bytes()
    r = cli("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--out", tmp_path / "in")
    assert r.exit_code == 2 and "would overwrite the input" in _one_error_line(r)
    assert (tmp_path / "in" / "a.png").read_bytes() == before


def test_gender_model_as_age_model_is_refused(cli, tmp_path):
    path = tmp_path / "gender.msgpack"
    AgeModel(create_model("c3ae"), ModelMeta.for_arch("c3ae", task="gender")).save(path)
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), _noise(0))
    r = cli("predict", img, "--model", path, "--detector", "none")
    assert r.exit_code == 2 and "not an age model" in _one_error_line(r)


def test_unreadable_video_is_reported(cli, model_file, tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"definitely not a video")
    r = cli("predict", fake, "--model", model_file, "--detector", "none")
    assert r.exit_code == 3
    assert "clip.mp4" in _one_error_line(r)


def test_out_never_overwrites_another_input(cli, model_file, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    cv2.imwrite(str(tmp_path / "x" / "b.jpg"), _noise(1))
    cv2.imwrite(str(tmp_path / "y" / "b.jpg"), _noise(2))
    before = (tmp_path / "y" / "b.jpg").read_bytes()
    r = cli("predict", tmp_path / "x" / "b.jpg", tmp_path / "y" / "b.jpg", "--model", model_file,
            "--detector", "none", "--out", tmp_path / "y")
    assert r.exit_code == 2 and "would overwrite the input" in _one_error_line(r)
    assert (tmp_path / "y" / "b.jpg").read_bytes() == before
    # an --out inside the input folder, where a recursive search finds the same names
    _folder(tmp_path / "d")
    cv2.imwrite(str(tmp_path / "d" / "sub" / "a.png"), _noise(4))  # where d/a.png's copy would go
    r = cli("predict", tmp_path / "d", "--model", model_file, "--detector", "none", "--out", tmp_path / "d" / "sub")
    assert r.exit_code == 2 and "would overwrite the input" in _one_error_line(r)


def _video(path: Path, frames: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(_noise(i, 64, 96))
    writer.release()


def test_outputs_that_would_share_a_name_are_kept_apart(cli, model_file, tmp_path):
    """clip.mkv is written as .avi: it must not replace clip.avi's annotated copy."""
    (tmp_path / "in").mkdir()
    _video(tmp_path / "in" / "clip.avi", 7)
    _video(tmp_path / "in" / "clip.mkv", 3)
    items, _ = discover([tmp_path / "in"])
    assert sorted(str(it.out_name) for it in items) == ["clip-1.avi", "clip.avi"]
    r = cli("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--json",
            "--out", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    frames = {}
    for name in ("clip.avi", "clip-1.avi"):
        cap = cv2.VideoCapture(str(tmp_path / "out" / name))
        frames[name] = 0
        while cap.read()[0]:
            frames[name] += 1
        cap.release()
    assert sorted(frames.values()) == [3, 7]


def test_names_that_are_not_utf8(cli, model_file, tmp_path):
    """OpenCV's file functions crash on such names: images go through Python, videos are skipped."""
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    image = Path(os.fsdecode(bytes(folder) + b"/caf\xe9.png"))
    image.write_bytes(cv2.imencode(".png", _noise(3))[1].tobytes())
    video = Path(os.fsdecode(bytes(folder) + b"/vid\xe9.avi"))
    video.write_bytes(b"not even a video")
    r = cli("predict", folder, "--model", model_file, "--detector", "none", "--json", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    assert [rec["faces"] for rec in _jsonl(r.stdout)] == [1]
    assert "not UTF-8" in r.stderr
    assert os.listdir(bytes(tmp_path / "out")) == [b"caf\xe9.png"]


def test_resume_skips_what_is_already_done(cli, model_file, tmp_path):
    _folder(tmp_path / "in")
    out = tmp_path / "out"
    args = ("predict", tmp_path / "in", "--model", model_file, "--detector", "none", "--json", "--out", out)
    assert len(_jsonl(cli(*args).stdout)) == 3
    (out / "b.jpg").unlink()  # as if the run had been stopped before b.jpg
    kept = (out / "a.png").stat().st_mtime_ns
    r = cli(*args, "--resume")
    assert r.exit_code == 0, r.stderr
    assert [Path(rec["file"]).name for rec in _jsonl(r.stdout)] == ["b.jpg"]
    assert "2 of 3 input(s) already done" in r.stderr
    assert (out / "b.jpg").is_file() and (out / "a.png").stat().st_mtime_ns == kept
    r = cli(*args, "--resume")
    assert r.exit_code == 0 and r.stdout == "" and "3 of 3" in r.stderr
    r = cli("predict", tmp_path / "in", "--model", model_file, "--resume")
    assert r.exit_code == 2 and "--resume needs --out" in _one_error_line(r)
