"""``preprocess`` on the real UTKFace and All-Age-Faces copies in ../shared, and AEC crops with the real YuNet."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from agecompact.data import aaf, utkface
from agecompact.data.build import build

pytestmark = pytest.mark.shared


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))


def test_utkface_all_21351_with_ages_from_names(shared_path, tmp_path, cli):
    root = shared_path("datasets/UTKFace")
    out = tmp_path / "utkface.npz"
    result = cli("preprocess", "--db", "utkface", "--root", root, "--out", out, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["count"] == 21_351 and summary["skipped"] == {} and summary["unlabelled_files"] == []
    names = sorted(n for n in os.listdir(root) if n.endswith(".jpg"))
    with np.load(out) as data:
        ages, genders, images = data["age"], data["gender"], data["image"]
        assert images.shape == (21_351, 64, 64, 3)
        np.testing.assert_array_equal(ages, [int(n.split("_")[0]) for n in names])
        np.testing.assert_array_equal(genders, [1 - int(n.split("_")[1]) for n in names])  # 0 male -> 1 male
        for i in (0, 12_345, 21_350):
            want = cv2.resize(cv2.imread(str(root / names[i])), (64, 64), interpolation=cv2.INTER_LINEAR)
            np.testing.assert_array_equal(images[i], want)
    assert sum(utkface.parse_name(n)[2] is None for n in names) >= 3  # the malformed names were kept


def test_aaf_all_2000_with_official_split(shared_path, tmp_path):
    root = shared_path("datasets/All-Age-Faces Dataset")
    summary = build("aaf", root=root, out=tmp_path / "aaf.npz", quiet=True)
    assert summary["count"] == 2_000 and summary["split_counts"] == {"train": 1_600, "val": 400}
    listed = aaf.list_samples(root)
    with np.load(tmp_path / "aaf.npz") as data:
        np.testing.assert_array_equal(data["age"], listed.age)
        np.testing.assert_array_equal(data["split"], listed.split)
        assert 2 <= data["age"].min() and data["age"].max() <= 80
        assert set(np.unique(data["gender"])) == {0, 1}


def test_aec_crops_with_yunet_on_demo(shared_path, tmp_path):
    from agecompact.data.demo import generate

    yunet = shared_path("detectors/yunet/face_detection_yunet_2026may.onnx")
    generate(tmp_path / "demo", count=60, seed=9)
    summary = build("wiki", root=tmp_path / "demo", method="aec", detector="yunet", detector_model=yunet,
                    out=tmp_path / "aec.npz", csv=None, quiet=True)
    assert summary["detector"] == "yunet" and summary["detector_sha256"]
    # the synthetic faces are found by YuNet almost always
    faces = summary["count"] / (summary["listed"] - summary["skipped"].get("corrupt", 0)
                                - summary["skipped"].get("missing", 0))
    assert faces > 0.9
