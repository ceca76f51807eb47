"""Atomic file output: a reader never sees a half-written file, an interrupted writer leaves none."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agecompact.errors import UsageError


def is_utf8(name: str) -> bool:
    """False for names with undecodable bytes (Python keeps them as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_replaceable(path: str | os.PathLike) -> None:
    """An output may replace a regular file (or a link to one), never a folder, device or FIFO; commands
    call this before long work so a bad ``--out`` fails at once."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} exists and is not a regular file; refusing to replace it")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, *, sync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary name keeps the final suffix (or ``suffix``) so that writers that pick a format from
    the extension (OpenCV, numpy) behave as for the final file. ``sync`` flushes the data to disk before
    the rename, for outputs whose sidecar would otherwise vouch for them after a power cut.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()  # replace what the link points at, as open() would, not the link
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else "".join(path.suffixes[-1:])
    stem = path.stem if is_utf8(path.stem) else "tmp"  # OpenCV writers cannot open names that are not UTF-8
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes owner-only files; give the result the mode a plain open() would have.
        os.chmod(tmp_path, 0o666 & ~_umask())
        if sync:
            fd = os.open(tmp_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path, sync=True) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    from agecompact.console import _json_default

    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json_or_none(path: str | os.PathLike) -> Any:
    """The JSON in ``path``, or None when it is missing, unreadable or not JSON (an optional sidecar)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
