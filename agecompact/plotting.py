"""PNG charts drawn with OpenCV (already a dependency), so plots need no plotting library.

* ``training_curves(records, path)``: loss and train/validation MAE per epoch, plus the learning rate.
* ``error_by_age(pred, true, path)``: MAE per decade of true age (bars, with counts) and predicted vs
  true age (scatter).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agecompact.fileio import atomic_path

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (200, 200, 200)
DARK = (90, 90, 90)
COLORS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]  # BGR
FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.0e}"
    return f"{v:.3g}"


@dataclass
class Panel:
    """A rectangle of the canvas with data -> pixel mapping, axes, ticks and a title."""

    img: np.ndarray
    x0: int
    y0: int
    w: int
    h: int
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    log_y: bool = False

    def _ty(self, y: float) -> float:
        return math.log10(max(y, 1e-30)) if self.log_y else y

    def px(self, x: float, y: float) -> tuple[int, int]:
        (a, b), (c, d) = self.xlim, (self._ty(self.ylim[0]), self._ty(self.ylim[1]))
        fx = (x - a) / (b - a) if b > a else 0.5
        fy = (self._ty(y) - c) / (d - c) if d > c else 0.5
        return int(round(self.x0 + fx * self.w)), int(round(self.y0 + self.h - fy * self.h))

    def axes(self, title: str, xlabel: str, ylabel: str, *, xticks: bool = True) -> None:
        import cv2

        cv2.rectangle(self.img, (self.x0, self.y0), (self.x0 + self.w, self.y0 + self.h), BLACK, 1)
        for t in _nice_ticks(*self.xlim) if xticks else []:
            x, _ = self.px(t, self.ylim[0])
            cv2.line(self.img, (x, self.y0 + self.h), (x, self.y0 + self.h + 4), BLACK, 1)
            cv2.putText(self.img, _fmt(t), (x - 10, self.y0 + self.h + 18), FONT, 0.4, DARK, 1, cv2.LINE_AA)
        if self.log_y:
            lo, hi = (math.floor(math.log10(max(v, 1e-30))) for v in self.ylim)
            yt = [m * 10.0 ** e for e in range(lo, hi + 1) for m in (1, 2, 5)
                  if self.ylim[0] <= m * 10.0 ** e <= self.ylim[1]]
        else:
            yt = _nice_ticks(*self.ylim)
        for t in yt:
            _, y = self.px(self.xlim[0], t)
            if self.y0 <= y <= self.y0 + self.h:
                cv2.line(self.img, (self.x0 + 1, y), (self.x0 + self.w - 1, y), GREY, 1)
                cv2.putText(self.img, _fmt(t), (self.x0 - 44, y + 4), FONT, 0.4, DARK, 1, cv2.LINE_AA)
        cv2.putText(self.img, title, (self.x0, self.y0 - 10), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
        cv2.putText(self.img, xlabel, (self.x0 + self.w // 2 - 20, self.y0 + self.h + 36), FONT, 0.45, DARK, 1,
                    cv2.LINE_AA)
        if ylabel:
            cv2.putText(self.img, ylabel, (self.x0 + self.w - 8 * len(ylabel), self.y0 - 10), FONT, 0.4, DARK, 1,
                        cv2.LINE_AA)

    def line(self, xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int]) -> None:
        import cv2

        pts = [self.px(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
        if len(pts) >= 2:
            cv2.polylines(self.img, [np.asarray(pts, np.int32)], False, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(self.img, p, 3, color, -1, cv2.LINE_AA)

    def legend(self, items: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        import cv2

        for i, (label, color) in enumerate(items):
            y = self.y0 + 16 + 16 * i
            cv2.line(self.img, (self.x0 + self.w - 130, y - 4), (self.x0 + self.w - 110, y - 4), color, 2)
            cv2.putText(self.img, label, (self.x0 + self.w - 105, y), FONT, 0.4, BLACK, 1, cv2.LINE_AA)


def _limits(values: Sequence[float], *, zero: bool = False, pad: float = 0.05) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if zero:
        lo = min(lo, 0.0)
    if hi - lo < 1e-12:
        hi = lo + (abs(lo) or 1.0)
    span = hi - lo
    return lo - (0 if zero else pad * span), hi + pad * span


def _write_png(img: np.ndarray, path: str | os.PathLike) -> None:
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), img):
            raise OSError(f"could not write {path}")


def training_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Three panels: training loss, train/validation MAE, learning rate (log scale), per epoch."""
    epochs = [r["epoch"] + 1 for r in records]
    w, h = 1200, 420
    img = np.full((h, w, 3), 255, np.uint8)
    xlim = (min(epochs, default=1) - 0.5, max(epochs, default=1) + 0.5)
    pw, ph, top, left = 300, 300, 50, 70
    loss = [r.get("train_loss") for r in records]
    p = Panel(img, left, top, pw, ph, xlim, _limits(loss))
    p.axes("training loss", "epoch", "")
    p.line(epochs, loss, COLORS[0])
    tm, vm = [r.get("train_mae") for r in records], [r.get("val_mae") for r in records]
    p = Panel(img, left + pw + 90, top, pw, ph, xlim, _limits(tm + vm, zero=True))
    p.axes("MAE (years)", "epoch", "")
    p.line(epochs, tm, COLORS[0])
    p.line(epochs, vm, COLORS[1])
    p.legend([("train", COLORS[0]), ("validation", COLORS[1])])
    lrs = [r.get("lr") for r in records]
    good = [v for v in lrs if v and v > 0]
    ylim = (min(good) / 2, max(good) * 2) if good else (1e-4, 1e-2)
    p = Panel(img, left + 2 * (pw + 90), top, pw, ph, xlim, ylim, log_y=True)
    p.axes("learning rate", "epoch", "")
    p.line(epochs, lrs, COLORS[2])
    _write_png(img, path)


def error_by_age(pred: Any, true: Any, path: str | os.PathLike, *, title: str = "") -> None:
    """MAE per decade of true age (bars, count above each) beside a predicted-vs-true scatter."""
    import cv2

    from agecompact.evaluation.metrics import age_metrics

    pred = np.asarray(pred, np.float64).reshape(-1)
    true = np.asarray(true, np.float64).reshape(-1)
    m = age_metrics(pred, true)
    w, h = 1000, 460
    img = np.full((h, w, 3), 255, np.uint8)
    decades = list(m["mae_by_decade"].items())
    maes = [d["mae"] for _, d in decades]
    p = Panel(img, 70, 60, 400, 320, (-0.5, max(len(decades), 1) - 0.5), _limits(maes + [0.0], zero=True))
    p.axes("MAE by decade of true age", "", "", xticks=False)
    for i, (label, d) in enumerate(decades):
        x0, y0 = p.px(i - 0.35, d["mae"])
        x1, y1 = p.px(i + 0.35, 0.0)
        cv2.rectangle(img, (x0, y0), (x1, y1), COLORS[0], -1)
        cv2.putText(img, f"n={d['count']}", (x0, y0 - 4), FONT, 0.35, DARK, 1, cv2.LINE_AA)
        cv2.putText(img, label, (x0 - 2, p.y0 + p.h + 32), FONT, 0.35, DARK, 1, cv2.LINE_AA)
    hi = max(100.0, float(np.nanmax(np.concatenate([pred, true]))) if pred.size else 100.0)
    q = Panel(img, 560, 60, 320, 320, (0.0, hi), (0.0, hi))
    q.axes("predicted vs true age", "true age", "")
    cv2.line(img, q.px(0, 0), q.px(hi, hi), GREY, 1, cv2.LINE_AA)
    rng = np.random.default_rng(0)
    sel = rng.choice(pred.size, size=min(pred.size, 5000), replace=False) if pred.size else []
    for i in sel:
        cv2.circle(img, q.px(float(true[i]), float(np.clip(pred[i], 0, hi))), 2, COLORS[1], -1)
    if m["count"]:
        head = (f"{title}  " if title else "") + (f"MAE {m['mae']:.2f}  CA(3) {m['ca3']:.3f}  CA(5) {m['ca5']:.3f}  "
                                                  f"n={m['count']}")
        cv2.putText(img, head, (70, 28), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    _write_png(img, path)
