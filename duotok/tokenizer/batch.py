"""Tokenizing and decoding files and folders (what ``duotok encode`` / ``duotok decode`` do).

A job is planned first (:func:`plan_encode` / :func:`plan_decode`: which inputs, which outputs —
no model needed), the output location is prepared (:func:`prepare_output`: checked writable, stale
temp files of an interrupted run removed), then run (:func:`run_encode` / :func:`run_decode`).
:func:`encode_paths` / :func:`decode_paths` do all three.

Folder jobs: every audio (``.tok``) file below the folder, hidden files and files inside hidden
folders skipped (editor droppings, macOS ``._*`` forks, temp files of an interrupted write), outputs
mirrored under the output folder, existing outputs skipped unless asked, a progress bar, and a bad
file reported by name without stopping the others. Inputs of one folder that share a stem
(``song.wav``, ``song.flac``) would map to the same ``song.tok``: each of them is written to
``<stem><ext>.tok`` instead (``song.wav.tok``, ``song.flac.tok``; decoded to ``song.wav/``), and the
renaming is reported."""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from duotok.errors import DuotokError
from duotok.io.files import check_writable, remove_stale_temp_files
from duotok.tokenizer.model import DuoTok
from duotok.tokenizer.tokens import save_tokens

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

#: The files ``decode_paths`` writes per token file.
DECODED_TRACKS = ("vocal", "accompaniment", "mixture")

#: What one bad file of a folder job raises; it is reported and the job goes on.
_PER_FILE_ERRORS = (DuotokError, ValueError, OSError)


@dataclass
class EncodeReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)         # input → message naming it
    renamed: dict[Path, Path] = field(default_factory=dict)       # input → its ``<stem><ext>.tok`` output
    removed_temp: list[Path] = field(default_factory=list)        # stale temp files deleted first


@dataclass
class Plan:
    """Inputs and outputs of one encode / decode job. ``jobs``: (input, output) pairs — an output
    ``.tok`` file (encode) or the folder of the decoded WAVs (decode); ``output_dir``: the folder they
    go under (the one checked for writability)."""

    kind: str
    source: Path
    output_dir: Path
    jobs: list[tuple[Path, Path]]
    folder: bool
    renamed: dict[Path, Path] = field(default_factory=dict)

    def pending(self, overwrite: bool = False) -> list[tuple[Path, Path]]:
        """The jobs that would write (the others' outputs exist and are kept)."""
        return [(src, dst) for src, dst in self.jobs if overwrite or not _outputs_exist(self.kind, dst)]


def _outputs_exist(kind: str, dst: Path) -> bool:
    if kind == "encode":
        return dst.exists()
    return all((dst / f"{name}.wav").exists() for name in DECODED_TRACKS)


def _visible_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files below ``folder`` with one of ``suffixes`` (any case), none hidden nor inside a hidden
    folder (relative to ``folder``), sorted."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in suffixes and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` (recursively, hidden ones skipped), sorted."""
    return _visible_files(Path(folder), AUDIO_SUFFIXES)


def token_outputs(files: list[Path], source: Path, output: Path) -> tuple[dict[Path, Path], dict[Path, Path]]:
    """Output ``.tok`` path of each audio file: ``<output>/<rel>/<stem>.tok``, except that inputs of one
    folder that would share an output (same stem, compared case-insensitively since some file systems
    are) get ``<stem><ext>.tok``. Returns (outputs, the renamed subset)."""
    full_name = set()
    while True:
        names = {f: f.name if f in full_name else f.stem for f in files}
        groups = defaultdict(list)
        for f in files:
            groups[(f.parent, names[f].casefold())].append(f)
        clashing = {f for group in groups.values() if len(group) > 1 for f in group if f not in full_name}
        if not clashing:
            break
        full_name |= clashing       # full names are unique within a folder, so this terminates
    outputs = {f: output / f.relative_to(source).parent / f"{names[f]}.tok" for f in files}
    return outputs, {f: outputs[f] for f in files if f in full_name}


def plan_encode(source: str | os.PathLike[str], output: str | os.PathLike[str] | None = None) -> Plan:
    """File: written to ``output`` (default: the input path with ``.tok``; an existing folder: inside
    it). Folder: every audio file ``<source>/<rel>/<stem>.<ext>`` goes to ``<output>/<rel>/<stem>.tok``
    (``output`` required; see :func:`token_outputs` for inputs sharing a stem)."""
    source = Path(source)
    if source.is_file():
        if output is None:
            dst = source.with_suffix(".tok")
        else:
            dst = Path(output)
            if dst.is_dir() or str(output).endswith(("/", os.sep)):
                dst = dst / f"{source.stem}.tok"
        return Plan("encode", source, dst.parent, [(source, dst)], folder=False)
    if source.is_dir():
        if output is None:
            raise ValueError(f"{source}: encoding a folder needs an output folder (-o DIR)")
        files = audio_files(source)
        if not files:
            raise ValueError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
        outputs, renamed = token_outputs(files, source, Path(output))
        return Plan("encode", source, Path(output), [(f, outputs[f]) for f in files], folder=True, renamed=renamed)
    raise FileNotFoundError(f"{source}: no such file or folder")


def plan_decode(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> Plan:
    """``<source>/<rel>/<name>.tok`` → ``<output>/<rel>/<name>/{vocal,accompaniment,mixture}.wav``
    (a single file: ``<output>/<name>/...``; ``song.wav.tok`` → ``song.wav/``)."""
    source, output = Path(source), Path(output)
    if source.is_file():
        return Plan("decode", source, output, [(source, output / source.stem)], folder=False)
    if source.is_dir():
        files = _visible_files(source, (".tok",))
        if not files:
            raise ValueError(f"{source}: no .tok files found")
        return Plan("decode", source, output, [(f, output / f.relative_to(source).with_suffix("")) for f in files],
                    folder=True)
    raise FileNotFoundError(f"{source}: no such file or folder")


def prepare_output(plan: Plan, overwrite: bool = False) -> list[Path]:
    """Before any model work: for a folder job, delete the stale temp files an interrupted run left in
    the output folder (returned); if anything is to be written, check the output folder is writable
    (:class:`~duotok.io.files.OutputLocationError` otherwise)."""
    removed = remove_stale_temp_files(plan.output_dir) if plan.folder else []
    if plan.pending(overwrite):
        check_writable(plan.output_dir)
    return removed


def input_problem(src: Path, exc: BaseException) -> str:
    """The message of a failed input of a folder job, starting with its path (shared by ``duotok
    encode`` / ``decode`` and ``duotok separate``)."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return message if str(src) in message else f"{src}: {message}"


def print_report(report: EncodeReport | Any, n_jobs: int, done: str, wrote: Callable[[Path], str]) -> int:
    """Print what a folder / file job did — outputs written, kept, notes, every failed input — and
    return its exit code (1 if any input failed). One summary for ``duotok encode`` / ``decode`` and
    ``duotok separate``, so a user reads the same lines whichever job they ran. ``done`` is the past
    tense of the job ("encoded"); ``wrote(path)`` the line of one written output."""
    for path in report.written:
        print(wrote(path))
    if report.skipped:
        print(f"skipped {len(report.skipped)} existing output(s) (--overwrite to redo)")
    for notes in getattr(report, "notes", {}).values():
        for note in notes:
            print(f"duotok: note: {note}", file=sys.stderr)
    for problem in report.failed.values():
        print(f"duotok: error: {problem}", file=sys.stderr)
    if report.failed:
        print(f"duotok: error: {len(report.failed)} of {n_jobs} file(s) failed (listed above); the other "
              f"{n_jobs - len(report.failed)} were {done} or kept", file=sys.stderr)
        return 1
    return 0


def _run(plan: Plan, overwrite: bool, progress: bool, work) -> EncodeReport:
    report = EncodeReport(renamed=dict(plan.renamed))
    desc = "encoding" if plan.kind == "encode" else "decoding"
    for src, dst in tqdm(plan.jobs, desc=desc, unit="file", disable=not progress or not plan.folder):
        if not overwrite and _outputs_exist(plan.kind, dst):
            report.skipped.append(dst)
            continue
        try:
            work(src, dst)
        except _PER_FILE_ERRORS as exc:
            if not plan.folder:
                raise
            report.failed[src] = input_problem(src, exc)
            continue
        report.written.append(dst)
    return report


def run_encode(model: DuoTok, plan: Plan, overwrite: bool = False, progress: bool = True) -> EncodeReport:
    return _run(plan, overwrite, progress, lambda src, dst: save_tokens(dst, model.tokenize_file(src)))


def run_decode(model: DuoTok, plan: Plan, overwrite: bool = False, progress: bool = True,
               **decode_kwargs) -> EncodeReport:
    """``decode_kwargs`` go to :meth:`DuoTok.decode` (steps, cfg_scale, seed)."""
    from duotok.audio.io import save_audio

    if model.decoder is None:
        raise RuntimeError("this DuoTok has no decoder (a stage-3 tokenizer); load the complete codec "
                           "(models/codec, written by the `decoder` stage) to decode")

    def work(src: Path, folder: Path) -> None:
        tokens = model.load_tokens(src)
        tracks = model.decode(tokens.vocal, tokens.accompaniment, num_samples=tokens.num_samples, **decode_kwargs)
        for name, audio in zip(DECODED_TRACKS, tracks, strict=True):
            save_audio(folder / f"{name}.wav", audio.numpy(), model.sample_rate)

    return _run(plan, overwrite, progress, work)


def encode_paths(model: DuoTok, source: str | os.PathLike[str], output: str | os.PathLike[str] | None = None,
                 overwrite: bool = False, progress: bool = True) -> EncodeReport:
    """Tokenize ``source`` (a file or a folder) into ``.tok`` files (see :func:`plan_encode`)."""
    plan = plan_encode(source, output)
    removed = prepare_output(plan, overwrite)
    report = run_encode(model, plan, overwrite, progress)
    report.removed_temp = removed
    return report


def decode_paths(model: DuoTok, source: str | os.PathLike[str], output: str | os.PathLike[str],
                 overwrite: bool = False, progress: bool = True, **decode_kwargs) -> EncodeReport:
    """Render ``.tok`` files (one, or every one under a folder) back to audio (see :func:`plan_decode`):
    16-bit WAVs at the model's rate, each written atomically. A song whose three files all exist is
    skipped unless ``overwrite``. ``decode_kwargs`` go to :meth:`DuoTok.decode` (steps, cfg_scale, seed)."""
    plan = plan_decode(source, output)
    removed = prepare_output(plan, overwrite)
    report = run_decode(model, plan, overwrite, progress, **decode_kwargs)
    report.removed_temp = removed
    return report
