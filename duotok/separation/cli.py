"""``duotok separate INPUT -o OUT``: four stems of a song, or of every audio file in a folder.

The separation systems come from :data:`SEPARATORS`, a name → loader registry; a loader takes the
``--model`` folder (``None``: the system's default) and returns a
:class:`~duotok.separation.base.Separator`. Registering another system is one line::

    SEPARATORS["open-unmix"] = load_open_unmix

Files, folders, exit codes and messages follow ``duotok encode``: 0 when every input was separated
or kept, 1 when some input failed (each named on stderr, the others finished), and an error raised
to ``duotok.cli.main`` (exit 2) for a problem with the whole job (no such input, an unwritable
output folder, an unknown system, a bad chunk length).

This module imports :mod:`duotok.cli` only inside functions: ``duotok.cli`` imports this one to build
its parser, so a module-level import back would be circular. The file machinery
(:mod:`duotok.separation.predict`, which pulls in the tokenizer) is imported only when the command
runs, so building ``duotok``'s parser stays cheap."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from duotok.separation.base import DEFAULT_CHUNK_SECONDS, STEMS, Separator

if TYPE_CHECKING:
    from duotok.config import Params
    from duotok.separation.predict import SeparatePlan, SeparateReport

#: ``--system`` name → loader of that separator from an optional checkpoint folder.
SEPARATORS: dict[str, Callable[[str | None], Separator]] = {}

#: The system used when ``--system`` is not given.
DEFAULT_SYSTEM = "mask-head"


def load_mask_head(model_dir: str | None) -> Separator:
    """The stage-2 mask head of a trained DuoTok (default: the project's ``models/duotok``, found from any
    folder; a missing checkpoint is reported as ``duotok encode`` reports it)."""
    from duotok.cli import DEFAULT_TOKENIZER, _load_tokenizer
    from duotok.separation.mask_separators import MaskHeadSeparator

    tokenizer = _load_tokenizer(model_dir, DEFAULT_TOKENIZER)
    return MaskHeadSeparator(tokenizer.separator, tokenizer.config.chunk_seconds, tokenizer.config.chunk_batch)


def load_openunmix(model_dir: str | None) -> Separator:
    """The Open-Unmix-style model (default: the pipeline's ``models/separation/openunmix/model``)."""
    from duotok.paths import resolve
    from duotok.separation.openunmix import OpenUnmixSeparator

    return OpenUnmixSeparator.from_pretrained(model_dir or resolve("models/separation/openunmix/model"))


def load_token_lm(model_dir: str | None, codec_dir: str | None = None, params: Params | None = None) -> Separator:
    """The generative token-LM separator with ``params``' sampling settings (``params.yaml:
    separation.generative``; default: the active profile). ``model_dir`` replaces the trained model's
    folder and ``codec_dir`` its RVQ codec's (default ``separation.generative.codec_dir``): a model must
    be decoded by the codec it was trained with, which lives beside it in another models folder."""
    from duotok.config import Params
    from duotok.paths import resolve
    from duotok.separation.generative import TokenLMSeparator
    from duotok.separation.systems import (
        ChunkedSeparator,
        generation_chunk_seconds,
        load_generative,
        system_dir,
    )

    params = params or Params.load()
    if model_dir is None and codec_dir is None:
        return load_generative(params)
    g = params.section("separation")["generative"]
    s = g["sampling"]
    model = model_dir if model_dir is not None else system_dir("generative", params) / "model"
    separator = TokenLMSeparator.from_pretrained(model, codec_dir or resolve(g["codec_dir"]),
                                                 temperature=float(s["temperature"]), top_k=int(s["top_k"]),
                                                 top_p=float(s["top_p"]), seed=int(s["seed"]))
    return ChunkedSeparator(separator, generation_chunk_seconds(separator.model.config, float(g["segment_seconds"])))


SEPARATORS["mask-head"] = load_mask_head
SEPARATORS["openunmix"] = load_openunmix
SEPARATORS["token-lm"] = load_token_lm


def add_separate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``separate`` to ``duotok``'s sub-commands (``func=cmd_separate``); returns its parser."""
    from duotok.cli import NON_NEGATIVE_FLOAT, POSITIVE_FLOAT, POSITIVE_INT

    stems = ",".join(STEMS)
    p = subparsers.add_parser("separate", help=f"split a song (or every audio file in a folder) into {stems} WAVs")
    p.add_argument("input", help="audio file (any rate, mono or stereo) or folder (recursively; hidden files "
                                 "are skipped)")
    p.add_argument("-o", "--output", required=True,
                   help=f"output folder; a song goes to OUT/<name>/{{{stems}}}.wav (a folder's tree is mirrored); "
                        "inputs of one folder sharing a name get OUT/<name><ext>/")
    p.add_argument("--system", default=DEFAULT_SYSTEM,
                   help=f"separation system (registered: {', '.join(SEPARATORS)}; default {DEFAULT_SYSTEM})")
    p.add_argument("--model", help="the system's checkpoint folder; a path you type is relative to the current "
                                   "folder (default: the system's; mask-head: models/duotok of the project)")
    p.add_argument("--chunk-seconds", type=POSITIVE_FLOAT,
                   help="separate long songs in chunks of this length, a whole number of samples (default: the "
                        f"system's training crop, else {DEFAULT_CHUNK_SECONDS:g})")
    p.add_argument("--overlap-seconds", type=NON_NEGATIVE_FLOAT,
                   help="overlap of neighbouring chunks, crossfaded so no seam clicks; shorter than the chunk "
                        "(default: 1, or a quarter chunk if shorter; 0: hard cuts)")
    p.add_argument("--overwrite", action="store_true", help="re-separate even if the stems exist")
    p.add_argument("--threads", type=POSITIVE_INT, help="torch CPU threads")
    p.set_defaults(func=cmd_separate)
    return p


def system_loader(name: str) -> Callable[[str | None], Separator]:
    """The loader of ``--system name``; an unknown name is a ``ValueError`` listing the registered ones."""
    try:
        return SEPARATORS[name]
    except KeyError:
        raise ValueError(f"unknown separation system {name!r}; registered: {', '.join(sorted(SEPARATORS))}") from None


def _prepare(plan: SeparatePlan, overwrite: bool) -> None:
    """Report renamed and ignored inputs, delete stale temp files and check the output folder, all
    before the model loads (so a read-only folder fails in a second, not after a minute of loading)."""
    from duotok.separation.predict import prepare_separate

    for src, dst in plan.renamed.items():
        print(f"renamed: {src} -> {dst}/ (another input in {src.parent} has the same name {src.stem!r})")
    if plan.ignored:
        print(f"ignored {len(plan.ignored)} stem file(s) of an earlier run under {plan.output_dir}")
    removed = prepare_separate(plan, overwrite)
    if removed:
        print(f"removed {len(removed)} stale temporary file(s) of an interrupted run from {plan.output_dir}")


def report_separation(report: SeparateReport, n_jobs: int) -> int:
    """Print what a job did (the same summary as ``duotok encode``'s); exit code 1 if any input failed."""
    from duotok.tokenizer.batch import print_report

    stems = ",".join(STEMS)
    return print_report(report, n_jobs, "separated", lambda path: f"wrote {path}/{{{stems}}}.wav")


def _separate(args: argparse.Namespace) -> int:
    from duotok.separation.predict import plan_separate, run_separate

    loader = system_loader(args.system)
    plan = plan_separate(args.input, args.output)
    _prepare(plan, args.overwrite)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    separator = loader(args.model)
    report = run_separate(separator, plan, overwrite=args.overwrite, progress=sys.stderr.isatty(),
                          chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds)
    return report_separation(report, len(plan.jobs))


def cmd_separate(args: argparse.Namespace) -> int:
    """``duotok separate``; an OS error (a read-only folder, a full disk) is reported as
    ``<file>: <reason>`` like the other file commands (``duotok.cli._user_errors``)."""
    from duotok.cli import _user_errors

    return _user_errors(_separate)(args)
