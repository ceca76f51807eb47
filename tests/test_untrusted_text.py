"""Text the program did not write (file and folder names, model-file headers, .mat cells, option values)
never reaches Rich as markup: every command ends in its normal output or one ``error:`` line, control
characters and undecodable bytes are shown as escapes, and ``--json`` keeps the values exactly."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from agecompact.console import (
    DescriptionColumn,
    SafeConsole,
    markup,
    plain,
    print_error,
    visible,
)

# Markup that would crash ("[/]") or restyle ("[bold red]", "[link=...]"), emoji codes, and the controls that
# break lines, move the cursor or recolour a terminal. "/" cannot be in a file name, so "[/]" comes from a
# folder "a[" holding "]b".
HOSTILE = "[/]x[bold red]y[link=file:z]w:smile:\n\x1b[31mq\r\x07\u202e"
FILE_NAMES = ["[bold]x.jpg", "]b.jpg", "new\nline.jpg", "esc\x1b[31m.jpg", "cr\rx.jpg", "[link=file:q]l.jpg",
              "bell\x07[red].jpg", "tab\tx.jpg"]
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f\u202e]")  # anything but the newlines that end lines


def assert_clean(result, code: int = 0) -> None:
    """Exit code as expected, no traceback, and no control character from the inputs on either stream."""
    text = result.stdout + result.stderr
    assert result.exit_code == code, (result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in text and "MarkupError" not in text, text[-3000:]
    assert not RAW_CONTROL.search(text), repr(text[-3000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def one_error_line(result, code: int) -> str:
    assert_clean(result, code)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), repr(result.stderr)
    return result.stderr


def _image(path: Path) -> None:
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (80, 72, 3), dtype=np.uint8))
    assert ok
    with open(path, "wb") as f:
        f.write(buf.tobytes())


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory) -> Path:
    """An AEC model file whose every free-text header field holds markup and control characters."""
    from agecompact.api import AgeModel
    from agecompact.models import create_model
    from agecompact.weights.modelfile import ModelMeta

    folder = tmp_path_factory.mktemp("models") / "m["
    folder.mkdir()
    meta = ModelMeta.for_arch("aec", name=HOSTILE, dataset=HOSTILE, source={HOSTILE: HOSTILE},
                              metrics={HOSTILE: 1.0}, created=HOSTILE)
    return AgeModel(create_model("aec", seed=1), meta).save(folder / "]odel.msgpack")


@pytest.fixture(scope="module")
def hostile_images(tmp_path_factory) -> tuple[Path, list[str]]:
    """A folder of images with hostile names, one of them not valid UTF-8 (a surrogate-escaped str here)."""
    root = tmp_path_factory.mktemp("imgs") / "in[bold]"
    (root / "a[").mkdir(parents=True)
    names = [*FILE_NAMES, "a[/]b.jpg"]
    for n in names:
        _image(root / n)
    _image(Path(os.fsdecode(os.fsencode(root) + b"/bad\xff\xfe.jpg")))
    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    assert len(paths) == len(names) + 1
    return root, paths


# -- the console layer -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,shown", [
    ("plain text", "plain text"),
    ("[/] [bold]x[/bold]", "[/] [bold]x[/bold]"),  # markup is not the business of visible(): it stays
    ("a\nb\r\tc", "a\\nb\\r\\tc"),
    ("\x1b[31mred\x07\x7f\x85", "\\x1b[31mred\\x07\\x7f\\x85"),
    ("x\u2028y\u202ez", "x\\u2028y\\u202ez"),
    (os.fsdecode(b"bad\xff\xfe"), "bad\\xff\\xfe"),
    ("caf\u00e9 \u2192 \u6771\u4eac", "caf\u00e9 \u2192 \u6771\u4eac"),  # printable Unicode is untouched
    (b"by\xfftes", "by\\xfftes"),
])
def test_visible(raw, shown):
    assert visible(raw) == shown


def test_visible_never_raises():
    class Nasty:
        def __str__(self):
            raise RuntimeError("no")

    assert visible(Nasty()) == "<Nasty>"
    assert visible(None) == "None" and visible(3) == "3"


def _render(renderable, **print_kwargs) -> str:
    buf = io.StringIO()
    SafeConsole(file=buf, width=200, color_system=None).print(renderable, **print_kwargs)
    return buf.getvalue()


def test_safe_console_prints_strings_literally():
    assert _render(HOSTILE) == visible(HOSTILE) + "\n"
    assert _render(HOSTILE, markup=True) == visible(HOSTILE) + "\n"  # markup cannot be switched back on
    assert _render("[bold]{}[/]") == "[bold]{}[/]\n"


def test_safe_console_tables_titles_and_captions():
    from rich.table import Table

    table = Table(title=HOSTILE, caption=HOSTILE)
    table.add_column(HOSTILE)
    table.add_row(HOSTILE)
    table.add_row(os.fsdecode(b"x\xff"))
    out = _render(table)
    assert out.count(visible(HOSTILE)) == 4 and "x\\xff" in out
    assert not RAW_CONTROL.search(out)


def test_markup_template_escapes_its_values():
    text = markup("[bold]{}[/]: {}", HOSTILE, "[/]")
    assert text.plain == f"{visible(HOSTILE)}: [/]"
    assert [(s.start, s.end, str(s.style)) for s in text.spans] == [(0, len(visible(HOSTILE)), "bold")]
    assert plain(HOSTILE, style="red").plain == visible(HOSTILE)


def test_progress_descriptions_are_literal():
    from rich.progress import Progress

    buf = io.StringIO()
    console = SafeConsole(file=buf, width=200, force_terminal=True, color_system=None)
    with Progress(DescriptionColumn(), console=console, auto_refresh=False) as progress:
        task = progress.add_task(HOSTILE, total=1)
        progress.update(task, description=f"eval {HOSTILE}")
        progress.refresh()
    assert f"eval {visible(HOSTILE)}" in buf.getvalue()


def test_print_error_is_one_line_and_never_raises(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    undecodable = os.fsdecode(b"x\xff")
    print_error(f"  {HOSTILE}: {undecodable}\n")
    assert buf.getvalue() == f"error: {visible(HOSTILE)}: x\\xff\n"

    class Broken(io.StringIO):
        def write(self, s):
            raise OSError("closed")

    monkeypatch.setattr(sys, "stderr", Broken())
    print_error("nowhere to go")  # swallowed

    ascii_err = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stderr", ascii_err)
    print_error("caf\u00e9")
    ascii_err.seek(0)
    assert ascii_err.read() == "error: caf\\xe9\n"


# -- predict -----------------------------------------------------------------------------------------------------
def test_predict_table_with_hostile_model_and_file_names(cli, hostile_model, hostile_images):
    root, paths = hostile_images
    r = cli("predict", root, "--model", hostile_model, "--detector", "none")
    assert_clean(r)
    for p in paths:
        assert visible(p) in r.stdout, (p, r.stdout)
    assert f"ages by {visible(HOSTILE)}" in r.stdout
    assert f"model {visible(HOSTILE)}" in r.stdout


def test_predict_one_image_named_with_markup(cli, hostile_model, hostile_images):
    root, _ = hostile_images
    r = cli("predict", root / "a[" / "]b.jpg", "--model", hostile_model, "--detector", "none")
    assert_clean(r)
    assert visible(root / "a[/]b.jpg") in r.stdout


def test_predict_json_keeps_the_names_exactly(cli, hostile_model, hostile_images):
    root, paths = hostile_images
    r = cli("predict", root, "--model", hostile_model, "--detector", "none", "--json")
    assert_clean(r)
    records = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert sorted(rec["file"] for rec in records) == paths  # surrogates round-trip through JSON escapes
    assert r.stderr.count("\n") == 1 and visible(HOSTILE) in r.stderr  # the summary note, one line


@pytest.mark.parametrize("name", [HOSTILE, "a[/]b\n.jpg", os.fsdecode(b"missing\xff[/].jpg")])
def test_predict_missing_hostile_input_is_one_error_line(cli, hostile_model, tmp_path, name):
    err = one_error_line(cli("predict", tmp_path / name, "--model", hostile_model), 3)
    assert visible(tmp_path / name) in err


def test_predict_with_a_hostile_model_name_that_does_not_exist(cli, hostile_images):
    root, _ = hostile_images
    err = one_error_line(cli("predict", root, "--model", HOSTILE), 3)
    assert visible(HOSTILE) in err


def test_a_skipped_hostile_file_is_one_literal_line(cli, hostile_model, tmp_path):
    folder = tmp_path / "mix[red]"
    folder.mkdir()
    _image(folder / "ok.jpg")
    (folder / "bro\x1bken[red]\n.jpg").write_bytes(b"not a jpeg")
    r = cli("predict", folder, "--model", hostile_model, "--detector", "none")
    assert_clean(r)
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 1 and visible(folder / "bro\x1bken[red]\n.jpg") in skipped[0]


# -- model-file commands -----------------------------------------------------------------------------------------
def test_info_on_a_hostile_model(cli, hostile_model):
    r = cli("info", hostile_model)
    assert_clean(r)
    assert r.stdout.count(visible(HOSTILE)) >= 3  # name, dataset, created (and inside metrics, source)
    data = json.loads(cli("info", hostile_model, "--json").stdout)
    assert data["name"] == HOSTILE and data["source"] == {HOSTILE: HOSTILE}


def test_eval_on_a_hostile_model_and_dataset_path(cli, hostile_model, tmp_path):
    folder = tmp_path / "d["
    folder.mkdir()
    npz = folder / "]ata\x1b.npz"
    images = np.random.default_rng(1).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    np.savez(npz, image=images, age=np.array([20, 30, 40, 50, 60, 70]), gender=np.ones(6, np.int64),
             img_size=np.array(64))
    r = cli("eval", "--model", hostile_model, "--db", npz, "--split", "all")
    assert_clean(r)
    assert visible(HOSTILE) in r.stdout and "MAE" in r.stdout
    j = cli("eval", "--model", hostile_model, "--db", npz, "--split", "all", "--json", "-q")
    assert_clean(j)
    summary = json.loads(j.stdout)
    assert summary["model"] == HOSTILE and summary["dataset"]["path"] == str(npz)


def test_eval_of_a_hostile_dataset_name_is_one_error_line(cli, hostile_model):
    assert visible(HOSTILE) in one_error_line(cli("eval", "--model", hostile_model, "--db", HOSTILE), 3)


def test_bench_table_with_a_hostile_model(cli, hostile_model):
    r = cli("bench", "table", "--model", hostile_model, "--no-timing")
    assert_clean(r)
    first, rest = visible(HOSTILE).split(" ")  # the model column wraps at the space
    assert f"{first} " in r.stdout and rest in r.stdout and "[weights: aec]" in r.stdout
    doc = json.loads(cli("bench", "table", "--model", hostile_model, "--no-timing", "--json").stdout)
    assert HOSTILE in [row["model"] for row in doc["rows"]]


def test_info_of_a_model_header_that_is_not_utf8(cli, hostile_model, tmp_path):
    data = hostile_model.read_bytes()
    needle = HOSTILE.encode()
    bad = tmp_path / "bad\x1b[red].msgpack"
    bad.write_bytes(data.replace(needle, b"\xff" * len(needle), 1))
    r = cli("info", bad)
    assert r.exit_code != 0
    one_error_line(r, r.exit_code)


# -- filter and preprocess ---------------------------------------------------------------------------------------
def _hostile_wiki(root: Path) -> list[str]:
    """A WIKI layout whose .mat cells (full_path, name) hold markup; the images exist."""
    names = ["00/[/]x.jpg", "00/n\nl.jpg", "00/e\x1b[31m.jpg", "01/[link=file:x]q.jpg", "01/[bold].jpg"]
    n = len(names)
    full_path, person = np.empty((1, n), dtype=object), np.empty((1, n), dtype=object)
    for i, p in enumerate(names):
        full_path[0, i], person[0, i] = p, f"[/]{HOSTILE}{i}"
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        _image(root / p)
    struct = {"dob": np.array([[723000.0] * n]), "photo_taken": np.array([[2010] * n], np.uint16),
              "full_path": full_path, "name": person, "gender": np.array([[1.0] * n]),
              "face_score": np.array([[2.0] * n]), "second_face_score": np.array([[np.nan] * n])}
    scipy.io.savemat(str(root / "wiki.mat"), {"wiki": struct})
    return names


@pytest.fixture
def hostile_wiki(tmp_path, monkeypatch):
    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))
    root = tmp_path / "a[" / "]b[bold red]\x1b" / "wiki_crop"
    root.mkdir(parents=True)
    out = tmp_path / "o[" / "]\nc.csv"
    out.parent.mkdir()
    return root, _hostile_wiki(root), out


def test_filter_of_a_mat_with_markup_cells(cli, hostile_wiki):
    import csv

    root, names, out = hostile_wiki
    r = cli("filter", "--db", "wiki", "--root", root, "--out", out)
    assert_clean(r)
    assert f"kept {len(names)} of {len(names)} rows -> {visible(out)}" in r.stdout
    with open(out, newline="") as f:
        assert [row["full_path"] for row in csv.DictReader(f)] == names
    j = cli("filter", "--db", "wiki", "--root", root, "--out", out, "--json")
    assert_clean(j)
    assert json.loads(j.stdout)["csv"] == str(out)


def test_preprocess_with_markup_paths_and_names(cli, hostile_wiki, tmp_path):
    root, names, out = hostile_wiki
    assert cli("filter", "--db", "wiki", "--root", root, "--out", out).exit_code == 0
    npz = out.parent / "]p[/b]\r.npz"
    r = cli("preprocess", "--db", "wiki", "--root", root, "--csv", out, "--out", npz)
    assert_clean(r)
    assert f"{len(names)} of {len(names)} listed" in r.stdout and visible(npz) in r.stdout
    j = cli("preprocess", "--db", "wiki", "--root", root, "--csv", out, "--out", npz, "--json")
    assert_clean(j)
    assert json.loads(j.stdout)["path"] == str(npz)


def test_preprocess_of_a_missing_hostile_root_is_one_error_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))
    one_error_line(cli("preprocess", "--db", "utkface", "--root", tmp_path / HOSTILE), 3)


def test_preprocess_lists_hostile_unlabelled_files_exactly_in_json(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))
    root = tmp_path / "U[" / "]TK\x1b"
    root.mkdir(parents=True)
    for n in ["30_0_0_20170112213500903.jpg.chip.jpg", "40_1_0_20170112213500904.jpg.chip.jpg"]:
        _image(root / n)
    _image(root / "[b]un\nlabelled.jpg")
    r = cli("preprocess", "--db", "utkface", "--root", root, "--out", tmp_path / "o[red].npz")
    assert_clean(r)
    j = cli("preprocess", "--db", "utkface", "--root", root, "--out", tmp_path / "o[red].npz", "--json", "-q")
    assert_clean(j)
    assert json.loads(j.stdout)["unlabelled_files"] == ["[b]un\nlabelled.jpg"]


# -- fetch and the console script --------------------------------------------------------------------------------
def test_fetch_manual_instructions_with_a_hostile_destination(cli, tmp_path):
    dest = tmp_path / "d[" / "]x\x1b"
    r = cli("fetch", "megaage", "--dest", dest)
    assert_clean(r)
    assert r.stdout.startswith("megaage: ") and visible(dest) in r.stdout
    assert visible(HOSTILE) in one_error_line(cli("fetch", HOSTILE), 2)


@pytest.mark.parametrize("args", [
    [b"predict", b"--nope\x1b[31m[/]", b"x"],
    [b"preprocess", b"--db", b"x\x1b[31m[/]\xff"],
    [b"info", b"/nonexistent/\xff\xfe[/]\n\x1b.msgpack"],
])
def test_console_script_hostile_arguments_are_one_line(args):
    out = subprocess.run([sys.executable, "-m", "agecompact", *args], capture_output=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode in (2, 3), out.stderr
    assert out.stderr.startswith(b"error: ") and out.stderr.count(b"\n") == 1, out.stderr
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", out.stderr), out.stderr
