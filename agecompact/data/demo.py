"""The offline demo dataset: synthetic faces in the exact WIKI layout, label garbage included.

``agecompact fetch demo`` writes ``<dest>/wiki_crop/NN/<id>_<birth>_<year>.jpg`` and a v7-compressed
``wiki.mat`` shaped like the real one: the ``wiki`` struct with its 8 fields (no ``celeb_names``/``celeb_id``),
1xN rows in the field classes scipy reads from the real file (``dob`` int32, ``photo_taken`` uint16, mixed
float64/uint8/uint16 ``face_location`` cells, empty and non-ASCII names), and bad rows in the real file's
proportions (no face, weak scores, second faces, NaN genders, impossible ages). A couple of corrupt JPEGs,
one listed-but-missing file and a few labelled synthetic extras (second_face_score <= 0, which real WIKI
lacks) complete it, so the whole pipeline (filter -> preprocess -> train -> eval) can be exercised and
tested without downloading anything. Everything derives from ``seed``: the same (count, seed) gives
byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agecompact.errors import UsageError

DEFAULT_COUNT = 3200  # about 1,950 rows survive the SSR-Net rules, as many as the demo trains on
DEFAULT_DEST = Path("demo")
MIN_COUNT = 40
GENERATOR_VERSION = 2
MANIFEST = "demo.json"

# Row profiles (which label problems a row has) in the proportions of the real wiki.mat: the count of each
# combination in its 62,328 rows. Bad ages and unknown genders sit mostly on rows without a face there, so
# the per-rule table (each row counted under the first rule that fires) comes out as on the real file:
# face_score 31.0 %, second_face 6.5 %, age_range 0.1 %, gender 1.2 %, kept 61.2 %. Combinations of
# fewer than 12 real rows are left out, except the three kinds of bad age on a good face.
REAL_PROFILES = {
    "good": 38138,
    "no_face": 14671,  # face_score = -inf, the image shows no face
    "second_face": 3966,  # second_face_score > 0, a second face is drawn
    "no_face+gender_nan": 1625,
    "low_score": 1262,  # 0 < face_score < 1
    "no_face+born_after_photo": 1134,  # negative age
    "gender_nan": 736,
    "no_face+born_long_ago": 428,  # age above 100
    "no_face+born_after_photo+gender_nan": 146,
    "second_face+gender_nan": 98,
    "born_long_ago": 44,
    "low_score+gender_nan": 25,
    "low_score+second_face": 25,
    "no_face+born_long_ago+gender_nan": 12,
    "born_after_photo": 5,
    "dob_zero": 3,  # dob 0 or tiny: an age around 2000 (the real file has 1,176 to 1,996)
}
# Not in the real WIKI file (it has no second_face_score <= 0), kept as a labelled synthetic extra so the
# one difference between the ssrnet and aec rules is exercised: SSR-Net keeps these rows, AEC drops them.
SYNTHETIC_EXTRAS = {"weak_second_face": 0.001}
_REAL_TOTAL = sum(REAL_PROFILES.values())
BAD_KINDS = {k: n / _REAL_TOTAL for k, n in REAL_PROFILES.items() if k != "good"} | SYNTHETIC_EXTRAS
# names: the real file has 124 empty and 5,160 non-ASCII ones
EMPTY_NAME_SHARE, NON_ASCII_NAME_SHARE = 124 / _REAL_TOTAL, 5160 / _REAL_TOTAL
_NON_ASCII_GIVEN = ("Zoë", "José", "Łukasz", "Søren", "Björn", "Chloé", "Ümit", "Jürgen", "Dvořák", "Αλέξης",
                    "Дмитрий", "李娜", "Nguyễn")


@dataclass
class DemoSummary:
    root: str  # the wiki_crop folder
    mat: str
    count: int
    seed: int
    kinds: dict[str, int]
    corrupt_files: list[str]
    missing_files: list[str]
    generator_version: int = GENERATOR_VERSION
    unique_faces: int | None = None
    db: str = "wiki"
    synthetic_extras: list[str] = field(default_factory=lambda: sorted(SYNTHETIC_EXTRAS))  # kinds real WIKI lacks
    created: bool = True  # False: an identical dataset was already there


def _row_kinds(rng: np.random.Generator, count: int) -> list[str]:
    kinds: list[str] = []
    for kind, share in BAD_KINDS.items():
        kinds += [kind] * max(1, round(share * count))
    kinds += ["good"] * (count - len(kinds))
    order = rng.permutation(count)
    return [kinds[i] for i in order]


def row_flags(kind: str) -> set[str]:
    """``"no_face+gender_nan"`` -> ``{"no_face", "gender_nan"}``."""
    return set(kind.split("+"))


def _datenum(day: dt.date) -> float:
    return float(day.toordinal() + 366)


@dataclass
class _Row:
    index: int
    ident: int
    kind: str
    age: int  # the age the face is drawn at
    gender: float  # as written to the .mat (NaN for the unknown-gender rows)
    drawn_gender: int
    photo_taken: int
    dob: float
    birth: str  # the date written in the file name
    face_score: float
    second_face_score: float
    size: int
    quality: int
    db: str = "wiki"

    @property
    def full_path(self) -> str:
        if self.db == "imdb":  # nm<celebrity>_rm<photo>_<birth>_<year>.jpg, foldered by the celebrity id
            return (f"{self.ident % 100:02d}/nm{self.ident:07d}_rm{1_000_000 + self.index}_{self.birth}_"
                    f"{self.photo_taken}.jpg")
        return f"{self.ident % 100:02d}/{self.ident}_{self.birth}_{self.photo_taken}.jpg"


def _plan(count: int, seed: int, db: str = "wiki", size_range: tuple[int, int] = (90, 250)) -> list[_Row]:
    rng = np.random.default_rng([seed, 0])
    kinds = _row_kinds(rng, count)
    idents = 100_000 + rng.choice(59_900_000, size=count, replace=False)
    rows = []
    for i, kind in enumerate(kinds):
        flags = row_flags(kind)
        age = int(round(1 + 94 * rng.beta(2.0, 2.6)))
        photo = int(rng.integers(1995, 2016))
        month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
        birth_year = photo - age - (1 if month >= 7 else 0)
        if "born_after_photo" in flags:
            birth_year = photo + int(rng.integers(1, 8))
        elif "born_long_ago" in flags:
            birth_year = int(rng.integers(1790, photo - 105))
        birth = dt.date(birth_year, month, day)
        dob = _datenum(birth)
        if "dob_zero" in flags:
            dob = float(rng.choice([0.0, 1.0, float(rng.integers(2, 366))]))
            first = dt.date.fromordinal(max(int(dob) - 366, 1))
            birth_text = f"{first.year}-{first.month}-{first.day}"
        else:
            birth_text = f"{birth.year:04d}-{birth.month:02d}-{birth.day:02d}"
        gender = float(rng.integers(0, 2))
        face_score = float(rng.uniform(1.0, 6.5))
        second = float("nan")
        size = int(rng.integers(size_range[0], size_range[1] + 1))
        if "no_face" in flags:
            face_score = float("-inf")
            if rng.random() < 0.5:  # the whole photo is the "crop": face_location [1 1 width height]
                size = max(size, int(rng.integers(256, 321)))
        elif "low_score" in flags:
            face_score = float(rng.uniform(0.05, 0.99))
        if "second_face" in flags:
            second = float(rng.uniform(0.3, 4.0))
        elif "weak_second_face" in flags:
            second = float(rng.uniform(-1.5, 0.0))
        rows.append(_Row(i, int(idents[i]), kind, age, float("nan") if "gender_nan" in flags else gender,
                         int(gender), photo, dob, birth_text, face_score, second, size,
                         int(rng.integers(70, 96)), db))
    return rows


def _render(row: _Row, seed: int) -> bytes:
    import cv2

    from agecompact.synthetic_faces import random_identity, render_face

    rng = np.random.default_rng([seed, 1, row.index])
    person = random_identity(rng, row.drawn_gender)
    flags = row_flags(row.kind)
    second = random_identity(rng, int(rng.integers(0, 2))) if "second_face" in flags else None
    image = render_face(rng, row.age, person, row.size, with_face="no_face" not in flags, second_face=second)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, row.quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _metadata_struct(rows: list[_Row], db: str, seed: int) -> dict:
    """The struct with the field classes scipy reads from the real file: MATLAB stores integral doubles in
    the smallest integer class that holds them, so ``dob`` is int32, ``photo_taken`` uint16 and the
    ``face_location`` cells are float64 boxes, or uint8 / uint16 ``[1 1 w h]`` where no face was found."""
    n = len(rows)

    def cell(values) -> np.ndarray:
        out = np.empty((1, n), dtype=object)
        for i, v in enumerate(values):
            out[0, i] = v
        return out

    def row_of(values, dtype) -> np.ndarray:
        return np.asarray(values, dtype=dtype).reshape(1, n)

    locations = []
    for r in rows:
        if "no_face" in row_flags(r.kind):
            box = [1, 1, r.size, r.size] if r.size > 255 else [1, 1, 1, 1]
            locations.append(np.array([box], dtype=np.uint16 if r.size > 255 else np.uint8))
            continue
        x1, y1 = 20.0 + r.index % 50, 30.0 + r.index % 40
        side = r.size / 1.8 + 0.37
        locations.append(np.array([[x1, y1, x1 + side, y1 + side]], dtype=np.float64))
    return {
        "dob": row_of([r.dob for r in rows], np.int32),
        "photo_taken": row_of([r.photo_taken for r in rows], np.uint16),
        "full_path": cell([r.full_path for r in rows]),
        "gender": row_of([r.gender for r in rows], np.float64),
        "name": cell(_names(rows, seed)),
        "face_location": cell(locations),
        "face_score": row_of([r.face_score for r in rows], np.float64),
        "second_face_score": row_of([r.second_face_score for r in rows], np.float64),
    } | (_celebrities(rows) if db == "imdb" else {})


def _names(rows: list[_Row], seed: int) -> list[str]:
    """Mostly ASCII names, about 8 % with letters beyond ASCII and 0.2 % empty (at least one of each)."""
    rng = np.random.default_rng([seed, 4])
    n = len(rows)
    order = rng.permutation(n)
    n_empty = max(1, round(EMPTY_NAME_SHARE * n))
    n_accented = max(1, round(NON_ASCII_NAME_SHARE * n))
    empty, accented = set(order[:n_empty].tolist()), set(order[n_empty:n_empty + n_accented].tolist())
    names = []
    for r in rows:
        if r.index in empty:
            names.append("")
        elif r.index in accented:
            names.append(f"{_NON_ASCII_GIVEN[r.ident % len(_NON_ASCII_GIVEN)]} Démo {r.ident}")
        else:
            names.append(f"Demo Person {r.ident}")
    return names


def _celebrities(rows: list[_Row]) -> dict:
    """IMDB's extra fields: ``celeb_names`` (one per celebrity, about 23 photos each) and ``celeb_id`` per row."""
    n_celebs = max(1, -(-len(rows) // 23))
    names = np.empty((1, n_celebs), dtype=object)
    for k in range(n_celebs):
        names[0, k] = f"Demo Celebrity {k + 1}"
    ids = np.array([[r.index % n_celebs + 1 for r in rows]], dtype=np.uint16 if n_celebs < 65536 else np.uint32)
    return {"celeb_names": names, "celeb_id": ids}


def check_options(count: int, db: str = "wiki") -> None:
    if count < MIN_COUNT:
        raise UsageError(f"--count must be at least {MIN_COUNT} so every kind of bad row occurs")
    if db not in ("wiki", "imdb"):
        raise UsageError(f"the demo layout is wiki or imdb, not {db!r}")


def generate(dest: str | os.PathLike = DEFAULT_DEST, count: int = DEFAULT_COUNT, seed: int = 0, *,
             force: bool = False, workers: int | None = None, progress=None, db: str = "wiki",
             unique_faces: int | None = None, size_range: tuple[int, int] = (90, 250)) -> DemoSummary:
    """Write the demo dataset under ``dest/wiki_crop`` (atomically: it appears complete or not at all).

    An identical dataset already in place is left alone; a different one needs ``force``.
    ``progress`` is an optional Rich ``Progress`` to report on. For large benchmark sets, ``db="imdb"``
    writes the IMDB layout (``imdb_crop/``, ``imdb.mat`` with ``celeb_names``/``celeb_id``) and
    ``unique_faces`` draws only that many faces and reuses their JPEG bytes for the other rows (their labels
    then do not match the picture: not for training).
    """
    import scipy.io

    check_options(count, db)
    dest = Path(dest)
    final = dest / f"{db}_crop"
    manifest_path = final / MANIFEST
    if final.exists():
        previous = _read_manifest(manifest_path)
        if previous and previous.get("count") == count and previous.get("seed") == seed \
                and previous.get("generator_version") == GENERATOR_VERSION \
                and previous.get("unique_faces") == unique_faces and not force:
            previous["created"] = False
            return DemoSummary(**{k: v for k, v in previous.items() if k in DemoSummary.__dataclass_fields__})
        if not force:
            raise UsageError(f"{final} already exists with other contents; pass --force to replace it")

    rows = _plan(count, seed, db, size_range)
    rng = np.random.default_rng([seed, 2])
    good = [r for r in rows if r.kind == "good"]
    picks = rng.choice(len(good), size=max(2, count // 1000) + 1, replace=False)
    corrupt = {good[i].index for i in picks[:-1]}
    missing = {good[picks[-1]].index}

    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{db}_crop.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        task = progress.add_task("generating demo faces", total=count) if progress is not None else None
        pool: dict[int, bytes] = {}
        if unique_faces:
            with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as executor:
                pool = dict(enumerate(executor.map(lambda r: _render(r, seed), rows[:unique_faces])))

        def write(row: _Row) -> None:
            path = tmp / row.full_path
            if row.index in missing:
                return
            data = pool[row.index % unique_faces] if unique_faces else _render(row, seed)
            if row.index in corrupt:
                # alternately a JPEG cut inside its header and a file that is not an image at all
                data = data[:120] if row.index % 2 else np.random.default_rng([seed, 3, row.index]).bytes(700)
            path.write_bytes(data)

        for sub in sorted({r.full_path.split("/")[0] for r in rows}):
            (tmp / sub).mkdir()
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as executor:
            for start in range(0, count, 4096):  # bounded number of queued tasks for large sets
                for _ in executor.map(write, rows[start:start + 4096]):
                    if task is not None:
                        progress.advance(task)
        mat = tmp / f"{db}.mat"
        scipy.io.savemat(str(mat), {db: _metadata_struct(rows, db, seed)}, format="5", do_compression=True)
        _fix_mat_header(mat)
        kinds: dict[str, int] = {}
        for r in rows:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        summary = DemoSummary(
            root=str(final), mat=str(final / f"{db}.mat"), count=count, seed=seed, kinds=kinds,
            corrupt_files=sorted(rows[i].full_path for i in corrupt),
            missing_files=sorted(rows[i].full_path for i in missing), unique_faces=unique_faces, db=db)
        manifest = asdict(summary)
        manifest.pop("created")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _fix_mat_header(path: Path) -> None:
    """scipy stamps the creation time into the 116-byte text header; a fixed text keeps files reproducible."""
    text = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: agecompact demo generator"
    with open(path, "r+b") as f:
        f.seek(0)
        f.write(text.ljust(116, b" "))


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
