"""Atomic output: all or nothing, through symlinks, never over something that is not a regular file."""

from __future__ import annotations

import os

import pytest

from agecompact.errors import UsageError
from agecompact.fileio import atomic_path, atomic_write_text


def test_replaces_in_one_step_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a" / "out.txt"
    atomic_write_text(target, "one")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "one" and os.listdir(target.parent) == ["out.txt"]


def test_writes_through_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "real" / "target.txt")
    atomic_write_text(link, "hello")
    assert link.is_symlink() and (tmp_path / "real" / "target.txt").read_text() == "hello"


def test_refuses_to_replace_a_folder_or_a_fifo(tmp_path):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for target in (tmp_path / "folder", tmp_path / "fifo"):
        with pytest.raises(UsageError, match="not a regular file"):
            atomic_write_text(target, "x")
    assert (tmp_path / "folder").is_dir() and sorted(os.listdir(tmp_path)) == ["fifo", "folder"]
