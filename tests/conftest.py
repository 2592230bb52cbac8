"""Shared fixtures: tiny synthetic audio files and corpora written into ``tmp_path``.

Files are written with soundfile directly (not ``duotok.audio.io.save_audio``), so the loaders
under test never depend on the writer under test. Everything is short (<= 2 s) to keep tests fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

# No tests/__init__.py: make the package importable however pytest is launched.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# One intra-op thread per test process: on a shared 2-core machine torch's default of 2 threads made
# tiny forward passes ~300x slower under load (measured by the encoder tests).
torch.set_num_threads(1)

SR = 16000
STEM_NAMES = ("vocals", "drums", "bass", "other")


def sine(freq: float, seconds: float, sample_rate: int = SR, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine, the workhorse signal of these tests."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def synthetic_stems(
    n_samples: int, seed: int, channels: int = 1, sample_rate: int = SR
) -> dict[str, np.ndarray]:
    """Four distinguishable stems (sines + a little noise, so every crop is unique), summing to
    well under full scale. Shape (n,) for mono, (n, channels) otherwise (soundfile's layout)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate
    freqs = {"vocals": 440.0, "drums": 0.0, "bass": 110.0, "other": 660.0}
    out = {}
    for name in STEM_NAMES:
        tone = 0.15 * np.sin(2 * np.pi * freqs[name] * t) if freqs[name] else 0.0
        noise = 0.05 * rng.standard_normal((n_samples, channels))
        x = (noise + (tone[:, None] if freqs[name] else 0.0)).astype(np.float32)
        out[name] = x[:, 0] if channels == 1 else x
    return out


@pytest.fixture
def make_sine() -> Callable[..., np.ndarray]:
    """``make_sine(freq, seconds, sample_rate=16000, amplitude=0.5)`` → float32 sine."""
    return sine


@pytest.fixture
def write_audio() -> Callable[..., Path]:
    """``write_audio(path, data, sample_rate=16000, subtype="PCM_16")`` → path (parents created)."""

    def _write(path: Path, data: np.ndarray, sample_rate: int = SR, subtype: str = "PCM_16") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), data, sample_rate, subtype=subtype)
        return path

    return _write


DEFAULT_SONGS = (
    ("song-a", "train", 2.0),
    ("song-b", "train", 0.25),  # shorter than typical test segments: exercises padding
    ("song-c", "valid", 1.0),
    ("song-d", "test", 1.0),
)


@pytest.fixture
def make_duosynth(write_audio) -> Callable[..., Path]:
    """``make_duosynth(root, songs=DEFAULT_SONGS)`` writes a duosynth corpus and returns ``root``.

    ``songs`` holds ``(id, split, seconds)``; each song has FLAC stems, ``mixture.flac`` = their
    sum, and a ``meta.json`` with one A4 vocal note and lyrics.
    """

    def _make(root: Path, songs: Sequence[tuple[str, str, float]] = DEFAULT_SONGS) -> Path:
        entries = []
        for seed, (song_id, split, seconds) in enumerate(songs):
            n = int(round(seconds * SR))
            folder = root / "songs" / song_id
            stems = synthetic_stems(n, seed)
            for name, audio in stems.items():
                write_audio(folder / f"{name}.flac", audio)
            write_audio(folder / "mixture.flac", sum(stems.values()))
            meta = {
                "notes": {"vocals": [{"pitch": 69, "onset": 0.0, "duration": seconds / 2}]},
                "lyrics": f"la la {song_id}",
            }
            (folder / "meta.json").write_text(json.dumps(meta))
            entries.append({"id": song_id, "split": split, "work": f"work-{song_id}", "duration": n / SR})
        manifest = {"format": "duosynth", "version": 1, "sample_rate": SR, "songs": entries}
        root.mkdir(parents=True, exist_ok=True)
        (root / "manifest.json").write_text(json.dumps(manifest))
        return root

    return _make


@pytest.fixture
def duosynth_root(tmp_path, make_duosynth) -> Path:
    """The default four-song duosynth corpus (train: song-a 2 s, song-b 0.25 s; valid; test)."""
    return make_duosynth(tmp_path / "duosynth")


MUSDB_RATE = 44100


@pytest.fixture
def make_musdb(write_audio) -> Callable[..., Path]:
    """``make_musdb(root, tracks=(("train", "Track A", 1.0),), with_mixture=True, split_folders=True)``
    writes MUSDB18-HQ-style 44.1 kHz stereo WAV tracks and returns ``root``."""

    def _make(
        root: Path,
        tracks: Sequence[tuple[str, str, float]] = (("train", "Track A", 1.0), ("test", "Track B", 0.5)),
        with_mixture: bool = True,
        split_folders: bool = True,
    ) -> Path:
        for seed, (split, name, seconds) in enumerate(tracks):
            folder = root / split / name if split_folders else root / name
            stems = synthetic_stems(
                int(round(seconds * MUSDB_RATE)), seed + 10, channels=2, sample_rate=MUSDB_RATE
            )
            for stem, audio in stems.items():
                write_audio(folder / f"{stem}.wav", audio, MUSDB_RATE)
            if with_mixture:
                write_audio(folder / "mixture.wav", sum(stems.values()), MUSDB_RATE)
        return root

    return _make
