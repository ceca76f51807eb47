"""A tiny W3C WebDriver client (urllib only) for Debian's headless Chromium and chromedriver.

No Selenium: chromedriver speaks plain HTTP + JSON, and a dozen calls are all the page test needs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--no-first-run", "--no-default-browser-check", "--window-size=1000,900"]


def _call(url: str, method: str = "GET", payload: dict | None = None, timeout: float = 60):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        body = json.loads(e.read() or b"{}")
        raise RuntimeError(f"webdriver {method} {url}: {body.get('value', body)}") from None
    return body.get("value")


class Element:
    def __init__(self, session: Session, element_id: str):
        self.url = f"{session.url}/element/{element_id}"

    def send_keys(self, text: str) -> None:
        _call(self.url + "/value", "POST", {"text": text})

    def click(self) -> None:
        _call(self.url + "/click", "POST", {})

    def text(self) -> str:
        return _call(self.url + "/text")


class Session:
    def __init__(self, url: str):
        self.url = url

    def get(self, page: str) -> None:
        _call(self.url + "/url", "POST", {"url": page})

    def title(self) -> str:
        return _call(self.url + "/title")

    def find(self, css: str) -> Element:
        found = _call(self.url + "/element", "POST", {"using": "css selector", "value": css})
        return Element(self, found[ELEMENT])

    def script(self, body: str, *args):
        return _call(self.url + "/execute/sync", "POST", {"script": body, "args": list(args)})

    def wait_for(self, expression: str, timeout: float = 60):
        """Poll a JavaScript expression until it is not null; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.script(f"return {expression};")
            if value is not None:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {expression}")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(_call(self.url + "/screenshot")))


class Chromium:
    def __init__(self, binary: str, driver: str):
        self.binary = binary
        self.driver = driver

    @classmethod
    def find(cls) -> Chromium | None:
        """Debian's chromium and chromedriver, or None when either is missing."""
        binary = next((p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if os.access(p, os.X_OK)),
                      None) or shutil.which("chromium")
        driver = shutil.which("chromedriver")
        return cls(binary, driver) if binary and driver else None

    @contextlib.contextmanager
    def session(self, profile: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([self.driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        session_id = None
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if _call(base + "/status", timeout=5).get("ready"):
                        break
                except (OSError, RuntimeError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("chromedriver did not start")
                time.sleep(0.1)
            options = {"binary": self.binary, "args": [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]}
            caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
            session_id = _call(base + "/session", "POST", caps, timeout=120)["sessionId"]
            yield Session(f"{base}/session/{session_id}")
        finally:
            if session_id is not None:
                with contextlib.suppress(OSError, RuntimeError):
                    _call(f"{base}/session/{session_id}", "DELETE", timeout=30)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
