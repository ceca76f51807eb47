"""The offline demo dataset: WIKI layout and .mat types, the bad rows, determinism, a learnable age signal."""

from __future__ import annotations

import hashlib
import re

import cv2
import numpy as np
import pytest
import scipy.io

from agecompact.data import demo, imdbwiki


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    dest = tmp_path_factory.mktemp("demo")
    summary = demo.generate(dest, count=120, seed=0)
    return dest, summary


def test_layout_matches_wiki(demo_set):
    dest, summary = demo_set
    root = dest / "wiki_crop"
    assert summary.root == str(root) and (root / "wiki.mat").is_file()
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.jpg"))
    assert len(files) == 120 - len(summary.missing_files)
    for f in files:
        m = re.fullmatch(r"(\d\d)/(\d+)_(\d{1,4})-(\d{1,2})-(\d{1,2})_(\d{4})\.jpg", f)
        assert m, f
        assert int(m[2]) % 100 == int(m[1])


def test_mat_has_the_real_struct_and_types(demo_set):
    dest, _ = demo_set
    wiki = scipy.io.loadmat(str(dest / "wiki_crop" / "wiki.mat"))["wiki"][0, 0]
    assert set(wiki.dtype.names) == {"dob", "photo_taken", "full_path", "gender", "name", "face_location",
                                     "face_score", "second_face_score"}
    for name in wiki.dtype.names:
        assert wiki[name].shape == (1, 120), name
    # the classes scipy reads from the real file (MATLAB stores integral doubles compactly)
    assert wiki["dob"].dtype == np.int32 and wiki["photo_taken"].dtype == np.uint16
    assert wiki["gender"].dtype == np.float64 and wiki["face_score"].dtype == np.float64
    assert wiki["full_path"].dtype == object and isinstance(wiki["full_path"][0][0][0], str)
    cells = wiki["face_location"][0]
    assert {c.shape for c in cells} == {(1, 4)}
    assert {c.dtype for c in cells} == {np.dtype(np.float64), np.dtype(np.uint8), np.dtype(np.uint16)}
    names = [c.reshape(-1)[0] if c.size else "" for c in wiki["name"][0]]
    assert "" in names and any(n and not n.isascii() for n in names)
    gender, score, second = wiki["gender"][0], wiki["face_score"][0], wiki["second_face_score"][0]
    assert np.isnan(gender).any() and set(gender[~np.isnan(gender)]) == {0.0, 1.0}
    assert np.isneginf(score).any() and ((score > 0) & (score < 1)).any()
    assert np.isnan(second).mean() > 0.8 and (second > 0).any() and (second <= 0).any()


def test_mat_is_compressed_like_the_real_file(demo_set):
    raw = (demo_set[0] / "wiki_crop" / "wiki.mat").read_bytes()
    assert raw.startswith(b"MATLAB 5.0 MAT-file") and raw[126:128] == b"IM"
    assert int.from_bytes(raw[128:132], "little") == 15  # miCOMPRESSED: the struct is one zlib element
    content = scipy.io.loadmat(str(demo_set[0] / "wiki_crop" / "wiki.mat"))
    assert [k for k in content if not k.startswith("__")] == ["wiki"]


def test_rule_shares_follow_the_real_wiki_mat(tmp_path):
    """At the default size the per-rule table has the real file's proportions (19,335 / 4,070 / 49 / 736
    of 62,328, kept 38,138), and the ssrnet and aec rules differ only by the labelled synthetic extras."""
    rows = demo._plan(demo.DEFAULT_COUNT, 0)
    mat = tmp_path / "wiki.mat"
    scipy.io.savemat(str(mat), {"wiki": demo._metadata_struct(rows, "wiki", 0)}, do_compression=True)
    meta = imdbwiki.load_mat(mat, "wiki")
    real = {"face_score": 19_335, "second_face": 4_070, "age_range": 49, "gender": 736}
    ssr = imdbwiki.apply_rules(meta, "ssrnet")
    for step in ssr.steps:
        share, want = step["dropped"] / len(rows), real[step["rule"]] / 62_328
        assert abs(share - want) < 0.1 * want + 0.001, (step, want)
    assert abs(ssr.keep.mean() - 38_138 / 62_328) < 0.01
    aec = imdbwiki.apply_rules(meta, "aec")
    extras = [r.kind for r in rows if r.kind in demo.SYNTHETIC_EXTRAS]
    assert 1 <= len(extras) <= 0.002 * len(rows)
    assert ssr.keep.sum() - aec.keep.sum() == len(extras)
    shares = {"no_face": 0.289, "low_score": 0.021, "gender_nan": 0.042}
    for flag, want in shares.items():
        got = np.mean([flag in demo.row_flags(r.kind) for r in rows])
        assert abs(got - want) < 0.1 * want, (flag, got, want)
    ages = imdbwiki.calc_age(meta.dob, meta.photo_taken)
    assert abs((ages < 0).mean() - 0.021) < 0.003 and abs((ages > 100).mean() - 0.008) < 0.002


def test_bad_cases_are_present(demo_set):
    dest, summary = demo_set
    meta = imdbwiki.load_mat(dest / "wiki_crop" / "wiki.mat", "wiki")
    ages = imdbwiki.calc_age(meta.dob, meta.photo_taken)
    assert (ages < 0).any() and (ages > 100).any() and (ages > 1000).any()
    for kind in demo.BAD_KINDS:
        assert summary.kinds[kind] >= 1
    root = dest / "wiki_crop"
    assert len(summary.corrupt_files) >= 2
    for f in summary.corrupt_files:
        assert cv2.imread(str(root / f)) is None
    for f in summary.missing_files:
        assert f in meta.full_path and not (root / f).exists()


def test_file_names_agree_with_the_metadata(demo_set):
    dest, _ = demo_set
    meta = imdbwiki.load_mat(dest / "wiki_crop" / "wiki.mat", "wiki")
    ages = imdbwiki.calc_age(meta.dob, meta.photo_taken)
    sane = (ages >= 0) & (ages <= 100)
    from_names = [imdbwiki.age_from_filename(p, rule="ssrnet") for p in meta.full_path]
    assert all(a == n for a, n, s in zip(ages, from_names, sane, strict=True) if s)


def test_deterministic(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.name != demo.MANIFEST:  # the manifest names its own folder
                h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
        return h.hexdigest()

    a = demo.generate(tmp_path / "a", count=40, seed=7)
    b = demo.generate(tmp_path / "b", count=40, seed=7, workers=1)
    demo.generate(tmp_path / "c", count=40, seed=8)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")
    assert a.kinds == b.kinds


def test_existing_demo_needs_force(tmp_path):
    demo.generate(tmp_path, count=40, seed=1)
    assert demo.generate(tmp_path, count=40, seed=1).created is False
    with pytest.raises(demo.UsageError, match="--force"):
        demo.generate(tmp_path, count=40, seed=2)
    assert demo.generate(tmp_path, count=40, seed=2, force=True).created is True
    assert not list(tmp_path.glob(".wiki_crop.tmp-*"))


def test_age_is_learnable_from_64px_faces(tmp_path, monkeypatch):
    """A linear model on 8x8 thumbnails of the preprocessed faces beats predicting the mean by far; a CNN
    has much more to work with (the README's demo training shows it)."""
    from agecompact.data.build import build

    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))
    demo.generate(tmp_path / "demo", count=500, seed=11)
    build("wiki", root=tmp_path / "demo", quiet=True)
    data = np.load(tmp_path / "data" / "demo.npz")
    x = np.stack([cv2.resize(im, (8, 8), interpolation=cv2.INTER_AREA).ravel() for im in data["image"]])
    y = data["age"].astype(np.float64)
    order = np.random.default_rng(0).permutation(len(y))
    train, val = order[: int(0.8 * len(y))], order[int(0.8 * len(y)):]
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    feats = (x - mu) / sd
    w = np.linalg.solve(feats[train].T @ feats[train] + 10 * np.eye(feats.shape[1]),
                        feats[train].T @ (y[train] - y[train].mean()))
    mae = np.abs(feats[val] @ w + y[train].mean() - y[val]).mean()
    baseline = np.abs(y[train].mean() - y[val]).mean()
    assert baseline > 10
    assert mae < 0.65 * baseline, (mae, baseline)
