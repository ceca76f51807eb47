"""Memory-bounded output: a preallocated on-disk image array filled in place, then streamed into an ``.npz``.

Holding 460k decoded faces in a Python list (or building the array in RAM and then calling ``np.savez``,
which copies it again) is what made the reference scripts run out of memory. Here each worker writes its
64x64x3 face straight into a preallocated ``.npy`` scratch file with ``pwrite`` (nothing of it is mapped
into the process, so resident memory does not grow with the dataset), and the final ``.npz`` is an
uncompressed zip whose ``image.npy`` member is copied from the scratch file a chunk at a time.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

STREAM_ROWS = 512  # rows per read when streaming the scratch file into the zip (6 MiB at 64x64x3)


def _reserve(path: Path, size: int) -> None:
    """Claim the scratch file's blocks now, so a disk too small fails here with ENOSPC (one clear error)
    rather than after hours of decoding; filesystems without fallocate keep the sparse file."""
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        import errno

        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


class ScratchImages:
    """A (N, size, size, 3) uint8 ``.npy`` on disk, written row by row from any thread."""

    def __init__(self, path: str | os.PathLike, n: int, size: int, *, create: bool):
        self.path = Path(path)
        self.shape = (n, size, size, 3)
        self.row_bytes = size * size * 3
        if create:
            # open_memmap writes the .npy header and extends the file sparsely; we only keep the offset
            mm = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.uint8, shape=self.shape)
            self.offset = mm.offset
            del mm
            _reserve(self.path, self.offset + n * self.row_bytes)
        else:
            mm = np.load(self.path, mmap_mode="r")
            if mm.shape != self.shape or mm.dtype != np.uint8:
                raise ValueError(f"scratch file {self.path} has shape {mm.shape}, expected {self.shape}")
            self.offset = mm.offset
            del mm
        self._fd = os.open(self.path, os.O_RDWR)

    def write(self, index: int, image: np.ndarray) -> None:
        data = np.ascontiguousarray(image, dtype=np.uint8)
        if data.nbytes != self.row_bytes:
            raise ValueError(f"image of shape {image.shape} does not fit rows of {self.shape[1:]}")
        os.pwrite(self._fd, memoryview(data).cast("B"), self.offset + index * self.row_bytes)

    def read(self, start: int, stop: int) -> np.ndarray:
        count = (stop - start) * self.row_bytes
        data = os.pread(self._fd, count, self.offset + start * self.row_bytes)
        if len(data) != count:  # sparse tail never written: reads short only past EOF, which cannot happen
            data = data + bytes(count - len(data))
        return np.frombuffer(data, np.uint8).reshape(stop - start, *self.shape[1:])

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    import io

    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)  # a 4-d shape always fits the 1.0 header
    return buf.getvalue()


def write_npz(path: str | os.PathLike, scratch: ScratchImages, keep: np.ndarray,
              arrays: dict[str, np.ndarray], *, image_key: str = "image") -> int:
    """Write an uncompressed ``.npz`` (as ``np.savez`` would) with ``scratch[keep]`` as ``image_key``.

    Only ``STREAM_ROWS`` images are in memory at a time. Returns the number of images written.
    """
    keep = np.asarray(keep, bool)
    n_keep = int(keep.sum())
    with zipfile.ZipFile(path, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open(f"{image_key}.npy", mode="w", force_zip64=True) as member:
            member.write(_npy_header(np.uint8, (n_keep, *scratch.shape[1:])))
            total = len(keep)
            for start in range(0, total, STREAM_ROWS):
                stop = min(start + STREAM_ROWS, total)
                sel = keep[start:stop]
                if not sel.any():
                    continue
                block = scratch.read(start, stop)
                member.write(block if sel.all() else np.ascontiguousarray(block[sel]))
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return n_keep
