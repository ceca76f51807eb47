"""Label-reading choices where the original scripts differ from one another (README, Data: fidelity):
MegaAge ages as ``int(float(x))``, UTKFace ages above 100 kept, All-Age-Faces lists with or without ``.jpg``."""

from __future__ import annotations

import pytest

from agecompact.data import aaf, megaage, utkface
from agecompact.errors import InputError


def _megaage(tmp_path, ages: list[str]):
    root = tmp_path / "megaage_asian"
    (root / "list").mkdir(parents=True)
    (root / "train").mkdir()
    names = [f"{i}.jpg" for i in range(len(ages))]
    (root / "list" / "train_name.txt").write_text("\n".join(names) + "\n")
    (root / "list" / "train_age.txt").write_text("\n".join(ages) + "\n")
    return root


def test_megaage_ages_are_truncated_as_in_the_original(tmp_path):
    s = megaage.list_samples(_megaage(tmp_path, ["23", "23.7", "4.99", "0.2"]))
    assert s.age.tolist() == [23, 23, 4, 0]  # int(float(x)), not round


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "twelve", "1e400"])
def test_megaage_ages_that_are_no_finite_number(tmp_path, bad):
    with pytest.raises(InputError, match="finite numbers"):
        megaage.list_samples(_megaage(tmp_path, ["12", bad]))


def test_utkface_ages_above_100_are_kept_and_counted(tmp_path):
    for name in ("110_0_0_20170110224238891.jpg.chip.jpg", "26_1_2_20170116174525125.jpg.chip.jpg"):
        (tmp_path / name).write_bytes(b"x")
    s = utkface.list_samples(tmp_path)
    assert sorted(s.age.tolist()) == [26, 110]
    assert s.source["ages_above_100"] == 1


def test_aaf_list_lines_with_or_without_jpg(tmp_path):
    root = tmp_path / "All-Age-Faces Dataset"
    (root / "aglined faces").mkdir(parents=True)
    (root / "image sets").mkdir()
    (root / "image sets" / "train.txt").write_text("00001A02 0\n00004A35.jpg 1\n")
    (root / "image sets" / "val.txt").write_text("13317A80 1\n")
    s = aaf.list_samples(root)
    assert s.paths == ["aglined faces/00001A02.jpg", "aglined faces/00004A35.jpg", "aglined faces/13317A80.jpg"]
    assert s.age.tolist() == [2, 35, 80] and s.split.tolist() == [0, 0, 1]
