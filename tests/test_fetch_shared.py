"""``fetch`` of the released weights, served from ../shared over a local HTTP server and as a file:// mirror,
then converted so the pretrained name loads offline."""

from __future__ import annotations

import http.server
import json
import threading

import numpy as np
import pytest

from agecompact.pretrained import PRETRAINED

pytestmark = pytest.mark.shared


@pytest.fixture
def weights_server(shared):
    root = shared

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield lambda rel: f"http://127.0.0.1:{httpd.server_address[1]}/{rel}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_weights_over_http_converts_and_loads_offline(cli, weights_server, shared_path, isolated_home):
    import agecompact

    info = PRETRAINED["ssrnet-wiki"]
    h5 = shared_path(info.shared_path)
    result = cli("fetch", "ssrnet-wiki", "--url", weights_server(info.shared_path), "--quiet", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "downloaded" and report["num_params"] == 40_915
    assert (isolated_home / "weights" / "ssrnet-wiki.h5").read_bytes() == h5.read_bytes()

    model = agecompact.load_model("ssrnet-wiki")
    assert model.name == "ssrnet-wiki" and model.meta.dataset == "wiki"
    assert model.meta.source["url"] == info.url and model.meta.source["sha256"] == info.sha256
    assert model.meta.source["mirror"].startswith("http://127.0.0.1")
    import jax

    converted, direct = model.state_dict(), agecompact.load_model(h5).state_dict()
    assert jax.tree.structure(converted) == jax.tree.structure(direct)
    for a, b in zip(jax.tree.leaves(converted), jax.tree.leaves(direct), strict=True):
        np.testing.assert_array_equal(a, b)

    again = cli("fetch", "ssrnet-wiki", "--json")
    assert json.loads(again.stdout)["status"] == "present"


def test_fetch_weights_from_file_mirror(cli, shared_path, isolated_home):
    import agecompact

    info = PRETRAINED["aec"]
    h5 = shared_path(info.shared_path)
    result = cli("fetch", "aec", "--url", h5.resolve().as_uri(), "--quiet")
    assert result.exit_code == 0, result.stderr
    assert agecompact.load_model("aec").num_params == 20_014


def test_fetch_weights_wrong_file_fails_cleanly(cli, weights_server, shared_path, isolated_home):
    other = PRETRAINED["ssrnet-imdb"].shared_path  # a real .h5, but not the one ssrnet-wiki's sha256 names
    shared_path(other)
    result = cli("fetch", "ssrnet-wiki", "--url", weights_server(other), "--quiet")
    assert result.exit_code == 1 and "sha256 mismatch" in result.stderr
    assert not (isolated_home / "weights" / "ssrnet-wiki.h5").exists()
    assert not (isolated_home / "models" / "ssrnet-wiki.msgpack").exists()


def test_fetched_gender_weights_carry_their_calibration(cli, shared_path, isolated_home):
    """The registry's Platt constants land in the converted header; a conversion without them is redone."""
    import agecompact
    from agecompact.pretrained import cached_model_path

    name = "ssrnet-gender-wiki"
    info = PRETRAINED[name]
    assert info.calibration and info.calibration["method"] == "platt"
    url = shared_path(info.shared_path).resolve().as_uri()
    assert cli("fetch", name, "--url", url, "--quiet").exit_code == 0
    model = agecompact.load_model(name)
    assert model.meta.task == "gender" and model.meta.calibration == info.calibration
    model.meta.calibration = {}  # as converted by an agecompact from before calibration existed
    model.save(cached_model_path(name))
    again = cli("fetch", name, "--url", url, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "downloaded"
    assert agecompact.load_model(name).meta.calibration == info.calibration
