"""The Haar fallback detector: non-maximum suppression (one box per face) and a score on every box."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agecompact.faces.detector import HaarDetector, suppress_overlaps


def test_suppression_drops_duplicates_and_nested_boxes():
    boxes = np.array([[10, 10, 100, 100], [14, 12, 96, 98], [40, 40, 30, 30], [300, 10, 80, 80]], float)
    scores = np.array([0.7, 0.9, 0.8, 0.5])
    # 1 beats its near-duplicate 0; the box nested inside them (IoU only 0.09) goes too; 3 is elsewhere
    assert suppress_overlaps(boxes, scores, 0.5) == [1, 3]
    assert suppress_overlaps(boxes[:0], scores[:0], 0.5) == []


class _FakeCascade:
    def detectMultiScale3(self, gray, **kwargs):  # noqa: N802 - OpenCV's name
        assert kwargs["outputRejectLevels"] is True
        boxes = np.array([[20, 20, 50, 50], [22, 21, 48, 50], [150, 30, 40, 40]], np.int32)
        return boxes, np.zeros((3, 1), np.int32), np.array([[3.0], [5.0], [1.0]])


def test_detect_returns_one_scored_box_per_face():
    det = HaarDetector()
    det._cascade = _FakeCascade()
    faces = det.detect(np.zeros((100, 200, 3), np.uint8))
    assert [f.box for f in faces] == [(22.0, 21.0, 48.0, 50.0), (150.0, 30.0, 40.0, 40.0)]
    assert [f.score for f in faces] == pytest.approx([5 / 6, 0.5])


def test_blank_image_has_no_face():
    assert HaarDetector().detect(np.full((120, 160, 3), 127, np.uint8)) == []


@pytest.mark.shared
# The raw cascade puts two boxes on one face in both photos (TGOP: the right-hand woman; the Flash cast: the
# man on the left) and misses one face (the leftmost; the man in sunglasses on the right): 3 and 5 remain.
@pytest.mark.parametrize(("name", "count"), [("TGOP_tvbs.png", 3), ("the_flash_cast.png", 5)])
def test_real_photos(shared_path, name, count):
    image = cv2.imread(str(shared_path(f"images/{name}")))
    faces = HaarDetector().detect(image)
    assert len(faces) == count
    assert all(0 < f.score < 1 for f in faces)
    boxes = np.array([f.box for f in faces])
    assert len(suppress_overlaps(boxes, np.array([f.score for f in faces]), 0.5)) == count  # none overlap


def test_predict_reports_haar_scores(tmp_path):
    from agecompact.api import AgeModel
    from agecompact.models.registry import create_model
    from agecompact.predict import Predictor
    from agecompact.weights.modelfile import ModelMeta

    model = AgeModel(create_model("aec", seed=1), ModelMeta.for_arch("aec", name="aec-test"))
    det = HaarDetector()
    det._cascade = _FakeCascade()
    with Predictor(model, detector=det, backend="jax", min_score=0.99) as p:
        faces = p([np.zeros((100, 200, 3), np.uint8)])[0]
    assert [round(f.score, 3) for f in faces] == [0.833, 0.5]  # reported, and --min-score does not drop them
