"""``agecompact serve``: the HTTP service on 127.0.0.1 through a real HTTP client (urllib), every bad upload,
the CLI process itself, and the upload page in a real headless Chromium (skipped when none is installed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

from agecompact.api import AgeModel, load_model  # noqa: E402
from agecompact.faces.crop import resize_to_input  # noqa: E402
from agecompact.faces.detector import create_detector  # noqa: E402
from agecompact.models.registry import create_model  # noqa: E402
from agecompact.predict import Predictor  # noqa: E402
from agecompact.serve.app import Service, create_app  # noqa: E402
from agecompact.serve.images import image_size  # noqa: E402
from agecompact.serve.server import bind, make_server, url_of  # noqa: E402
from agecompact.weights.modelfile import ModelMeta  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from browser_helpers import Chromium  # noqa: E402

MAX_BYTES = 200_000
MAX_PIXELS = 500_000


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    # AEC, because a freshly initialised SSR-Net divides by zero in eval mode; weights are random.
    path = tmp_path_factory.mktemp("serve_models") / "aec.msgpack"
    AgeModel(create_model("aec", seed=1), ModelMeta.for_arch("aec", name="aec-test")).save(path)
    return path


class Running:
    """A uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app):
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        self.server = make_server(app, access_log=False)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def server(model_file):
    predictor = Predictor(load_model(model_file), detector=create_detector("none"), backend="jax", batch_size=8)
    service = Service(predictor, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    service.warm_up()
    running = Running(create_app(service))
    yield running
    running.stop()


def request(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    """(status, parsed JSON or text, headers) through urllib: a real HTTP client on a real socket."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, body, got = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, body, got = e.code, e.read(), e.headers
    if got.get_content_type() == "application/json":
        return status, json.loads(body), got
    return status, body.decode("utf-8", "replace"), got


def multipart(fields: list[tuple[str, str | None, bytes]]) -> tuple[bytes, dict]:
    """A multipart/form-data body from (name, filename or None, content) parts."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, filename, content in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def png(h: int = 80, w: int = 72, seed: int = 0) -> bytes:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def assert_error(status: int, body, expected: int, words: str) -> None:
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    assert words in body["error"], body["error"]


# -- happy paths -----------------------------------------------------------------------------------

def test_health(server):
    status, body, _ = request(server.url + "health")
    assert status == 200
    assert body["status"] == "ok" and body["model"] == "aec-test" and body["detector"] == "none"
    assert body["max_upload_bytes"] == MAX_BYTES


def test_predict_multipart_matches_the_model(server, model_file):
    data = png()
    body, headers = multipart([("image", "face.png", data)])
    status, reply, _ = request(server.url + "predict", body, headers)
    assert status == 200, reply
    assert (reply["width"], reply["height"], reply["count"]) == (72, 80, 1)
    face = reply["faces"][0]
    assert face["box"] == [0.0, 0.0, 72.0, 80.0] and face["score"] is None and "image" not in reply
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    expected = float(load_model(model_file).predict(resize_to_input(image)[None])[0])
    assert face["age"] == pytest.approx(expected, abs=0.01)


def test_predict_raw_body_and_annotated_image(server):
    jpg = cv2.imencode(".jpg", np.full((60, 90, 3), 128, np.uint8))[1].tobytes()
    status, reply, _ = request(server.url + "predict?annotate=1", jpg, {"Content-Type": "image/jpeg"})
    assert status == 200, reply
    assert (reply["width"], reply["height"]) == (90, 60)
    prefix = "data:image/jpeg;base64,"
    assert reply["image"].startswith(prefix)
    import base64

    drawn = cv2.imdecode(np.frombuffer(base64.b64decode(reply["image"][len(prefix):]), np.uint8), cv2.IMREAD_COLOR)
    assert drawn.shape == (60, 90, 3)


def test_page(server):
    status, text, headers = request(server.url)
    assert status == 200 and headers.get_content_type() == "text/html"
    assert 'id="upload"' in text and "aec-test" in text and "http" not in text.split("<script>")[1]


# -- bad uploads: a 4xx and one line, never a 500 -------------------------------------------------

@pytest.mark.parametrize(("case", "expected", "words"), [
    ("empty raw body", 400, "empty"),
    ("empty file", 400, "empty"),
    ("text file", 415, "not a supported image"),
    ("truncated png", 400, "could not be decoded"),
    ("png header, garbage after", 400, "could not be decoded"),
    ("no file field", 400, "no file"),
    ("two files", 400, "one image"),
    ("wrong content type", 415, "unsupported Content-Type"),
    ("no content type", 415, "unsupported Content-Type"),
    ("too many bytes", 413, "upload too large"),
    ("too many pixels", 413, "image too large"),
    ("zero-size header", 400, "empty image"),
    ("broken multipart", 400, ""),
    ("bad annotate flag", 400, "annotate"),
])
def test_bad_uploads(server, case, expected, words):
    url = server.url + "predict"
    good = png()
    raw = {"Content-Type": "image/png"}
    if case == "empty raw body":
        args = (b"", raw)
    elif case == "empty file":
        args = multipart([("image", "a.png", b"")])
    elif case == "text file":
        args = multipart([("image", "notes.txt", b"hello, not an image")])
    elif case == "truncated png":
        args = (good[:40], raw)
    elif case == "png header, garbage after":
        args = (good[:33] + os.urandom(200), raw)
    elif case == "no file field":
        args = multipart([("caption", None, b"just text")])
    elif case == "two files":
        args = multipart([("image", "a.png", good), ("image", "b.png", good)])
    elif case == "wrong content type":
        args = (b'{"image": "x"}', {"Content-Type": "application/json"})
    elif case == "no content type":
        args = (good, {"Content-Type": ""})
    elif case == "too many bytes":
        args = multipart([("image", "big.png", good + b"\0" * MAX_BYTES)])
    elif case == "too many pixels":  # a 1000x1000 PNG is small on disk but over the pixel limit
        args = (cv2.imencode(".png", np.zeros((1000, 1000, 3), np.uint8))[1].tobytes(), raw)
    elif case == "zero-size header":
        args = (good[:16] + b"\0" * 8 + good[24:], raw)
    elif case == "broken multipart":
        args = (b"--nope\r\nthis is not multipart", {"Content-Type": "multipart/form-data; boundary=xyz"})
    else:
        url += "?annotate=maybe"
        args = (good, raw)
    status, body, _ = request(url, *args)
    assert_error(status, body, expected, words)


def test_chunked_upload_over_the_limit_is_413(server):
    # no Content-Length: the limit is enforced while reading the body. The server may answer and close
    # before the client has sent everything, so send on a raw socket and read the answer either way.
    import select
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(server.url)
    with socket.create_connection((u.hostname, u.port), timeout=60) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        try:
            for _ in range(MAX_BYTES // 10_000 + 2):
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer has come: stop sending into a socket the server will close
                sock.sendall(b"%x\r\n" % 10_000 + b"\0" * 10_000 + b"\r\n")
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: its answer is already waiting
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"chunked" in head.lower():
        size, _, rest = body.partition(b"\r\n")
        body = rest[:int(size, 16)]
    assert_error(status, json.loads(body), 413, "upload too large")


def test_wrong_method_and_path(server):
    status, body, _ = request(server.url + "predict")
    assert_error(status, body, 405, "")
    status, body, _ = request(server.url + "nothing-here")
    assert_error(status, body, 404, "")


def test_service_survives_bad_uploads(server):
    for _ in range(3):
        request(server.url + "predict", b"junk", {"Content-Type": "image/png"})
    body, headers = multipart([("image", "face.png", png(seed=3))])
    status, reply, _ = request(server.url + "predict", body, headers)
    assert status == 200 and reply["count"] == 1


def test_image_size_headers():
    img = np.zeros((37, 53, 3), np.uint8)
    for ext, fmt in ((".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp"), (".webp", "webp")):
        data = cv2.imencode(ext, img)[1].tobytes()
        assert image_size(data) == (fmt, 53, 37), ext
    lossless = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    assert image_size(lossless) == ("webp", 53, 37)
    assert image_size(b"GIF89a....") is None and image_size(b"") is None


# -- real photos with YuNet and released weights (../shared) ---------------------------------------

@pytest.mark.shared
def test_real_photo_with_yunet(shared_path):
    weights = shared_path("weights/ssrnet/ssrnet_wiki.h5")
    yunet = shared_path("detectors/yunet/face_detection_yunet_2026may.onnx")
    photo = shared_path("images/TGOP_tvbs.png")
    predictor = Predictor(load_model(weights), detector=create_detector("yunet", model_path=yunet), backend="jax")
    running = Running(create_app(Service(predictor)))
    try:
        status, reply, _ = request(running.url + "predict", photo.read_bytes(), {"Content-Type": "image/png"})
    finally:
        running.stop()
    assert status == 200, reply
    assert reply["count"] == 4 and reply["detector"] == "yunet"
    assert all(0.8 <= f["score"] <= 1 and 5 < f["age"] < 90 for f in reply["faces"])


# -- the CLI process -------------------------------------------------------------------------------

def _start_cli(*args: str, env_home: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "AGECOMPACT_HOME": str(env_home), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-m", "agecompact", "serve", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("serving "):
            return proc, line.split(" on ")[1].split()[0]
    proc.kill()
    raise AssertionError("serve did not start: " + "".join(lines))


def test_cli_serves_and_stops_on_ctrl_c(model_file, isolated_home):
    proc, url = _start_cli("--model", str(model_file), "--port", "0", "--detector", "none", "--no-access-log",
                           env_home=isolated_home)
    try:
        assert url.startswith("http://127.0.0.1:")
        status, body, _ = request(url + "health")
        assert status == 200 and body["model"] == "aec-test"
        data, headers = multipart([("image", "a.png", png())])
        status, reply, _ = request(url + "predict", data, headers)
        assert status == 200 and reply["count"] == 1
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.strip().endswith("stopped")


def test_cli_bad_options_are_one_line(cli, model_file, tmp_path):
    taken = bind("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        r = cli("serve", "--model", model_file, "--port", port, "--detector", "none")
    finally:
        taken.close()
    assert r.exit_code == 1 and r.stderr.startswith("error: cannot listen on 127.0.0.1:") and "\n" == r.stderr[-1]
    assert len(r.stderr.splitlines()) == 1
    r = cli("serve", "--model", tmp_path / "missing.msgpack", "--port", 0)
    assert r.exit_code == 3 and r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1
    r = cli("serve", "--detector", "mtcnn")  # in-process runs show Click's panel; main() makes it one line
    assert r.exit_code == 2 and "mtcnn" in r.stderr


# -- the page in a real browser --------------------------------------------------------------------

def test_page_in_headless_chromium(server, tmp_path):
    browser = Chromium.find()
    if browser is None:
        pytest.skip("no Chromium and chromedriver (apt-get install chromium chromium-driver)")
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(120, 100, seed=5))
    with browser.session(tmp_path / "profile") as s:
        s.get(server.url)
        assert s.title() == "agecompact"
        s.find("#file").send_keys(str(photo))
        s.find("#submit").click()
        state = s.wait_for("document.body.dataset.state !== 'busy' && document.body.dataset.state !== 'ready'"
                           " ? document.body.dataset.state : null")
        assert state == "done", s.find("#status").text()
        assert "1 face found in 100×120 pixels" in s.find("#status").text()
        size = s.script("const i = document.getElementById('result'); "
                        "return i.complete && !i.hidden ? [i.naturalWidth, i.naturalHeight] : null")
        assert size == [100, 120]
        rows = s.script("return [...document.querySelectorAll('#faces tbody tr')].map(r => r.innerText)")
        assert len(rows) == 1 and rows[0].startswith("1")
        s.screenshot(tmp_path / "page.png")

        # a bad upload shows the server's one-line reason on the page
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"not really a png")
        s.find("#file").send_keys(str(bad))
        s.find("#submit").click()
        state = s.wait_for("document.body.dataset.state === 'error' ? 'error' : null")
        assert s.find("#status").text() == "Error: not a supported image: send a JPEG, PNG, BMP or WebP file"
    assert cv2.imread(str(tmp_path / "page.png")) is not None
