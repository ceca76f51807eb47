"""PNG charts drawn with OpenCV (already a dependency), so plots need no plotting library.

* ``training_curves(records, path)``: loss and train/validation MAE per epoch, plus the learning rate.
* ``error_by_age(pred, true, path)``: MAE per decade of true age (bars, with counts) and predicted vs
  true age (scatter).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
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


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass
class Canvas:
    """An image plus the box of every text drawn on it, so labels can be kept from overlapping."""

    img: np.ndarray
    texts: list[tuple[str, Box]] = field(default_factory=list)

    def text(self, s: str, x: int, y: int, *, scale: float = 0.4, color: tuple[int, int, int] = DARK,
             anchor: str = "left", nudge: int = 0) -> Box:
        """``s`` with its baseline at ``y``; ``anchor`` left/center/right of ``x``. With ``nudge`` (pixels,
        +down / -up) a label that would overlap one already drawn moves until it does not."""
        import cv2

        (tw, th), base = cv2.getTextSize(s, FONT, scale, 1)
        x = {"left": x, "center": x - tw // 2, "right": x - tw}[anchor]
        box = (x, y - th, x + tw, y + base)
        for _ in range(6 if nudge else 0):
            if not any(_overlap(box, b) for _, b in self.texts):
                break
            y += nudge
            box = (x, y - th, x + tw, y + base)
        cv2.putText(self.img, s, (x, y), FONT, scale, color, 1, cv2.LINE_AA)
        self.texts.append((s, box))
        return box

    def vertical_text(self, s: str, cx: int, cy: int, *, scale: float = 0.45,
                      color: tuple[int, int, int] = DARK) -> Box:
        """``s`` read bottom to top, centred on (cx, cy): the y-axis label."""
        import cv2

        (tw, th), base = cv2.getTextSize(s, FONT, scale, 1)
        patch = np.full((th + base + 2, tw + 2, 3), 255, np.uint8)
        cv2.putText(patch, s, (1, th + 1), FONT, scale, color, 1, cv2.LINE_AA)
        patch = cv2.rotate(patch, cv2.ROTATE_90_COUNTERCLOCKWISE)
        ph, pw = patch.shape[:2]
        x0, y0 = max(cx - pw // 2, 0), max(cy - ph // 2, 0)
        region = self.img[y0:y0 + ph, x0:x0 + pw]
        np.minimum(region, patch[:region.shape[0], :region.shape[1]], out=region)  # ink over the background
        box = (x0, y0, x0 + region.shape[1], y0 + region.shape[0])
        self.texts.append((s, box))
        return box


@dataclass
class Panel:
    """A rectangle of the canvas with data -> pixel mapping, axes, ticks, labels and a title."""

    canvas: Canvas
    x0: int
    y0: int
    w: int
    h: int
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    log_y: bool = False

    @property
    def img(self) -> np.ndarray:
        return self.canvas.img

    def _ty(self, y: float) -> float:
        return math.log10(max(y, 1e-30)) if self.log_y else y

    def px(self, x: float, y: float) -> tuple[int, int]:
        (a, b), (c, d) = self.xlim, (self._ty(self.ylim[0]), self._ty(self.ylim[1]))
        fx = (x - a) / (b - a) if b > a else 0.5
        fy = (self._ty(y) - c) / (d - c) if d > c else 0.5
        return int(round(self.x0 + fx * self.w)), int(round(self.y0 + self.h - fy * self.h))

    def axes(self, title: str, xlabel: str, ylabel: str, *, xticks: bool = True) -> None:
        """Frame, ticks (labels centred under / right of their tick, never overlapping), both axis labels."""
        import cv2

        cv2.rectangle(self.img, (self.x0, self.y0), (self.x0 + self.w, self.y0 + self.h), BLACK, 1)
        for t in _nice_ticks(*self.xlim) if xticks else []:
            x, _ = self.px(t, self.ylim[0])
            cv2.line(self.img, (x, self.y0 + self.h), (x, self.y0 + self.h + 4), BLACK, 1)
            self.canvas.text(_fmt(t), x, self.y0 + self.h + 18, anchor="center", nudge=12)
        if self.log_y:
            lo, hi = (math.floor(math.log10(max(v, 1e-30))) for v in self.ylim)
            marks = (1, 2, 5) if hi - lo <= 2 else (1,)
            yt = [m * 10.0 ** e for e in range(lo, hi + 1) for m in marks
                  if self.ylim[0] <= m * 10.0 ** e <= self.ylim[1]]
        else:
            yt = _nice_ticks(*self.ylim)
        left, last_y = self.x0, None
        for t in yt:
            _, y = self.px(self.xlim[0], t)
            if self.y0 <= y <= self.y0 + self.h and (last_y is None or abs(y - last_y) >= 16):
                last_y = y
                cv2.line(self.img, (self.x0 + 1, y), (self.x0 + self.w - 1, y), GREY, 1)
                box = self.canvas.text(_fmt(t), self.x0 - 6, y + 4, anchor="right")
                left = min(left, box[0])
        self.canvas.text(title, self.x0, self.y0 - 10, scale=0.5, color=BLACK)
        if xlabel:
            self.canvas.text(xlabel, self.x0 + self.w // 2, self.y0 + self.h + 38, scale=0.45, anchor="center",
                             nudge=12)
        if ylabel:
            self.canvas.vertical_text(ylabel, max(left - 12, 8), self.y0 + self.h // 2)

    def line(self, xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int]) -> None:
        import cv2

        pts = [self.px(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
        if len(pts) >= 2:
            cv2.polylines(self.img, [np.asarray(pts, np.int32)], False, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(self.img, p, 3, color, -1, cv2.LINE_AA)

    def steps(self, xs: Sequence[float], ys: Sequence[float], color: tuple[int, int, int]) -> None:
        """A value held over each x from x - 0.5 to x + 0.5 (the rate of an epoch): jumps stay jumps."""
        import cv2

        pts: list[tuple[int, int]] = []
        for x, y in zip(xs, ys, strict=True):
            if y is None or not math.isfinite(y) or (self.log_y and y <= 0):
                continue
            pts += [self.px(x - 0.5, y), self.px(x + 0.5, y)]
        if len(pts) >= 2:
            cv2.polylines(self.img, [np.asarray(pts, np.int32)], False, color, 2, cv2.LINE_AA)

    def legend(self, items: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        import cv2

        for i, (label, color) in enumerate(items):
            y = self.y0 + 16 + 16 * i
            cv2.line(self.img, (self.x0 + self.w - 130, y - 4), (self.x0 + self.w - 110, y - 4), color, 2)
            self.canvas.text(label, self.x0 + self.w - 105, y, color=BLACK)


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


def training_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike) -> list[tuple[str, Box]]:
    """Three panels: training loss, train/validation MAE, learning rate (log scale, held per epoch), per
    epoch (numbered from 1). Returns the drawn texts and their boxes."""
    epochs = [r["epoch"] for r in records]
    w, h = 1260, 430
    canvas = Canvas(np.full((h, w, 3), 255, np.uint8))
    xlim = (min(epochs, default=1) - 0.5, max(epochs, default=1) + 0.5)
    pw, ph, top, left, gap = 300, 300, 50, 90, 110
    loss = [r.get("train_loss") for r in records]
    p = Panel(canvas, left, top, pw, ph, xlim, _limits(loss))
    p.axes("training loss", "epoch", "loss")
    p.line(epochs, loss, COLORS[0])
    tm, vm = [r.get("train_mae") for r in records], [r.get("val_mae") for r in records]
    p = Panel(canvas, left + pw + gap, top, pw, ph, xlim, _limits(tm + vm, zero=True))
    p.axes("MAE", "epoch", "MAE (years)")
    p.line(epochs, tm, COLORS[0])
    p.line(epochs, vm, COLORS[1])
    p.legend([("train", COLORS[0]), ("validation", COLORS[1])])
    lrs = [r.get("lr") for r in records]
    good = [v for v in lrs if v and v > 0]
    ylim = (min(good) / 2, max(good) * 2) if good else (1e-4, 1e-2)
    p = Panel(canvas, left + 2 * (pw + gap), top, pw, ph, xlim, ylim, log_y=True)
    p.axes("learning rate (end of each epoch)", "epoch", "learning rate")
    p.steps(epochs, lrs, COLORS[2])
    _write_png(canvas.img, path)
    return canvas.texts


def error_by_age(pred: Any, true: Any, path: str | os.PathLike, *, title: str = "") -> list[tuple[str, Box]]:
    """MAE per decade of true age (bars, count above each) beside a predicted-vs-true scatter. Returns the
    drawn texts and their boxes."""
    import cv2

    from agecompact.evaluation.metrics import age_metrics

    pred = np.asarray(pred, np.float64).reshape(-1)
    true = np.asarray(true, np.float64).reshape(-1)
    m = age_metrics(pred, true)
    w, h = 1040, 480
    canvas = Canvas(np.full((h, w, 3), 255, np.uint8))
    img = canvas.img
    decades = list(m["mae_by_decade"].items())
    maes = [d["mae"] for _, d in decades]
    p = Panel(canvas, 80, 60, 420, 320, (-0.5, max(len(decades), 1) - 0.5), _limits(maes + [0.0], zero=True))
    p.axes("MAE by decade of true age (n = faces)", "", "MAE (years)", xticks=False)
    for i, (label, d) in enumerate(decades):
        x0, y0 = p.px(i - 0.35, d["mae"])
        x1, y1 = p.px(i + 0.35, 0.0)
        cv2.rectangle(img, (x0, y0), (x1, y1), COLORS[0], -1)
        canvas.text(f"{d['count']}", (x0 + x1) // 2, y0 - 4, scale=0.35, anchor="center", nudge=-11)
        canvas.text(label, (x0 + x1) // 2, p.y0 + p.h + 18, scale=0.35, anchor="center", nudge=12)
    canvas.text("true age (years)", p.x0 + p.w // 2, p.y0 + p.h + 62, scale=0.45, anchor="center")
    hi = max(100.0, float(np.nanmax(np.concatenate([pred, true]))) if pred.size else 100.0)
    q = Panel(canvas, 640, 60, 320, 320, (0.0, hi), (0.0, hi))
    q.axes("predicted vs true age", "true age (years)", "predicted age (years)")
    cv2.line(img, q.px(0, 0), q.px(hi, hi), GREY, 1, cv2.LINE_AA)
    rng = np.random.default_rng(0)
    sel = rng.choice(pred.size, size=min(pred.size, 5000), replace=False) if pred.size else []
    for i in sel:
        cv2.circle(img, q.px(float(true[i]), float(np.clip(pred[i], 0, hi))), 2, COLORS[1], -1)
    if m["count"]:
        head = (f"{title}  " if title else "") + (f"MAE {m['mae']:.2f}  CA(3) {m['ca3']:.3f}  CA(5) {m['ca5']:.3f}  "
                                                  f"n={m['count']}")
        canvas.text(head, 80, 28, scale=0.55, color=BLACK)
    _write_png(img, path)
    return canvas.texts
