"""The command line: help everywhere, fast start-up without jax, one-line errors."""

import json
import subprocess
import sys

import pytest

import agecompact

COMMANDS = ["fetch", "filter", "preprocess", "train", "eval", "bench", "predict", "export", "info"]


def test_root_help_lists_every_command(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_no_arguments_shows_help(cli):
    result = cli()
    assert result.exit_code == 2
    assert "Usage" in result.stdout + result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_real_help(cli, command):
    """The help names the command, starts with its docstring and lists every option (or subcommand) it has."""
    import typer.main

    from agecompact.cli import app

    result = cli(command, "--help")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert f"Usage: agecompact {command}" in text
    click_command = typer.main.get_command(app).commands[command]
    first_words = " ".join((click_command.help or "").split()[:4])
    assert first_words and first_words in text, first_words
    subcommands = getattr(click_command, "commands", {})
    for name in subcommands:
        assert name in text
    options = [o for p in click_command.params for o in p.opts if o.startswith("--")]
    assert options or subcommands
    for option in options:
        assert option in text, option


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"agecompact {agecompact.__version__}"


def test_help_does_not_import_jax():
    code = ("import sys; from agecompact.cli import app; "
            "sys.argv=['agecompact','--help']\n"
            "try:\n    app(prog_name='agecompact')\nexcept SystemExit:\n    pass\n"
            "heavy=[m for m in ('jax','flax','optax','orbax','cv2','scipy','h5py') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "agecompact", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("agecompact ")


def test_bad_option_is_a_usage_error(cli):
    result = cli("bench", "params", "--no-such-option")
    assert result.exit_code == 2


def test_info_on_a_corrupt_model_is_one_line(cli, tmp_path):
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"\x93not a model at all")
    result = cli("info", str(bad))
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout


def test_info_on_a_missing_model(cli, tmp_path):
    result = cli("info", str(tmp_path / "missing.msgpack"))
    assert result.exit_code == 3
    assert result.stderr == f"error: model not found: {tmp_path / 'missing.msgpack'}\n"


def test_info_on_a_model_file(cli, tmp_path):
    from agecompact.api import AgeModel
    from agecompact.models import create_model
    from agecompact.weights.modelfile import ModelMeta

    path = AgeModel(create_model("aec"), ModelMeta.for_arch("aec", name="tiny")).save(tmp_path / "a.msgpack")
    result = cli("info", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["arch"] == "aec" and data["name"] == "tiny" and data["param_counts"]["total"] == 20_014


def test_info_without_a_model_reports_versions(cli):
    result = cli("info", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["versions"]["agecompact"] == agecompact.__version__
    assert data["devices"]["device_count"] >= 1


def test_bench_params_json(cli):
    result = cli("bench", "params", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {r["model"]: r for r in json.loads(result.stdout)["models"]}
    assert rows["ssrnet"]["total"] == 40_915 and rows["aec"]["total"] == 20_014
    assert rows["ssrnet"]["trainable"] == 40_531 and rows["ssrnet"]["non_trainable"] == 384
    # our file is the raw float32 bytes plus a small header: SSR-Net ~164 KB (the Keras file is 319 KB)
    assert 163_660 < rows["ssrnet"]["file_bytes"] < 170_000
    # XLA's count for SSR-Net's forward pass: ~35 MFLOPs, dominated by the 32-channel 3x3 convolutions
    assert 2.5e7 < rows["ssrnet"]["flops"] < 5e7
    assert rows["c3ae_full"]["flops"] > 2.5 * rows["c3ae"]["flops"]


def test_bench_params_table(cli):
    result = cli("bench", "params")
    assert result.exit_code == 0
    assert "40,915" in result.stdout and "20,014" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["bench", "params", "--no-such-option"], "error: No such option: --no-such-option (see `agecompact bench params --help`)"),
    (["train", "--db", "x.npz", "--epochs", "0"], "error: Invalid value for '--epochs'"),
    (["predict"], "error: nothing to do: give INPUT files or folders, or --camera N"),
])
def test_console_script_usage_errors_are_one_line(args, message):
    out = subprocess.run([sys.executable, "-m", "agecompact", *args], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1, out.stderr


def test_console_script_without_arguments_shows_help():
    out = subprocess.run([sys.executable, "-m", "agecompact"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Usage: agecompact" in out.stdout and "train" in out.stdout and out.stderr == ""


def test_command_errors_carry_no_blank_lines(tmp_path):
    out = subprocess.run([sys.executable, "-m", "agecompact", "eval", "--model", str(tmp_path / "no.msgpack"),
                          "--db", "wiki"], capture_output=True, text=True)
    assert out.returncode == 3
    assert out.stderr == f"error: model not found: {tmp_path / 'no.msgpack'}\n"
