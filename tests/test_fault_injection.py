"""kill -9 anywhere: ``preprocess``, ``train`` and ``fetch`` (from a local HTTP server) are SIGKILLed at seeded
random points, then resumed the documented way (the same command; ``train --resume --out RUN``), and must
end byte-identical to an uninterrupted run. After every kill, whatever exists under a final name must be
complete: a half-written file is never visible.

Each kill point is a trigger (the process started, a progress folder or file appeared) plus a seeded random
delay after it; the subprocesses share a JAX compilation cache so the resumed trainings do not recompile.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402

pytestmark = pytest.mark.slow

SEED = 12
KILLS = 3
CLI = [sys.executable, "-m", "agecompact"]


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jax_cache")


def _env(home: Path, data: Path, jax_cache: Path) -> dict[str, str]:
    return {**os.environ, "AGECOMPACT_HOME": str(home), "AGECOMPACT_DATA": str(data), "JAX_PLATFORMS": "cpu",
            "JAX_COMPILATION_CACHE_DIR": str(jax_cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def run(cmd: list, env: dict, cwd: Path, kill: tuple[Callable[[], bool], float] | None = None,
        limit: float = 900.0) -> int | None:
    """Run ``cmd``; with ``kill=(trigger, delay)`` SIGKILL it ``delay`` s after ``trigger()`` first holds.
    Returns the exit code, or None when it was killed."""
    log = open(cwd / "stderr.log", "ab")  # noqa: SIM115 - closed below
    p = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log,
                         start_new_session=True)
    start, armed = time.monotonic(), None
    try:
        while p.poll() is None:
            now = time.monotonic()
            if now - start > limit:
                os.killpg(p.pid, signal.SIGKILL)
                pytest.fail(f"{cmd[3:5]} ran past {limit:.0f}s")
            if kill is not None:
                if armed is None and kill[0]():
                    armed = now
                if armed is not None and now - armed >= kill[1]:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                    return None
            time.sleep(0.005)
        return p.returncode
    finally:
        log.close()


def interrupted(first: list, resume: Callable[[], list], env: dict, cwd: Path,
                triggers: dict[str, Callable[[], bool]], max_delay: dict[str, float],
                check: Callable[[], None], rng: np.random.Generator) -> list[str]:
    """KILLS seeded kills, each followed by ``check()``, then the documented resume to the end."""
    points = []
    cmd = first
    for _ in range(KILLS):
        name = str(rng.choice(sorted(triggers)))
        delay = float(rng.uniform(0, max_delay[name]))
        rc = run(cmd, env, cwd, kill=(triggers[name], delay))
        points.append(f"{name}+{delay:.2f}s" + ("" if rc is None else f" (finished first, rc {rc})"))
        check()
        if rc is not None:
            assert rc == 0, (points, (cwd / "stderr.log").read_text(errors="replace")[-2000:])
            break
        cmd = resume()
    rc = run(resume(), env, cwd)
    assert rc == 0, (points, (cwd / "stderr.log").read_text(errors="replace")[-2000:])
    check()
    return points


def digest_tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- preprocess --------------------------------------------------------------------------------------------------
def test_preprocess_killed_anywhere_resumes_byte_identical(tmp_path, jax_cache):
    from agecompact.data.demo import generate

    generate(tmp_path / "demo", count=300, seed=21)
    runs = {}
    for name in ("ref", "killed"):
        (tmp_path / name).mkdir()
        runs[name] = (tmp_path / name, _env(tmp_path / name / "home", tmp_path / name / "data", jax_cache))
    cmd = CLI + ["preprocess", "--db", "wiki", "--root", tmp_path / "demo", "--out", "data/demo.npz",
                 "--workers", "1", "--quiet"]
    assert run(cmd, runs["ref"][1], runs["ref"][0]) == 0
    ref = (runs["ref"][0] / "data" / "demo.npz").read_bytes()

    work = runs["killed"][0]
    out, partial = work / "data" / "demo.npz", work / "data" / "demo.npz.partial"

    def check():
        if out.exists():  # written only at the end, and only ever complete
            assert out.read_bytes() == ref
        side = out.with_name("demo.npz.json")
        if side.exists():
            assert json.loads(side.read_text())["count"] > 0 and out.exists()

    points = interrupted(cmd, lambda: cmd, runs["killed"][1], work,
                         {"start": lambda: True, "partial": partial.exists},
                         {"start": 4.0, "partial": 1.0}, check, np.random.default_rng(SEED))
    assert out.read_bytes() == ref, points
    assert not partial.exists()
    side = json.loads((work / "data" / "demo.npz.json").read_text())
    ref_side = json.loads((runs["ref"][0] / "data" / "demo.npz.json").read_text())
    for key in ("count", "skipped", "age_stats", "keys", "source_sha256"):
        assert side[key] == ref_side[key], key


# -- train ---------------------------------------------------------------------------------------------------------
VOLATILE_RECORD = {"epoch_seconds", "images_per_second"}


def _records(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE_RECORD}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(path: Path) -> tuple[bytes, dict]:
    import msgpack

    doc = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    header = {k: v for k, v in doc["header"].items() if k != "created"}
    header["source"] = {k: v for k, v in header["source"].items() if k != "run"}  # the folder's own path
    return doc["state"], header


def test_train_killed_anywhere_resumes_byte_identical(tmp_path, jax_cache):
    from agecompact.weights import modelfile

    npz = write_synthetic_npz(tmp_path / "syn.npz", 96, seed=1)
    base = ["train", "--db", npz, "--model", "aec", "--epochs", "3", "--batch-size", "16", "--quiet"]
    env = _env(tmp_path / "home", tmp_path / "data", jax_cache)
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    assert run(CLI + base + ["--out", ref_dir], env, tmp_path) == 0

    def check():
        for name in ("config.json", "split.json", "env.json"):
            if (run_dir / name).exists():
                json.loads((run_dir / name).read_text())
        if (run_dir / "metrics.jsonl").exists():
            text = (run_dir / "metrics.jsonl").read_text()
            assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())
        for name in ("best.msgpack", "last.msgpack"):
            if (run_dir / name).exists():
                modelfile.read(run_dir / name)  # complete: its checksum verifies

    def resume():
        if (run_dir / "config.json").exists():
            return CLI + ["train", "--resume", "--out", run_dir, "--quiet"]
        return CLI + base + ["--out", run_dir, "--exist-ok"]  # killed before anything was recorded

    points = interrupted(CLI + base + ["--out", run_dir], resume, env, tmp_path,
                         {"config": (run_dir / "config.json").exists, "epoch": (run_dir / "metrics.jsonl").exists,
                          "checkpoint": (run_dir / "checkpoints").exists},
                         {"config": 3.0, "epoch": 2.0, "checkpoint": 1.0}, check, np.random.default_rng(SEED + 1))
    assert _records(run_dir) == _records(ref_dir), points
    assert len(_records(run_dir)) == 3
    for name in ("best.msgpack", "last.msgpack"):
        assert _weights(run_dir / name) == _weights(ref_dir / name), (name, points)


# -- fetch ----------------------------------------------------------------------------------------------------------
class _SlowRangeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        data = self.server.payload
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        try:
            for i in range(start, len(data), 16384):  # about 1.5 MB/s: kills land inside the download
                self.wfile.write(data[i:i + 16384])
                time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass


def test_fetch_killed_anywhere_resumes_byte_identical(tmp_path, jax_cache):
    from agecompact.data.demo import generate

    generate(tmp_path / "src", count=120, seed=5)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tmp_path / "src" / "wiki_crop", arcname="wiki_crop")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowRangeHandler)
    httpd.payload, httpd.daemon_threads = buf.getvalue(), True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/wiki_crop.tar"
        env = _env(tmp_path / "home", tmp_path / "data", jax_cache)
        cmd = CLI + ["fetch", "wiki", "--url", url, "--dest", tmp_path / "data", "--quiet"]
        want = digest_tree(tmp_path / "src" / "wiki_crop")
        dest = tmp_path / "data"
        archive, crop = dest / "wiki_crop.tar", dest / "wiki_crop"

        def check():
            if archive.exists():
                assert archive.read_bytes() == httpd.payload
            if crop.exists():
                assert digest_tree(crop) == want

        points = interrupted(cmd, lambda: cmd, env, tmp_path,
                             {"start": lambda: True, "part": (dest / "wiki_crop.tar.part").exists,
                              "extract": (dest / ".extract-wiki_crop.tar.tmp").exists},
                             {"start": 3.0, "part": 1.0, "extract": 0.2}, check, np.random.default_rng(SEED + 2))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert digest_tree(crop) == want, points
    assert sorted(os.listdir(dest)) == ["wiki_crop"], points  # archive, record, .part and staging all gone
