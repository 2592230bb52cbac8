"""Any folder of audio files (recursive): mixture-only music for SSL pretraining or LM data.

Unlike :func:`duotok.data.mixture.discover_audio_files` (which silently ignores non-audio files), this
loader accounts for every file under the root: audio files become items, anything else (cover art,
playlists, hidden temp files) is listed in ``skipped`` with the reason, and an unusable audio file
(empty; with ``probe``, unreadable) is a problem. Ids are the relative paths *with* the suffix, so
``a.mp3`` and ``a.wav`` never collide. Stems, where a separator has produced them, are attached by
:func:`duotok.data.datasets.separators.attach_stems`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

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
    walk_files,
)
from duotok.errors import AudioFileError

#: Suffixes treated as audio (decoded by libsndfile or, for the rest, ffmpeg).
AUDIO_SUFFIXES = (
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".aif", ".aiff", ".au", ".wma",
)


def discover_folder(
    root: str | os.PathLike[str],
    *,
    extensions: Iterable[str] = AUDIO_SUFFIXES,
    probe: bool = False,
    strict: bool = True,
) -> Discovery:
    """Every audio file below ``root`` (case-insensitive suffix match), sorted by relative path.

    With ``probe`` each file's header is read (libsndfile or ffprobe) for its duration, so a corrupt
    file is reported now rather than mid-training. Raises :class:`~duotok.errors.DatasetError` for a
    missing root or a folder with no usable audio file.
    """
    root = require_dir(root, "audio folder")
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    found = Discovery("folder", root, [])
    for path in walk_files(root):
        if is_hidden(path, root):
            found.skipped.append(Problem(path, "hidden file or folder"))
            continue
        if path.suffix.lower() not in wanted:
            found.skipped.append(Problem(path, f"not an audio suffix ({', '.join(sorted(wanted))})"))
            continue
        problem = file_problem(path)
        if problem:
            found.problems.append(Problem(path, problem))
            continue
        item_id = path.relative_to(root).as_posix()
        duration = None
        if probe:
            try:
                duration = probe_duration(AudioRef(path))
            except AudioFileError as exc:
                found.problems.append(Problem(path, exc.problem))
                continue
        found.items.append(AudioItem(item_id, path, UNSPLIT, duration))
    return finish(found, strict)
