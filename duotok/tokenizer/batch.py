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


#: The files ``decode_paths`` writes per token file.
DECODED_TRACKS = ("vocal", "accompaniment", "mixture")


def decode_paths(model: DuoTok, source: str | os.PathLike[str], output: str | os.PathLike[str],
                 overwrite: bool = False, progress: bool = True, **decode_kwargs) -> EncodeReport:
    """Render ``.tok`` files (one, or every one under a folder) back to audio.

    ``<source>/<rel>.tok`` → ``<output>/<rel>/{vocal,accompaniment,mixture}.wav`` (16-bit WAV at the
    model's rate, each written atomically). ``decode_kwargs`` go to :meth:`DuoTok.decode` (steps,
    cfg_scale, seed). A song whose three files all exist is skipped unless ``overwrite``."""
    from duotok.audio.io import save_audio

    source, output = Path(source), Path(output)
    report = EncodeReport()
    if source.is_file():
        jobs = [(source, output / source.stem)]
    elif source.is_dir():
        files = sorted(p for p in source.rglob("*.tok") if p.is_file())
        if not files:
            raise ValueError(f"{source}: no .tok files found")
        jobs = [(f, output / f.relative_to(source).with_suffix("")) for f in files]
    else:
        raise FileNotFoundError(f"{source}: no such file or folder")
    for src, folder in tqdm(jobs, desc="decoding", unit="file", disable=not progress or len(jobs) == 1):
        targets = [folder / f"{name}.wav" for name in DECODED_TRACKS]
        if all(t.exists() for t in targets) and not overwrite:
            report.skipped.append(folder)
            continue
        try:
            tokens = model.load_tokens(src)
            tracks = model.decode(tokens.vocal, tokens.accompaniment, num_samples=tokens.num_samples,
                                  **decode_kwargs)
        except DuotokError as exc:
            if len(jobs) == 1:
                raise
            report.failed[src] = str(exc)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for target, audio in zip(targets, tracks, strict=True):
            save_audio(target, audio.numpy(), model.sample_rate)
        report.written.append(folder)
    return report
