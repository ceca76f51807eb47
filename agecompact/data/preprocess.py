"""Turn a labelled file list into ``<db>.npz`` (image uint8 N x 64 x 64 x 3 BGR, age, gender, img_size
[, split]) plus a JSON sidecar: in parallel, in bounded memory, resumable.

Progress lives in ``<out>.partial/``: the preallocated image scratch file, one status byte per sample and
the plan (a fingerprint of the inputs and settings). An interrupted run picks up where it stopped; a run
whose inputs changed starts over. The final ``.npz`` and its sidecar are written to temporary names and
renamed, so the output path only ever holds a complete file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from agecompact._version import __version__
from agecompact.data import transforms as T
from agecompact.data.locate import sidecar_path
from agecompact.data.npzwriter import ScratchImages, write_npz
from agecompact.data.samples import GENDER_CONVENTION, Samples
from agecompact.fileio import atomic_path, atomic_write_json, read_json_or_none

FORMAT = "agecompact-dataset"
FORMAT_VERSION = 1
FLUSH_EVERY = 1024  # samples between status checkpoints


def partial_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _fingerprint(samples: Samples, settings: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(str(samples.root.resolve()).encode())
    h.update(samples.labels_sha256().encode())
    return h.hexdigest()


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        from agecompact.console import log

        log(message)


def run(samples: Samples, transform, out: str | os.PathLike, *, img_size: int = 64, workers: int | None = None,
        restart: bool = False, quiet: bool = False, settings: dict | None = None,
        extra: dict | None = None) -> dict:
    """Preprocess ``samples`` with ``transform`` into ``out``; returns the sidecar dictionary.

    ``settings`` (method, margin, ...) go into the fingerprint and the sidecar; ``extra`` only into the
    sidecar. The sidecar gets ``"status": "up to date"`` when an identical output already existed.
    """
    from agecompact.console import make_progress

    out = Path(out)
    settings = {"img_size": img_size, **(settings or {}), **transform.describe()}
    fingerprint = _fingerprint(samples, settings)
    partial = partial_dir(out)
    n = len(samples)

    if restart and partial.exists():
        shutil.rmtree(partial)
    plan = read_json_or_none(partial / "plan.json")
    resuming = plan is not None and plan.get("fingerprint") == fingerprint and plan.get("n") == n \
        and (partial / "images.npy").is_file() and (partial / "status.u8").is_file() \
        and (partial / "status.u8").stat().st_size == n
    if partial.exists() and not resuming:
        if plan is not None:
            _log(f"discarding the unfinished run in {partial}: its inputs or settings differ", quiet)
        shutil.rmtree(partial)
    if not resuming and not restart:
        existing = read_json_or_none(sidecar_path(out))
        if existing and existing.get("fingerprint") == fingerprint and out.is_file():
            existing["status"] = "up to date"
            return existing

    if resuming:
        scratch = ScratchImages(partial / "images.npy", n, img_size, create=False)
        status = np.fromfile(partial / "status.u8", np.uint8).copy()
    else:
        partial.mkdir(parents=True)
        scratch = ScratchImages(partial / "images.npy", n, img_size, create=True)
        status = np.zeros(n, np.uint8)
        status.tofile(partial / "status.u8")
        atomic_write_json(partial / "plan.json", {"fingerprint": fingerprint, "n": n, "out": str(out)})
    status_fd = os.open(partial / "status.u8", os.O_RDWR)
    todo = np.flatnonzero(status == T.PENDING)
    if resuming:
        _log(f"resuming {out.name}: {n - len(todo)} of {n} images already done", quiet)

    workers = max(1, workers or os.cpu_count() or 1)
    started = time.perf_counter()
    root = samples.root
    paths = samples.paths

    def work(i: int) -> int:
        code, face = T.process_file(root / paths[i], transform)
        if code == T.OK:
            scratch.write(i, face)
        return code

    import cv2

    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # our threads already fill the cores; nested OpenCV pools would oversubscribe them
    dirty_lo, dirty_hi = n, -1
    done_now = 0

    def flush() -> None:
        nonlocal dirty_lo, dirty_hi
        if dirty_hi < dirty_lo:
            return
        scratch.sync()  # images before the status bytes that vouch for them
        os.pwrite(status_fd, status[dirty_lo:dirty_hi + 1].tobytes(), dirty_lo)
        dirty_lo, dirty_hi = n, -1

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preprocess")
    try:
        with make_progress(quiet=quiet) as progress:
            task = progress.add_task(f"preprocess {samples.db}", total=n, completed=n - len(todo))
            window: deque = deque()
            feed = iter(todo.tolist())

            def submit() -> None:
                i = next(feed, None)
                if i is not None:
                    window.append((i, pool.submit(work, i)))

            for _ in range(workers * 8):
                submit()
            since_flush = 0
            while window:
                i, future = window.popleft()
                status[i] = future.result()
                dirty_lo, dirty_hi = min(dirty_lo, i), max(dirty_hi, i)
                done_now += 1
                since_flush += 1
                progress.advance(task)
                submit()
                if since_flush >= FLUSH_EVERY:
                    flush()
                    since_flush = 0
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        flush()
        os.close(status_fd)
        scratch.close()
        cv2.setNumThreads(cv_threads)
        done = int((status != T.PENDING).sum())
        _log(f"stopped after {done} of {n} images; progress is kept in {partial}: run the same command to "
             "resume, or add --restart to start over", quiet)
        raise
    pool.shutdown(wait=True)
    flush()
    os.close(status_fd)
    cv2.setNumThreads(cv_threads)
    elapsed = time.perf_counter() - started

    keep = status == T.OK
    arrays: dict[str, np.ndarray] = {
        "age": samples.age[keep].astype(np.int32),
        "gender": samples.gender[keep].astype(np.int8),
        "img_size": np.asarray(img_size, np.int64),
        # where each row came from (relative to the sidecar's root): evaluation through detection and
        # error analysis go back to the original photo
        "source_file": np.asarray([paths[i] for i in np.flatnonzero(keep)], dtype=str),
    }
    if samples.split is not None:
        arrays["split"] = samples.split[keep].astype(np.uint8)
    try:
        with atomic_path(out, sync=True) as tmp:
            count = write_npz(tmp, scratch, keep, arrays)
    finally:
        scratch.close()

    skipped_files: dict[str, list[str]] = {}
    for code, reason in T.REASONS.items():
        rows = np.flatnonzero(status == code)
        if len(rows):
            skipped_files[reason] = [paths[i] for i in rows]
    ages = arrays["age"]
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "db": samples.db,
        "path": str(out.resolve()),
        "count": count,
        "listed": n,
        "skipped": {reason: len(v) for reason, v in skipped_files.items()},
        "keys": list(("image", *arrays)),
        "img_size": img_size,
        "color_order": "BGR",
        "pixel_range": [0, 255],
        "gender_convention": GENDER_CONVENTION,
        "split_names": (dict(enumerate(samples.split_names)) if samples.split is not None else None),
        "split_counts": ({name: int((arrays["split"] == k).sum()) for k, name in enumerate(samples.split_names)}
                         if samples.split is not None else None),
        "age_stats": ({"min": int(ages.min()), "max": int(ages.max()), "mean": round(float(ages.mean()), 3)}
                      if count else None),
        **settings,
        "root": str(samples.root.resolve()),
        "source": samples.source,
        "source_sha256": samples.labels_sha256(),
        "fingerprint": fingerprint,
        "skipped_files": skipped_files,
        "unlabelled_files": samples.unlabelled,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "package_version": __version__,
        "seconds": round(elapsed, 3),
        "images_per_second": round(done_now / elapsed, 1) if elapsed > 0 and done_now else None,
        "workers": workers,
        **(extra or {}),
    }
    atomic_write_json(sidecar_path(out), meta)
    shutil.rmtree(partial, ignore_errors=True)
    meta["status"] = "written"
    return meta
