"""Crop geometry and detectors: the single source of network inputs for preprocessing and predict."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agecompact.errors import InputError, UsageError
from agecompact.faces.crop import (
    CONTEXT_PADDING,
    CropSpec,
    context_boxes,
    crop_context,
    crop_face,
    crop_padded,
    expand_box,
    network_input,
    resize_to_input,
)
from agecompact.faces.detector import create_detector, default_yunet_path
from agecompact.weights.modelfile import ModelMeta


def _image(h=240, w=320, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_expand_box_margin_and_clipping():
    assert expand_box((100, 50, 40, 60), 0.4, 320, 240) == (84, 26, 156, 134)
    assert expand_box((5, 5, 40, 60), 0.4, 320, 240) == (0, 0, 61, 89)
    assert expand_box((300, 200, 40, 60), 0.5, 320, 240) == (280, 170, 320, 240)
    assert expand_box((400, 300, 10, 10), 0.4, 320, 240) == (319, 239, 320, 240)  # off the image: 1 px
    assert crop_face(_image(), (400, 300, 10, 10), margin=0.4).shape == (64, 64, 3)


def test_crop_face_is_the_margin_box_resized():
    img = _image()
    want = cv2.resize(img[26:134, 84:156], (64, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(crop_face(img, (100, 50, 40, 60), margin=0.4), want)
    np.testing.assert_array_equal(resize_to_input(img[:64, :64]), img[:64, :64])


def test_context_boxes_follow_c3ae_geometry():
    # box x=100..140 (w=40), y=50..110 (h=60); nose at (120, 85)
    outer, middle, inner = context_boxes((100, 50, 40, 60), (120.7, 85.2))
    assert outer == (80, 30, 160, 130)  # grown by |40 - 60| = 20 on every side
    assert middle == (85, 50, 155, 120)  # half-side = ny - ymin = 35
    assert inner == (100, 65, 140, 105)  # half-side = w // 2 = 20


def test_crop_padded_matches_a_200px_black_border():
    img = _image()
    padded = cv2.copyMakeBorder(img, *(CONTEXT_PADDING,) * 4, cv2.BORDER_CONSTANT, value=0)
    for box in [(-50, -30, 90, 120), (250, 180, 400, 300), (10, 10, 60, 80)]:
        x1, y1, x2, y2 = box
        p = CONTEXT_PADDING
        want = resize_to_input(padded[y1 + p:y2 + p, x1 + p:x2 + p])
        np.testing.assert_array_equal(crop_padded(img, box), want)
    # entirely outside the image: black, not an error
    assert crop_padded(img, (-900, -900, -800, -800)).max() == 0


def test_network_input_single_context_and_colour_order():
    img = _image()
    box = (100.0, 50.0, 40.0, 60.0)
    lm = np.array([[110, 70], [130, 70], [120, 85], [112, 100], [128, 100]], np.float32)
    single = CropSpec(margin=0.4)
    np.testing.assert_array_equal(network_input(img, box, single, landmarks=lm),
                                  crop_face(img, box, margin=0.4))
    rgb = CropSpec(margin=0.4, color_order="RGB")
    np.testing.assert_array_equal(network_input(img, box, rgb), crop_face(img, box, margin=0.4)[..., ::-1])
    ctx = CropSpec(margin=0.4, context=True)
    x = network_input(img, box, ctx, landmarks=lm)
    assert x.shape == (3, 64, 64, 3)
    np.testing.assert_array_equal(x, crop_context(img, box, (120, 85)))
    # no landmarks (Haar / none): the single margin crop, repeated for the three branches
    y = network_input(img, box, ctx)
    for k in range(3):
        np.testing.assert_array_equal(y[k], crop_face(img, box, margin=0.4))


def test_crop_spec_from_meta_and_overrides():
    meta = ModelMeta.for_arch("aec")
    assert CropSpec.from_meta(meta) == CropSpec(size=64, margin=0.0, color_order="BGR", context=False)
    assert CropSpec.from_meta(meta, margin=0.25, color_order="rgb").margin == 0.25
    assert CropSpec.from_meta(ModelMeta.for_arch("c3ae_full")).context
    with pytest.raises(UsageError):
        CropSpec.from_meta(meta, color_order="HSV")


def test_create_detector_kinds(tmp_path):
    img = _image()
    faces = create_detector("none").detect(img)
    assert len(faces) == 1 and faces[0].box == (0.0, 0.0, 320.0, 240.0)
    assert not default_yunet_path().exists()  # isolated AGECOMPACT_HOME
    assert create_detector("auto").name == "haar"
    assert create_detector("haar").detect(np.full((200, 200, 3), 127, np.uint8)) == []
    with pytest.raises(UsageError):
        create_detector("mtcnn")
    with pytest.raises(InputError, match="not found"):
        create_detector("yunet", model_path=tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(InputError, match="not a usable YuNet"):
        create_detector("yunet", model_path=bad)


@pytest.mark.shared
def test_yunet_finds_faces_and_landmarks(shared_path):
    det = create_detector("yunet", model_path=shared_path("detectors/yunet/face_detection_yunet_2026may.onnx"))
    faces = det.detect(cv2.imread(str(shared_path("images/the_flash_cast.png"))))
    assert len(faces) == 6
    for f in faces:
        x, y, w, h = f.box
        nx, ny = f.landmarks[2]
        assert f.score >= 0.8 and x < nx < x + w and y < ny < y + h  # nose tip inside its box
