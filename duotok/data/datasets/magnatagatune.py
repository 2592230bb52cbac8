"""MagnaTagATune (MTT): 25 863 clips of ~29 s with 188 binary tags; the top-50 tagging benchmark.

Layout (the MIREX/City archive ``mp3.zip.00{1,2,3}`` + ``annotations_final.csv``)::

    <root>/annotations_final.csv
    <audio_dir>/{0,1,...,9,a,...,f}/<artist>-<album>-<nn>-<title>-<start>-<end>.mp3

``annotations_final.csv`` is *tab*-separated despite its name, every field double-quoted: a header
``"clip_id" "<tag 1>" ... "<tag 188>" "mp3_path"``, then one row per clip with 0/1 per tag and the
path relative to the audio folder (``f/american_bach_soloists-...-30-59.mp3``); read with ``sep="\\t"``
as in AudioFans/audidata ``audidata/datasets/magnatagatune.py`` and others. ``<audio_dir>`` defaults to
``root`` (or ``root/mp3`` when the folders are there).

Top-50: the 50 tag columns with the most positive clips over the whole file (ties: column order), as
in minzwon/sota-music-tagging-models (``split/mtat/README.md``: "most frequently labeled 50 tags",
clips with none of them removed) — clips without any kept tag are ``skipped`` unless
``drop_untagged=False``.

Splits: ``split="folders"`` (default) is the 16-folder convention of Dieleman & Schrauwen (2014):
folders 0-b train, c valid, d-f test (audidata's docstring: "parts 1-12 for training, part 13 for
validation and parts 14-16 for testing"). ``split_lists=<dir>`` reads instead the published
``{train,valid,test}.npy`` of sota-music-tagging-models ``split/mtat/`` (arrays of
``"<index>\\t<mp3_path>"``); clips in no list are ``skipped``. ``split="none"`` puts every clip in
:data:`~duotok.data.datasets.items.UNSPLIT`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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

ANNOTATIONS = "annotations_final.csv"
FOLDERS = tuple("0123456789abcdef")
#: Folder -> split of the Dieleman & Schrauwen (2014) convention.
FOLDER_SPLIT = {**dict.fromkeys(FOLDERS[:12], "train"), "c": "valid", **dict.fromkeys("def", "test")}
SPLIT_LIST_FILES = {"train": "train.npy", "valid": "valid.npy", "test": "test.npy"}


def top_tags(tag_names: Sequence[str], counts: Sequence[int], k: int | None) -> tuple[str, ...]:
    """The ``k`` most frequent tags (ties keep column order); all of them, in column order, for ``None``."""
    if k is None:
        return tuple(tag_names)
    if k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {k}")
    order = sorted(range(len(tag_names)), key=lambda i: (-counts[i], i))
    return tuple(tag_names[i] for i in order[:k])


def discover_magnatagatune(
    root: str | os.PathLike[str],
    *,
    audio_dir: str | os.PathLike[str] | None = None,
    top_k: int | None = 50,
    drop_untagged: bool = True,
    split: str = "folders",
    split_lists: str | os.PathLike[str] | None = None,
    probe: bool = False,
    strict: bool = True,
) -> Discovery:
    """Every clip of ``annotations_final.csv`` with its top-``top_k`` tags and split.

    Problems (collected): a row with the wrong field count, a non-integer or repeated ``clip_id``, a
    tag value other than 0/1, an ``mp3_path`` outside the 16 folders, a listed clip whose mp3 is
    missing or empty (the real archive has a few 0-byte clips), and with ``probe`` an unreadable mp3.
    """
    root = require_dir(root, "MagnaTagATune root")
    csv_path = require_file(root / ANNOTATIONS, "MagnaTagATune annotations file")
    audio_root = _audio_root(root) if audio_dir is None else require_dir(audio_dir, "MagnaTagATune audio folder")
    if split not in ("folders", "none"):
        raise ValueError(f"split must be 'folders' or 'none', got {split!r}")
    found = Discovery("magnatagatune", root, [])
    tag_names, rows = _read_annotations(csv_path, found)
    counts = np.sum([labels for _, _, labels, _ in rows], axis=0) if rows else np.zeros(len(tag_names), int)
    found.tags = top_tags(tag_names, [int(c) for c in counts], top_k)
    listed = _read_split_lists(Path(split_lists)) if split_lists is not None else None
    column = {name: i for i, name in enumerate(tag_names)}
    for line, clip_id, labels, rel in rows:
        tags = tuple(t for t in found.tags if labels[column[t]])
        path = audio_root / rel
        if drop_untagged and not tags:
            found.skipped.append(Problem(path, f"clip {clip_id} has none of the {len(found.tags)} kept tags"))
            continue
        clip_split = _clip_split(rel, split, listed)
        if clip_split is None:
            found.skipped.append(Problem(path, f"clip {clip_id} is in none of the split lists"))
            continue
        problem = file_problem(path)
        if problem:
            found.problems.append(Problem(path, f"{problem} (clip {clip_id}, {ANNOTATIONS} line {line})"))
            continue
        duration = None
        if probe:
            try:
                duration = probe_duration(AudioRef(path))
            except AudioFileError as exc:
                found.problems.append(Problem(path, exc.problem))
                continue
        found.items.append(AudioItem(clip_id, path, clip_split, duration, tags))
    return finish(found, strict)


def _clip_split(rel: str, split: str, listed: dict[str, str] | None) -> str | None:
    """The clip's split: from the published lists when given (``None``: not listed), else by folder."""
    if listed is not None:
        return listed.get(rel)
    return FOLDER_SPLIT[rel.split("/")[0]] if split == "folders" else UNSPLIT


def _audio_root(root: Path) -> Path:
    """``root`` or ``root/mp3``, whichever holds the 16 clip folders (``root`` when neither does, so
    every clip is then reported missing under the path the user gave)."""
    for candidate in (root, root / "mp3"):
        if any((candidate / f).is_dir() for f in FOLDERS):
            return candidate
    return root


def _read_annotations(
    csv_path: Path, found: Discovery
) -> tuple[list[str], list[tuple[int, str, list[int], str]]]:
    """Tag names and the valid rows ``(line, clip_id, 0/1 labels, mp3_path)``; bad rows become problems."""
    try:
        with open(csv_path, encoding="utf-8", newline="") as fh:
            table = list(csv.reader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(csv_path, f"cannot read ({exc})") from exc
    if not table or len(table[0]) < 3 or table[0][0] != "clip_id" or table[0][-1] != "mp3_path":
        head = table[0][:3] if table else "an empty file"
        raise DatasetError(
            csv_path, f'expected a tab-separated header "clip_id", <tags...>, "mp3_path"; got {head!r} ...'
        )
    tag_names = table[0][1:-1]
    duplicates = sorted({t for t in tag_names if tag_names.count(t) > 1})
    if duplicates:
        raise DatasetError(csv_path, f"tag columns appear twice: {duplicates}")
    rows: list[tuple[int, str, list[int], str]] = []
    seen: set[str] = set()
    for line, row in enumerate(table[1:], start=2):
        if not row:
            continue
        problem, parsed = _parse_row(row, len(table[0]), seen)
        if problem:
            found.problems.append(Problem(csv_path, f"line {line}: {problem}"))
            continue
        clip_id, labels, rel = parsed
        seen.add(clip_id)
        rows.append((line, clip_id, labels, rel))
    return tag_names, rows


def _parse_row(row: list[str], width: int, seen: set[str]) -> tuple[str | None, tuple[str, list[int], str]]:
    empty: tuple[str, list[int], str] = ("", [], "")
    if len(row) != width:
        return f"expected {width} tab-separated fields, got {len(row)}", empty
    clip_id, values, rel = row[0], row[1:-1], row[-1]
    if not clip_id.isdigit():
        return f"invalid clip_id {clip_id!r}", empty
    if clip_id in seen:
        return f"clip_id {clip_id} is listed twice", empty
    wrong = sorted({v for v in values if v not in ("0", "1")})
    if wrong:
        return f"tag values must be 0 or 1, got {wrong}", empty
    parts = rel.split("/")
    if len(parts) != 2 or parts[0] not in FOLDERS or not parts[1].endswith(".mp3"):
        return f"mp3_path {rel!r} is not <0-f>/<name>.mp3", empty
    return None, (clip_id, [int(v) for v in values], rel)


def _read_split_lists(folder: Path) -> dict[str, str]:
    """``{mp3_path: split}`` from sota-music-tagging-models' ``{train,valid,test}.npy``."""
    folder = require_dir(folder, "MagnaTagATune split-list folder")
    listed: dict[str, str] = {}
    for split, name in SPLIT_LIST_FILES.items():
        path = require_file(folder / name, "MagnaTagATune split list")
        try:
            entries = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(path, f"not a numpy array of strings ({exc})") from exc
        for entry in entries.reshape(-1).tolist():
            rel = str(entry).split("\t")[-1]
            if rel in listed:
                raise DatasetError(path, f"{rel} is also listed in {SPLIT_LIST_FILES[listed[rel]]}")
            listed[rel] = split
    return listed
