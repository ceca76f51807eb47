"""Resumable, verified downloads and safe archive extraction.

A download goes to ``<dest>.part``; an interrupted one continues from there with an HTTP Range request
(on the next call or an automatic retry). Only a file whose size and sha256 match is renamed onto ``dest``;
a mismatching one is deleted, never kept. Tar members that would land outside the target folder (absolute
paths, ``..``, links pointing out) are refused before anything is extracted.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from agecompact.errors import AgecompactError, InputError

CHUNK = 1 << 20
USER_AGENT = "agecompact-fetch"


class DownloadError(AgecompactError):
    """Network failure, HTTP error or a file that does not verify."""


class UnsafeArchiveError(InputError):
    """An archive member would be written outside the target folder."""


class CorruptArchiveError(InputError):
    """The archive cannot be read to its end: truncated or damaged."""


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _byte_progress(quiet: bool):
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from agecompact.console import DescriptionColumn, err_console

    return Progress(DescriptionColumn(), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=err_console, disable=quiet)


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, size: int | None = None,
             force: bool = False, quiet: bool = False, retries: int = 3, timeout: float = 30.0,
             label: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` and verify it; resumes a ``dest.part`` left by an earlier attempt.

    ``file://`` URLs are copied (useful for mirrors on a shared drive). Raises ``DownloadError``.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    marker = part_marker(dest)
    if part.exists() and (force or _read_text(marker) != url):
        part.unlink()  # bytes from another URL (or of unknown origin) are never resumed
    label = label or dest.name
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("file", "http", "https"):
        raise DownloadError(f"unsupported URL scheme in {url!r} (use http, https or file)")
    from agecompact.fileio import atomic_write_text

    atomic_write_text(marker, url)
    try:
        _fetch_to_part(url, part, size, quiet, retries, timeout, label, scheme)
        _verify(part, url, sha256, size)
        os.replace(part, dest)
    finally:
        if not part.exists():  # placed, or nothing worth resuming: the marker goes too
            marker.unlink(missing_ok=True)
    return dest


def part_marker(dest: str | os.PathLike) -> Path:
    """Beside ``<dest>.part``: the URL its bytes came from, so a resume never mixes two sources."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part.url")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _fetch_to_part(url: str, part: Path, size: int | None, quiet: bool, retries: int, timeout: float,
                   label: str, scheme: str) -> None:
    with _byte_progress(quiet) as progress:
        task = progress.add_task(f"fetch {label}", total=size)
        if scheme == "file":
            _copy_file(url, part, progress, task)
        elif scheme in ("http", "https"):
            attempt = 0
            while True:
                try:
                    _http_fetch(url, part, size, timeout, progress, task)
                    break
                except _Retryable as e:
                    attempt += 1
                    if attempt > retries:
                        have = part.stat().st_size if part.exists() else 0
                        raise DownloadError(f"download of {url} failed after {attempt} attempts ({e}); "
                                            f"{have} bytes kept in {part}, run the command again to resume"
                                            ) from None
                    time.sleep(min(0.2 * 2 ** attempt, 5.0))


class _Retryable(Exception):
    pass


def _copy_file(url: str, part: Path, progress, task) -> None:
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not source.is_file():
        raise DownloadError(f"{url}: no such file")
    progress.update(task, total=source.stat().st_size)
    with open(source, "rb") as src, open(part, "wb") as out:
        while block := src.read(CHUNK):
            out.write(block)
            progress.advance(task, len(block))


def _http_fetch(url: str, part: Path, size: int | None, timeout: float, progress, task) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have == size:
        progress.update(task, completed=have)
        return  # complete from an earlier run; verification decides
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left past what we have: start over if it does not verify
            part.unlink()
            raise _Retryable("server refused the resume range") from None
        if e.code >= 500 or e.code == 429:
            raise _Retryable(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"HTTP {e.code} {e.reason}: {url}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _Retryable(f"cannot connect: {reason}") from None
    with response:
        status = getattr(response, "status", 200)
        if status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Retryable("server answered a different range")
            mode = "ab"
        else:
            have = 0
            mode = "wb"
        length = response.headers.get("Content-Length")
        expected_end = have + int(length) if length and length.isdigit() else size
        progress.update(task, total=expected_end if expected_end else size, completed=have)
        received = have
        try:
            with open(part, mode, buffering=0) as out:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    _write_local(out, block, part)
                    received += len(block)
                    progress.advance(task, len(block))
        except _LocalWriteError as e:  # a full disk is no network failure: not retried, reported as it is
            raise e.error from None
        except (OSError, urllib.error.URLError, ValueError) as e:
            raise _Retryable(f"connection lost after {received} bytes ({type(e).__name__})") from None
        except Exception as e:  # http.client.IncompleteRead and friends
            raise _Retryable(f"connection lost after {received} bytes ({type(e).__name__})") from None
    if expected_end is not None and received < expected_end:
        raise _Retryable(f"connection closed after {received} of {expected_end} bytes")


class _LocalWriteError(Exception):
    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _write_local(out, block: bytes, part: Path) -> None:
    view = memoryview(block)
    try:
        while view:
            view = view[out.write(view):]
    except OSError as e:
        raise _LocalWriteError(OSError(e.errno, e.strerror, str(part))) from None


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-999/1000"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def _verify(part: Path, url: str, sha256: str | None, size: int | None) -> None:
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise DownloadError(f"{url}: got {actual_size} bytes, expected {size}; the file was not kept")
    if sha256:
        digest = sha256_of(part)
        if digest != sha256.lower():
            part.unlink()
            raise DownloadError(f"{url}: sha256 mismatch (got {digest[:12]}…, expected {sha256[:12]}…); "
                                "the file was not kept")


# -- tar extraction ----------------------------------------------------------------------------------------
def check_tar_members(members: list[tarfile.TarInfo], archive: str = "archive") -> None:
    """Refuse members that would escape the target folder; raise ``UnsafeArchiveError`` naming the first."""
    for m in members:
        name = m.name
        pure = PurePosixPath(name)
        if name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
            raise UnsafeArchiveError(f"{archive}: refusing absolute path {name!r}")
        if ".." in pure.parts or ".." in PurePosixPath(name.replace("\\", "/")).parts:
            raise UnsafeArchiveError(f"{archive}: refusing path with '..': {name!r}")
        if m.issym() or m.islnk():
            target = m.linkname
            if target.startswith("/") or PurePosixPath(target).is_absolute():
                raise UnsafeArchiveError(f"{archive}: refusing link {name!r} -> absolute {target!r}")
            base = pure.parent if m.issym() else PurePosixPath()
            depth = 0
            for part in (base / target).parts:
                depth = depth - 1 if part == ".." else depth + (part not in ("", "."))
                if depth < 0:
                    raise UnsafeArchiveError(f"{archive}: refusing link {name!r} -> {target!r} (outside the folder)")
        elif m.isdev() or m.isfifo():
            raise UnsafeArchiveError(f"{archive}: refusing device or FIFO member {name!r}")


def check_end_of_archive(tar: tarfile.TarFile, archive: Path) -> None:
    """A tar ends with two zero blocks. An archive cut between two members reads as a shorter valid one,
    so without this check a truncated download (and IMDB/WIKI publish no checksum) would pass."""
    tar.fileobj.seek(tar.offset)
    end = tar.fileobj.read(2 * tarfile.BLOCKSIZE)
    if len(end) < 2 * tarfile.BLOCKSIZE or end.count(0) != len(end):
        raise CorruptArchiveError(f"{archive}: truncated tar archive (no end-of-archive marker after "
                                  f"{len(tar.getmembers())} members)")


def extract_tar(archive: str | os.PathLike, dest: str | os.PathLike, *, quiet: bool = False,
                force: bool = False, require: str | None = None) -> list[Path]:
    """Extract ``archive`` into ``dest`` safely and atomically per top-level entry.

    Everything is unpacked into a hidden folder inside ``dest`` first and only then moved into place, so an
    interrupted extraction never leaves a half-filled dataset folder. ``require`` names a regular file the
    archive must hold (checked before anything is extracted). Returns the top-level paths created.
    """
    from agecompact.console import make_progress

    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".extract-{archive.name}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            check_tar_members(members, archive.name)
            check_end_of_archive(tar, archive)
            if require is not None and not any(m.isfile() and PurePosixPath(m.name).as_posix() == require
                                               for m in members):
                raise CorruptArchiveError(f"{archive.name} holds no {require}; is it the right archive?")
            tops = sorted({PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts})
            own = [t for t in tops if t.startswith((archive.name, staging.name))]
            if own:  # the archive itself, its .part, URL marker or record, or the staging folder
                raise UnsafeArchiveError(f"{archive.name}: refusing member {own[0]!r} (would replace the "
                                         "archive's own files)")
            clashes = [t for t in tops if (dest / t).exists() or (dest / t).is_symlink()]
            if clashes and not force:
                raise InputError(f"{dest / clashes[0]} already exists; pass --force to replace it")
            staging.mkdir()
            with make_progress(quiet=quiet) as progress:
                task = progress.add_task(f"extract {archive.name}", total=len(members))
                for m in members:
                    tar.extract(m, staging, filter="data")
                    progress.advance(task)
    except tarfile.FilterError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnsafeArchiveError(f"{archive.name}: refusing unsafe member ({e})") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise CorruptArchiveError(f"{archive}: not a readable tar archive, truncated or corrupt ({e})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    placed = []
    for entry in sorted(staging.iterdir()):
        target = dest / entry.name
        if target.exists() or target.is_symlink():
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        os.replace(entry, target)
        placed.append(target)
    shutil.rmtree(staging, ignore_errors=True)
    return placed
