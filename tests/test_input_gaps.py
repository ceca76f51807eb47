"""The last bad-input gaps: an explicit ``train --out`` that exists, metadata with no usable rows, and
archives that ``fetch`` rejected or cannot vouch for (never reused), plus garbage values in the .mat."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from agecompact.data import imdbwiki
from agecompact.fetch import download as dl


def one_error_line(result, code: int, needle: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr


# -- train --out -------------------------------------------------------------------------------------------------
def test_train_out_that_is_a_file_is_refused(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "existing.txt"
    existing.write_text("precious\n")
    for extra in ([], ["--exist-ok"]):
        r = cli("train", "--db", "x.npz", "--out", existing, *extra)
        one_error_line(r, 2, "is not a folder")
    assert existing.read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == ["existing.txt"]  # no existing.txt-2/ either
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    one_error_line(cli("train", "--db", "x.npz", "--out", link), 2, "dangling")


def test_train_out_that_holds_a_run_needs_resume_or_exist_ok(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    one_error_line(cli("train", "--db", "x.npz", "--out", run), 2, "--exist-ok")
    assert sorted(os.listdir(tmp_path)) == ["run"]  # not renumbered into run-2/
    # with --exist-ok the folder is accepted: the next thing checked is the dataset
    one_error_line(cli("train", "--db", "x.npz", "--out", run, "--exist-ok"), 3, "not found")
    # an empty folder is free
    (tmp_path / "empty").mkdir()
    one_error_line(cli("train", "--db", "x.npz", "--out", tmp_path / "empty"), 3, "not found")
    # --resume of a file is a clean input error too
    (tmp_path / "f").write_text("x")
    one_error_line(cli("train", "--resume", "--out", tmp_path / "f"), 3, "not a run folder")


# -- filter: metadata without usable rows --------------------------------------------------------------------------
def _write_wiki(path: Path, n: int, **override) -> Path:
    cell = np.empty((1, n), dtype=object)
    for i in range(n):
        cell[0, i] = f"{i:02d}/{i}_1980-01-01_2010.jpg"
    struct = {"dob": np.full((1, n), 723_000, np.int32), "photo_taken": np.full((1, n), 2010, np.uint16),
              "full_path": cell, "gender": np.ones((1, n)), "face_score": np.full((1, n), 3.0),
              "second_face_score": np.full((1, n), np.nan)}
    struct.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"wiki": struct}, do_compression=True)
    return path


def test_filter_of_a_struct_with_zero_rows_is_an_input_error(cli, tmp_path):
    mat = _write_wiki(tmp_path / "wiki_crop" / "wiki.mat", 0)
    out = tmp_path / "out.csv"
    one_error_line(cli("filter", "--db", "wiki", "--mat", mat, "--out", out), 3, "holds no rows")
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_filter_that_keeps_nothing_writes_nothing(cli, tmp_path):
    mat = _write_wiki(tmp_path / "wiki.mat", 4, face_score=np.full((1, 4), -np.inf))
    out = tmp_path / "out.csv"
    one_error_line(cli("filter", "--db", "wiki", "--mat", mat, "--out", out), 3, "no row of 4 passes")
    assert sorted(os.listdir(tmp_path)) == ["wiki.mat"]


def test_filter_out_onto_the_mat_itself_is_refused(cli, tmp_path):
    mat = _write_wiki(tmp_path / "wiki.mat", 3)
    before = mat.read_bytes()
    one_error_line(cli("filter", "--db", "wiki", "--mat", mat, "--out", mat), 2, "would overwrite")
    assert mat.read_bytes() == before


def test_garbage_values_in_the_mat_are_dropped_not_fatal(cli, tmp_path):
    gender = np.array([[1.0, np.inf, 0.5, -np.inf, 0.0]])
    mat = _write_wiki(tmp_path / "wiki.mat", 5, gender=gender, dob=np.array([[723_000, 0, 2**31 - 1, 5, 723_000]],
                                                                             np.int32))
    r = cli("filter", "--db", "wiki", "--mat", mat, "--out", tmp_path / "o.csv", "--json")
    assert r.exit_code == 0, r.stderr
    kept = imdbwiki.read_filtered_csv(tmp_path / "o.csv")
    assert kept.gender.tolist() == [1, 0] and len(kept.full_path) == 2


@pytest.mark.parametrize("bad", ["a\0b.jpg", "ok/\udcff.jpg", "/etc/passwd", "../../x.jpg", "C:\\x.jpg"])
def test_full_path_entries_that_are_no_file_name(cli, tmp_path, bad):
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = "01/1_1980-01-01_2010.jpg", bad
    mat = tmp_path / "wiki.mat"
    try:
        _write_wiki(mat, 2, full_path=cell)
    except (UnicodeEncodeError, ValueError):
        pytest.skip("scipy cannot write this name")
    r = cli("filter", "--db", "wiki", "--mat", mat, "--out", tmp_path / "o.csv")
    assert r.exit_code in ((0, 3) if "\0" in bad else (3,)) and "Traceback" not in r.stderr, r.stderr
    if r.exit_code == 3:
        one_error_line(r, 3, "full_path entry")
        assert not (tmp_path / "o.csv").exists()


# -- fetch: rejected and unvouched archives are never reused ---------------------------------------------------------
def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def good_tar(tmp_path):
    mat = _write_wiki(tmp_path / "src" / "wiki.mat", 3)
    return _tar_bytes({"wiki_crop/wiki.mat": mat.read_bytes(), "wiki_crop/01/1_1980-01-01_2010.jpg": b"jpeg"})


@pytest.mark.parametrize("bad", ["truncated", "escape", "no_mat", "own_name", "garbage"])
def test_a_rejected_archive_is_deleted_and_the_next_fetch_downloads_afresh(cli, tmp_path, good_tar, bad):
    archives = {
        "truncated": good_tar[:1024],
        "escape": _tar_bytes({"wiki_crop/wiki.mat": b"x", "../evil": b"x"}),
        "no_mat": _tar_bytes({"wiki_crop/readme.txt": b"x"}),
        "own_name": _tar_bytes({"wiki_crop/wiki.mat": b"x", "wiki_crop.tar.source.json": b"{}"}),
        "garbage": b"not a tar" * 300,
    }
    (tmp_path / "bad.tar").write_bytes(archives[bad])
    (tmp_path / "good.tar").write_bytes(good_tar)
    dest = tmp_path / "data"
    r = cli("fetch", "wiki", "--url", (tmp_path / "bad.tar").as_uri(), "--dest", dest, "--quiet")
    one_error_line(r, 3, "archive was deleted")
    assert os.listdir(dest) == []  # nothing left that a later fetch could pick up
    r = cli("fetch", "wiki", "--url", (tmp_path / "good.tar").as_uri(), "--dest", dest, "--quiet", "--json")
    assert r.exit_code == 0, r.stderr
    assert (dest / "wiki_crop" / "wiki.mat").read_bytes() == (tmp_path / "src" / "wiki.mat").read_bytes()
    assert sorted(os.listdir(dest)) == ["wiki_crop"]


def test_a_cached_archive_is_checked_against_its_source(cli, tmp_path, good_tar):
    from agecompact.fetch.fetcher import archive_record

    other = _tar_bytes({"wiki_crop/wiki.mat": _write_wiki(tmp_path / "o" / "wiki.mat", 5).read_bytes()})
    (tmp_path / "a.tar").write_bytes(good_tar)
    (tmp_path / "b.tar").write_bytes(other)
    dest = tmp_path / "data"
    r = cli("fetch", "wiki", "--url", (tmp_path / "a.tar").as_uri(), "--dest", dest, "--keep-archive", "-q")
    assert r.exit_code == 0, r.stderr
    archive = dest / "wiki_crop.tar"
    record = json.loads(archive_record(archive).read_text())
    assert record["url"] == (tmp_path / "a.tar").as_uri() and record["size"] == len(good_tar)

    # another URL: the cached archive is not reused
    import shutil

    shutil.rmtree(dest / "wiki_crop")
    r = cli("fetch", "wiki", "--url", (tmp_path / "b.tar").as_uri(), "--dest", dest, "--keep-archive", "-q")
    assert r.exit_code == 0, r.stderr
    assert archive.read_bytes() == other
    assert imdbwiki.load_mat(dest / "wiki_crop" / "wiki.mat", "wiki").full_path[-1].startswith("04/")

    # same URL but the cached bytes changed (or the record is gone): downloaded again, not trusted
    for tamper in ("bytes", "record"):
        shutil.rmtree(dest / "wiki_crop")
        if tamper == "bytes":
            archive.write_bytes(good_tar)
        else:
            archive_record(archive).unlink()
        r = cli("fetch", "wiki", "--url", (tmp_path / "b.tar").as_uri(), "--dest", dest, "--keep-archive", "-q")
        assert r.exit_code == 0, r.stderr
        assert archive.read_bytes() == other and len(imdbwiki.load_mat(dest / "wiki_crop" / "wiki.mat",
                                                                       "wiki")) == 5


def test_a_partial_download_from_another_url_is_not_resumed(tmp_path):
    src = tmp_path / "right.bin"
    src.write_bytes(b"R" * 5000)
    dest = tmp_path / "out.bin"
    part = dest.with_name("out.bin.part")
    part.write_bytes(b"W" * 2000)  # bytes of unknown origin
    dl.part_marker(dest).write_text("http://elsewhere.invalid/x")
    dl.download(src.as_uri(), dest, quiet=True)
    assert dest.read_bytes() == b"R" * 5000
    assert sorted(os.listdir(tmp_path)) == ["out.bin", "right.bin"]
