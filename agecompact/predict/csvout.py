"""``predict --csv FILE``: one row per face, written atomically when the run ends."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from agecompact.fileio import atomic_write_bytes

COLUMNS = ("file", "frame", "face", "x", "y", "w", "h", "score", "age", "age_std", "gender", "gender_score")


class CsvRows:
    """Collects the JSON records of a run (``on_record``) and keeps one row per face."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __call__(self, rec: dict[str, Any]) -> None:
        if rec.get("face") is None:  # an image without faces: no row
            return
        x, y, w, h = rec["box"]
        row = {k: rec.get(k) for k in COLUMNS}
        row.update(x=x, y=y, w=w, h=h)
        self.rows.append(row)

    def write(self, path: str | os.PathLike) -> Path:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        path = Path(path)
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
        return path
