"""Mixture-only audio folders (real music for SSL pretraining and LM data): no stems, any layout.

Files are found recursively and sorted by relative path, so item ``i`` is the same file on every
machine. Real music comes at any rate and channel count, so it is converted (resampled /
downmixed) with a warning naming the file — see :mod:`duotok.audio.io` for the policy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from duotok.audio.io import load_audio
from duotok.data.stems import EpochCropDataset, SongCache, check_crop_args, crop_offset, crop_pad
from duotok.errors import DatasetError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")


def discover_audio_files(
    root: str | os.PathLike[str], extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> list[Path]:
    """All audio files under ``root`` (recursive, case-insensitive suffix match), sorted by path.

    Hidden files and folders (``.name``) are skipped: they are macOS ``._*`` resource forks,
    editor/VCS droppings or :func:`~duotok.audio.io.save_audio`'s in-flight temporary files,
    never music. Raises :class:`DatasetError` if ``root`` is missing or holds no audio file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "audio folder not found" if not root.exists() else "not a directory")
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    files = sorted(
        (
            p
            for p in root.rglob("*")
            if p.suffix.lower() in wanted
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        ),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise DatasetError(
            root, f"no audio files found (looked for {', '.join(sorted(wanted))}, recursively)"
        )
    return files


class MixtureFolderDataset(EpochCropDataset):
    """Fixed-length crops of every audio file under ``root``.

    Item ``i`` is crop ``i % crops_per_file`` of file ``i // crops_per_file``::

        {"mixture": (T,) float32, "length": valid samples (short files are zero-padded at the end),
         "offset": crop start in seconds, "path": str}

    Crops follow :func:`duotok.data.stems.crop_offset` (reproducible per seed/epoch/index;
    :meth:`set_epoch` for new random crops; ``random=False`` for evenly spaced / centre crops).
    Use :func:`duotok.data.stems.collate_stems` as the DataLoader's ``collate_fn``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        segment_seconds: float,
        sample_rate: int,
        extensions: Iterable[str] = AUDIO_EXTENSIONS,
        seed: int = 0,
        random: bool = True,
        crops_per_file: int = 1,
        cache_size: int = 2,
    ) -> None:
        self.root = Path(root)
        self.files = discover_audio_files(root, extensions)
        self._set_crops(segment_seconds, sample_rate, seed, random, crops_per_file, cache_size)

    def _set_crops(self, segment_seconds: float, sample_rate: int, seed: int, random: bool, crops_per_file: int,
                   cache_size: int) -> None:
        """The crop settings every mixture-crop dataset shares (checked once, here)."""
        self.segment = check_crop_args(segment_seconds, sample_rate, crops_per_file, seed)
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.random = bool(random)
        self.crops_per_file = int(crops_per_file)
        self.epoch = 0
        self._cache = SongCache(cache_size)

    def __len__(self) -> int:
        return len(self.files) * self.crops_per_file


    def _audio(self, file_index: int) -> tuple[Any, str]:
        """File ``file_index``'s decoded mono audio (cached) and the path a batch reports for it: the
        one thing a subclass with another kind of source overrides."""
        path = self.files[file_index]
        audio = self._cache.get(path, lambda: load_audio(path, self.sample_rate, on_rate_mismatch="resample",
                                                         on_multichannel="downmix"))
        return audio, str(path)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        file_index, crop_index = divmod(index, self.crops_per_file)
        audio, path = self._audio(file_index)
        offset = crop_offset(
            audio.shape[-1],
            self.segment,
            random=self.random,
            seed=self.seed,
            epoch=self.epoch,
            index=index,
            crop_index=crop_index,
            n_crops=self.crops_per_file,
        )
        mixture, length = crop_pad(audio, offset, self.segment)
        return {
            "mixture": torch.from_numpy(mixture),
            "length": length,
            "offset": offset / self.sample_rate,
            "path": path,
        }
