"""``preprocess``: the demo pipeline through the CLI, the npz schema and sidecar, resume/restart, and the
UTKFace / All-Age-Faces / MegaAge-Asian readers on small generated layouts."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from agecompact.data import aaf, npzwriter, utkface
from agecompact.data import preprocess as pipeline
from agecompact.data import transforms as T
from agecompact.data.build import build
from agecompact.data.demo import generate
from agecompact.data.samples import Samples


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    dest = tmp_path_factory.mktemp("demo")
    generate(dest, count=80, seed=4)
    return dest


def load(path):
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


# -- the demo pipeline through the CLI ----------------------------------------------------------------------------
def test_fetch_filter_preprocess_cli(cli, tmp_path):
    dest = tmp_path / "demo"
    assert cli("fetch", "demo", "--dest", dest, "--count", "60", "--seed", "2", "-q").exit_code == 0
    result = cli("filter", "--db", "wiki", "--root", dest, "--json")
    assert result.exit_code == 0, result.stderr
    kept = json.loads(result.stdout)["kept"]
    result = cli("preprocess", "--db", "wiki", "--root", dest, "--workers", "2", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    manifest = json.loads((dest / "wiki_crop" / "demo.json").read_text())
    bad = set(manifest["corrupt_files"]) | set(manifest["missing_files"])
    csv_rows = (tmp_path / "data" / "wiki_filtered.csv").read_text().splitlines()[1:]
    listed_bad = [r.split(",")[0] for r in csv_rows if r.split(",")[0] in bad]
    assert summary["listed"] == kept
    assert summary["count"] == kept - len(listed_bad)
    assert sorted(sum(summary["skipped_files"].values(), [])) == sorted(listed_bad)

    # generated faces are the "demo" dataset (WIKI layout), so no result on them can pass for WIKI's
    assert not (tmp_path / "data" / "wiki.npz").exists()
    out = tmp_path / "data" / "demo.npz"
    data = load(out)
    assert sorted(data) == ["age", "gender", "image", "img_size", "source_file"]
    assert data["image"].shape == (summary["count"], 64, 64, 3) and data["image"].dtype == np.uint8
    assert data["age"].dtype.kind == "i" and data["gender"].dtype == np.int8 and int(data["img_size"]) == 64
    assert set(np.unique(data["gender"])) <= {0, 1}
    assert data["age"].min() >= 0 and data["age"].max() <= 100
    side = json.loads((tmp_path / "data" / "demo.npz.json").read_text())
    assert side["db"] == "demo" and side["source"]["synthetic"] is True and side["source"]["layout"] == "wiki"
    assert side["color_order"] == "BGR" and side["img_size"] == 64 and side["method"] == "ssrnet"
    assert side["margin"] == 0.4 and "1 = male" in side["gender_convention"]
    assert side["split_names"] is None and "split" not in data

    # the first kept row is the dataset crop resized, pixel for pixel
    first = next(r.split(",") for r in csv_rows if r.split(",")[0] not in bad)
    want = cv2.resize(cv2.imread(str(dest / "wiki_crop" / first[0])), (64, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(data["image"][0], want)
    assert data["age"][0] == int(first[1])


def test_preprocess_runs_filter_when_csv_missing(cli, demo_root, tmp_path):
    result = cli("preprocess", "--db", "wiki", "--root", demo_root)
    assert result.exit_code == 0, result.stderr
    assert "running `agecompact filter --db wiki --rules ssrnet` first" in result.stderr
    assert (tmp_path / "data" / "wiki_filtered.csv").is_file()
    assert "images written" in result.stdout
    again = cli("preprocess", "--db", "wiki", "--root", demo_root)
    assert "up to date" in again.stdout
    redo = cli("preprocess", "--db", "wiki", "--root", demo_root, "--restart", "--json", "-q")
    assert json.loads(redo.stdout)["status"] == "written"


def test_aec_method_with_haar(demo_root, tmp_path):
    summary = build("wiki", root=demo_root, method="aec", detector="haar", out=tmp_path / "aec.npz", quiet=True)
    assert summary["detector"] == "haar" and summary["margin"] == 0.0
    assert summary["source"]["filter_rules"] == "aec"
    data = load(tmp_path / "aec.npz")
    assert 0 < len(data["age"]) == summary["count"] < summary["listed"]
    assert summary["skipped"].get("no_face", 0) > 0
    assert data["image"].shape[1:] == (64, 64, 3)


def test_bad_inputs_are_one_line_errors(cli, tmp_path):
    for args in (["--db", "wiki", "--root", tmp_path / "none"], ["--db", "utkface", "--root", tmp_path],
                 ["--db", "aaf", "--root", tmp_path], ["--db", "megaage", "--root", tmp_path],
                 ["--db", "wiki", "--csv", tmp_path / "none.csv"]):
        result = cli("preprocess", *args)
        assert result.exit_code == 3, (args, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert cli("preprocess", "--db", "nope").exit_code == 2
    result = cli("preprocess", "--db", "utkface", "--csv", tmp_path / "x.csv")
    assert result.exit_code == 2


def test_an_explicit_csv_is_used_as_given(cli, demo_root, tmp_path):
    """A --csv the user passes is never re-filtered, even for images in another folder."""
    import shutil

    assert cli("filter", "--db", "wiki", "--root", demo_root, "--out", tmp_path / "my.csv").exit_code == 0
    lines = (tmp_path / "my.csv").read_text().splitlines(keepends=True)
    (tmp_path / "my.csv").write_text("".join(lines[:2]))  # keep the header and one row
    shutil.copytree(demo_root, tmp_path / "copy")
    result = cli("preprocess", "--db", "wiki", "--root", tmp_path / "copy", "--csv", tmp_path / "my.csv",
                 "--out", tmp_path / "one.npz", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "my.csv").read_text() == "".join(lines[:2])
    assert json.loads(result.stdout)["count"] == 1


def test_root_is_the_image_folder_when_the_mat_lives_elsewhere(cli, demo_root, tmp_path):
    import shutil

    images = tmp_path / "sep" / "images"
    shutil.copytree(demo_root / "wiki_crop", images)
    (tmp_path / "sep" / "meta").mkdir()
    mat = (images / "wiki.mat").rename(tmp_path / "sep" / "meta" / "wiki.mat")
    assert cli("filter", "--db", "wiki", "--mat", mat, "--root", images).exit_code == 0
    result = cli("preprocess", "--db", "wiki", "--root", images, "--json", "-q")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["count"] > 0


def test_unwritable_outputs_are_one_line_errors(cli, demo_root, tmp_path):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    for code, args in ((2, ["filter", "--db", "wiki", "--root", demo_root, "--out", tmp_path / "a_folder"]),
                       (2, ["preprocess", "--db", "wiki", "--root", demo_root, "--out", tmp_path / "a_folder"]),
                       (1, ["preprocess", "--db", "wiki", "--root", demo_root, "-q",
                            "--out", tmp_path / "a_file" / "x.npz"]),
                       (1, ["fetch", "demo", "--dest", tmp_path / "a_file" / "sub", "--count", "40"])):
        result = cli(*args)
        assert result.exit_code == code, (args, result.stderr)
        lines = [x for x in result.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "a_f" in lines[0], (args, result.stderr)


def test_nan_min_score_is_refused(cli, demo_root):
    result = cli("filter", "--db", "wiki", "--root", demo_root, "--min-score", "nan", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and "--min-score" in result.stderr


# -- resume / restart ------------------------------------------------------------------------------------------
class Interrupting:
    """PlainResize that raises KeyboardInterrupt on its ``stop_at``-th call (like Ctrl-C mid-run)."""

    def __init__(self, stop_at: int | None):
        self.inner = T.PlainResize(64)
        self.calls = 0
        self.stop_at = stop_at

    def describe(self):
        return self.inner.describe()

    def __call__(self, image):
        self.calls += 1
        if self.stop_at is not None and self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner(image)


def tiny_samples(tmp_path, n=300) -> Samples:
    root = tmp_path / "imgs"
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        name = f"{i:04d}.png"
        cv2.imwrite(str(root / name), rng.integers(0, 256, (20 + i % 7, 24, 3), dtype=np.uint8))
        paths.append(name)
    (root / "0013.png").write_bytes(b"broken")
    paths.append("nope.png")
    ages = np.arange(len(paths)) % 90
    return Samples("test", root, paths, ages, np.arange(len(paths)) % 2)


def test_interrupted_run_resumes_to_the_same_output(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "FLUSH_EVERY", 16)
    samples = tiny_samples(tmp_path)
    out = tmp_path / "out" / "t.npz"
    out.parent.mkdir()
    out.write_bytes(b"previous complete output")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(samples, Interrupting(120), out, workers=2, quiet=True)
    assert out.read_bytes() == b"previous complete output"  # never replaced by something partial
    status = np.fromfile(pipeline.partial_dir(out) / "status.u8", np.uint8)
    done = int((status != T.PENDING).sum())
    assert 0 < done < len(samples)

    second = Interrupting(None)
    summary = pipeline.run(samples, second, out, workers=2, quiet=True)
    assert second.calls <= len(samples) - done  # only what was not done before (minus the broken files)
    assert not pipeline.partial_dir(out).exists()
    fresh = pipeline.run(samples, T.PlainResize(64), tmp_path / "fresh.npz", workers=1, quiet=True)
    a, b = load(out), load(tmp_path / "fresh.npz")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert summary["count"] == fresh["count"] == len(samples) - 2
    assert summary["skipped_files"] == {"missing": ["nope.png"], "corrupt": ["0013.png"]}


def test_restart_and_changed_inputs_discard_partial(tmp_path):
    samples = tiny_samples(tmp_path, 60)
    out = tmp_path / "t.npz"
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(samples, Interrupting(30), out, workers=1, quiet=True)
    again = Interrupting(None)
    pipeline.run(samples, again, out, workers=1, restart=True, quiet=True)
    assert again.calls == len(samples) - 2  # everything redone

    with pytest.raises(KeyboardInterrupt):
        pipeline.run(samples, Interrupting(30), tmp_path / "u.npz", workers=1, quiet=True)
    samples.age[0] += 1  # a different label: the unfinished run does not belong to these inputs any more
    other = Interrupting(None)
    pipeline.run(samples, other, tmp_path / "u.npz", workers=1, quiet=True)
    assert other.calls == len(samples) - 2


def test_npz_writer_streams_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(npzwriter, "STREAM_ROWS", 7)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    scratch = npzwriter.ScratchImages(tmp_path / "s.npy", 50, 8, create=True)
    for i in range(50):
        scratch.write(i, images[i])
    keep = rng.random(50) < 0.6
    n = npzwriter.write_npz(tmp_path / "o.npz", scratch, keep, {"age": np.arange(50)[keep], "img_size": np.int64(8)})
    scratch.close()
    data = load(tmp_path / "o.npz")
    assert n == keep.sum()
    np.testing.assert_array_equal(data["image"], images[keep])
    np.testing.assert_array_equal(data["age"], np.arange(50)[keep])
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), images)  # the scratch is a valid .npy too


# -- UTKFace, All-Age-Faces, MegaAge-Asian ----------------------------------------------------------------------
@pytest.mark.parametrize("name, parsed", [
    ("100_0_0_20170112213500903.jpg.chip.jpg", (100, 1, 0)),
    ("26_1_3_20170119180037893.jpg.chip.jpg", (26, 0, 3)),
    ("24_0_1_20170116220224657 .jpg.chip.jpg", (24, 1, 1)),   # space before the extension
    ("39_1_20170116174525125.jpg.chip.jpg", (39, 0, None)),   # race missing
    ("61_1_20170109142408075.jpg.chip.jpg", (61, 0, None)),
    ("55_0_0_20170116232725357jpg.chip.jpg", (55, 1, 0)),     # dot missing
    ("1_3_2_20161219140525218.jpg.chip.jpg", (1, -1, 2)),     # gender outside 0/1: unknown
    ("nolabels.jpg", None),
])
def test_utkface_names(name, parsed):
    assert utkface.parse_name(name) == parsed


def write_jpg(path, h=40, w=40, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def test_utkface_reader(cli, tmp_path):
    root = tmp_path / "UTKFace"
    names = ["100_0_0_20170112213500903.jpg.chip.jpg", "39_1_20170116174525125.jpg.chip.jpg",
             "24_0_1_20170116220224657 .jpg.chip.jpg", "55_0_0_20170116232725357jpg.chip.jpg",
             "7_1_2_20170110000000001.jpg.chip.jpg"]
    for i, n in enumerate(names):
        write_jpg(root / n, value=20 * i)
    (root / "notes.txt").write_text("not an image")
    write_jpg(root / "unlabelled.jpg")
    result = cli("preprocess", "--db", "utkface", "--root", tmp_path, "--json", "-q")  # the parent works too
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["count"] == 5 and summary["unlabelled_files"] == ["unlabelled.jpg"]
    assert summary["margin"] == 0.1
    data = load(tmp_path / "data" / "utkface.npz")
    order = sorted(names)
    assert data["age"].tolist() == [utkface.parse_name(n)[0] for n in order]
    assert data["gender"].tolist() == [utkface.parse_name(n)[1] for n in order]
    assert "split" not in data


def test_aaf_reader_keeps_the_official_split(tmp_path):
    root = tmp_path / "All-Age-Faces Dataset"
    train = [("00001A02.jpg", 0), ("00004A35.jpg", 1), ("07355A80.jpg", 0)]
    val = [("13317A80.jpg", 1), ("00008A02.jpg", 0)]
    for n, _ in train + val:
        write_jpg(root / "aglined faces" / n, h=395, w=309)
    (root / "image sets").mkdir()
    (root / "image sets" / "train.txt").write_text("".join(f"{n} {g}\n" for n, g in train))
    (root / "image sets" / "val.txt").write_text("".join(f"{n} {g}\n" for n, g in val)[:-1])  # no final newline
    s = aaf.list_samples(tmp_path)
    assert s.root == root and len(s) == 5
    summary = build("aaf", root=root, out=tmp_path / "aaf.npz", quiet=True)
    data = load(tmp_path / "aaf.npz")
    assert data["age"].tolist() == [2, 35, 80, 80, 2]
    assert data["gender"].tolist() == [0, 1, 0, 1, 0]  # All-Age-Faces already uses 1 = male
    assert data["split"].tolist() == [0, 0, 0, 1, 1] and data["split"].dtype == np.uint8
    assert summary["split_names"] == {"0": "train", "1": "val"} or summary["split_names"] == {0: "train", 1: "val"}
    assert summary["split_counts"] == {"train": 3, "val": 2}


def test_megaage_reader_crops_20_rows(tmp_path):
    root = tmp_path / "megaage_asian"
    image = np.zeros((218, 178, 3), np.uint8)
    image[:20] = (0, 0, 255)
    image[-20:] = (0, 0, 255)
    image[20:-20] = (255, 0, 0)
    lists = root / "list"
    lists.mkdir(parents=True)
    for split, names, ages in (("train", ["a.jpg", "b.jpg"], ["12", "34"]), ("test", ["c.jpg"], ["56"])):
        for n in names:
            (root / split).mkdir(exist_ok=True)
            cv2.imwrite(str(root / split / n), image)
        (lists / f"{split}_name.txt").write_text("\n".join(names) + "\n")
        (lists / f"{split}_age.txt").write_text("\n".join(ages) + "\n")
    summary = build("megaage", root=root, out=tmp_path / "m.npz", quiet=True)
    data = load(tmp_path / "m.npz")
    assert data["age"].tolist() == [12, 34, 56] and data["split"].tolist() == [0, 0, 1]
    assert data["gender"].tolist() == [-1, -1, -1]
    assert data["image"][..., 2].max() < 20  # no red rows left after the 20-row cut
    assert "20 rows" in summary["processing"]
    (lists / "test_age.txt").write_text("56\n57\n")
    with pytest.raises(Exception, match="lists 1 names but test_age.txt 2 ages"):
        build("megaage", root=root, out=tmp_path / "m2.npz", quiet=True)


def test_files_are_not_left_behind(tmp_path):
    samples = tiny_samples(tmp_path, 20)
    out = tmp_path / "d" / "x.npz"
    out.parent.mkdir()
    pipeline.run(samples, T.PlainResize(64), out, workers=2, quiet=True)
    assert sorted(os.listdir(out.parent)) == ["x.npz", "x.npz.json"]
