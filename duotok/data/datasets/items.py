"""The record type every dataset loader returns, and how loaders report bad data.

Why one record type: a pipeline stage switches dataset by a ``params.yaml`` string, so SSL pretraining,
LM evaluation, the tag probe and separation evaluation must all see the same shape of item whatever
the source. An :class:`AudioItem` is cheap to build — discovery never decodes audio — and carries what
those stages need: a stable id, the split, tags (the probe's labels) and, where the dataset has them,
the stems (separation evaluation).

Why problems are *collected*: a real dataset of 50 000 files with three broken ones should be reported
in one go (all three paths), not one crash per run. Every loader gathers per-file and per-row
:class:`Problem` s in a :class:`Discovery`; with ``strict=True`` (the default) :func:`finish` raises one
:class:`DatasetProblems` listing them all, with ``strict=False`` the caller gets the usable items and
the list to log. Files a loader deliberately leaves out (cover art, a clip without any top-50 tag,
a track outside the chosen split list) go to ``Discovery.skipped`` with the reason, so nothing is ever
dropped silently. Structural problems (missing root, missing metadata file, no items at all) raise at
once: there is nothing useful to return.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from duotok.errors import DatasetError

#: The split of items in datasets without an official split (a plain folder, GTZAN without a split list).
UNSPLIT = "all"
#: How many problems an error message lists before "... and N more".
MAX_LISTED = 20


@dataclass(frozen=True)
class AudioRef:
    """One decodable signal: a file, or one audio stream of a multi-stream container.

    ``stream`` is the index among the file's *audio* streams (ffmpeg's ``-map 0:a:N``), so a cover-art
    video stream never shifts it; ``None`` means the file's only/first audio stream.
    """

    path: Path
    stream: int | None = None

    def __str__(self) -> str:
        return str(self.path) if self.stream is None else f"{self.path} (audio stream {self.stream})"


@dataclass(frozen=True)
class AudioItem:
    """One track or clip of a dataset; no audio decoded.

    - ``id``: unique within the dataset and stable across machines (the dataset's own id where it has
      one: ``track_0000214``, a MagnaTagATune ``clip_id``, ``blues.00000``, a MUSDB track name; a
      folder's relative path otherwise).
    - ``path`` + ``stream``: the mixture. For a MUSDB18-HQ track folder without ``mixture.wav`` (the
      layout allows it) ``path`` is the folder itself and the mixture is the sum of the stems.
    - ``split``: ``train`` / ``valid`` / ``test``, or :data:`UNSPLIT`.
    - ``duration``: seconds, from the metadata or a header probe; ``None`` when unknown (not probed).
    - ``tags``: labels in the dataset's own spelling (``genre---rock``, ``guitar``, ``blues``).
    - ``stems``: ``{"vocals"|"drums"|"bass"|"other": AudioRef}`` or ``None`` for mixture-only data.
    - ``meta``: extra string fields (artist/album ids, ...) useful for artist-disjoint checks.
    """

    id: str
    path: Path
    split: str
    duration: float | None = None
    tags: tuple[str, ...] = ()
    stems: Mapping[str, AudioRef] | None = None
    stream: int | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        # The generated hash would fail on the dict fields; these four identify the signal.
        return hash((self.id, self.path, self.split, self.stream))

    @property
    def mixture(self) -> AudioRef:
        """The mixture as an :class:`AudioRef` (see ``path``/``stream``)."""
        return AudioRef(self.path, self.stream)


@dataclass(frozen=True)
class Problem:
    """A file or metadata row a loader could not use, and why (``path`` names the file to fix)."""

    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class DatasetProblems(DatasetError):
    """Discovery found unusable files or rows; ``problems`` lists every one of them."""

    def __init__(self, root: str | os.PathLike[str], problems: Sequence[Problem], what: str = "problem"):
        self.problems = list(problems)
        super().__init__(root, describe(self.problems, what))


def describe(problems: Sequence[Problem], what: str = "problem") -> str:
    """``"N problem(s):\\n  path: problem\\n  ..."`` — at most :data:`MAX_LISTED` lines, then a count."""
    lines = [f"  {p}" for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more")
    return f"{len(problems)} {what}(s):\n" + "\n".join(lines)


@dataclass
class Discovery:
    """What a loader found: usable ``items``, ``problems`` (unusable data) and ``skipped`` files/rows
    (deliberately left out, with the reason). ``tags`` is the label vocabulary in the dataset's
    canonical order (MagnaTagATune: by count; GTZAN: the 10 genres; empty for untagged data)."""

    name: str
    root: Path
    items: list[AudioItem]
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    tags: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits present, in first-seen order."""
        return tuple(dict.fromkeys(item.split for item in self.items))

    def split(self, *names: str) -> list[AudioItem]:
        """Items of the given splits (all items when none is given); an absent split is an error,
        because an empty evaluation set would otherwise produce a silent NaN downstream."""
        if not names:
            return list(self.items)
        missing = [n for n in names if n not in self.splits]
        if missing:
            raise DatasetError(self.root, f"{self.name}: no items in split(s) {missing} (present: {list(self.splits)})")
        return [item for item in self.items if item.split in names]


def finish(discovery: Discovery, strict: bool) -> Discovery:
    """Raise for an empty dataset always, and for any problem when ``strict``; else return it."""
    if not discovery.items:
        detail = f"; {describe(discovery.problems)}" if discovery.problems else ""
        raise DatasetError(discovery.root, f"{discovery.name}: no usable items found{detail}")
    if strict and discovery.problems:
        raise DatasetProblems(discovery.root, discovery.problems)
    return discovery


def require_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path, or a :class:`DatasetError` saying what was expected there."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(p, f"{what} not found")
    if not p.is_dir():
        raise DatasetError(p, f"{what} is not a directory")
    return p


def require_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path, or a :class:`DatasetError` naming the missing metadata file."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(p, f"{what} not found" if not p.exists() else f"{what} is not a regular file")
    return p


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an audio file (missing, not a file, 0 bytes), from a ``stat`` only —
    cheap enough for every file of a large dataset at discovery time."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "audio file not found"
    except OSError as exc:
        return f"cannot access audio file ({exc})"
    if not path.is_file():
        return "not a regular file"
    if st.st_size == 0:
        return "audio file is empty (0 bytes)"
    return None


def is_hidden(path: Path, root: Path) -> bool:
    """Hidden parts (``.name``) below ``root``: macOS resource forks, VCS folders, in-flight temp files."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def walk_files(root: Path) -> Iterable[Path]:
    """Every regular file below ``root``, sorted by relative path (the same order on every machine)."""
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
