"""Command-line conventions shared by every command: a repeated single-valued option is an error, and help
reads well at 80 columns off a terminal (paragraphs re-flowed, choices and names instead of <str>/<bool>)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

from agecompact.cli import app
from agecompact.cli._command import reflow

COMMANDS = [["fetch"], ["filter"], ["preprocess"], ["train"], ["eval"], ["bench", "params"], ["bench", "table"],
            ["bench", "speed"], ["predict"], ["serve"], ["export"], ["info"], []]


def test_repeated_option_is_one_usage_error_line():
    out = subprocess.run([sys.executable, "-m", "agecompact", "predict", "x.png", "--model", "a", "--model", "b"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr == ("error: option --model given 2 times; give it once "
                          "(see `agecompact predict --help`)\n"), out.stderr


@pytest.mark.parametrize("args", [
    ["bench", "params", "--json", "--json"],
    ["serve", "--port", "1", "--port", "2"],
    ["fetch", "demo", "--url", "file:///a", "--url", "file:///b"],
    ["predict", "x.png", "--strict", "--no-strict"],
    ["predict", "x.png", "-q", "--quiet"],
    ["train", "--epochs", "1", "--epochs", "2"],
])
def test_repeated_single_valued_options_are_refused(cli, args):
    r = cli(*args)
    assert r.exit_code == 2
    assert "given 2 times; give it once" in r.stderr


def test_multi_valued_options_may_repeat():
    group = typer.main.get_command(app)
    speed = group.commands["bench"].commands["speed"]
    ctx = speed.make_context("speed", ["--dtype", "float32", "--dtype", "bfloat16", "--model", "aec",
                                       "--model", "ssrnet"])
    assert ctx.params["dtypes"] == ["float32", "bfloat16"] and ctx.params["models"] == ["aec", "ssrnet"]


def _help(args: list[str], columns: int = 80) -> str:
    r = CliRunner().invoke(app, [*args, "--help"], prog_name="agecompact", env={"COLUMNS": str(columns)})
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "root")
def test_help_at_80_columns(args):
    text = _help(args)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    assert "<str>" not in text and "<bool>" not in text and "<list[" not in text
    # the description: every line of a paragraph but its last is filled (no hard breaks mid-sentence)
    description = text.split("╭")[0].splitlines()
    for line, nxt in zip(description, description[1:], strict=False):
        body, follows = line.strip(), nxt.strip()
        if body and follows and not line.startswith("     ") and not nxt.startswith("     ") \
                and not follows.startswith(("* ", "- ")) and not body.startswith("Usage:"):
            assert len(line.rstrip()) >= 80 - 2 - len(follows.split()[0]) - 1, (line, nxt)


def test_help_shows_choices():
    text = _help(["predict"], columns=120)
    assert "auto|yunet|haar|none" in text and "auto|jax|onnx" in text and "BGR|RGB" in text
    assert "auto|yunet|haar|none" in _help(["serve"], columns=120)
    assert "uint8|float32" in _help(["export"], columns=120)


def test_reflow_keeps_paragraphs_examples_and_bullets():
    text = """First line of a paragraph
    that goes on here.

    Example:

        agecompact fetch demo
        agecompact fetch wiki

    * one bullet
      continued
    * another
    """
    assert reflow(text) == ("First line of a paragraph that goes on here.\n\nExample:\n\n"
                            "    agecompact fetch demo\n    agecompact fetch wiki\n\n"
                            "* one bullet continued\n* another")


@pytest.mark.parametrize("command", [["predict", "x.jpg"], ["eval", "--model", "m"], ["bench", "table"],
                                     ["serve"]])
def test_backend_choices_are_the_same_everywhere(command):
    """One normaliser for --backend: a bad name is the same one-line usage error in every command."""
    out = subprocess.run([sys.executable, "-m", "agecompact", *command, "--backend", "bogus"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr == ("error: Invalid value for '--backend': 'bogus' is not one of auto, jax, onnx (or an "
                          f"alias: onnxruntime, ort) (see `agecompact {command[0]}"
                          f"{' table' if command[0] == 'bench' else ''} --help`)\n"), out.stderr


def test_backend_aliases_are_normalised():
    from agecompact.cli._choices import backend_option

    assert backend_option("ORT") == backend_option("onnxruntime") == "onnx"
    assert backend_option("jax") == "jax" and backend_option(None) is None
