"""Shared fixtures: the reference folder (skip when absent), an isolated cache, a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from agecompact.paths import shared_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` (or ``$AGECOMPACT_SHARED``); tests that use it skip with a reason when it is absent."""
    d = shared_dir()
    if d is None:
        pytest.skip("reference material ../shared not found (set AGECOMPACT_SHARED to run this test)")
    return d


@pytest.fixture(scope="session")
def shared_path(shared):
    """``shared_path("weights/ssrnet/ssrnet_wiki.h5")``: a file in ../shared, or skip when it is missing."""

    def get(rel: str) -> Path:
        p = shared / rel
        if not p.exists():
            pytest.skip(f"{rel} not present in {shared}")
        return p

    return get


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own AGECOMPACT_HOME so nothing touches the user's cache."""
    home = tmp_path_factory.mktemp("agecompact_home")
    monkeypatch.setenv("AGECOMPACT_HOME", str(home))
    return home


@pytest.fixture
def cli():
    """``cli("bench", "params", "--json")`` runs the app in-process; returns the Click result."""
    from typer.testing import CliRunner

    from agecompact.cli import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], prog_name="agecompact", input=input)

    return run
