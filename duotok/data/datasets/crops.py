"""Training crops of any registry dataset's mixtures: how a stage trains on real music.

Why a dataset of its own: :class:`~duotok.data.mixture.MixtureFolderDataset` finds files under a root;
real datasets come as metadata + audio in their own layouts (and formats soundfile cannot read,
decoded through ffmpeg), so the items come from :func:`~duotok.data.datasets.open_dataset` and the
audio from :func:`~duotok.data.datasets.load`. Crops, epochs and seeds follow the folder dataset
exactly (same offsets for the same lengths), and items are what a ``collate_stems`` batch expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from duotok.data.datasets.decode import load
from duotok.data.datasets.items import AudioItem
from duotok.data.mixture import MixtureFolderDataset
from duotok.errors import ConfigError, DatasetError

#: The keys of a ``<stage>.data.mixtures`` block of params.yaml.
MIXTURE_SOURCE_KEYS = ("dataset", "root", "options", "train_splits", "valid_splits")


class ItemCropDataset(MixtureFolderDataset):
    """Fixed-length crops of the mixtures of ``items`` (item ``i`` = crop ``i % crops_per_file`` of item
    ``i // crops_per_file``): ``{"mixture", "length", "offset", "path"}`` as the folder dataset."""

    def __init__(self, items: Sequence[AudioItem], segment_seconds: float, sample_rate: int, seed: int = 0,
                 random: bool = True, crops_per_file: int = 1, cache_size: int = 2) -> None:
        if not items:
            raise DatasetError("<no items>", "no audio items to crop")
        self.items = list(items)
        self.files = [item.path for item in self.items]
        self._set_crops(segment_seconds, sample_rate, seed, random, crops_per_file, cache_size)

    def _audio(self, file_index: int) -> tuple[Any, str]:
        item = self.items[file_index]
        return self._cache.get(item, lambda: load(item, self.sample_rate)), str(item.mixture)


def mixture_crop_datasets(source: Mapping[str, Any], segment_seconds: float, sample_rate: int, seed: int,
                          crops_per_file: int) -> tuple[ItemCropDataset, ItemCropDataset]:
    """Random training crops and centre validation crops of a ``<stage>.data.mixtures`` block::

        {dataset: mtg_jamendo, root: /datasets/jamendo/audio, options: {metadata_root: ...},
         train_splits: [train], valid_splits: [valid]}

    (``dataset`` is a :data:`~duotok.data.datasets.DATASETS` name; data without an official split is
    all :data:`~duotok.data.datasets.UNSPLIT`, so name ``[all]`` and hold out validation another way)."""
    from duotok.data.datasets import open_dataset

    unknown = set(source) - set(MIXTURE_SOURCE_KEYS)
    missing = {"dataset", "root", "train_splits", "valid_splits"} - set(source)
    if unknown or missing:
        raise ConfigError(f"data.mixtures: unknown keys {sorted(unknown)} / missing keys {sorted(missing)}; "
                          f"expected {MIXTURE_SOURCE_KEYS}")
    found = open_dataset(str(source["dataset"]), source["root"], **dict(source.get("options") or {}))
    train = ItemCropDataset(found.split(*source["train_splits"]), segment_seconds, sample_rate, seed=seed,
                            random=True, crops_per_file=crops_per_file)
    valid = ItemCropDataset(found.split(*source["valid_splits"]), segment_seconds, sample_rate, seed=seed,
                            random=False, crops_per_file=1)
    return train, valid
