"""Separating files and folders into four stems (what ``duotok separate`` does), the way
:mod:`duotok.tokenizer.batch` encodes them.

A job is planned first (:func:`plan_separate`: which inputs, which song folders — no model needed),
the output is prepared (:func:`prepare_separate`: checked writable, stale temp files of an
interrupted run removed), then run (:func:`run_separate`).

Layout: a song ``<input>/<rel>/<name>.<ext>`` goes to ``<output>/<rel>/<name>/{vocals,drums,bass,other}.wav``
(one file: ``<output>/<name>/...``); inputs of one folder sharing a name (``song.wav``, ``song.flac``)
go to ``song.wav/`` and ``song.flac/`` instead, and the renaming is reported — exactly the rule of
``duotok encode`` (:func:`duotok.tokenizer.batch.token_outputs`). Hidden files and folders are
skipped, and so are stems this command wrote earlier when ``-o`` lies inside the input folder, so a
rerun never separates its own output.

Audio is read as ``duotok encode`` reads it (:func:`duotok.audio.stream.stream_audio`, the reader of
``DuoTok.tokenize_file``): integer PCM becomes float in [-1, 1], another sample rate is *resampled*
to the separator's (not refused: these are users' songs, not corpus files), several channels are
averaged to mono; each conversion is a note in the report naming the file. Corrupt, empty and
NaN/inf files fail with the reason. Stems are 16-bit WAVs at the separator's sample rate, each
written atomically (temp file beside it, then a rename; permissions as a plain ``open`` gives them).

Existing stems are never replaced unless ``overwrite``: a song whose four stems exist is skipped; a
song with only some (a run killed between two writes) is separated again and only the missing
stems are written, with a note."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from duotok.audio.io import save_audio
from duotok.audio.stream import stream_audio
from duotok.errors import DuotokError
from duotok.io.files import check_writable, remove_stale_temp_files
from duotok.separation.base import DEFAULT_CHUNK_SECONDS, DEFAULT_OVERLAP_SECONDS, STEMS, Separator
from duotok.separation.chunking import chunk_geometry, separate_long
from duotok.tokenizer.batch import AUDIO_SUFFIXES, audio_files, input_problem, token_outputs

#: What one bad file of a folder job raises; it is reported and the job goes on (as ``duotok encode``).
_PER_FILE_ERRORS = (DuotokError, ValueError, OSError)

#: Samples read per block; the blocks are joined, so this bounds only the decoder's working memory.
_READ_BLOCK = 1 << 20


@dataclass
class SeparatePlan:
    """Inputs and outputs of one job. ``jobs``: (audio file, its song folder); ``output_dir``: the
    folder checked for writability; ``ignored``: files under the input folder that are stems of this
    command's own output (never inputs)."""

    source: Path
    output_dir: Path
    jobs: list[tuple[Path, Path]]
    folder: bool
    renamed: dict[Path, Path] = field(default_factory=dict)
    ignored: list[Path] = field(default_factory=list)

    def pending(self, overwrite: bool = False) -> list[tuple[Path, Path]]:
        """The jobs that would write (the others have all four stems, which are kept)."""
        return [(src, dst) for src, dst in self.jobs if overwrite or missing_stems(dst)]


@dataclass
class SeparateReport:
    """What a job did: song folders ``written`` / ``skipped`` (all four stems existed), ``failed``
    (input → message naming it), ``notes`` (input → conversions and other things worth telling)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)
    notes: dict[Path, list[str]] = field(default_factory=dict)
    renamed: dict[Path, Path] = field(default_factory=dict)
    removed_temp: list[Path] = field(default_factory=list)


def stem_paths(song_dir: Path) -> dict[str, Path]:
    """``{stem: <song_dir>/<stem>.wav}`` in :data:`STEMS` order."""
    return {stem: Path(song_dir) / f"{stem}.wav" for stem in STEMS}


def missing_stems(song_dir: Path) -> list[str]:
    return [stem for stem, path in stem_paths(song_dir).items() if not path.exists()]


def _song_dirs(files: list[Path], source: Path, output: Path) -> tuple[dict[Path, Path], dict[Path, Path]]:
    """Song folder of each input (``token_outputs``' ``<name>.tok`` without the ``.tok``), and the
    renamed subset."""
    outputs, renamed = token_outputs(files, source, output)
    strip = {f: o.with_name(o.name[: -len(".tok")]) for f, o in outputs.items()}
    return strip, {f: strip[f] for f in renamed}


def _own_output(files: list[Path], source: Path, output: Path) -> list[Path]:
    """Files that are this command's stems rather than songs: everything under ``output`` when it is
    a folder strictly inside ``source``; when ``output`` *is* ``source``, the ``<stem>.wav`` files of
    the songs' folders."""
    src, out = source.resolve(), output.resolve()
    if out != src and out.is_relative_to(src):
        return [f for f in files if f.resolve().is_relative_to(out)]
    if out == src:
        dirs = set(_song_dirs(files, source, source)[0].values())     # ``output`` may be spelled differently
        names = {f"{stem}.wav" for stem in STEMS}
        return [f for f in files if f.parent in dirs and f.name in names]
    return []


def plan_separate(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> SeparatePlan:
    """File: its stems go to ``<output>/<name>/``. Folder: every audio file below it (recursively,
    hidden ones skipped) to ``<output>/<rel>/<name>/`` (see the module docstring)."""
    source, output = Path(source), Path(output)
    if source.is_file():
        return SeparatePlan(source, output, [(source, output / source.stem)], folder=False)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such file or folder")
    files = audio_files(source)
    ignored = _own_output(files, source, output)
    skip = set(ignored)
    files = [f for f in files if f not in skip]
    if not files:
        raise ValueError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found"
                         + (f" besides {len(ignored)} stem file(s) of an earlier run" if ignored else ""))
    dirs, renamed = _song_dirs(files, source, output)
    return SeparatePlan(source, output, [(f, dirs[f]) for f in files], folder=True, renamed=renamed,
                        ignored=ignored)


def prepare_separate(plan: SeparatePlan, overwrite: bool = False) -> list[Path]:
    """Before any model work: delete the stale temp files an interrupted run left (the whole output
    folder for a folder job, the song's own folder for a single file — never a folder the user merely
    named as ``-o``), and, if anything is to be written, check the output folder is writable
    (:class:`~duotok.io.files.OutputLocationError`, a ``ValueError`` naming it, otherwise). Returns
    the removed temp files."""
    where = plan.output_dir if plan.folder else plan.jobs[0][1]
    removed = remove_stale_temp_files(where)
    if plan.pending(overwrite):
        check_writable(plan.output_dir)
    return removed


def resolve_chunking(separator: Separator, chunk_seconds: float | None = None,
                     overlap_seconds: float | None = None) -> tuple[float, float]:
    """The chunk and overlap to use, checked against the separator's sample rate. Defaults: the
    separator's own ``chunk_seconds`` (its training crop) or :data:`DEFAULT_CHUNK_SECONDS`, and an
    overlap of :data:`DEFAULT_OVERLAP_SECONDS` or a quarter chunk if that is shorter (whole samples)."""
    rate = int(separator.sample_rate)
    if chunk_seconds is None:
        chunk_seconds = float(getattr(separator, "chunk_seconds", DEFAULT_CHUNK_SECONDS))
    if overlap_seconds is None:
        chunk, _ = chunk_geometry(rate, chunk_seconds, 0.0)
        overlap_seconds = min(round(DEFAULT_OVERLAP_SECONDS * rate), chunk // 4) / rate
    chunk_geometry(rate, chunk_seconds, overlap_seconds)
    return chunk_seconds, overlap_seconds


def read_mixture(path: Path, sample_rate: int) -> np.ndarray:
    """The mono float32 mixture of ``path`` at ``sample_rate``, read like ``duotok encode`` reads it
    (resampled and downmixed, each with a warning naming the file)."""
    blocks = list(stream_audio(path, sample_rate, _READ_BLOCK, on_rate_mismatch="resample",
                               on_multichannel="downmix"))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def separate_file(separator: Separator, src: Path, song_dir: Path, overwrite: bool, chunk_seconds: float,
                  overlap_seconds: float, fade: str = "hann") -> list[str]:
    """Separate one song into ``song_dir`` (only its missing stems unless ``overwrite``); returns the
    notes (conversions, clipping, stems kept)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mixture = torch.from_numpy(read_mixture(src, separator.sample_rate))
        stems = separate_long(separator, mixture, chunk_seconds, overlap_seconds, fade)
        del mixture
        todo = list(STEMS) if overwrite else missing_stems(song_dir)
        paths = stem_paths(song_dir)
        for stem in todo:
            save_audio(paths[stem], stems[stem].numpy(), separator.sample_rate)
    notes = [str(w.message) for w in caught]
    kept = [f"{s}.wav" for s in STEMS if s not in todo]
    if kept:
        notes.append(f"{song_dir}: kept the existing {', '.join(kept)} and wrote only the missing stems "
                     f"(--overwrite to replace them all)")
    return notes


def run_separate(separator: Separator, plan: SeparatePlan, overwrite: bool = False, progress: bool = True,
                 chunk_seconds: float | None = None, overlap_seconds: float | None = None,
                 fade: str = "hann") -> SeparateReport:
    """Separate every input of ``plan`` (see the module docstring); ``chunk_seconds`` /
    ``overlap_seconds`` default as :func:`resolve_chunking` says. A folder job shows a progress bar
    (``progress``) and reports a bad file in ``failed`` and goes on; a single-file job raises. The
    chunking and the output folder are checked before the first song, so a bad value fails once."""
    chunk_seconds, overlap_seconds = resolve_chunking(separator, chunk_seconds, overlap_seconds)
    if plan.pending(overwrite):
        check_writable(plan.output_dir)
    report = SeparateReport(renamed=dict(plan.renamed))
    for src, dst in tqdm(plan.jobs, desc="separating", unit="song", disable=not progress or not plan.folder):
        if not overwrite and not missing_stems(dst):
            report.skipped.append(dst)
            continue
        try:
            notes = separate_file(separator, src, dst, overwrite, chunk_seconds, overlap_seconds, fade)
        except _PER_FILE_ERRORS as exc:
            if not plan.folder:
                raise
            report.failed[src] = input_problem(src, exc)
            continue
        if notes:
            report.notes[src] = notes
        report.written.append(dst)
    return report
