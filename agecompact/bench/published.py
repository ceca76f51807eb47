"""The seed comparison table as published (AEC README, spec §3.6): shown beside our measurements.

These are the papers'/repositories' numbers, never ours; the table labels them as published.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedRow:
    label: str
    imdb_mae: float | None
    wiki_mae: float | None
    params: int
    size_kb: int | None
    time_ms: float | None
    device: str | None
    note: str


PUBLISHED: dict[str, PublishedRow] = {
    "ssrnet": PublishedRow("SSR-Net", 6.94, 6.76, 40_915, 319, 2.9, "RTX 2070",
                           "IMDB/WIKI: best validation MAE of the released history files"),
    "c3ae": PublishedRow("C3AE (plain)", 6.57, 6.44, 36_345, 198, None, None,
                         "MAE from the C3AE paper, paired with the plain model's size by the AEC README"),
    "aec": PublishedRow("AEC", 6.28, 6.19, 20_014, 184, 2.3, "RTX 2070", "AEC README"),
}
