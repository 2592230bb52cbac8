"""MUSDB18 (``.stem.mp4``) and MUSDB18-HQ (wav folders): the separation evaluation data.

Layouts
-------
MUSDB18, as distributed on Zenodo and read by sigsep's ``musdb`` package::

    <root>/{train,test}/<Artist - Title>.stem.mp4     5 AAC audio streams, 44.1 kHz stereo

Stream order, from ``stem_ids`` in sigsep/sigsep-mus-db ``musdb/configs/mus.yaml``:
0 mixture, 1 drums, 2 bass, 3 other, 4 vocals (:data:`STEM_STREAMS`). The 14 validation tracks of
the ``musdb`` package (``validation_tracks`` in the same file; all in ``train/``) become split
``valid`` with ``validation=True``.

MUSDB18-HQ: ``<root>/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav``, already read by
:func:`duotok.data.stems.discover_songs`; :func:`discover_musdb18hq` only wraps its records as
:class:`AudioItem` s so the registry can offer it. :func:`convert_stem_mp4_to_hq` turns the first
layout into the second, so every existing stem loader of the project reads converted MUSDB18.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from duotok.data.datasets.decode import decode_streams, probe_streams
from duotok.data.datasets.items import (
    AudioItem,
    AudioRef,
    Discovery,
    Problem,
    file_problem,
    finish,
    is_hidden,
    require_dir,
)
from duotok.data.stems import MIXTURE, SOURCES, discover_songs
from duotok.errors import AudioFileError, DatasetError
from duotok.io.files import atomic_path

#: Audio stream index of each signal in a MUSDB18 ``.stem.mp4`` (sigsep-mus-db ``mus.yaml``).
STEM_STREAMS: dict[str, int] = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}
STEM_SUFFIX = ".stem.mp4"
MUSDB_SPLITS = ("train", "test")
#: ``validation_tracks`` of sigsep-mus-db ``musdb/configs/mus.yaml`` (a subset of ``train/``).
VALIDATION_TRACKS = frozenset(
    {
        "Actions - One Minute Smile",
        "Clara Berry And Wooldog - Waltz For My Victims",
        "Johnny Lokke - Promises & Lies",
        "Patrick Talbot - A Reason To Leave",
        "Triviul - Angelsaint",
        "Alexander Ross - Goodbye Bolero",
        "Fergessen - Nos Palpitants",
        "Leaf - Summerghost",
        "Skelpolu - Human Mistakes",
        "Young Griffo - Pennies",
        "ANiMAL - Rockshow",
        "James May - On The Line",
        "Meaxic - Take A Step",
        "Traffic Experiment - Sirens",
    }
)


def _track_split(folder_split: str, track: str, validation: bool) -> str:
    return "valid" if validation and folder_split == "train" and track in VALIDATION_TRACKS else folder_split


def discover_musdb18(
    root: str | os.PathLike[str], *, validation: bool = False, probe: bool = True, strict: bool = True
) -> Discovery:
    """Every ``<root>/{train,test}/*.stem.mp4`` as an item with 4 stems (streams 1-4) and the mixture
    (stream 0). With ``probe`` (default) ffprobe checks each file has 5 audio streams and gives its
    duration; a file with fewer streams, or unreadable, is a problem. Other files in the split folders
    are listed in ``skipped``.
    """
    root = require_dir(root, "MUSDB18 root")
    split_dirs = [(s, root / s) for s in MUSDB_SPLITS if (root / s).is_dir()]
    if not split_dirs:
        raise DatasetError(root, f"no {'/'.join(MUSDB_SPLITS)} folder: not a MUSDB18 (.stem.mp4) root")
    found = Discovery("musdb18", root, [])
    for split, folder in split_dirs:
        for path in sorted(folder.iterdir(), key=lambda p: p.name):
            if is_hidden(path, root):
                continue
            if not path.name.endswith(STEM_SUFFIX):
                found.skipped.append(Problem(path, f"not a {STEM_SUFFIX} file"))
                continue
            _add_track(found, path, split, validation, probe)
    return finish(found, strict)


def _add_track(found: Discovery, path: Path, split: str, validation: bool, probe: bool) -> None:
    bad = file_problem(path)
    if bad:
        found.problems.append(Problem(path, bad))
        return
    duration = None
    if probe:
        try:
            streams = probe_streams(path)
        except AudioFileError as exc:
            found.problems.append(Problem(path, exc.problem))
            return
        if len(streams) < len(STEM_STREAMS):
            found.problems.append(
                Problem(path, f"has {len(streams)} audio stream(s); a MUSDB18 stem file has {len(STEM_STREAMS)}")
            )
            return
        duration = streams[0].duration
    track = path.name[: -len(STEM_SUFFIX)]
    stems = {name: AudioRef(path, STEM_STREAMS[name]) for name in SOURCES}
    found.items.append(
        AudioItem(track, path, _track_split(split, track, validation), duration, stems=stems, stream=0)
    )


def discover_musdb18hq(root: str | os.PathLike[str], *, validation: bool = False, strict: bool = True) -> Discovery:
    """MUSDB18-HQ folders (via :func:`duotok.data.stems.discover_songs`, which raises on a missing
    stem) as items; a track without ``mixture.wav`` has ``path`` = its folder (mixture = stem sum)."""
    root = require_dir(root, "MUSDB18-HQ root")
    items = []
    for record in discover_songs(root, "musdb"):
        mixture = record.file(MIXTURE)
        stems = {name: AudioRef(record.file(name)) for name in SOURCES}
        items.append(
            AudioItem(
                record.id,
                mixture if mixture.is_file() else record.path,
                _track_split(record.split, record.id, validation),
                record.duration,
                stems=stems,
            )
        )
    return finish(Discovery("musdb18hq", root, items), strict)


@dataclass
class ConversionReport:
    """What :func:`convert_stem_mp4_to_hq` did: track folders ``written`` and ``kept`` (complete from
    an earlier run)."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def convert_stem_mp4_to_hq(
    src_root: str | os.PathLike[str], dst_root: str | os.PathLike[str], *, overwrite: bool = False
) -> ConversionReport:
    """Write MUSDB18 ``.stem.mp4`` files as the MUSDB18-HQ layout that
    ``duotok.data.stems.discover_songs(dst_root, "musdb")`` reads::

        <dst_root>/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav   (16-bit PCM)

    Rate and channels are kept (44.1 kHz stereo for real MUSDB18); the AAC streams are decoded to PCM
    by one ffmpeg pass per track, which cuts all five to the shortest stream, so ``load_song``'s
    equal-length check holds. Every file is written to a temp file and renamed (an interrupted run
    never leaves a truncated wav); a track whose five files all exist is kept unless ``overwrite``,
    so a rerun resumes. Any problem in the source (see :func:`discover_musdb18`) raises before
    anything is written. The ``train``/``test`` folders are kept as they are (no validation split).
    """
    dst_root = Path(dst_root)
    report = ConversionReport()
    for item in discover_musdb18(src_root, validation=False, probe=True, strict=True).items:
        folder = dst_root / item.split / item.id
        targets = {name: folder / f"{name}.wav" for name in STEM_STREAMS}
        if not overwrite and all(t.is_file() for t in targets.values()):
            report.kept.append(folder)
            continue
        datas, rate = decode_streams(item.path, list(STEM_STREAMS.values()), "int16")
        _write_track(targets, dict(zip(STEM_STREAMS, datas, strict=True)), rate)
        report.written.append(folder)
    return report


def _write_track(targets: dict[str, Path], signals: dict[str, np.ndarray], rate: int) -> None:
    """Each signal to its wav via a temp file + rename (equal lengths: one amerge pass decoded them)."""
    for name, data in signals.items():
        target = targets[name]
        try:
            with atomic_path(target) as tmp:
                sf.write(str(tmp), data, rate, subtype="PCM_16", format="WAV")
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise AudioFileError(target, f"could not write converted stream ({exc})") from exc
