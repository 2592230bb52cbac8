"""Read the crop, not the song: :class:`StemCropDataset`'s items, with only each crop's samples decoded.

Why: the training stages draw each step's crops from different songs (stages 1–4a: 8 songs a step), so
:class:`StemCropDataset`'s two-song cache never hits and every crop decodes all five FLAC files of its song
(≈ 54 s of audio) to cut 10 s out of them: 0.50–0.55 s per batch on a 2-core AVX2 EPYC, 37.7 % of an
autoencoder step by py-spy (``reports/experiments/quick_log.md``, 2026-12-02). A header read and a seek to
the crop take a tenth of that, and FLAC decodes a range sample-exactly, so the items are *bit-identical*
(``tests/data/test_crop_reads.py`` compares every field).

Only the ``duosynth`` layout reads ranges. MUSDB songs are resampled and downmixed on load, and a range of
a resampled signal is not the resampled range, so they are still decoded whole (and cached) by the parent.

What a range read checks: the file exists and decodes, the five files have the same length (from their
headers, as :func:`load_song` checks the decoded arrays), the rate and channel count are the corpus's (refused
otherwise, as ``duosynth`` is never converted), and the crop's samples are finite. A NaN *outside* the crop is
not seen until a crop covers it (every crop read is checked); whole files are checked where whole songs are
decoded (evaluation, tokenization), and DVC checks the generated corpus's hash.

Today the quick lyrics reader uses it (:mod:`duotok.train.quick_lyrics`). The pipeline's stages keep
:class:`StemCropDataset` until the next full ``default`` re-run, where :class:`StemCropDataset` becomes this
(queued in the README: :mod:`duotok.data.stems` is a dependency of every stage).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from duotok.audio.io import audio_info, check_finite
from duotok.data.stems import (
    ACCOMPANIMENT,
    MIXTURE,
    SOURCES,
    SongRecord,
    StemCropDataset,
    crop_offset,
    crop_pad,
    load_meta,
)
from duotok.errors import AudioFileError, DatasetError

#: The five files of a duosynth song (its mixture is required, unlike MUSDB's).
FILES = (*SOURCES, MIXTURE)


def read_range(path: Path, sample_rate: int, start: int, frames: int) -> np.ndarray:
    """Mono float32 samples ``[start, start + frames)`` of a corpus file (fewer at its end), decoded from
    that range only. A missing, corrupt or empty file, another rate or more than one channel is refused,
    naming the file (:func:`audio_info`'s checks, then the corpus's rate and mono)."""
    rate, channels, _ = audio_info(path)
    if rate != sample_rate:
        raise AudioFileError(path, f"sample rate {rate} Hz, expected {sample_rate} Hz "
                                   "(duosynth audio is never resampled)")
    if channels != 1:
        raise AudioFileError(path, f"{channels} channels, expected mono")
    try:
        with sf.SoundFile(str(path)) as fh:
            fh.seek(start)
            data = fh.read(frames, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:      # a header that reads, frames that do not
        raise AudioFileError(path, f"unreadable or corrupt audio file ({exc})") from exc
    check_finite(path, data, start)
    return np.ascontiguousarray(data[:, 0], dtype=np.float32)


def song_frames(record: SongRecord) -> int:
    """The common length in samples of a duosynth song's five files, from their headers; files of different
    lengths are a :class:`DatasetError` naming the song and each file's length (as :func:`load_song` reports
    them), a missing or corrupt one an :class:`AudioFileError` naming it."""
    lengths = {record.file(name): audio_info(record.file(name))[2] for name in FILES}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{p.name}={n}" for p, n in lengths.items())
        raise DatasetError(record.path, f"stems/mixture have different lengths (samples): {detail}")
    return next(iter(lengths.values()))


class CropReadStemDataset(StemCropDataset):
    """:class:`StemCropDataset` whose ``duosynth`` items decode only the crop (same arguments, same items)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._frames: dict[str, int] = {}          # song id → length: one header read per song, not per item
        self._meta: dict[str, dict[str, Any]] = {}

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        song_index, crop_index = divmod(index, self.crops_per_song)
        record = self.records[song_index]
        if record.layout != "duosynth":
            return super().__getitem__(index)
        if record.id not in self._frames:
            self._frames[record.id] = song_frames(record)
            self._meta[record.id] = load_meta(record)
        offset = crop_offset(self._frames[record.id], self.segment, random=self.random, seed=self.seed,
                             epoch=self.epoch, index=index, crop_index=crop_index, n_crops=self.crops_per_song)
        stems, length = crop_pad(np.stack([read_range(record.file(name), self.sample_rate, offset, self.segment)
                                           for name in SOURCES]), 0, self.segment)
        mixture, _ = crop_pad(read_range(record.file(MIXTURE), self.sample_rate, offset, self.segment), 0,
                              self.segment)
        accompaniment = stems[[SOURCES.index(s) for s in ACCOMPANIMENT]].sum(axis=0)
        return {
            "mixture": torch.from_numpy(mixture),
            "stems": torch.from_numpy(stems),
            "accompaniment": torch.from_numpy(accompaniment),
            "length": length,
            "offset": offset / self.sample_rate,
            "song_id": record.id,
            "meta": self._meta[record.id],
        }
