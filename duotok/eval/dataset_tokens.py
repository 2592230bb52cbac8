"""A registry dataset tokenized by one codec, in the corpus-tokens format: how the probe and the LM
evaluation run on the papers' real data (issue 20).

Why the same format: the tagging probe (:func:`~duotok.eval.probe_codecs.probe_codec`) and the LM
protocols (:mod:`~duotok.eval.lm_protocols`) read a dict of songs ``{"id", "split", "tags", "ids"}``
plus the codec's frame rate, codebook sizes and streams (:mod:`~duotok.eval.corpus_tokens`). An
:func:`encode_dataset` dict has exactly those fields (same ``format``/``version``, so
:func:`~duotok.eval.corpus_tokens.save_corpus_tokens` / ``load_corpus_tokens`` round-trip it), and the
evaluations consume it unchanged. It adds what only a real dataset has: its tag ``vocabulary`` (the
probe's label columns, e.g. MagnaTagATune's top 50 in count order; :func:`tag_vocabulary`), its
``dataset`` name and root, and the ``problems`` of items that could not be used.

Which signal is tokenized: MagnaTagATune, MTG-Jamendo, GTZAN and plain folders are *mixture only*, so
every codec encodes the mixture (``source="separated"``, as ``encode_corpus`` does for that source): a
mixture codec directly, a dual-track codec by separating it first (Duo-Tok with its stage-2 separator,
the MuCodec-style baseline with the separator lent to it). ``source="oracle"`` (true stems, the corpus
default) is possible only for datasets that carry stems (MUSDB18).

Where the switch lives: ``params.yaml: probe.base.data`` and ``lm.base.data`` (``null`` = the generated
corpus's token files, the default pipeline), each a block of the shape of ``pretrain.data.mixtures``
without the split lists — an evaluation uses the dataset's own train / valid / test::

    data: {dataset: magnatagatune, root: /datasets/mtt, options: {top_k: 50}}

Bad data is reported, never dropped silently (as everywhere in :mod:`duotok.data.datasets`): an item
that cannot be decoded (or gives no frame) becomes a :class:`~duotok.data.datasets.Problem` naming its
file. With ``strict`` (the default, and the block's ``options.strict``) all of them are raised together
as one :class:`~duotok.data.datasets.DatasetProblems` after every item was tried; with
``strict: false`` the rest is encoded and the problems travel in the dict (and a warning names them).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from duotok.codecs.base import Codec
from duotok.data.datasets import Discovery, open_dataset
from duotok.data.datasets.crops import MIXTURE_SOURCE_KEYS
from duotok.data.datasets.decode import load, load_stems
from duotok.data.datasets.items import AudioItem, DatasetProblems, Problem, describe
from duotok.data.latents import stem_tracks
from duotok.data.synth.tags import TAG_VOCABULARY
from duotok.errors import AudioFileError, ConfigError, DatasetError
from duotok.eval.corpus_tokens import FORMAT, SOURCES, VERSION, load_corpus_tokens
from duotok.paths import resolve

#: The keys of a ``probe.data`` / ``lm.data`` block: ``pretrain.data.mixtures``' keys without the split
#: lists (an evaluation needs the dataset's own train / valid / test, not a choice of training splits).
DATA_SOURCE_KEYS = tuple(k for k in MIXTURE_SOURCE_KEYS if not k.endswith("_splits"))
#: The splits the probe and the LM evaluation read (train, checkpoint selection on valid, scored on test).
EVAL_SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class EvalData:
    """A ``<stage>.data`` block, opened: the dataset's items (no audio decoded yet), whether bad data
    stops the stage (the block's ``options.strict``, default True as in ``open_dataset``) and the block
    itself, for the metrics file."""

    found: Discovery
    strict: bool
    config: dict[str, Any]


def open_eval_data(source: Mapping[str, Any] | None, section: str = "data") -> EvalData | None:
    """Open a ``probe.data`` / ``lm.data`` block of params.yaml; ``None`` (the default) stays ``None``:
    the stage then reads the corpus tokens exactly as before.

    The block is ``{dataset: <registry name>, root: PATH, options: {...}}`` (``root`` relative to the
    project, like every params.yaml path; ``options`` go to the dataset's ``discover_*``). Unknown or
    missing keys, an unknown dataset or option are a :class:`~duotok.errors.ConfigError`."""
    if source is None:
        return None
    if not isinstance(source, Mapping):
        raise ConfigError(f"{section}: expected null or a mapping with keys {DATA_SOURCE_KEYS}, "
                          f"got {type(source).__name__}")
    unknown = set(source) - set(DATA_SOURCE_KEYS)
    missing = {"dataset", "root"} - set(source)
    if unknown or missing:
        raise ConfigError(f"{section}: unknown keys {sorted(unknown)} / missing keys {sorted(missing)}; "
                          f"expected {DATA_SOURCE_KEYS}")
    options = dict(source.get("options") or {})
    found = open_dataset(str(source["dataset"]), resolve(source["root"]), **options)
    config = {"dataset": str(source["dataset"]), "root": str(source["root"]), "options": options}
    return EvalData(found, bool(options.get("strict", True)), config)


def encode_item(codec: Codec, item: AudioItem, source: str = "separated") -> torch.Tensor:
    """``(K, T)`` ids of one item: its mixture (a dual-track codec separates it first: that is what its
    ``encode`` does), or with ``source="oracle"`` its vocals and accompaniment (drums + bass + other)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if "mixture" in codec.streams or source == "separated":
        return codec.encode(torch.from_numpy(load(item, codec.sample_rate)))
    vocal, accompaniment = stem_tracks(load_stems(item, codec.sample_rate))
    return codec.encode_stems(torch.from_numpy(vocal), torch.from_numpy(accompaniment))


def encode_dataset(codec: Codec, found: Discovery, splits: Sequence[str] = EVAL_SPLITS,
                   source: str = "separated", strict: bool = True, progress: bool = True) -> dict[str, Any]:
    """Every item of ``splits`` of ``found`` tokenized by ``codec``, as a corpus-tokens dict (module
    docstring): songs ``{"id", "split", "tags", "ids"}`` in the dataset's order, plus ``vocabulary``
    (``found.tags``), ``dataset``, ``dataset_root`` and ``problems`` (``[{"path", "problem"}]``: the
    discovery's own, when it was opened with ``strict=False``, then the items that could not be encoded).

    An absent split is an error (an empty evaluation set would only surface later as a NaN), and so is a
    split left empty by bad items. ``source="oracle"`` needs stems on every item."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    items = found.split(*splits)
    if source == "oracle" and "mixture" not in codec.streams:
        stemless = [item.id for item in items if not item.stems]
        if stemless:
            raise DatasetError(found.root, f"{found.name}: source='oracle' needs stems, and {len(stemless)} item(s) "
                                           f"have none (e.g. {stemless[0]!r}); mixture-only data is "
                                           "tokenized with source='separated'")
    problems: list[Problem] = []
    songs = []
    for item in tqdm(items, desc=f"tokenizing {found.name} with {codec.name}", mininterval=5,
                     disable=not (progress and sys.stderr.isatty())):
        try:
            ids = encode_item(codec, item, source).long().cpu()
        except (AudioFileError, DatasetError) as exc:
            problems.append(Problem(Path(exc.path), f"{exc.problem} (item {item.id}, split {item.split})"))
            continue
        if ids.ndim != 2 or ids.shape[-1] == 0:
            problems.append(Problem(item.path, f"encoded to ids of shape {tuple(ids.shape)}, no frame "
                                               f"(item {item.id}, split {item.split}; too short for {codec.name}?)"))
            continue
        songs.append({"id": item.id, "split": item.split, "tags": list(item.tags), "ids": ids})
    if problems and strict:
        raise DatasetProblems(found.root, problems, "unusable item")
    empty = [s for s in dict.fromkeys(splits) if not any(song["split"] == s for song in songs)]
    if empty:
        raise DatasetError(found.root, f"{found.name}: no item of split(s) {empty} could be tokenized; "
                                       f"{describe(problems)}")
    if problems:
        warnings.warn(f"{found.name}: {codec.name} tokenized {len(songs)} item(s), not these: {describe(problems)}",
                      stacklevel=2)
    return {"format": FORMAT, "version": VERSION, "codec": codec.name, "fingerprint": codec.fingerprint(),
            "frame_rate": float(codec.frame_rate), "codebook_sizes": list(codec.codebook_sizes),
            "streams": {k: list(v) for k, v in codec.streams.items()}, "source": source, "songs": songs,
            "dataset": found.name, "dataset_root": str(found.root), "vocabulary": list(found.tags),
            "problems": [{"path": str(p.path), "problem": p.problem} for p in [*found.problems, *problems]]}


def tag_vocabulary(tokens: Mapping[str, Any]) -> tuple[str, ...]:
    """The probe's label columns for ``tokens``: a dataset's own vocabulary (:func:`encode_dataset`), or
    the generated corpus's :data:`~duotok.data.synth.tags.TAG_VOCABULARY` for corpus token files (which
    carry none)."""
    vocabulary = tokens.get("vocabulary")
    return tuple(TAG_VOCABULARY) if vocabulary is None else tuple(vocabulary)


def evaluation_tokens(corpus_path: str | os.PathLike[str], data: EvalData | None,
                      codec: Codec | Callable[[], Codec] | None = None,
                      training_seed: int | None = None) -> dict[str, Any]:
    """The tokens an evaluation stage reads for one codec: the corpus token file ``corpus_path``
    (checked against ``codec``'s codebooks when a codec is given) when ``data`` is ``None`` — the
    default pipeline, unchanged — else ``data``'s dataset encoded by ``codec`` (:func:`encode_dataset`).

    ``codec`` may be a zero-argument function returning the codec: the LM stage reads corpus tokens
    without loading any model, and loads one only to encode a dataset. ``training_seed`` marks dataset
    tokens encoded by a replica codec (corpus replica files carry their own)."""
    if data is None:
        return load_corpus_tokens(corpus_path, codec if codec is not None and not _is_loader(codec) else None)
    if codec is None:
        raise ValueError(f"{data.config['dataset']}: a codec is needed to tokenize the dataset")
    tokens = encode_dataset(codec() if _is_loader(codec) else codec, data.found, strict=data.strict)
    if training_seed is not None:
        tokens["training_seed"] = int(training_seed)
    return tokens


def _is_loader(codec: object) -> bool:
    """A zero-argument codec factory rather than a codec (codecs have ``encode``; callables that are
    codecs, e.g. an ``nn.Module``, are codecs)."""
    return callable(codec) and not hasattr(codec, "encode")


def data_record(data: EvalData | None, tokens: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """What a metrics file records about the evaluation data: ``None`` for the generated corpus;
    otherwise the params block, the items per split and the tag vocabulary of ``tokens`` (one codec's
    :func:`encode_dataset` dict) and every item it could not use, so a number on real data names the
    files it left out."""
    if data is None:
        return None
    record: dict[str, Any] = {**data.config, "skipped": len(data.found.skipped)}
    if tokens is not None:
        splits = [song["split"] for song in tokens["songs"]]
        record.update({"items": {s: splits.count(s) for s in dict.fromkeys(splits)},
                       "vocabulary": list(tokens.get("vocabulary") or []),
                       "problems": list(tokens.get("problems") or [])})
    return record
