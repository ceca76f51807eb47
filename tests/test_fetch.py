"""``fetch``: downloads against a real HTTP server on 127.0.0.1 (resume, checksum, 404), safe tar extraction,
the registry, instruction-only entries and the demo generator through the CLI."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from agecompact.fetch import download as dl

# -- a local HTTP server -------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "agecompact-test"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        srv = self.server
        path = self.path.split("?")[0]
        range_header = self.headers.get("Range")
        srv.requests.append((path, range_header))
        data = srv.files.get(path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if range_header and srv.ranges and range_header.startswith("bytes="):
            start = int(range_header[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        cut = srv.cut_after.pop(path, None)
        if cut is not None and cut < len(body):
            self.wfile.write(body[:cut])  # then drop the connection mid-body
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.cut_after, httpd.ranges = {}, [], {}, True
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = lambda p: f"http://127.0.0.1:{httpd.server_address[1]}{p}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def payload(n: int, seed: int = 0) -> bytes:
    import numpy as np

    return np.random.default_rng(seed).bytes(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- download --------------------------------------------------------------------------------------------------
def test_download_verifies_and_places_atomically(server, tmp_path):
    data = payload(3_000_000)
    server.files["/w.bin"] = data
    out = dl.download(server.url("/w.bin"), tmp_path / "w.bin", sha256=sha(data), size=len(data), quiet=True)
    assert out.read_bytes() == data
    assert not (tmp_path / "w.bin.part").exists()


def test_download_resumes_after_cut_connection(server, tmp_path):
    data = payload(2_500_000, 1)
    server.files["/big.bin"] = data
    server.cut_after["/big.bin"] = 1_000_000
    out = dl.download(server.url("/big.bin"), tmp_path / "big.bin", sha256=sha(data), quiet=True)
    assert out.read_bytes() == data
    assert server.requests == [("/big.bin", None), ("/big.bin", "bytes=1000000-")]


def test_download_resumes_on_the_next_call(server, tmp_path):
    data = payload(1_500_000, 2)
    server.files["/f.bin"] = data
    server.cut_after["/f.bin"] = 600_000
    with pytest.raises(dl.DownloadError, match="run the command again to resume"):
        dl.download(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha(data), retries=0, quiet=True)
    part = tmp_path / "f.bin.part"
    assert part.stat().st_size == 600_000 and not (tmp_path / "f.bin").exists()
    dl.download(server.url("/f.bin"), tmp_path / "f.bin", sha256=sha(data), retries=0, quiet=True)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.requests[-1] == ("/f.bin", "bytes=600000-")


def test_download_restarts_when_server_ignores_range(server, tmp_path):
    data = payload(800_000, 3)
    server.files["/n.bin"] = data
    server.ranges = False
    (tmp_path / "n.bin.part").write_bytes(b"stale bytes from elsewhere")
    dl.download(server.url("/n.bin"), tmp_path / "n.bin", sha256=sha(data), quiet=True)
    assert (tmp_path / "n.bin").read_bytes() == data


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    server.files["/bad.bin"] = payload(50_000, 4)
    with pytest.raises(dl.DownloadError, match="sha256 mismatch"):
        dl.download(server.url("/bad.bin"), tmp_path / "bad.bin", sha256="0" * 64, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_keeps_nothing(server, tmp_path):
    server.files["/short.bin"] = payload(1000, 5)
    with pytest.raises(dl.DownloadError, match="expected 2000"):
        dl.download(server.url("/short.bin"), tmp_path / "short.bin", size=2000, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_404_is_one_clear_error(server, tmp_path):
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.download(server.url("/missing.bin"), tmp_path / "m.bin", quiet=True)
    assert list(tmp_path.iterdir()) == []
    assert len(server.requests) == 1  # a 404 is not retried


def test_file_url_mirror(tmp_path):
    data = payload(10_000, 6)
    src = tmp_path / "mirror" / "x.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    out = dl.download(src.resolve().as_uri(), tmp_path / "x.bin", sha256=sha(data), quiet=True)
    assert out.read_bytes() == data


# -- tar extraction ------------------------------------------------------------------------------------------------
def make_tar(path: Path, members: list[tuple[str, str, bytes | str]]) -> Path:
    """members: (kind, name, content or link target) with kind file | symlink | hardlink | dir."""
    with tarfile.open(path, "w") as tar:
        for kind, name, content in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = content
                tar.addfile(info)
    return path


@pytest.mark.parametrize("members, reason", [
    ([("file", "/tmp/agecompact_evil", b"x")], "absolute path"),
    ([("file", "data/../../evil", b"x")], "'..'"),
    ([("file", "../evil", b"x")], "'..'"),
    ([("symlink", "wiki_crop/link", "/etc/passwd")], "absolute"),
    ([("dir", "wiki_crop", b""), ("symlink", "wiki_crop/up", "../../outside")], "outside the folder"),
    ([("hardlink", "wiki_crop/h", "../outside")], "outside the folder"),
])
def test_malicious_tar_is_refused(tmp_path, members, reason):
    archive = make_tar(tmp_path / "evil.tar", [("file", "wiki_crop/ok.txt", b"fine"), *members])
    dest = tmp_path / "dest"
    with pytest.raises(dl.UnsafeArchiveError, match=reason):
        dl.extract_tar(archive, dest, quiet=True)
    assert list(dest.iterdir()) == []  # nothing extracted, no staging folder left behind
    assert not Path("/tmp/agecompact_evil").exists()


def test_safe_tar_with_internal_link_extracts(tmp_path):
    archive = make_tar(tmp_path / "ok.tar", [("dir", "wiki_crop", b""), ("file", "wiki_crop/a.txt", b"hello"),
                                             ("symlink", "wiki_crop/b.txt", "a.txt")])
    placed = dl.extract_tar(archive, tmp_path / "dest", quiet=True)
    assert placed == [tmp_path / "dest" / "wiki_crop"]
    assert (tmp_path / "dest" / "wiki_crop" / "b.txt").read_bytes() == b"hello"
    with pytest.raises(dl.InputError, match="already exists"):
        dl.extract_tar(archive, tmp_path / "dest", quiet=True)
    dl.extract_tar(archive, tmp_path / "dest", quiet=True, force=True)


def test_corrupt_tar_is_input_error(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(dl.InputError):
        dl.extract_tar(bad, tmp_path / "d", quiet=True)


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_cut_between_members_is_refused(tmp_path, mode):
    """A cut at a member boundary reads as a shorter valid archive; the missing end marker gives it away."""
    import gzip

    whole = make_tar(tmp_path / "whole.tar", [("file", f"wiki_crop/{i}.jpg", bytes(700)) for i in range(6)])
    with tarfile.open(whole) as tar:
        cut = whole.read_bytes()[:tar.getmembers()[4].offset]
    archive = tmp_path / ("cut.tar" if mode == "w" else "cut.tar.gz")
    archive.write_bytes(cut if mode == "w" else gzip.compress(cut))
    with pytest.raises(dl.CorruptArchiveError, match="truncated"):
        dl.extract_tar(archive, tmp_path / "dest", quiet=True)
    assert list((tmp_path / "dest").iterdir()) == []
    assert len(dl.extract_tar(whole, tmp_path / "dest", quiet=True)) == 1  # the intact archive extracts


def test_fetch_of_a_cut_archive_fails_and_removes_it(cli, tmp_path):
    from agecompact.data.demo import generate

    generate(tmp_path / "src", count=40, seed=3)
    with tarfile.open(tmp_path / "whole.tar", "w") as tar:
        tar.add(tmp_path / "src" / "wiki_crop", arcname="wiki_crop")
    with tarfile.open(tmp_path / "whole.tar") as tar:
        cut = tar.getmembers()[-3].offset
    (tmp_path / "cut.tar").write_bytes((tmp_path / "whole.tar").read_bytes()[:cut])
    dest = tmp_path / "data"
    result = cli("fetch", "wiki", "--url", (tmp_path / "cut.tar").as_uri(), "--dest", dest, "--quiet")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "truncated" in result.stderr and "archive was deleted" in result.stderr
    assert os.listdir(dest) == []  # neither the rejected archive nor its record stays to be reused
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar at all" * 50)
    result = cli("fetch", "wiki", "--url", garbage.as_uri(), "--dest", tmp_path / "g", "--quiet")
    assert result.exit_code == 3 and result.stderr.count("\n") == 1, result.stderr


# -- the CLI --------------------------------------------------------------------------------------------------------
def test_fetch_list_table_and_json(cli):
    result = cli("fetch", "--list")
    assert result.exit_code == 0
    for name in ("imdb", "wiki", "demo", "yunet", "ssrnet-wiki", "aec", "megaage", "utkface", "aaf"):
        assert name in result.stdout
    rows = json.loads(cli("fetch", "--list", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["yunet"]["sha256"].startswith("8f2383e4") and by_name["yunet"]["size"] == 232_589
    assert by_name["wiki"]["url"].endswith("/static/wiki_crop.tar")
    assert by_name["ssrnet-wiki"]["kind"] == "weights"


@pytest.mark.parametrize("name, words", [
    ("megaage", ["mmlab.ie.cuhk.edu.hk", "list/"]),
    ("utkface", ["susanqq.github.io/UTKFace", "UTKFace"]),
    ("aaf", ["All-Age-Faces-Dataset", "aglined faces"]),
])
def test_instruction_only_entries(cli, name, words):
    result = cli("fetch", name)
    assert result.exit_code == 0
    for w in words:
        assert w in result.stdout


def test_fetch_usage_errors(cli, server):
    result = cli("fetch", "nosuchthing")
    assert result.exit_code == 2 and "unknown fetch target" in result.stderr
    result = cli("fetch", "yunet", "aec", "--url", server.url("/x"))
    assert result.exit_code == 2 and "exactly one NAME" in result.stderr
    result = cli("fetch", "megaage", "--url", server.url("/x"))
    assert result.exit_code == 2


def test_fetch_yunet_wrong_file_is_not_kept(cli, server, isolated_home):
    server.files["/yunet.onnx"] = payload(232_589, 7)
    result = cli("fetch", "yunet", "--url", server.url("/yunet.onnx"), "--quiet")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "sha256 mismatch" in result.stderr
    assert result.stderr.count("\n") == 1
    from agecompact.faces.detector import default_yunet_path

    assert not default_yunet_path().exists()
    assert not default_yunet_path().with_name(default_yunet_path().name + ".part").exists()


def test_fetch_sha256_accepts_a_mirrors_other_build_on_purpose(cli, server, isolated_home):
    build = payload(5_000, 8)  # another size and digest than the published YuNet file
    server.files["/yunet.onnx"] = build
    from agecompact.faces.detector import default_yunet_path

    result = cli("fetch", "yunet", "--sha256", sha(build))  # no --url: the published file stays the only one
    assert result.exit_code == 2 and "--sha256 needs --url" in result.stderr
    result = cli("fetch", "yunet", "--url", server.url("/yunet.onnx"), "--sha256", "abc")
    assert result.exit_code == 2 and "64 hexadecimal" in result.stderr
    result = cli("fetch", "yunet", "--url", server.url("/yunet.onnx"), "--sha256", "0" * 64, "--quiet")
    assert result.exit_code == 1 and "sha256 mismatch" in result.stderr and not default_yunet_path().exists()
    result = cli("fetch", "yunet", "--url", server.url("/yunet.onnx"), "--sha256", sha(build).upper(),
                 "--quiet", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accepted_sha256"] == sha(build) and report["published_sha256"].startswith("8f2383e4")
    assert default_yunet_path().read_bytes() == build


def test_fetch_dataset_tar_over_http(cli, server, tmp_path):
    from agecompact.data.demo import generate

    generate(tmp_path / "src", count=40, seed=3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tmp_path / "src" / "wiki_crop", arcname="wiki_crop")
    server.files["/static/wiki_crop.tar"] = buf.getvalue()
    server.cut_after["/static/wiki_crop.tar"] = len(buf.getvalue()) // 3
    dest = tmp_path / "data"
    result = cli("fetch", "wiki", "--url", server.url("/static/wiki_crop.tar"), "--dest", dest, "--quiet", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "downloaded"
    assert (dest / "wiki_crop" / "wiki.mat").is_file()
    assert not (dest / "wiki_crop.tar").exists()  # archive removed after a verified extraction
    assert sorted(os.listdir(dest)) == ["wiki_crop"]
    assert any(r == "bytes=" + str(len(buf.getvalue()) // 3) + "-" for _, r in server.requests)
    again = cli("fetch", "wiki", "--dest", dest, "--json")
    assert json.loads(again.stdout)["status"] == "present"


def test_fetch_demo_cli(cli, tmp_path):
    dest = tmp_path / "demo"
    result = cli("fetch", "demo", "--dest", dest, "--count", "40", "--seed", "5", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "generated 40 images" in result.stdout
    assert (dest / "wiki_crop" / "wiki.mat").is_file()
    assert "already present" in cli("fetch", "demo", "--dest", dest, "--count", "40", "--seed", "5").stdout
    other = cli("fetch", "demo", "--dest", dest, "--count", "40", "--seed", "6")
    assert other.exit_code == 2 and "--force" in other.stderr
    assert cli("fetch", "demo", "--dest", dest, "--count", "40", "--seed", "6", "--force", "-q").exit_code == 0
    assert cli("fetch", "demo", "--dest", dest, "--count", "5").exit_code == 2
