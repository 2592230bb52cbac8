"""GTZAN genre collection: 1000 30-s clips, 100 per genre, 22 050 Hz mono.

Layouts (both read; the folder is found under ``root``)::

    <root>/genres/<genre>/<genre>.000NN.au                   original marsyas archive genres.tar.gz
    <root>/[Data/]genres_original/<genre>/<genre>.000NN.wav  the common wav copy (Kaggle)
    <root>/<genre>/<genre>.000NN.{au,wav}                    root pointing at either folder

as in AudioFans/audidata ``audidata/datasets/gtzan.py`` (``genres/<genre>``). The genre, from the
folder, is the item's single tag; the id is ``<genre>.000NN``. The wav copy is known to hold one
undecodable file (``jazz.00054.wav``): run with ``probe=True`` to report such files at discovery.

Split: GTZAN has no official one. ``split_lists=<dir>`` reads the fault-filtered split of Kereliuk,
Sturm & Larsen (2015) as published in coreyker/dnn-mgr and copied in minzwon/sota-music-tagging-
models ``split/gtzan/{train,valid,test}_filtered.txt`` (lines ``blues/blues.00012.wav``; matched by
``<genre>.000NN`` whatever the extension); clips outside it (repetitions, distortions and
mislabellings the authors filtered out) are ``skipped``. Without it every clip is in :data:`~duotok.data.datasets.items.UNSPLIT`.
"""

from __future__ import annotations

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
    is_hidden,
    require_dir,
    require_file,
    walk_files,
)
from duotok.errors import AudioFileError, DatasetError

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
AUDIO_SUFFIXES = (".au", ".wav")
SPLIT_LIST_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}
_CLIP = re.compile(r"(?P<genre>[a-z]+)\.(?P<number>\d{5})")


def find_genres_dir(root: Path) -> Path:
    """The folder holding the genre folders: ``root`` itself, ``genres``, ``genres_original`` or
    ``Data/genres_original`` below it."""
    for candidate in (root, root / "genres", root / "genres_original", root / "Data" / "genres_original"):
        if any((candidate / g).is_dir() for g in GENRES):
            return candidate
    raise DatasetError(
        root, f"no GTZAN genre folders ({', '.join(GENRES)}) here or under genres/ or [Data/]genres_original/"
    )


def discover_gtzan(
    root: str | os.PathLike[str],
    *,
    split_lists: str | os.PathLike[str] | None = None,
    probe: bool = False,
    strict: bool = True,
) -> Discovery:
    """Every ``<genre>/<genre>.000NN.{au,wav}`` clip, tagged with its genre.

    Problems (collected): a missing genre folder, an audio file whose name is not ``<genre>.000NN``
    of its own folder, a clip present twice (``.au`` and ``.wav``), an empty file, and with ``probe``
    an unreadable one. Non-audio files are ``skipped`` (listed, never silently ignored).
    """
    root = require_dir(root, "GTZAN root")
    genres_dir = find_genres_dir(root)
    listed = _read_split_lists(Path(split_lists)) if split_lists is not None else None
    found = Discovery("gtzan", root, [], tags=GENRES)
    found.problems.extend(Problem(genres_dir / g, "genre folder missing") for g in GENRES if not (genres_dir / g).is_dir())
    seen: dict[str, Path] = {}
    for path in walk_files(genres_dir):
        if is_hidden(path, genres_dir):
            continue
        rel = path.relative_to(genres_dir)
        if path.suffix.lower() not in AUDIO_SUFFIXES or len(rel.parts) != 2 or rel.parts[0] not in GENRES:
            found.skipped.append(Problem(path, "not a <genre>/<genre>.000NN.{au,wav} clip"))
            continue
        genre = rel.parts[0]
        match = _CLIP.fullmatch(path.stem)
        if not match or match["genre"] != genre:
            found.problems.append(Problem(path, f"file name is not {genre}.000NN{path.suffix} (in folder {genre}/)"))
            continue
        clip_id = path.stem
        if clip_id in seen:
            found.problems.append(Problem(path, f"clip {clip_id} is present twice (also {seen[clip_id].name})"))
            continue
        seen[clip_id] = path
        split = UNSPLIT if listed is None else listed.get(clip_id)
        if split is None:
            found.skipped.append(Problem(path, "not in the fault-filtered split lists"))
            continue
        _add_clip(found, path, clip_id, split, genre, probe)
    return finish(found, strict)


def _add_clip(found: Discovery, path: Path, clip_id: str, split: str, genre: str, probe: bool) -> None:
    problem = file_problem(path)
    if problem:
        found.problems.append(Problem(path, problem))
        return
    duration = None
    if probe:
        try:
            duration = probe_duration(AudioRef(path))
        except AudioFileError as exc:
            found.problems.append(Problem(path, exc.problem))
            return
    found.items.append(AudioItem(clip_id, path, split, duration, (genre,)))


def _read_split_lists(folder: Path) -> dict[str, str]:
    """``{"<genre>.000NN": split}`` from the three ``*_filtered.txt`` files."""
    folder = require_dir(folder, "GTZAN split-list folder")
    listed: dict[str, str] = {}
    for split, name in SPLIT_LIST_FILES.items():
        path = require_file(folder / name, "GTZAN split list")
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            stem = Path(entry).name.rsplit(".", 1)[0]
            if not _CLIP.fullmatch(stem) or Path(entry).parent.name != stem.split(".")[0]:
                raise DatasetError(path, f"line {line_no}: expected <genre>/<genre>.000NN.wav, got {entry!r}")
            if stem in listed:
                raise DatasetError(path, f"line {line_no}: {stem} is also listed in {SPLIT_LIST_FILES[listed[stem]]}")
            listed[stem] = split
    return listed
