"""Feeding training: a seeded split of a dataset (``data.npz``), its batches, and a prefetching stream.

Images stay uint8 on the host (a float copy of IMDB would need ~10 GB); the train step casts on device.
Batch order and augmentation are pure functions of ``(seed, epoch, step)``, so a resumed run sees
exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from agecompact.data.npz import SPLIT_TRAIN, Dataset, load_datasets, load_npz  # noqa: F401  (the loop reads them here)
from agecompact.errors import InputError, UsageError
from agecompact.runfolder import SavedSplit

DEFAULT_VAL_FRACTION = 0.2


def indices_sha256(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()


@dataclass
class Split:
    train: np.ndarray  # int64 indices, sorted
    val: np.ndarray
    method: str  # "dataset" (the npz's split column) or "random"
    seed: int
    val_fraction: float | None

    def saved(self, ds: Dataset) -> SavedSplit:
        """What ``split.json`` records of this split of ``ds``."""
        info: dict[str, Any] = {"name": ds.name, "path": str(ds.path.resolve()), "count": len(ds)}
        if ds.parts:
            info["parts"] = [{"name": p.name, "path": str(p.path.resolve()), "count": len(p), "offset": int(o)}
                             for p, o in ds.parts]
        return SavedSplit(method=self.method, seed=self.seed, val_fraction=self.val_fraction, dataset=info,
                          n_train=int(len(self.train)), n_val=int(len(self.val)),
                          train_sha256=indices_sha256(self.train), val_sha256=indices_sha256(self.val),
                          val_indices=self.val.tolist())


def make_split(ds: Dataset, *, seed: int, val_fraction: float | None, keep: np.ndarray | None = None) -> Split:
    """The dataset's own split when it has one (and no fraction is forced), else a seeded random split.

    ``keep`` (bool mask) drops rows before splitting, e.g. unknown genders for a gender model. A joined
    dataset is split part by part, each by its own rule, with the same seed.
    """
    if ds.parts:
        subs = [make_split(p, seed=seed, val_fraction=val_fraction,
                           keep=None if keep is None else keep[o:o + len(p)]) for p, o in ds.parts]
        offs = [o for _, o in ds.parts]
        methods = sorted({sp.method for sp in subs})
        return Split(np.concatenate([sp.train + o for sp, o in zip(subs, offs, strict=True)]),
                     np.concatenate([sp.val + o for sp, o in zip(subs, offs, strict=True)]),
                     "+".join(methods), seed, val_fraction)
    n = len(ds)
    rows = np.arange(n) if keep is None else np.flatnonzero(keep)
    if ds.split is not None and val_fraction is None:
        train = rows[ds.split[rows] == SPLIT_TRAIN]
        val = rows[ds.split[rows] != SPLIT_TRAIN]
        out = Split(np.sort(train), np.sort(val), "dataset", seed, None)
    else:
        frac = DEFAULT_VAL_FRACTION if val_fraction is None else float(val_fraction)
        perm = rows[np.random.default_rng(seed).permutation(len(rows))]
        n_val = int(round(len(rows) * frac))
        out = Split(np.sort(perm[n_val:]), np.sort(perm[:n_val]), "random", seed, frac)
    if len(out.train) == 0 or len(out.val) == 0:
        raise InputError(f"{ds.path}: the split leaves {len(out.train)} training and {len(out.val)} validation "
                         "images; need at least one of each")
    return out


def repeat_parts(ds: Dataset, split: Split, repeats: list[int] | None) -> Split:
    """``split`` with each part's training rows listed ``repeats[i]`` times (validation untouched).

    An epoch then visits a small dataset's faces several times for each pass over a large one, so
    the model is not fitted to the large one's population alone.
    """
    if not repeats or all(int(r) == 1 for r in repeats):
        return split
    bounds = [(o, o + len(p)) for p, o in ds.parts] if ds.parts else [(0, len(ds))]
    pieces = [np.repeat(split.train[(split.train >= lo) & (split.train < hi)], int(r))
              for (lo, hi), r in zip(bounds, repeats, strict=True)]
    return dataclasses.replace(split, train=np.sort(np.concatenate(pieces)))


def check_split(saved: SavedSplit, split: Split) -> None:
    """On resume, the recomputed split must be the saved one (same data, same seed)."""
    if saved.train_sha256 != indices_sha256(split.train) or saved.val_sha256 != indices_sha256(split.val):
        raise UsageError("the dataset or seed differs from the run being resumed (split.json does not match)")


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    steps = n_train // batch_size
    if steps < 1:
        raise UsageError(f"batch size {batch_size} is larger than the training set ({n_train} images); "
                         "lower --batch-size")
    return steps


def epoch_order(train: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """This epoch's shuffled training indices: a pure function of (seed, epoch)."""
    return train[np.random.default_rng([seed, epoch, 0]).permutation(len(train))]


def batch_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """The generator behind one batch's augmentation draws."""
    return np.random.default_rng([seed, epoch, 1, step])


Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def train_batches(ds: Dataset, targets: dict[str, np.ndarray], train: np.ndarray, *, batch_size: int, seed: int,
                  epoch: int, start_step: int = 0, augment: Transform | None = None
                  ) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
    """(step, uint8 images, targets) for one epoch, remainder dropped so shapes never change."""
    order = epoch_order(train, seed, epoch)
    for step in range(start_step, steps_per_epoch(len(train), batch_size)):
        idx = np.sort(order[step * batch_size:(step + 1) * batch_size])  # sorted: faster gather
        images = ds.images[idx]
        if augment is not None:
            images = augment(images, batch_rng(seed, epoch, step))
        yield step, images, {k: v[idx] for k, v in targets.items()}


_END = object()


class Prefetcher:
    """Runs an iterator (gather + augmentation + device transfer) on a background thread, ``depth`` ahead.

    Exceptions in the worker are re-raised in the consumer; ``close`` stops the worker early.
    """

    def __init__(self, it: Iterator[Any], depth: int = 2, transfer: Callable[[Any], Any] | None = None):
        self._q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._transfer = transfer
        self._thread = threading.Thread(target=self._run, args=(it,), daemon=True, name="agecompact-prefetch")
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator[Any]) -> None:
        try:
            for item in it:
                if self._stop.is_set():
                    return
                if self._transfer is not None:
                    item = self._transfer(item)
                if not self._put(item):
                    return
        except BaseException as e:  # handed to the consumer, re-raised there
            self._put(("__error__", e))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, tuple) and len(item) == 2 and item[0] == "__error__":
                raise item[1]
            yield item

    def close(self) -> None:
        self._stop.set()
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
