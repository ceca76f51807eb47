"""A predict run over images, folders and videos: batching across files, outputs, records, tallies.

Images are grouped until their faces fill a batch (or a few dozen images are held), then every face
of the group goes through the model in one pass. Videos are processed frame by frame in the same way;
frames skipped by ``every`` are written with the latest annotations so the output video keeps its length.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agecompact.errors import AgecompactError, InputError
from agecompact.fileio import atomic_path, is_utf8
from agecompact.predict.annotate import draw_faces
from agecompact.predict.inputs import VIDEO_FOURCC, Item, Problem, read_image
from agecompact.predict.pipeline import FaceResult, Predictor

MAX_HELD_IMAGES = 32  # images (or video frames) kept in memory while their batch fills
MAX_HELD_BYTES = 256 * 2**20  # ... and at most this much pixel data (large photos)


@dataclass
class Outcome:
    """What one image or one video produced."""

    item: Item
    faces: list[list[FaceResult]]  # one list per image, or per processed video frame
    frames: list[int] | None = None  # processed frame numbers, videos only
    output: Path | None = None


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images(self) -> int:
        return sum(1 for o in self.outcomes if o.frames is None)

    @property
    def frames(self) -> int:
        return sum(len(o.frames) for o in self.outcomes if o.frames is not None)

    @property
    def faces(self) -> int:
        return sum(len(f) for o in self.outcomes for f in o.faces)

    def faceless(self) -> list[Outcome]:
        """Images with no face, and videos with no face in any processed frame."""
        return [o for o in self.outcomes if not any(o.faces)]


def face_record(item: Item, faces: list[FaceResult], frame: int | None = None) -> list[dict[str, Any]]:
    """JSON lines for one image or frame; an image without faces still gets one line (``faces: 0``)."""
    base: dict[str, Any] = {"file": str(item.path)}
    if frame is not None:
        base["frame"] = frame
    base["faces"] = len(faces)
    if not faces:
        return [{**base, "face": None}]
    records = []
    for f in faces:
        rec = {**base, "face": f.index, "box": [round(v, 1) for v in f.box],
               "score": _number(f.score, 4), "age": _number(f.age, 2)}
        if f.age_std is not None:
            rec["age_std"] = _number(f.age_std, 2)
        if f.gender is not None:
            rec["gender"] = f.gender
            rec["gender_score"] = _number(f.gender_score, 4)
        records.append(rec)
    return records


def output_path(out_dir: Path, item: Item) -> Path:
    return out_dir / item.out_name


def _number(value: float | None, digits: int) -> float | None:
    """JSON has no NaN: a non-finite model output is reported as null."""
    return round(value, digits) if value is not None and math.isfinite(value) else None


def write_image(path: Path, image: np.ndarray) -> None:
    """Encoded in memory, written by Python: OpenCV's own file functions crash on names that are not UTF-8."""
    import cv2

    ok, encoded = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise AgecompactError(f"{path}: could not encode the annotated image")
    with atomic_path(path) as tmp:  # no fsync per image: annotated copies can be made again
        tmp.write_bytes(encoded.tobytes())


def opencv_path(path: Path) -> str:
    """``path`` as OpenCV's video functions take it; they crash (SIGSEGV) on names that are not UTF-8."""
    if not is_utf8(str(path)):
        raise InputError(f"{path}: OpenCV cannot open video files whose names are not UTF-8; rename it")
    return str(path)


class PredictRun:
    """Runs a :class:`Predictor` over work items; ``on_record`` receives each JSON line's dict."""

    def __init__(self, predictor: Predictor, *, out_dir: Path | None = None, every: int = 1,
                 on_record: Callable[[dict[str, Any]], None] | None = None,
                 on_problem: Callable[[Problem], None] | None = None,
                 advance: Callable[[int], None] | None = None):
        self.predictor = predictor
        self.out_dir = out_dir
        self.every = max(1, every)
        self.on_record = on_record or (lambda rec: None)
        self.on_problem = on_problem or (lambda p: None)
        self.advance = advance or (lambda n: None)
        self.batch_size = predictor.age.batch_size

    def __call__(self, items: list[Item]) -> Tally:
        import cv2

        tally = Tally()
        start = time.perf_counter()
        held: list[tuple[Item, np.ndarray, list]] = []
        held_faces = held_bytes = 0

        def flush() -> None:
            nonlocal held_faces, held_bytes
            if not held:
                return
            results = self.predictor.estimate([im for _, im, _ in held], [fs for _, _, fs in held])
            for (item, image, _), faces in zip(held, results, strict=True):
                tally.outcomes.append(self._finish_image(item, image, faces))
            held.clear()
            held_faces = held_bytes = 0

        for item in items:
            if item.kind == "video":
                flush()
                try:
                    tally.outcomes.append(self._video(item))
                except InputError as e:
                    self._problem(tally, Problem(item.path, str(e)))
                except cv2.error as e:
                    self._problem(tally, Problem(item.path, f"OpenCV failed on this video ({_cv_message(e)})"))
                continue
            try:
                image = read_image(item.path)
                faces = self.predictor.detect(image)
            except InputError as e:
                self._problem(tally, Problem(item.path, str(e)))
                self.advance(1)
                continue
            except cv2.error as e:
                self._problem(tally, Problem(item.path, f"face detection failed ({_cv_message(e)})"))
                self.advance(1)
                continue
            held.append((item, image, faces))
            held_faces += len(faces)
            held_bytes += image.nbytes
            if held_faces >= self.batch_size or len(held) >= MAX_HELD_IMAGES or held_bytes >= MAX_HELD_BYTES:
                flush()
        flush()
        tally.seconds = time.perf_counter() - start
        return tally

    def _problem(self, tally: Tally, problem: Problem) -> None:
        tally.problems.append(problem)
        self.on_problem(problem)

    def _finish_image(self, item: Item, image: np.ndarray, faces: list[FaceResult]) -> Outcome:
        output = None
        if self.out_dir is not None:
            output = output_path(self.out_dir, item)
            write_image(output, draw_faces(image, faces))
        for rec in face_record(item, faces):
            self.on_record(rec)
        self.advance(1)
        return Outcome(item, [faces], output=output)

    # -- video --------------------------------------------------------------------------------------
    def _video(self, item: Item) -> Outcome:
        import cv2

        cap = cv2.VideoCapture(opencv_path(item.path))
        try:
            if not cap.isOpened():
                raise InputError(f"{item.path}: not a readable video")
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            if self.out_dir is None:
                return self._video_frames(item, cap, None)
            output = output_path(self.out_dir, item)
            with atomic_path(output) as tmp:
                writer_box: dict[str, Any] = {"path": tmp, "fps": fps, "writer": None,
                                              "fourcc": VIDEO_FOURCC.get(output.suffix.lower(), "MJPG")}
                try:
                    outcome = self._video_frames(item, cap, writer_box)
                finally:
                    if writer_box["writer"] is not None:
                        writer_box["writer"].release()
            outcome.output = output
            return outcome
        finally:
            cap.release()

    def _video_frames(self, item: Item, cap, writer_box: dict[str, Any] | None) -> Outcome:
        frames_done: list[int] = []
        faces_done: list[list[FaceResult]] = []
        held: list[tuple[int, np.ndarray, list | None]] = []  # (frame number, frame, faces or None if skipped)
        held_faces = 0
        last: list[FaceResult] = []

        def write(frame: np.ndarray) -> None:
            if writer_box is None:
                return
            import cv2

            if writer_box["writer"] is None:
                h, w = frame.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*writer_box["fourcc"])
                writer = cv2.VideoWriter(opencv_path(writer_box["path"]), fourcc, writer_box["fps"], (w, h))
                if not writer.isOpened():
                    raise AgecompactError(f"could not open a video writer for {writer_box['path'].suffix} output")
                writer_box["writer"] = writer
            writer_box["writer"].write(frame)

        def flush() -> None:
            nonlocal held_faces, last
            todo = [(n, fr, fs) for n, fr, fs in held if fs is not None]
            results = self.predictor.estimate([fr for _, fr, _ in todo], [fs for _, _, fs in todo])
            by_frame = {n: r for (n, _, _), r in zip(todo, results, strict=True)}
            for n, frame, _ in held:
                if n in by_frame:
                    last = by_frame[n]
                    frames_done.append(n)
                    faces_done.append(last)
                    for rec in face_record(item, last, frame=n):
                        self.on_record(rec)
                write(draw_faces(frame, last) if writer_box is not None else frame)
            self.advance(len(held))
            held.clear()
            held_faces = 0

        n = 0
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            faces = self.predictor.detect(frame) if n % self.every == 0 else None
            held.append((n, frame, faces))
            held_faces += len(faces or [])
            if held_faces >= self.batch_size or len(held) >= MAX_HELD_IMAGES:
                flush()
            n += 1
        flush()
        if n == 0:
            raise InputError(f"{item.path}: no frames could be read from the video")
        return Outcome(item, faces_done, frames=frames_done)


def _cv_message(error: Exception) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


def count_work(items: list[Item]) -> int:
    """Progress total: one step per image, one per video frame (as far as the container says)."""
    import cv2

    total = 0
    for item in items:
        if item.kind == "video":
            try:
                cap = cv2.VideoCapture(opencv_path(item.path))
            except InputError:
                total += 1  # reported when its turn comes
                continue
            total += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 1) if cap.isOpened() else 1
            cap.release()
        else:
            total += 1
    return total
