"""Stems for mixture-only data, from an external source separator (Demucs, Open-Unmix, ...).

Why a hook and not a dependency: separation models are large and change; the project only needs
*some* vocals/drums/bass/other for mixture-only music (MTG-Jamendo, a folder), so the separator is
anything that satisfies :class:`StemProvider`. :class:`CommandStemProvider` runs a user-given
command line, e.g. ``demucs -n htdemucs -o {out} {input}``, which needs no Python coupling at all.

Output layout and caching: whatever the separator writes, the stems end up as
``<out_dir>/<stem><suffix>`` (``vocals.wav``, ...). The command runs in a hidden temp folder inside
``out_dir`` and the stems are moved into place only after it succeeded and all of them were found,
so an interrupted run leaves no partial set that a later run would trust; a complete set is reused.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from duotok.data.datasets.items import AudioItem, AudioRef
from duotok.data.stems import SOURCES
from duotok.errors import AudioFileError, ConfigError

_STDERR_TAIL = 600


@runtime_checkable
class StemProvider(Protocol):
    """Anything that separates one mixture file into stems."""

    stems: Sequence[str]

    def separate(self, mixture: Path, out_dir: Path) -> dict[str, Path]:
        """Write (or reuse) the stems of ``mixture`` under ``out_dir``; return ``{stem: path}`` for
        every name in ``stems``. Raise :class:`AudioFileError` naming ``mixture`` on failure."""
        ...


def cached_stems(out_dir: Path, stems: Sequence[str]) -> dict[str, Path] | None:
    """``{stem: out_dir/<stem>.*}`` when exactly one non-empty file exists for every stem, else ``None``."""
    found: dict[str, Path] = {}
    for stem in stems:
        matches = [p for p in out_dir.glob(f"{glob.escape(stem)}.*") if p.is_file() and p.stat().st_size > 0]
        if len(matches) != 1:
            return None
        found[stem] = matches[0]
    return found


@dataclass
class CommandStemProvider:
    """Run ``command`` per mixture; find each stem with ``stems_glob`` below the command's output folder.

    ``command`` is split like a shell line (:func:`shlex.split`, no shell runs) and must contain
    ``{input}`` (the mixture path) and ``{out}`` (a fresh output folder); ``{name}`` is the mixture's
    file name without suffix. ``stems_glob`` is relative to ``{out}`` with ``{name}`` and ``{stem}``
    placeholders; the default fits Demucs (``<out>/<model>/<name>/<stem>.wav``). Each stem must match
    exactly one file.
    """

    command: str
    stems_glob: str = "*/{name}/{stem}.wav"
    stems: Sequence[str] = SOURCES
    timeout: float | None = None

    def __post_init__(self) -> None:
        missing = [p for p in ("{input}", "{out}") if p not in self.command]
        if missing:
            raise ConfigError(f"separator command {self.command!r} lacks the placeholder(s) {missing}")
        if "{stem}" not in self.stems_glob:
            raise ConfigError(f"stems_glob {self.stems_glob!r} lacks the {{stem}} placeholder")
        if not shlex.split(self.command):
            raise ConfigError("separator command is empty")

    def argv(self, mixture: Path, out: Path) -> list[str]:
        """The command's arguments for one mixture (placeholders replaced token by token, so paths
        with spaces stay one argument)."""
        values = {"{input}": str(mixture), "{out}": str(out), "{name}": mixture.stem}
        args = []
        for token in shlex.split(self.command):
            for key, value in values.items():
                token = token.replace(key, value)
            args.append(token)
        return args

    def separate(self, mixture: Path, out_dir: Path) -> dict[str, Path]:
        mixture, out_dir = Path(mixture), Path(out_dir)
        cached = cached_stems(out_dir, self.stems)
        if cached is not None:
            return cached
        if not mixture.is_file():
            raise AudioFileError(mixture, "mixture file not found; cannot separate it")
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".separating-"))
        try:
            self._run(mixture, work)
            located = self._locate(mixture, work)
            return {stem: _move(src, out_dir / f"{stem}{src.suffix.lower()}") for stem, src in located.items()}
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, mixture: Path, work: Path) -> None:
        args = self.argv(mixture, work)
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise AudioFileError(mixture, f"separator program {args[0]!r} not found") from exc
        except subprocess.TimeoutExpired as exc:
            raise AudioFileError(mixture, f"separator timed out after {self.timeout} s") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-_STDERR_TAIL:]
            raise AudioFileError(mixture, f"separator {shlex.join(args)!r} failed (exit {proc.returncode}): {tail}")

    def _locate(self, mixture: Path, work: Path) -> dict[str, Path]:
        located: dict[str, Path] = {}
        for stem in self.stems:
            pattern = self.stems_glob.replace("{name}", glob.escape(mixture.stem)).replace("{stem}", glob.escape(stem))
            matches = sorted(p for p in work.glob(pattern) if p.is_file())
            if len(matches) != 1:
                written = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
                raise AudioFileError(
                    mixture,
                    f"separator output: {len(matches)} file(s) match {pattern!r} for stem {stem!r}; "
                    f"it wrote {written[:20]}",
                )
            located[stem] = matches[0]
        return located


def _move(src: Path, dst: Path) -> Path:
    """``os.replace`` within one file system (the temp folder lives inside ``out_dir``)."""
    os.replace(src, dst)
    return dst


def stems_dir_for(item: AudioItem, stems_root: Path) -> Path:
    """``stems_root/<item id>``; ids are relative paths or plain names, never escaping the root."""
    rel = PurePosixPath(item.id)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"item id {item.id!r} cannot name a folder below {stems_root}")
    return stems_root.joinpath(*rel.parts)


def attach_stems(
    items: Iterable[AudioItem], provider: StemProvider, stems_root: str | os.PathLike[str]
) -> list[AudioItem]:
    """Items with ``stems`` filled in: kept as they are when they already have stems, else separated
    by ``provider`` into ``stems_root/<item id>/`` (reused when complete). A failing separation raises
    :class:`AudioFileError` naming the mixture — an item is never silently left without stems."""
    out: list[AudioItem] = []
    for item in items:
        if item.stems is not None:
            out.append(item)
            continue
        paths: Mapping[str, Path] = provider.separate(Path(item.path), stems_dir_for(item, Path(stems_root)))
        missing = [s for s in provider.stems if s not in paths]
        if missing:
            raise AudioFileError(item.path, f"separator returned no {missing} stem(s)")
        out.append(replace(item, stems={s: AudioRef(Path(p)) for s, p in paths.items()}))
    return out
