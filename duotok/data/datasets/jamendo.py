"""MTG-Jamendo: full-length Creative-Commons tracks with genre / instrument / mood-theme tags.

Layout (MTG/mtg-jamendo-dataset: ``README.md``, ``scripts/commons.py`` ``read_file``, and the files
under ``data/splits/``)::

    <metadata_root>/data/splits/split-<k>/<subset>-{train,validation,test}.tsv   (k = 0..4)
    <metadata_root>/data/<subset>.tsv                                            (unsplit)
    <root>/<PATH>           e.g. 14/214.mp3 (320 kbps); the "audio-low" mirror names it 14/214.low.mp3

``<subset>`` is ``autotagging`` (all 183 tags kept in the splits), ``autotagging_top50tags``,
``autotagging_genre``, ``autotagging_instrument`` or ``autotagging_moodtheme``. Each TSV is
tab-separated with the header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS`` and one row per
track; the row's 6th and later fields are its tags, one per field, each ``<category>---<tag>`` with
category ``genre``, ``instrument`` or ``mood/theme``::

    track_0000214<TAB>artist_000014<TAB>album_000031<TAB>14/214.mp3<TAB>124.6<TAB>genre---punkrock

``<metadata_root>`` is a clone of the GitHub repository (default: ``root`` itself). Split names map to
the project's: ``validation`` -> ``valid``.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from duotok.data.datasets.decode import probe_duration
from duotok.data.datasets.items import (
    UNSPLIT,
    AudioItem,
    AudioRef,
    Discovery,
    Problem,
    file_problem,
    finish,
    require_dir,
    require_file,
)
from duotok.errors import AudioFileError, DatasetError

HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
#: Tag categories of ``scripts/commons.py`` ``CATEGORIES``.
CATEGORIES = ("genre", "mood/theme", "instrument")
SUBSETS = (
    "autotagging",
    "autotagging_top50tags",
    "autotagging_genre",
    "autotagging_instrument",
    "autotagging_moodtheme",
)
#: Official split file name -> project split name.
SPLIT_FILES = {"train": "train", "validation": "valid", "test": "test"}
LOW_QUALITY_SUFFIX = ".low.mp3"
_IDS = {"TRACK_ID": re.compile(r"track_\d+"), "ARTIST_ID": re.compile(r"artist_\d+"), "ALBUM_ID": re.compile(r"album_\d+")}


def split_files(metadata_root: Path, subset: str, split_index: int | None) -> dict[str, Path]:
    """``{project split: tsv path}`` for ``subset`` in split ``split_index`` (``None``: the unsplit file)."""
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    data = metadata_root / "data"
    if split_index is None:
        return {UNSPLIT: data / f"{subset}.tsv"}
    folder = data / "splits" / f"split-{split_index}"
    return {ours: folder / f"{subset}-{theirs}.tsv" for theirs, ours in SPLIT_FILES.items()}


def discover_jamendo(
    root: str | os.PathLike[str],
    *,
    metadata_root: str | os.PathLike[str] | None = None,
    subset: str = "autotagging",
    split_index: int | None = 0,
    probe: bool = False,
    strict: bool = True,
) -> Discovery:
    """Every track of ``subset``'s official split ``split_index`` (0-4), mixture-only, with its tags.

    Problems (collected, see :mod:`~duotok.data.datasets.items`): a malformed row (wrong column count,
    bad id, path or duration, a tag without a known ``category---``), a track listed twice, a listed
    track whose audio is missing or empty (``PATH``, or its ``.low.mp3`` twin), and with ``probe`` an
    unreadable file. A missing root, metadata file or wrong header raises at once.
    """
    root = require_dir(root, "MTG-Jamendo audio root")
    meta_root = require_dir(root if metadata_root is None else metadata_root, "MTG-Jamendo metadata root")
    found = Discovery("mtg_jamendo", root, [])
    seen: dict[str, Path] = {}
    vocabulary: set[str] = set()
    for split, tsv in split_files(meta_root, subset, split_index).items():
        require_file(tsv, "MTG-Jamendo metadata file")
        for line, row in _rows(tsv):
            item = _parse_row(found, tsv, line, row, root, split, probe)
            if item is None:
                continue
            if item.id in seen:
                found.problems.append(Problem(tsv, f"line {line}: {item.id} is also listed in {seen[item.id]}"))
                continue
            seen[item.id] = tsv
            vocabulary.update(item.tags)
            found.items.append(item)
    found.tags = tuple(sorted(vocabulary))
    return finish(found, strict)


def _rows(tsv: Path) -> list[tuple[int, list[str]]]:
    """Numbered data rows (1-based file line numbers) after checking the header."""
    try:
        with open(tsv, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(tsv, f"cannot read ({exc})") from exc
    if not rows or tuple(rows[0][: len(HEADER)]) != HEADER:
        got = "<TAB>".join(rows[0]) if rows else "an empty file"
        raise DatasetError(tsv, f"expected the tab-separated header {'<TAB>'.join(HEADER)!r}, got {got!r}")
    return [(n, row) for n, row in enumerate(rows[1:], start=2) if row]


def _parse_row(
    found: Discovery, tsv: Path, line: int, row: list[str], root: Path, split: str, probe: bool
) -> AudioItem | None:
    """One TSV row as an item, or ``None`` after recording why it cannot be used."""

    def bad(problem: str) -> None:
        found.problems.append(Problem(tsv, f"line {line}: {problem}"))

    if len(row) < len(HEADER) - 1:
        return bad(f"expected at least {len(HEADER) - 1} tab-separated fields, got {len(row)}")
    for name, value in zip(HEADER[:3], row[:3], strict=True):
        if not _IDS[name].fullmatch(value):
            return bad(f"invalid {name} {value!r}")
    track_id, artist_id, album_id, rel, duration_text, *tags = row
    rel_path = Path(rel)
    if not rel or rel_path.is_absolute() or ".." in rel_path.parts:
        return bad(f"invalid PATH {rel!r}")
    try:
        duration = float(duration_text)
    except ValueError:
        duration = -1.0
    if not duration > 0:
        return bad(f"invalid DURATION {duration_text!r}")
    wrong = [t for t in tags if t.partition("---")[0] not in CATEGORIES or not t.partition("---")[2]]
    if wrong:
        return bad(f"tags not of the form <{'|'.join(CATEGORIES)}>---<tag>: {wrong}")
    path = _audio_path(root, rel)
    problem = file_problem(path)
    if problem:
        found.problems.append(Problem(path, f"{problem} ({track_id}, {tsv.name} line {line})"))
        return None
    if probe:
        try:
            duration = probe_duration(AudioRef(path))
        except AudioFileError as exc:
            found.problems.append(Problem(path, exc.problem))
            return None
    meta = {"artist_id": artist_id, "album_id": album_id}
    return AudioItem(track_id, path, split, duration, tuple(tags), meta=meta)


def _audio_path(root: Path, rel: str) -> Path:
    """``root/PATH``, or its ``.low.mp3`` twin from the low-quality mirror when only that exists."""
    path = root / rel
    if not path.exists() and rel.endswith(".mp3"):
        low = root / (rel[: -len(".mp3")] + LOW_QUALITY_SUFFIX)
        if low.exists():
            return low
    return path
