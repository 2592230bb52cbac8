"""Aligned multi-stem songs: the ``duosynth`` corpus and the MUSDB18-HQ folder layout.

Layouts
-------
``duosynth`` (the embedded, generated corpus — exact, so loading *refuses* anything unexpected)::

    <root>/manifest.json    {"format": "duosynth", "version": 1, "sample_rate": 16000,
                             "songs": [{"id", "split": train|valid|test, "work", "duration"}, ...]}
    <root>/songs/<id>/{mixture,vocals,drums,bass,other}.flac
    <root>/songs/<id>/meta.json   (notes under meta["notes"][stem], lyrics under meta["lyrics"])

``musdb`` (MUSDB18-HQ, real music — loading *converts* rate and channels, with warnings)::

    <root>/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav
    <root>/<track>/...            (no split folder: every track is "train")

``mixture.wav`` is optional there; without it the mixture is the sum of the stems.

Every malformed-data problem raises :class:`DatasetError` (or :class:`AudioFileError` for a single
bad file) naming the path, so the user knows what to fix.

Reading crops
-------------
The training stages draw each step's crops from different songs, so a cache of decoded songs never hits.
:class:`StemCropDataset` therefore reads a ``duosynth`` crop from the files' range (a seek and a read; FLAC
decodes a range sample-exactly, so the samples are the whole-song decode's, bit for bit) after checking the
song's five headers once (:func:`song_length`): 0.0064 s per song instead of 0.057 s on a 2-core AVX2 EPYC,
where whole-song decoding was 37.7 % of an autoencoder step (``reports/experiments/quick_log.md``). MUSDB
songs are resampled and downmixed on load, and a range of a resampled signal is not the resampled range,
so they are decoded whole and cached. A NaN outside every crop read is not seen by training; whole files
are checked where whole songs are decoded (evaluation, tokenization), and DVC checks the corpus's hash.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from duotok.audio.io import audio_info, check_conversion, load_audio, read_range
from duotok.errors import DatasetError

SOURCES = ("vocals", "drums", "bass", "other")
MIXTURE = "mixture"
SPLITS = ("train", "valid", "test")
#: Sources summed into the accompaniment track (everything but the vocals).
ACCOMPANIMENT = ("drums", "bass", "other")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "duosynth"
MANIFEST_VERSION = 1

Layout = Literal["duosynth", "musdb"]
_EXTENSION: dict[str, str] = {"duosynth": ".flac", "musdb": ".wav"}
# duosynth is ours: refuse surprises. MUSDB is real data at 44.1 kHz stereo: convert.
_CONVERT: dict[str, dict[str, str]] = {
    "duosynth": {},
    "musdb": {"on_rate_mismatch": "resample", "on_multichannel": "downmix"},
}


@dataclass
class SongRecord:
    """One song found by :func:`discover_songs`; cheap to build (no audio decoded).

    ``meta`` holds the manifest entry's extra fields (e.g. ``work``) for duosynth and is empty for
    MUSDB; :func:`load_song` adds the (possibly large) ``meta.json``. ``sample_rate`` is the files'
    native rate (the manifest's for duosynth, the vocals file's for MUSDB).
    """

    id: str
    split: str
    path: Path
    layout: Layout
    duration: float
    meta: dict[str, Any] = field(default_factory=dict)
    sample_rate: int | None = None

    def file(self, name: str) -> Path:
        """Path of the ``mixture`` or a stem's file in this layout."""
        return self.path / f"{name}{_EXTENSION[self.layout]}"


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------


def _song_files(record: SongRecord) -> dict[str, Path]:
    """The song's audio files, checked to exist. Stems are required; the mixture is required for
    duosynth and optional for MUSDB (absent → not in the returned dict)."""
    missing = [s for s in SOURCES if not record.file(s).is_file()]
    if missing:
        names = ", ".join(f"'{s}' ({record.file(s).name})" for s in missing)
        raise DatasetError(record.path, f"missing stem file(s): {names}")
    files = {s: record.file(s) for s in SOURCES}
    if record.file(MIXTURE).is_file():
        files[MIXTURE] = record.file(MIXTURE)
    elif record.layout == "duosynth":
        raise DatasetError(record.path, f"missing mixture file ({record.file(MIXTURE).name})")
    return files


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetError(path, f"invalid JSON ({exc})") from exc
    except OSError as exc:
        raise DatasetError(path, f"cannot read ({exc})") from exc


def _manifest_entry(manifest: Path, index: int, entry: Any) -> tuple[str, str, float, dict[str, Any]]:
    """Validate one ``songs`` entry → (id, split, duration, extra fields)."""
    if not isinstance(entry, Mapping):
        raise DatasetError(manifest, f"songs[{index}] is not an object")
    song_id, split, duration = entry.get("id"), entry.get("split"), entry.get("duration")
    if not isinstance(song_id, str) or not song_id or "/" in song_id or song_id.startswith("."):
        raise DatasetError(manifest, f"songs[{index}] has an invalid id {song_id!r}")
    if split not in SPLITS:
        raise DatasetError(manifest, f"song {song_id!r} has split {split!r}; expected one of {SPLITS}")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0:
        raise DatasetError(manifest, f"song {song_id!r} has an invalid duration {duration!r}")
    extra = {k: v for k, v in entry.items() if k not in ("id", "split", "duration")}
    return song_id, split, float(duration), extra


def _discover_duosynth(root: Path) -> list[SongRecord]:
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(root, f"no {MANIFEST}: not a duosynth corpus")
    data = _read_json(manifest)
    if not isinstance(data, Mapping) or data.get("format") != MANIFEST_FORMAT:
        raise DatasetError(manifest, f'not a duosynth manifest (expected "format": "{MANIFEST_FORMAT}")')
    if data.get("version") != MANIFEST_VERSION:
        raise DatasetError(
            manifest, f"unsupported manifest version {data.get('version')!r}; expected {MANIFEST_VERSION}"
        )
    rate = data.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise DatasetError(manifest, f"invalid sample_rate {rate!r}")
    songs = data.get("songs")
    if not isinstance(songs, list) or not songs:
        raise DatasetError(manifest, 'no songs found ("songs" is missing or empty)')

    records: list[SongRecord] = []
    seen: set[str] = set()
    for index, entry in enumerate(songs):
        song_id, split, duration, extra = _manifest_entry(manifest, index, entry)
        if song_id in seen:
            raise DatasetError(manifest, f"song id {song_id!r} is listed twice")
        seen.add(song_id)
        folder = root / "songs" / song_id
        if not folder.is_dir():
            raise DatasetError(folder, f"song {song_id!r} is listed in {manifest} but its folder is missing")
        record = SongRecord(song_id, split, folder, "duosynth", duration, extra, rate)
        _song_files(record)
        records.append(record)
    return records


def _is_track_folder(folder: Path) -> bool:
    """A folder holding at least one MUSDB-named wav is a track (so a partial one is reported)."""
    return folder.is_dir() and any((folder / f"{n}.wav").is_file() for n in (MIXTURE, *SOURCES))


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _discover_musdb(root: Path) -> list[SongRecord]:
    split_dirs = [(s, root / s) for s in SPLITS if (root / s).is_dir()]
    if split_dirs:
        candidates = [(split, track) for split, folder in split_dirs for track in _subfolders(folder)]
    else:
        candidates = [("train", track) for track in _subfolders(root)]

    records: list[SongRecord] = []
    for split, track in candidates:
        if not _is_track_folder(track):
            continue
        record = SongRecord(track.name, split, track, "musdb", 0.0)
        _song_files(record)
        rate, _, frames = audio_info(record.file("vocals"))
        record.sample_rate, record.duration = rate, frames / rate
        records.append(record)
    if not records:
        raise DatasetError(
            root,
            f"no songs found: expected {MANIFEST} (duosynth) or MUSDB18-HQ track folders holding "
            f"{', '.join(s + '.wav' for s in SOURCES)} (under train/ and test/, or directly under the root)",
        )
    return records


def discover_songs(
    root: str | os.PathLike[str], layout: Literal["auto", "duosynth", "musdb"] = "auto"
) -> list[SongRecord]:
    """List the songs under ``root`` without decoding audio, checking every stem file exists.

    ``layout="auto"`` picks duosynth when ``root/manifest.json`` exists, MUSDB18-HQ otherwise.
    Raises :class:`DatasetError` naming the path when the root is missing, no songs are found, the
    manifest lists a song whose folder is missing, or a stem file is missing.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(root, "dataset root not found")
    if not root.is_dir():
        raise DatasetError(root, "dataset root is not a directory")
    if layout == "auto":
        layout = "duosynth" if (root / MANIFEST).is_file() else "musdb"
    if layout == "duosynth":
        return _discover_duosynth(root)
    if layout == "musdb":
        return _discover_musdb(root)
    raise ValueError(f"layout must be 'auto', 'duosynth' or 'musdb', got {layout!r}")


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def _check_same_length(folder: Path, lengths: Mapping[Path, int], what: str) -> int:
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{p.name}={n}" for p, n in lengths.items())
        raise DatasetError(folder, f"{what} have different lengths (samples): {detail}")
    return next(iter(lengths.values()))


def load_meta(record: SongRecord) -> dict[str, Any]:
    meta = dict(record.meta)
    meta_file = record.path / "meta.json"
    if record.layout == "duosynth" and meta_file.is_file():
        extra = _read_json(meta_file)
        if not isinstance(extra, Mapping):
            raise DatasetError(meta_file, "expected a JSON object")
        meta.update(extra)
    return meta


def load_song(record: SongRecord, sample_rate: int) -> dict[str, Any]:
    """Decode one song: ``{"mixture": (T,), "stems": (4, T) in SOURCES order, "meta": dict}``.

    Every file is checked (existence, decodability, rate/channels per the layout's policy) and the
    stems — and the mixture, when present — must have the same length, else :class:`DatasetError`
    names the files and their lengths. A MUSDB track without ``mixture.wav`` gets the stems' sum.
    """
    files = _song_files(record)
    convert = _CONVERT[record.layout]
    stems = {files[s]: load_audio(files[s], sample_rate, **convert) for s in SOURCES}
    _check_same_length(record.path, {p: a.shape[-1] for p, a in stems.items()}, "stems")
    stacked = np.stack(list(stems.values()))
    if MIXTURE in files:
        mixture = load_audio(files[MIXTURE], sample_rate, **convert)
        _check_same_length(record.path, {p: a.shape[-1] for p, a in {files[MIXTURE]: mixture, **stems}.items()},
                           "mixture and stems")
    else:
        mixture = stacked.sum(axis=0, dtype=np.float32)
    return {"mixture": mixture, "stems": stacked, "meta": load_meta(record)}


def song_length(record: SongRecord, sample_rate: int) -> int:
    """A ``duosynth`` song's length in samples from its five files' headers, after the checks
    :func:`load_song` makes on the decoded files short of the samples: every file exists and reads, is at
    ``sample_rate`` and mono (this layout is never converted), and all have one length."""
    if record.layout != "duosynth":
        raise ValueError(f"{record.path}: only duosynth songs are read by range, not {record.layout!r}")
    lengths: dict[Path, int] = {}
    for path in _song_files(record).values():
        rate, channels, frames = audio_info(path)
        check_conversion(path, rate, channels, sample_rate, "error", "error")
        lengths[path] = frames
    return _check_same_length(record.path, lengths, "mixture and stems")


# ----------------------------------------------------------------------------------------------
# Cropping (shared with duotok.data.mixture)
# ----------------------------------------------------------------------------------------------


def crop_offset(
    n_samples: int,
    segment: int,
    *,
    random: bool,
    seed: int,
    epoch: int,
    index: int,
    crop_index: int = 0,
    n_crops: int = 1,
) -> int:
    """Start sample of a ``segment``-sample crop of an ``n_samples`` signal.

    Random crops draw from a generator seeded by ``(seed, epoch, index)`` only, so item ``index``
    gets the same crop in any worker, any process and any order, and a new one each epoch.
    Deterministic crops (``random=False``, for evaluation) are evenly spaced: crop ``j`` of ``k``
    starts at ``(j + 0.5) / k`` of the available room — the centre crop when ``k == 1``.
    Signals no longer than the segment start at 0 (and are padded by :func:`crop_pad`).
    """
    room = n_samples - segment
    if room <= 0:
        return 0
    if random:
        rng = np.random.default_rng([seed, epoch, index])
        return int(rng.integers(0, room + 1))
    return int(round(room * (crop_index + 0.5) / n_crops))


def crop_pad(audio: np.ndarray, offset: int, segment: int) -> tuple[np.ndarray, int]:
    """``audio[..., offset:offset + segment]`` zero-padded at the end to ``segment`` samples, and the
    number of valid (unpadded) samples. Always a fresh array, never a view of a cached song."""
    piece = audio[..., offset : offset + segment]
    out = np.zeros((*audio.shape[:-1], segment), dtype=np.float32)
    out[..., : piece.shape[-1]] = piece
    return out, int(piece.shape[-1])


class SongCache:
    """A tiny LRU of decoded songs. Each DataLoader worker holds its own copy of the dataset and
    hence its own cache; it is dropped when the dataset is pickled (spawned workers)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, load: Any) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = load()
        if self.size > 0:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "_items": OrderedDict()}


def check_crop_args(segment_seconds: float, sample_rate: int, crops: int, seed: int) -> int:
    """The crop length in samples, after refusing a non-positive crop length or count or a negative seed:
    every crop dataset (stems, mixtures, registry items) checks its arguments here, alike."""
    segment = int(round(segment_seconds * sample_rate))
    if segment <= 0:
        raise ValueError(f"segment_seconds * sample_rate must be at least one sample, got {segment_seconds}")
    if crops < 1:
        raise ValueError(f"crops per song must be >= 1, got {crops}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return segment


class EpochCropDataset(Dataset):
    """What every crop dataset shares: an epoch that selects the random crops, and index checks."""

    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the random crops of ``epoch`` (no effect when ``random=False``)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def _check_index(self, index: int) -> int:
        """Accept Python-style negative indices; raise IndexError outside the dataset."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} crops")
        return index % len(self)


class StemCropDataset(EpochCropDataset):
    """Fixed-length crops of aligned songs for training and evaluation.

    Item ``i`` is crop ``i % crops_per_song`` of song ``i // crops_per_song`` of ``split``::

        {"mixture": (T,), "stems": (4, T) in SOURCES order, "accompaniment": (T,) drums+bass+other,
         "length": valid samples (< T when a short song was zero-padded at the end),
         "offset": crop start in seconds, "song_id": str, "meta": dict (whole-song meta)}

    Crops are reproducible (see :func:`crop_offset`); call :meth:`set_epoch` to draw new random
    crops (with ``persistent_workers=True`` DataLoader workers keep the epoch they were created
    with). A ``duosynth`` item decodes only its crop (module docstring: *Reading crops*); a MUSDB song is
    decoded whole, lazily, and the last ``cache_size`` are kept per worker.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        segment_seconds: float,
        sample_rate: int,
        layout: Literal["auto", "duosynth", "musdb"] = "auto",
        crops_per_song: int = 1,
        seed: int = 0,
        random: bool = True,
        cache_size: int = 2,
    ) -> None:
        self.segment = check_crop_args(segment_seconds, sample_rate, crops_per_song, seed)
        records = discover_songs(root, layout)
        self.records = [r for r in records if r.split == split]
        if not self.records:
            found = sorted({r.split for r in records})
            raise DatasetError(root, f"no songs in split {split!r} (splits present: {found})")
        for r in self.records:
            if r.layout == "duosynth" and r.sample_rate != sample_rate:
                raise DatasetError(
                    Path(root) / MANIFEST,
                    f"corpus is at {r.sample_rate} Hz but {sample_rate} Hz was requested "
                    "(duosynth audio is never resampled; regenerate the corpus or fix params.yaml)",
                )
        self.root = Path(root)
        self.split = split
        self.sample_rate = int(sample_rate)
        self.crops_per_song = int(crops_per_song)
        self.seed = int(seed)
        self.random = bool(random)
        self.epoch = 0
        self._cache = SongCache(cache_size)
        self._headers: dict[str, tuple[int, dict[str, Any]]] = {}   # song id → (length, meta), read once

    def __len__(self) -> int:
        return len(self.records) * self.crops_per_song


    def song(self, song_index: int) -> dict[str, Any]:
        """The decoded song ``song_index`` (cached)."""
        record = self.records[song_index]
        return self._cache.get(record.id, lambda: load_song(record, self.sample_rate))

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        song_index, crop_index = divmod(index, self.crops_per_song)
        record = self.records[song_index]
        if record.layout == "duosynth":          # read the crop, not the song
            if record.id not in self._headers:
                self._headers[record.id] = (song_length(record, self.sample_rate), load_meta(record))
            n_samples, meta = self._headers[record.id]
            offset = self._offset(n_samples, index, crop_index)
            stems = np.stack([read_range(record.file(name), offset, self.segment)[:, 0] for name in SOURCES])
            mixture = read_range(record.file(MIXTURE), offset, self.segment)[:, 0]
            start = 0                            # the arrays begin at the crop
        else:                                    # resampled on load: decoded whole (and cached)
            song = self.song(song_index)
            meta, stems, mixture = song["meta"], song["stems"], song["mixture"]
            offset = start = self._offset(stems.shape[-1], index, crop_index)
        stems, length = crop_pad(stems, start, self.segment)
        mixture, _ = crop_pad(mixture, start, self.segment)
        accompaniment = stems[[SOURCES.index(s) for s in ACCOMPANIMENT]].sum(axis=0)
        return {
            "mixture": torch.from_numpy(mixture),
            "stems": torch.from_numpy(stems),
            "accompaniment": torch.from_numpy(accompaniment),
            "length": length,
            "offset": offset / self.sample_rate,
            "song_id": record.id,
            "meta": meta,
        }

    def _offset(self, n_samples: int, index: int, crop_index: int) -> int:
        return crop_offset(n_samples, self.segment, random=self.random, seed=self.seed, epoch=self.epoch,
                           index=index, crop_index=crop_index, n_crops=self.crops_per_song)


def collate_stems(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for :class:`StemCropDataset` (and ``MixtureFolderDataset``).

    Tensors are stacked, ints become an int64 tensor, floats a float64 tensor; anything else
    (ids, paths, meta dicts) stays a list, because default_collate would try to merge meta dicts
    whose note lists differ in length.
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if all(isinstance(v, torch.Tensor) for v in values):
            out[key] = torch.stack(values)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out[key] = torch.tensor(values, dtype=torch.int64)
        elif all(isinstance(v, float) for v in values):
            out[key] = torch.tensor(values, dtype=torch.float64)
        else:
            out[key] = values
    return out
