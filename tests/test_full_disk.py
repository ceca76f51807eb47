"""A full disk (a small tmpfs, where the test can mount one; skipped otherwise): ``filter``, ``preprocess`` and
``fetch`` end with one ``error:`` line, leave nothing half-written under a final name and keep earlier outputs."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

MOUNT_SIZE = "4m"


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


@pytest.fixture
def disk(tmp_path):
    where = tmp_path / "disk"
    where.mkdir()
    try:
        done = subprocess.run(_sudo() + ["mount", "-t", "tmpfs", "-o", f"size={MOUNT_SIZE}", "tmpfs", str(where)],
                              capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is None or done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root or passwordless sudo)")
    try:
        yield where
    finally:
        subprocess.run(_sudo() + ["umount", "-l", str(where)], capture_output=True, timeout=20)


def fill(disk: Path) -> None:
    """Use up every free block of the tmpfs."""
    with open(disk / "filler", "wb", buffering=0) as f:
        block = bytes(1 << 16)
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        small = bytes(512)
        try:
            while True:
                f.write(small)
        except OSError:
            pass


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "filler"}


def one_error_line(result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def no_temp_files(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if ".tmp" in p.name]
    assert left == [], left


def test_filter_on_a_full_disk(cli, disk, tmp_path):
    from agecompact.data.demo import generate

    generate(tmp_path / "demo", count=60, seed=1)
    out = disk / "wiki_filtered.csv"
    assert cli("filter", "--db", "wiki", "--root", tmp_path / "demo", "--out", out).exit_code == 0
    before = snapshot(disk)
    fill(disk)
    line = one_error_line(cli("filter", "--db", "wiki", "--root", tmp_path / "demo", "--out", out, "--rules", "aec"))
    assert "No space left" in line
    assert snapshot(disk) == before
    no_temp_files(disk)


def test_preprocess_on_a_full_disk(cli, disk, tmp_path, monkeypatch):
    from agecompact.data.demo import generate

    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))
    generate(tmp_path / "small", count=40, seed=2)
    generate(tmp_path / "big", count=60, seed=3)
    out = disk / "demo.npz"
    r = cli("preprocess", "--db", "wiki", "--root", tmp_path / "small", "--out", out, "-q")
    assert r.exit_code == 0, r.stderr
    before = snapshot(disk)
    fill(disk)
    line = one_error_line(cli("preprocess", "--db", "wiki", "--root", tmp_path / "big", "--out", out, "-q"))
    assert "No space left" in line
    assert {k: v for k, v in snapshot(disk).items() if not k.startswith("demo.npz.partial/")} == before
    no_temp_files(disk)


def test_fetch_on_a_full_disk(cli, disk, tmp_path):
    import tarfile

    from agecompact.data.demo import generate

    generate(tmp_path / "src", count=150, seed=4)
    with tarfile.open(tmp_path / "wiki_crop.tar", "w") as tar:
        tar.add(tmp_path / "src" / "wiki_crop", arcname="wiki_crop")
    (disk / "earlier.txt").write_text("an earlier output\n")
    before = snapshot(disk)
    fill(disk)
    size = (disk / "filler").stat().st_size
    os.truncate(disk / "filler", size - (tmp_path / "wiki_crop.tar").stat().st_size // 2)  # room for half of it
    line = one_error_line(cli("fetch", "wiki", "--url", (tmp_path / "wiki_crop.tar").as_uri(), "--dest", disk, "-q"))
    assert "No space left" in line
    assert not (disk / "wiki_crop.tar").exists() and not (disk / "wiki_crop").exists()
    after = snapshot(disk)
    assert {k: v for k, v in after.items() if not k.startswith("wiki_crop.tar.part")} == before
