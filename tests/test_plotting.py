"""The PNG charts: every axis labelled, no two texts overlapping (also with 12 decades), steps drawn as steps."""

from __future__ import annotations

import cv2
import numpy as np

from agecompact import plotting


def _records(lrs):
    return [{"epoch": i + 1, "train_loss": 10.0 / (i + 1), "train_mae": 9.0 - i, "val_mae": 9.5 - i, "lr": lr}
            for i, lr in enumerate(lrs)]


def _assert_apart(texts, shape):
    h, w = shape[:2]
    for i, (s, a) in enumerate(texts):
        assert 0 <= a[0] < a[2] <= w and 0 <= a[1] < a[3] <= h, (s, a)
        for t, b in texts[i + 1:]:
            assert not plotting._overlap(a, b), (s, a, t, b)


def test_error_by_age_with_twelve_decades_labels_everything_without_overlap(tmp_path):
    rng = np.random.default_rng(0)
    true = np.concatenate([np.full(n, 10 * d + 5.0) for d, n in enumerate([3, 1500, 40, 999, 12, 7, 1234, 5, 60,
                                                                               8, 2, 1])])
    pred = true + rng.normal(0, 4, true.size)
    path = tmp_path / "err.png"
    texts = plotting.error_by_age(pred, true, path, title="demo")
    img = cv2.imread(str(path))
    _assert_apart(texts, img.shape)
    words = [s for s, _ in texts]
    assert "110-119" in words and "0-9" in words and "1500" in words
    for label in ("MAE (years)", "true age (years)", "predicted age (years)"):
        assert label in words, label


def test_training_curves_label_both_axes_and_draw_the_rate_as_steps(tmp_path):
    path = tmp_path / "curves.png"
    texts = plotting.training_curves(_records([1e-3] * 4 + [1e-4] * 4 + [1e-5] * 4), path)
    img = cv2.imread(str(path))
    _assert_apart(texts, img.shape)
    words = [s for s, _ in texts]
    for label in ("loss", "MAE (years)", "learning rate", "epoch"):
        assert label in words, label
    assert words.count("epoch") == 3
    # the rate panel: a flat run of the line's colour across epochs 1-4 at the 1e-3 level
    canvas = plotting.Canvas(np.full_like(img, 255))
    panel = plotting.Panel(canvas, 90 + 2 * (300 + 110), 50, 300, 300, (0.5, 12.5), (1e-5 / 2, 1e-3 * 2), log_y=True)
    (xa, y), (xb, _) = panel.px(0.6, 1e-3), panel.px(4.4, 1e-3)
    line = img[y, xa:xb].astype(int)
    assert np.all(np.abs(line - np.array(plotting.COLORS[2])).sum(axis=1) < 60)
    # and no diagonal between the 1e-3 and 1e-4 levels halfway through epoch 4's right edge and epoch 5
    mid_y = (panel.px(4.5, 1e-3)[1] + panel.px(4.5, 1e-4)[1]) // 2
    x_left = panel.px(4.0, 1e-3)[0]
    assert np.abs(img[mid_y, x_left].astype(int) - np.array(plotting.COLORS[2])).sum() > 100
