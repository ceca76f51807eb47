"""``agecompact predict`` on real photos and released weights from ../shared (skipped without it)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agecompact.api import load_model
from agecompact.faces.crop import resize_to_input
from agecompact.faces.detector import create_detector
from agecompact.predict import Predictor
from agecompact.pretrained import cached_model_path

pytestmark = pytest.mark.shared

YUNET = "detectors/yunet/face_detection_yunet_2026may.onnx"


def _jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_group_photos_all_faces_plausible_adult_ages(cli, shared_path, tmp_path):
    photos = [shared_path("images/the_flash_cast.png"), shared_path("images/TGOP_tvbs.png")]
    out = tmp_path / "out"
    r = cli("predict", *photos, "--model", shared_path("weights/ssrnet/ssrnet_wiki.h5"), "--margin", "0.4",
            "--detector-model", shared_path(YUNET), "--gender-model",
            shared_path("weights/ssrnet/ssrnet_gender_wiki.h5"), "--json", "--out", out, "--quiet")
    assert r.exit_code == 0, r.stderr
    recs = _jsonl(r.stdout)
    by_file = {p.name: [rec for rec in recs if Path(rec["file"]).name == p.name] for p in photos}
    assert len(by_file["the_flash_cast.png"]) == 6
    assert len(by_file["TGOP_tvbs.png"]) == 4
    for rec in recs:
        assert 20 <= rec["age"] <= 60, rec
        assert rec["score"] >= 0.8 and rec["gender"] in ("M", "F")
    for p in photos:
        img = cv2.imread(str(out / p.name))
        assert img is not None and img.shape == cv2.imread(str(p)).shape


def test_chips_without_detector_reproduce_model_predict(shared_path, cli, tmp_path):
    chips = sorted(shared_path("datasets/UTKFace").glob("2[0-9]_*.jpg"))[:5]
    assert len(chips) == 5
    weights = shared_path("weights/ssrnet/ssrnet_megaface_asian.h5")
    model = load_model(weights)
    images = [cv2.imread(str(p)) for p in chips]
    want = model.predict(np.stack([resize_to_input(im) for im in images]))
    # exactly, through the API the CLI uses (same padded batch shape, JAX backend)
    predictor = Predictor(model, detector=create_detector("none"), backend="jax")
    got = [faces[0].age for faces in predictor(images)]
    np.testing.assert_array_equal(np.asarray(got, np.float32), want)
    # and through the command line (ages are rounded to 0.01 in JSON)
    r = cli("predict", *chips, "--model", weights, "--detector", "none", "--backend", "jax", "--json", "--quiet")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_allclose([rec["age"] for rec in _jsonl(r.stdout)], want, atol=0.0051)


def test_pretrained_name_after_conversion(shared_path, cli, tmp_path):
    # what `agecompact fetch ssrnet-wiki` leaves in the cache, made here without the network
    load_model(shared_path("weights/ssrnet/ssrnet_wiki.h5")).save(cached_model_path("ssrnet-wiki"))
    photo = shared_path("images/TGOP_tvbs.png")
    r = cli("predict", photo, "--model", "ssrnet-wiki", "--detector-model", shared_path(YUNET), "--json",
            "--quiet")
    assert r.exit_code == 0, r.stderr
    ages = [rec["age"] for rec in _jsonl(r.stdout)]
    assert len(ages) == 4 and all(20 <= a <= 60 for a in ages)


def test_c3ae_context_model_on_a_photo(shared_path, cli):
    r = cli("predict", shared_path("images/TGOP_tvbs.png"), "--model",
            shared_path("weights/c3ae/c3ae_imdb_v89.h5"), "--detector-model", shared_path(YUNET), "--json",
            "--quiet")
    assert r.exit_code == 0, r.stderr
    ages = [rec["age"] for rec in _jsonl(r.stdout)]
    assert len(ages) == 4 and all(np.isfinite(a) and 0 <= a <= 100 for a in ages)
