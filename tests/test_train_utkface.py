"""Real faces: a short SSR-Net run on a UTKFace subset lowers the training loss (skips without ../shared)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.shared


def _subset_npz(folder, out, n=500, seed=0):
    import cv2

    from agecompact.data.utkface import parse_name

    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg")
    rng = np.random.default_rng(seed)
    images, ages = [], []
    for name in rng.permutation(names):
        parsed = parse_name(name)
        img = cv2.imread(str(folder / name))
        if parsed is None or img is None:
            continue
        images.append(cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA))
        ages.append(parsed[0])
        if len(images) == n:
            break
    np.savez(out, image=np.stack(images), age=np.asarray(ages, np.float32), img_size=np.int64(64))
    return out


def test_ssrnet_learns_on_utkface(shared_path, tmp_path):
    from agecompact.training.config import TrainConfig
    from agecompact.training.loop import train_and_evaluate

    npz = _subset_npz(shared_path("datasets/UTKFace"), tmp_path / "utk.npz")
    cfg = TrainConfig(db=str(npz), model="ssrnet", epochs=4, batch_size=50, lr=1e-3, schedule="constant")
    summary = train_and_evaluate(cfg, tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert records[-1]["train_loss"] < 0.8 * records[0]["train_loss"], [r["train_loss"] for r in records]
    assert np.isfinite(summary["val_mae"])
