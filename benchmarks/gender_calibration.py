"""Platt calibration of the released SSR-Net gender models, measured the way ``predict`` uses them.

SSR-Net's gender network is a regressor trained on 0 (female) / 1 (male) targets; its clipped output
is a score, not a probability. This fits ``P(male) = 1 / (1 + exp(-(a * score + b)))`` per model and
checks it on faces the fit never saw:

* Photos: UTKFace (``data/utkface.npz`` from ``benchmarks/accuracy.py prepare``: labels from the
  file names, stored as 1 = male like IMDB-WIKI), each photo through the
  predict pipeline: YuNet, the gender model's own margin crop, the largest face.
* Fit on a seeded sample of split 0 (the rows the zoo trains on), report on split 1 (the hash
  hold-out, 2,111 faces): accuracy at 0.5, log-loss, Brier score and the expected calibration error
  (10 equal-width bins), before (clipped score) and after.

The fitted constants go into ``agecompact/pretrained.py`` (``calibration=``), from where ``fetch``
writes them into each converted model's header.

    python benchmarks/gender_calibration.py [--fit-faces 4000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AGECOMPACT_SHARED", ROOT.parent / "shared"))
YUNET = SHARED / "detectors" / "yunet" / "face_detection_yunet_2026may.onnx"
MODELS = {"ssrnet-gender-imdb": "weights/ssrnet/ssrnet_gender_imdb.h5",
          "ssrnet-gender-wiki": "weights/ssrnet/ssrnet_gender_wiki.h5",
          "ssrnet-gender-morph": "weights/ssrnet/ssrnet_gender_morph.h5"}


def scores(model, root: Path, files: list[str], detector) -> np.ndarray:
    """The clipped gender score of the largest face of each photo (NaN where none is found)."""
    from agecompact.data.transforms import OK, read_image
    from agecompact.predict.pipeline import ModelRunner

    runner = ModelRunner(model, backend="auto", batch_size=64)
    out = np.full(len(files), np.nan, np.float32)
    for start in range(0, len(files), 64):
        idx, crops = [], []
        for i in range(start, min(start + 64, len(files))):
            status, image = read_image(root / files[i])
            found = detector.detect(image) if status == OK else []
            if found:
                idx.append(i)
                crops += runner.inputs(image, [max(found, key=lambda f: f.box[2] * f.box[3])])
        if crops:
            raw, _ = runner.run(np.stack(crops))
            out[idx] = np.clip(raw, 0.0, 1.0)
    return out


def platt(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the log-loss of sigmoid(a * s + b) against the 0/1 labels."""
    from scipy.optimize import minimize

    def loss(p):
        z = p[0] * s + p[1]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    res = minimize(loss, x0=np.array([4.0, -2.0]), method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
    return float(res.x[0]), float(res.x[1])


def quality(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    eps = 1e-6
    q = np.clip(p, eps, 1 - eps)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).mean() for b in range(10) if (bins == b).any())
    return {"accuracy": float(((p >= 0.5) == (y == 1)).mean()), "log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))),
            "brier": float(np.mean((p - y) ** 2)), "ece": float(ece), "faces": int(len(y))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit-faces", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-faces", type=int, default=None, help="only the first N held-out faces (a smoke run)")
    ap.add_argument("--out", type=Path, default=None, help="result file (default benchmarks/results/)")
    a = ap.parse_args()
    from agecompact.api import load_model
    from agecompact.data.npz import load_npz
    from agecompact.faces.detector import create_detector

    ds = load_npz(ROOT / "data" / "utkface.npz")
    root = Path(ds.sidecar["root"])
    male = (ds.gender == 1).astype(np.float64)
    known = (ds.gender == 0) | (ds.gender == 1)
    rng = np.random.default_rng(a.seed)
    fit_rows = np.sort(rng.choice(np.flatnonzero((ds.split == 0) & known), a.fit_faces, replace=False))
    test_rows = np.flatnonzero((ds.split == 1) & known)[:a.test_faces]
    detector = create_detector("yunet", model_path=YUNET)
    results = {}
    for name, rel in MODELS.items():
        model = load_model(SHARED / rel)
        s_fit = scores(model, root, [str(f) for f in ds.source_file[fit_rows]], detector)
        s_test = scores(model, root, [str(f) for f in ds.source_file[test_rows]], detector)
        ok_fit, ok_test = np.isfinite(s_fit), np.isfinite(s_test)
        pa, pb = platt(s_fit[ok_fit].astype(np.float64), male[fit_rows][ok_fit])
        s, y = s_test[ok_test].astype(np.float64), male[test_rows][ok_test]
        results[name] = {"a": round(pa, 4), "b": round(pb, 4),
                         "held_out_before": quality(s, y), "held_out_after": quality(1 / (1 + np.exp(-(pa * s + pb))), y),
                         "fit_faces": int(ok_fit.sum())}
    print(f"{'model':22} {'a':>7} {'b':>7}   acc   log-loss before/after   ECE before/after   (UTKFace hold-out)")
    for name, r in results.items():
        b, f = r["held_out_before"], r["held_out_after"]
        print(f"{name:22} {r['a']:7.3f} {r['b']:7.3f}   {f['accuracy']:.3f}   {b['log_loss']:.3f} / {f['log_loss']:.3f}"
              f"        {b['ece']:.3f} / {f['ece']:.3f}   ({f['faces']} faces)")
    write_results("gender_calibration", {
        "protocol": "fit: seeded sample of UTKFace split 0 through YuNet + the model's crop; report: split 1 "
                    "(hash hold-out); P(male) = sigmoid(a * clip(score, 0, 1) + b)",
        "detector": str(YUNET.name), "seed": a.seed, "models": results}, a.out)


if __name__ == "__main__":
    main()
