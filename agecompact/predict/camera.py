"""``predict --camera N``: ages on a webcam's frames, in a live window or as annotated frames on disk.

The capture comes from :func:`open_capture` (OpenCV's ``VideoCapture``); tests replace it with a fake
source. A window is shown only where a display exists and OpenCV was built with a GUI (the headless
wheel has none); otherwise every processed frame is written to ``--out/camera<N>/frame_<n>.jpg``.
The run ends when the camera stops delivering frames, after ``max_frames``, on q / Esc in the window,
or on Ctrl-C (which finishes the run normally: records and the CSV are kept).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agecompact.errors import InputError
from agecompact.predict.annotate import draw_faces
from agecompact.predict.inputs import Item
from agecompact.predict.run import Outcome, Tally, face_record, write_image

WINDOW = "agecompact"


def open_capture(index: int):
    """The capture for camera ``index`` (replaced in tests by a fake with ``read``/``isOpened``/``release``)."""
    import cv2

    return cv2.VideoCapture(index)


def camera_index(text: str) -> int | None:
    """``"0"`` -> 0 for a source that names a camera rather than a file; None otherwise."""
    return int(text) if text.isdigit() and not Path(text).exists() else None


def display_available() -> bool:
    """A live window can be opened: a display (X11 / Wayland on Linux) and an OpenCV with highgui."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import cv2

    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return False
    return True


def frame_name(index: int, n: int) -> Path:
    return Path(f"camera{index}") / f"frame_{n:06d}.jpg"


def run_camera(predictor, index: int, *, out_dir: Path | None, show: bool, every: int = 1,
               max_frames: int = 0, on_record: Callable[[dict[str, Any]], None] | None = None,
               advance: Callable[[int], None] | None = None) -> Tally:
    """Read, detect, estimate and show or save frames until the camera stops (see the module docstring)."""
    cap = open_capture(index)
    if cap is None or not cap.isOpened():
        raise InputError(f"cannot open camera {index} (is it connected, and free?)")
    item = Item(Path(f"camera:{index}"), "video", frame_name(index, 0))
    on_record = on_record or (lambda rec: None)
    frames: list[int] = []
    faces_done: list[list] = []
    last: list = []
    start = time.perf_counter()
    n = 0
    try:
        while not max_frames or n < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if n % max(1, every) == 0:
                (last,) = predictor([frame])
                frames.append(n)
                faces_done.append(last)
                for rec in face_record(item, last, frame=n):
                    on_record(rec)
                if out_dir is not None:
                    write_image(out_dir / frame_name(index, n), draw_faces(frame, last))
            if show and _show(draw_faces(frame, last)):
                break
            if advance is not None:
                advance(1)
            n += 1
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live run ends
    finally:
        cap.release()
        if show:
            _close_window()
    if n == 0:
        raise InputError(f"camera {index} delivered no frames")
    return Tally(outcomes=[Outcome(item, faces_done, frames=frames, output=out_dir)],
                 seconds=time.perf_counter() - start)


def _show(image) -> bool:
    """Show a frame; True when the user pressed q or Esc."""
    import cv2

    cv2.imshow(WINDOW, image)
    return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)


def _close_window() -> None:
    import cv2

    try:
        cv2.destroyWindow(WINDOW)
    except cv2.error:
        pass
