"""IMDB-WIKI metadata: the age formula, every filter rule in order, .mat validation, the filter CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math

import numpy as np
import pytest
import scipy.io

from agecompact.data import imdbwiki

NAN, INF = float("nan"), float("inf")


@pytest.fixture(autouse=True)
def _data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AGECOMPACT_DATA", str(tmp_path / "data"))


def reference_age(taken: float, dob: float) -> int:
    """The reference ``calc_age``, written out with Python dates as spec §2.2 states it."""
    birth = dt.date.fromordinal(max(int(dob) - 366, 1))
    return int(taken) - birth.year - (1 if birth.month >= 7 else 0)


def datenum(year: int, month: int, day: int) -> float:
    return float(dt.date(year, month, day).toordinal() + 366)


# -- age formula -------------------------------------------------------------------------------------------
def test_datenum_origin_matches_matlab():
    # MATLAB: datenum(1981, 5, 5) = 723671 (WIKI's first row is born 1981-05-05)
    assert datenum(1981, 5, 5) == 723671.0
    years, months = imdbwiki.birth_year_month(np.array([723671.0]))
    assert (years[0], months[0]) == (1981, 5)


@pytest.mark.parametrize("birth, taken, age", [
    ((1981, 5, 5), 2009, 28),     # born before July: plain difference
    ((1981, 6, 30), 2009, 28),
    ((1981, 7, 1), 2009, 27),     # July counts as the second half of the year (>= 7)
    ((1981, 12, 31), 2009, 27),
    ((2000, 1, 1), 2000, 0),
    ((2000, 8, 1), 2000, -1),     # photo in the birth year, born after mid-year
])
def test_calc_age_mid_year_rule(birth, taken, age):
    got = imdbwiki.calc_age(np.array([datenum(*birth)]), np.array([taken]))
    assert got[0] == age == reference_age(taken, datenum(*birth))


def test_calc_age_matches_reference_on_random_and_garbage_dobs():
    rng = np.random.default_rng(0)
    dobs = np.concatenate([
        rng.uniform(1, 800_000, 3000),               # any date, fractional datenums included
        [0.0, 0.5, 1.0, 365.0, 366.0, 366.9, 367.0, 730_000.25],  # IMDB's dob 0 / tiny ones
    ])
    taken = rng.integers(1900, 2016, len(dobs)).astype(float)
    got = imdbwiki.calc_age(dobs, taken)
    want = np.array([reference_age(t, d) for t, d in zip(taken, dobs, strict=True)])
    np.testing.assert_array_equal(got, want)
    # dob 0 or tiny clamps to year 1: the "ages around 2014" of IMDB
    assert imdbwiki.calc_age(np.array([0.0]), np.array([2014]))[0] == 2013


def test_calc_age_nan_inputs_give_nan():
    got = imdbwiki.calc_age(np.array([NAN, datenum(1990, 1, 1), INF]), np.array([2010, NAN, 2010]))
    assert np.isnan(got).all()


def test_age_from_filename_rules():
    name = "17/10000217_1981-07-05_2009.jpg"
    assert imdbwiki.age_from_filename(name, rule="ssrnet") == 27
    assert imdbwiki.age_from_filename(name, rule="aec") == 28  # AEC subtracts only for month > 7
    assert imdbwiki.age_from_filename("nm0000001_rm124825600_1899-5-10_1968.jpg") == 69
    assert imdbwiki.age_from_filename("01/x_1960-08-01_2000.jpg") == 39
    assert imdbwiki.age_from_filename("garbage.jpg") is None
    assert imdbwiki.age_from_filename("a_b_c.jpg") is None


# -- rules ----------------------------------------------------------------------------------------------------
def meta_from_rows(rows: list[dict]) -> imdbwiki.MatMeta:
    return imdbwiki.MatMeta(
        db="imdb", full_path=[r["path"] for r in rows],
        dob=np.array([r["dob"] for r in rows], float), photo_taken=np.array([r["taken"] for r in rows], float),
        gender=np.array([r["gender"] for r in rows], float),
        face_score=np.array([r["score"] for r in rows], float),
        second_face_score=np.array([r["second"] for r in rows], float))


def row(path, *, birth=(1980, 3, 1), taken=2010, gender=1.0, score=2.0, second=NAN, dob=None):
    return {"path": path, "dob": datenum(*birth) if dob is None else dob, "taken": taken, "gender": gender,
            "score": score, "second": second}


HAND_ROWS = [
    row("ok"),                                        # kept by both
    row("score_inf", score=-INF),                     # rule 1
    row("score_low", score=0.999),                    # rule 1
    row("score_edge", score=1.0),                     # kept: the rule is <, not <=
    row("second_pos", second=0.5),                    # rule 2 (both rule sets)
    row("second_zero", second=0.0),                   # ssrnet keeps (only > 0 drops), aec drops
    row("second_neg", second=-1.2),                   # ssrnet keeps, aec drops
    row("age_neg", birth=(2015, 1, 1), taken=1984),   # -31: IMDB's minimum
    row("age_2014", dob=0.0, taken=2015),             # dob 0 -> year 1 -> 2014: IMDB's maximum
    row("age_tiny_dob", dob=12.0, taken=2001),
    row("age_101", birth=(1900, 1, 1), taken=2001),
    row("age_100", birth=(1900, 1, 1), taken=2000),  # kept: 0..100 inclusive
    row("age_0", birth=(2000, 2, 1), taken=2000),    # kept
    row("age_nan_dob", dob=NAN),
    row("gender_nan", gender=NAN),
    row("female", gender=0.0),
    row("everything_wrong", score=-INF, second=3.0, dob=0.0, gender=NAN),  # counted by the first rule only
    row("second_then_age", second=2.0, birth=(2020, 1, 1)),               # counted by rule 2
]


def test_ssrnet_rules_in_order():
    result = imdbwiki.apply_rules(meta_from_rows(HAND_ROWS), "ssrnet", 1.0)
    kept = [r["path"] for r, k in zip(HAND_ROWS, result.keep, strict=True) if k]
    assert kept == ["ok", "score_edge", "second_zero", "second_neg", "age_100", "age_0", "female"]
    steps = {s["rule"]: s["dropped"] for s in result.steps}
    assert steps == {"face_score": 3, "second_face": 2, "age_range": 5, "gender": 1}
    assert [s["remaining"] for s in result.steps] == [15, 13, 8, 7]
    assert result.total == len(HAND_ROWS)


def test_aec_rules_drop_any_second_face():
    result = imdbwiki.apply_rules(meta_from_rows(HAND_ROWS), "aec", 1.0)
    kept = [r["path"] for r, k in zip(HAND_ROWS, result.keep, strict=True) if k]
    assert kept == ["ok", "score_edge", "age_100", "age_0", "female"]
    assert {s["rule"]: s["dropped"] for s in result.steps}["second_face"] == 4


def test_min_score_option():
    meta = meta_from_rows([row("a", score=1.5), row("b", score=2.5)])
    assert imdbwiki.apply_rules(meta, "ssrnet", 2.0).keep.tolist() == [False, True]
    assert imdbwiki.apply_rules(meta, "ssrnet", 0.0).keep.tolist() == [True, True]


# -- .mat files ------------------------------------------------------------------------------------------------
def write_mat(path, rows: list[dict], db="imdb", drop=(), photo_dtype=np.uint16, **override):
    n = len(rows)
    cell = np.empty((1, n), dtype=object)
    for i, r in enumerate(rows):
        cell[0, i] = r["path"]
    struct = {
        "dob": np.array([[r["dob"] for r in rows]]),
        "photo_taken": np.array([[r["taken"] for r in rows]], photo_dtype),
        "full_path": cell,
        "gender": np.array([[r["gender"] for r in rows]]),
        "face_score": np.array([[r["score"] for r in rows]]),
        "second_face_score": np.array([[r["second"] for r in rows]]),
    }
    struct.update(override)
    for key in drop:
        struct.pop(key)
    scipy.io.savemat(str(path), {db: struct})
    return path


def test_load_mat_round_trip(tmp_path):
    rows = [r for r in HAND_ROWS if not math.isnan(r["dob"])]
    mat = write_mat(tmp_path / "imdb.mat", rows)
    meta = imdbwiki.load_mat(mat, "imdb")
    assert meta.full_path == [r["path"] for r in rows]
    np.testing.assert_array_equal(meta.photo_taken, [r["taken"] for r in rows])
    assert np.isnan(meta.gender).sum() == 2 and np.isneginf(meta.face_score).sum() == 2


@pytest.mark.parametrize("case, message", [
    ("missing_field", "lacks field(s) second_face_score"),
    ("wrong_db", "holds the 'imdb' metadata, not 'wiki'"),
    ("length", "fields differ in length"),
    ("text_dob", "field 'dob' should be numeric"),
    ("not_mat", "not a readable MATLAB .mat file"),
    ("no_struct", "no 'wiki' struct"),
])
def test_bad_mat_gives_one_clear_error(tmp_path, cli, case, message):
    root = tmp_path / "wiki_crop"
    root.mkdir()
    mat = root / "wiki.mat"
    rows = HAND_ROWS[:3]
    if case == "missing_field":
        write_mat(mat, rows, db="wiki", drop=("second_face_score",))
    elif case == "wrong_db":
        write_mat(mat, rows, db="imdb")
    elif case == "length":
        write_mat(mat, rows, db="wiki", gender=np.array([[1.0, 0.0]]))
    elif case == "text_dob":
        dob = np.empty((1, 3), dtype=object)
        dob[0, :] = ["a", "b", "c"]
        write_mat(mat, rows, db="wiki", dob=dob)
    elif case == "not_mat":
        mat.write_bytes(b"this is not a mat file at all" * 10)
    elif case == "no_struct":
        scipy.io.savemat(str(mat), {"something": np.zeros(3)})
    result = cli("filter", "--db", "wiki", "--root", root)
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_mat_is_input_error(tmp_path, cli):
    result = cli("filter", "--db", "imdb", "--root", tmp_path / "nowhere")
    assert result.exit_code == 3
    assert "no imdb.mat under" in result.stderr and "agecompact fetch imdb" in result.stderr


def test_filter_cli_writes_csv_and_table(tmp_path, cli):
    root = tmp_path / "imdb_crop"
    root.mkdir()
    write_mat(root / "imdb.mat", HAND_ROWS)
    out = tmp_path / "kept.csv"
    result = cli("filter", "--db", "imdb", "--root", tmp_path, "--out", out)
    assert result.exit_code == 0, result.stderr
    for rule in ("face_score", "second_face", "age_range", "gender"):
        assert rule in result.stdout
    assert "kept 7 of 18 rows" in result.stdout
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["full_path"] for r in rows] == ["ok", "score_edge", "second_zero", "second_neg", "age_100", "age_0",
                                              "female"]
    assert [int(r["age"]) for r in rows][:1] == [30] and rows[4]["age"] == "100"
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["rules"] == "ssrnet" and info["kept"] == 7 and info["image_root"] == str(root.resolve())


def test_filter_cli_json_and_aec_rules(tmp_path, cli):
    write_mat(tmp_path / "wiki.mat", HAND_ROWS, db="wiki")
    result = cli("filter", "--db", "wiki", "--mat", tmp_path / "wiki.mat", "--rules", "aec", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kept"] == 5 and summary["rules"] == "aec"
    assert [s["rule"] for s in summary["steps"]] == ["face_score", "second_face", "age_range", "gender"]
    assert (tmp_path / "data" / "wiki_filtered.csv").is_file()  # the default location


def test_read_filtered_csv_rejects_other_files(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(imdbwiki.InputError, match="not a filter CSV"):
        imdbwiki.read_filtered_csv(bad)
