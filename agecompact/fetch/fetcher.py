"""What ``agecompact fetch NAME`` does for each kind of source (see ``sources.py``)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from agecompact.errors import UsageError
from agecompact.fetch.download import (
    CorruptArchiveError,
    UnsafeArchiveError,
    download,
    extract_tar,
    sha256_of,
)
from agecompact.fetch.sources import Source


def fetch(source: Source, *, dest: str | os.PathLike | None = None, url: str | None = None, force: bool = False,
          quiet: bool = False, count: int | None = None, seed: int = 0, keep_archive: bool = False,
          sha256: str | None = None) -> dict:
    """Fetch one source; returns a small report (name, kind, status, path, ...).

    ``sha256`` (with ``url`` only) accepts a mirror's different build on purpose: the download is checked
    against that digest instead of the published one (and not against the published size). Without it,
    every download must match the published checksum.
    """
    if url is not None and source.kind in ("demo", "manual"):
        raise UsageError(f"--url does not apply to {source.name!r} ({source.kind})")
    if count is not None and source.kind != "demo":
        raise UsageError("--count only applies to `fetch demo`")
    published = source.sha256
    if sha256 is not None:
        source = dataclasses.replace(source, sha256=_accepted_digest(sha256, url), size=None)
    handler = {"dataset": _dataset, "weights": _weights, "detector": _detector, "demo": _demo,
               "manual": _manual}[source.kind]
    report = handler(source, dest=dest, url=url, force=force, quiet=quiet, count=count, seed=seed,
                     keep_archive=keep_archive, published_sha256=published)
    if sha256 is not None and source.sha256 != published:
        report["published_sha256"] = published
        report["accepted_sha256"] = source.sha256
    return report


def _accepted_digest(sha256: str, url: str | None) -> str:
    if url is None:
        raise UsageError("--sha256 needs --url: the default download is always checked against its published "
                         "checksum")
    digest = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise UsageError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
    return digest


def _report(source: Source, status: str, path: Path, **extra) -> dict:
    return {"name": source.name, "kind": source.kind, "status": status, "path": str(path), **extra}


def _dataset(source: Source, *, dest, url, force, quiet, keep_archive, **_) -> dict:
    root = source.destination(dest)
    crop = root / f"{source.name}_crop"
    mat = crop / f"{source.name}.mat"
    archive = root / (source.filename or f"{source.name}.tar")
    if mat.is_file() and not force:
        if _read_record(archive).get("keep") is False:
            discard_archive(archive)  # a kill came between placing the dataset and removing the archive
        return _report(source, "present", crop)
    wanted = url or source.url
    if force or not cached_archive_matches(archive, wanted, source):
        discard_archive(archive)  # another URL's, unverified or damaged: never reused
        download(wanted, archive, sha256=source.sha256, size=source.size, force=force, quiet=quiet,
                 label=archive.name)
        _write_archive_record(archive, wanted, keep=keep_archive)
    elif _read_record(archive).get("keep") != keep_archive:
        _write_archive_record(archive, wanted, keep=keep_archive, digest=_read_record(archive)["sha256"])
    try:
        extract_tar(archive, root, quiet=quiet, force=force, require=f"{crop.name}/{mat.name}")
    except (CorruptArchiveError, UnsafeArchiveError) as e:
        discard_archive(archive)  # rejected: a later fetch must not find it again
        raise type(e)(f"{e}; the archive was deleted (run the command again to download it afresh)") from None
    if not keep_archive:
        discard_archive(archive)
    return _report(source, "downloaded", crop, url=wanted)


def archive_record(archive: Path) -> Path:
    """``<archive>.source.json``: the URL, size and sha256 of a downloaded archive, checked before reuse."""
    return archive.with_name(archive.name + ".source.json")


def _write_archive_record(archive: Path, url: str, *, keep: bool, digest: str | None = None) -> None:
    """``keep``: whether the archive is to stay after extraction (``--keep-archive``)."""
    from agecompact.fileio import atomic_write_json

    atomic_write_json(archive_record(archive), {"url": url, "size": archive.stat().st_size,
                                                "sha256": digest or sha256_of(archive), "keep": keep})


def _read_record(archive: Path) -> dict:
    try:
        record = json.loads(archive_record(archive).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def cached_archive_matches(archive: Path, url: str, source: Source) -> bool:
    """True only for an archive downloaded from ``url`` whose size and sha256 are still the recorded ones
    (and the source's own, where it publishes them)."""
    if not archive.is_file() or archive.is_symlink():
        return False
    record = _read_record(archive)
    if record.get("url") != url:
        return False
    size = archive.stat().st_size
    if record.get("size") != size or (source.size is not None and source.size != size):
        return False
    digest = sha256_of(archive)
    return record.get("sha256") == digest and (source.sha256 is None or source.sha256.lower() == digest)


def discard_archive(archive: Path) -> None:
    for p in (archive, archive_record(archive)):
        if p.is_file() or p.is_symlink():
            p.unlink()


def _detector(source: Source, *, dest, url, force, quiet, **_) -> dict:
    target = source.destination(dest)
    if target.is_file() and not force and sha256_of(target) == source.sha256:
        return _report(source, "present", target)
    download(url or source.url, target, sha256=source.sha256, size=source.size, force=force, quiet=quiet)
    return _report(source, "downloaded", target, sha256=source.sha256)


def _weights(source: Source, *, dest, url, force, quiet, published_sha256=None, **_) -> dict:
    """Download the released ``.h5``, verify it, convert it to an agecompact model file in the cache."""
    from agecompact.pretrained import PRETRAINED, cached_model_path

    model_path = cached_model_path(source.name)
    info = PRETRAINED[source.name]
    if model_path.is_file() and not force and _cached_calibration(model_path) == (info.calibration or {}):
        return _report(source, "present", model_path)
    h5 = source.weights_file(dest)
    if force or not h5.is_file() or sha256_of(h5) != source.sha256:
        download(url or source.url, h5, sha256=source.sha256, size=source.size, force=force, quiet=quiet,
                 label=f"{source.name} ({h5.name})")
    from agecompact.api import load_model

    model = load_model(h5, arch=info.arch)
    model.meta.calibration = dict(info.calibration or {})
    model.meta.name = source.name
    model.meta.dataset = info.dataset
    if info.margin is not None:
        model.meta.margin = info.margin
    model.meta.source = {**model.meta.source, "type": "keras", "pretrained": source.name, "url": source.url,
                         "sha256": source.sha256, "licence": info.licence,
                         **({"mirror": url} if url else {}),
                         **({"published_sha256": published_sha256} if published_sha256 not in (None, source.sha256)
                            else {})}
    model.save(model_path)
    return _report(source, "downloaded", model_path, weights=str(h5), sha256=source.sha256,
                   num_params=model.num_params)


def _cached_calibration(path: Path) -> dict | None:
    """The calibration in an earlier conversion's header (None if unreadable): a changed one re-converts."""
    from agecompact.weights.modelfile import read_header

    try:
        return read_header(path).calibration
    except Exception:  # a damaged cache file is converted again
        return None


def _demo(source: Source, *, dest, force, quiet, count, seed, **_) -> dict:
    from agecompact.console import make_progress
    from agecompact.data import demo

    target = source.destination(dest)
    count = count if count is not None else demo.DEFAULT_COUNT
    demo.check_options(count)  # before the progress bar, so an error is the only line
    with make_progress(quiet=quiet) as progress:
        summary = demo.generate(target, count, seed, force=force, progress=progress)
    return _report(source, "generated" if summary.created else "present", Path(summary.root), count=summary.count,
                   seed=summary.seed, mat=summary.mat, kinds=summary.kinds)


def _manual(source: Source, *, dest, **_) -> dict:
    target = source.destination(dest)
    text = (source.instructions or "").format(dest=target)
    return _report(source, "manual", target, instructions=text, present=target.exists())
