"""``filter`` on the REAL WIKI metadata in ../shared (v7-compressed, int32 dob, uint16 photo_taken, mixed
face_location cells, empty and non-ASCII names, no celeb fields): the published per-rule counts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.io

from agecompact.data import imdbwiki

pytestmark = pytest.mark.shared

WIKI_MAT = "datasets/IMDB-WIKI metadata/wiki_crop/wiki.mat"
PER_RULE = {"face_score": 19_335, "second_face": 4_070, "age_range": 49, "gender": 736}
FIRST_KEPT = ["17/10000217_1981-05-05_2009.jpg", "28", "1", "4.3009623883308095", "nan", "723671.0", "2009"]
LAST_KEPT = ["80/999980_1954-06-11_2008.jpg", "54", "0", "5.486916546849864", "nan", "713846.0", "2008"]


@pytest.fixture(scope="module")
def wiki_mat(shared_path):
    return shared_path(WIKI_MAT)


@pytest.fixture(scope="module")
def meta(wiki_mat):
    return imdbwiki.load_mat(wiki_mat, "wiki")


def test_the_reader_copes_with_the_real_field_classes(wiki_mat, meta):
    raw = scipy.io.loadmat(str(wiki_mat))["wiki"][0, 0]
    assert raw["dob"].dtype == np.int32 and raw["photo_taken"].dtype == np.uint16  # what makes it "real"
    assert {c.dtype.kind for c in raw["face_location"][0]} == {"f", "u"}
    assert "celeb_names" not in raw.dtype.names
    assert len(meta) == 62_328 and all(isinstance(p, str) and p for p in meta.full_path)
    for field in imdbwiki.NUMERIC_FIELDS:
        assert getattr(meta, field).dtype == np.float64
    assert meta.dob[0] == 723_671 and meta.photo_taken[0] == 2009


def test_per_rule_counts_and_kept_rows(meta):
    result = imdbwiki.apply_rules(meta, "ssrnet")
    assert {s["rule"]: s["dropped"] for s in result.steps} == PER_RULE
    assert int(result.keep.sum()) == 38_138
    # real WIKI has no second_face_score <= 0, so AEC's stricter rule keeps exactly the same rows
    aec = imdbwiki.apply_rules(meta, "aec")
    np.testing.assert_array_equal(aec.keep, result.keep)
    assert {s["rule"]: s["dropped"] for s in aec.steps} == PER_RULE


@pytest.mark.parametrize("rules", ["ssrnet", "aec"])
def test_filter_cli_on_the_real_file(cli, wiki_mat, tmp_path, rules):
    out = tmp_path / "wiki_filtered.csv"
    result = cli("filter", "--db", "wiki", "--mat", wiki_mat, "--rules", rules, "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == 62_328 and summary["kept"] == 38_138
    assert [s["dropped"] for s in summary["steps"]] == list(PER_RULE.values())
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(imdbwiki.CSV_COLUMNS) and len(rows) == 38_139
    assert rows[1] == FIRST_KEPT and rows[-1] == LAST_KEPT
    back = imdbwiki.read_filtered_csv(out)
    assert len(back.full_path) == 38_138 and back.age.min() >= 0 and back.age.max() <= 100
    assert set(np.unique(back.gender)) == {0, 1}
