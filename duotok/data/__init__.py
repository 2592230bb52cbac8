"""Corpus loaders: aligned stems (duosynth, MUSDB18-HQ layout) and mixture-only folders.

The ``duosynth`` corpus generator lives in :mod:`duotok.data.synth` and is deliberately *not*
imported here, so loading data never pulls in the synthesis dependencies.
"""

from duotok.data.mixture import AUDIO_EXTENSIONS, MixtureFolderDataset, discover_audio_files
from duotok.data.stems import (
    ACCOMPANIMENT,
    SOURCES,
    SPLITS,
    SongRecord,
    StemCropDataset,
    collate_stems,
    crop_offset,
    crop_pad,
    discover_songs,
    load_song,
)

__all__ = [
    "ACCOMPANIMENT",
    "AUDIO_EXTENSIONS",
    "SOURCES",
    "SPLITS",
    "MixtureFolderDataset",
    "SongRecord",
    "StemCropDataset",
    "collate_stems",
    "crop_offset",
    "crop_pad",
    "discover_audio_files",
    "discover_songs",
    "load_song",
]
