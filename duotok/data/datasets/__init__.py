"""Loaders for the real datasets of the two papers, behind one registry.

A pipeline stage names its data in ``params.yaml`` (``name`` + ``root`` + options) and calls
:func:`open_dataset`; every loader returns a :class:`Discovery` of :class:`AudioItem` s (no audio
decoded) and :func:`load` / :func:`load_stem` / :func:`load_stems` decode any item to mono float32 at
the requested rate. See :mod:`~duotok.data.datasets.items` for how bad data is reported.

=================  ================================================  ===============================
name               data                                              items carry
=================  ================================================  ===============================
``musdb18``        MUSDB18 ``{train,test}/*.stem.mp4``               4 stems (AAC streams), splits
``musdb18hq``      MUSDB18-HQ ``{train,test}/<track>/*.wav``         4 stems, splits
``mtg_jamendo``    MTG-Jamendo audio + official TSV splits           tags, splits
``magnatagatune``  MagnaTagATune clips + ``annotations_final.csv``   top-k tags, splits
``gtzan``          GTZAN ``genres[_original]/<genre>/*``             genre tag, optional split
``folder``         any folder of audio, recursive                    nothing (mixture only)
=================  ================================================  ===============================
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from duotok.data.datasets.decode import decode, load, load_stem, load_stems, probe_duration
from duotok.data.datasets.folder import discover_folder
from duotok.data.datasets.gtzan import GENRES, discover_gtzan
from duotok.data.datasets.items import UNSPLIT, AudioItem, AudioRef, DatasetProblems, Discovery, Problem
from duotok.data.datasets.jamendo import discover_jamendo
from duotok.data.datasets.magnatagatune import discover_magnatagatune, top_tags
from duotok.data.datasets.musdb18 import (
    STEM_STREAMS,
    ConversionReport,
    convert_stem_mp4_to_hq,
    discover_musdb18,
    discover_musdb18hq,
)
from duotok.data.datasets.separators import CommandStemProvider, StemProvider, attach_stems
from duotok.errors import ConfigError

#: Registry name -> discovery function ``(root, **options) -> Discovery``.
DATASETS: dict[str, Callable[..., Discovery]] = {
    "musdb18": discover_musdb18,
    "musdb18hq": discover_musdb18hq,
    "mtg_jamendo": discover_jamendo,
    "magnatagatune": discover_magnatagatune,
    "gtzan": discover_gtzan,
    "folder": discover_folder,
}


def dataset_options(name: str) -> tuple[str, ...]:
    """The keyword options dataset ``name`` accepts (``strict`` included)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    params = inspect.signature(DATASETS[name]).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def open_dataset(name: str, root: str | os.PathLike[str], **options: object) -> Discovery:
    """Discover dataset ``name`` under ``root`` with its ``options`` (see each ``discover_*``).

    An unknown name or option is a :class:`~duotok.errors.ConfigError` listing the valid ones, since
    both come from ``params.yaml``. With the default ``strict=True`` any unusable file raises one
    :class:`DatasetProblems` listing all of them; ``strict=False`` returns them in ``.problems``.
    """
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"dataset {name!r} has no option(s) {unknown}; valid: {', '.join(allowed)}")
    return DATASETS[name](root, **options)


__all__ = [
    "DATASETS",
    "GENRES",
    "STEM_STREAMS",
    "UNSPLIT",
    "AudioItem",
    "AudioRef",
    "CommandStemProvider",
    "ConversionReport",
    "DatasetProblems",
    "Discovery",
    "Problem",
    "StemProvider",
    "attach_stems",
    "convert_stem_mp4_to_hq",
    "dataset_options",
    "decode",
    "discover_folder",
    "discover_gtzan",
    "discover_jamendo",
    "discover_magnatagatune",
    "discover_musdb18",
    "discover_musdb18hq",
    "load",
    "load_stem",
    "load_stems",
    "open_dataset",
    "probe_duration",
    "top_tags",
]
