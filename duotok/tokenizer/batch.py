"""Tokenizing files and folders (what ``duotok encode`` does): every audio file under a folder, a
progress bar, outputs mirrored under the output folder, existing outputs skipped unless asked, and
one bad file reported without stopping the rest."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from duotok.errors import DuotokError
from duotok.tokenizer.model import DuoTok
from duotok.tokenizer.tokens import save_tokens

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass
class EncodeReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)


def audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` (recursively), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def encode_paths(model: DuoTok, source: str | os.PathLike[str], output: str | os.PathLike[str] | None = None,
                 overwrite: bool = False, progress: bool = True) -> EncodeReport:
    """Tokenize ``source`` (a file or a folder) into ``.tok`` files.

    File: written to ``output`` (default: the input path with ``.tok``). Folder: every audio file
    ``<source>/<rel>.<ext>`` goes to ``<output>/<rel>.tok`` (``output`` required)."""
    source = Path(source)
    report = EncodeReport()
    if source.is_file():
        jobs = [(source, Path(output) if output else source.with_suffix(".tok"))]
    elif source.is_dir():
        if output is None:
            raise ValueError(f"{source}: encoding a folder needs an output folder (-o DIR)")
        files = audio_files(source)
        if not files:
            raise ValueError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
        jobs = [(f, Path(output) / f.relative_to(source).with_suffix(".tok")) for f in files]
    else:
        raise FileNotFoundError(f"{source}: no such file or folder")
    for src, dst in tqdm(jobs, desc="encoding", unit="file", disable=not progress or len(jobs) == 1):
        if dst.exists() and not overwrite:
            report.skipped.append(dst)
            continue
        try:
            save_tokens(dst, model.tokenize_file(src))
        except DuotokError as exc:
            if len(jobs) == 1:
                raise
            report.failed[src] = str(exc)
            continue
        report.written.append(dst)
    return report
