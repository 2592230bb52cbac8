"""MixtureFolderDataset: recursive sorted discovery, conversion with warnings, crops, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from duotok.data import MixtureFolderDataset, collate_stems, discover_audio_files
from duotok.errors import AudioFileError, DatasetError

SR = 16000


@pytest.fixture
def music_folder(tmp_path, write_audio, make_sine):
    root = tmp_path / "music"
    write_audio(root / "b" / "two.flac", make_sine(440, 1.0))
    write_audio(root / "a.WAV", make_sine(220, 0.25))  # suffix match is case-insensitive
    write_audio(root / "b" / "c" / "deep.wav", np.stack([make_sine(330, 0.5, 22050)] * 2, axis=1), 22050)
    write_audio(root / "b" / "song.ogg", make_sine(440, 0.5), subtype="VORBIS")
    write_audio(root / "._a.wav", make_sine(220, 0.1))  # macOS resource fork: skipped
    write_audio(root / ".cache" / "x.wav", make_sine(220, 0.1))  # hidden folder: skipped
    (root / "notes.txt").write_text("not audio")
    return root


def test_discovery_is_recursive_sorted_and_skips_hidden(music_folder):
    files = discover_audio_files(music_folder)
    assert [p.relative_to(music_folder).as_posix() for p in files] == [
        "a.WAV",
        "b/c/deep.wav",
        "b/song.ogg",
        "b/two.flac",
    ]
    assert [p.name for p in discover_audio_files(music_folder, extensions=("flac",))] == ["two.flac"]


def test_no_audio_files(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError) as exc:
        MixtureFolderDataset(tmp_path, segment_seconds=0.5, sample_rate=SR)
    assert str(tmp_path) in str(exc.value) and "no audio files found" in str(exc.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="audio folder not found"):
        MixtureFolderDataset(tmp_path / "nope", segment_seconds=0.5, sample_rate=SR)


def test_items_convert_rate_and_channels_with_warning(music_folder):
    ds = MixtureFolderDataset(music_folder, segment_seconds=0.5, sample_rate=SR)
    assert len(ds) == 4
    with pytest.warns(UserWarning) as caught:
        item = ds[1]
    messages = " ".join(str(w.message) for w in caught)
    assert "deep.wav: downmixing 2 channels" in messages and "deep.wav: resampling from 22050 Hz" in messages
    assert item["path"].endswith("deep.wav")
    assert item["mixture"].shape == (8000,) and item["mixture"].dtype == torch.float32
    assert item["length"] == 8000 and item["offset"] == 0.0  # exactly one segment long
    assert item["mixture"].abs().max() > 0.4


def test_short_file_is_padded(music_folder):
    item = MixtureFolderDataset(music_folder, segment_seconds=0.5, sample_rate=SR)[0]
    assert item["path"].endswith("a.WAV")
    assert item["length"] == 4000 and item["mixture"][4000:].abs().sum() == 0
    assert item["mixture"][:4000].abs().sum() > 0


def test_crops_reproducible_and_epoch_dependent(music_folder):
    kwargs = dict(segment_seconds=0.1, sample_rate=SR, crops_per_file=3, seed=1)
    a, b = MixtureFolderDataset(music_folder, **kwargs), MixtureFolderDataset(music_folder, **kwargs)
    indices = range(9, 12)  # the three crops of b/two.flac (1 s)
    first = [a[i]["offset"] for i in indices]
    assert first == [b[i]["offset"] for i in indices]
    a.set_epoch(3)
    assert [a[i]["offset"] for i in indices] != first
    fixed = MixtureFolderDataset(music_folder, **{**kwargs, "random": False})
    assert [fixed[i]["offset"] * SR for i in indices] == [2400, 7200, 12000]


def test_collate(music_folder):
    ds = MixtureFolderDataset(music_folder, segment_seconds=0.25, sample_rate=SR)
    with pytest.warns(UserWarning):
        batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_stems)))
    assert batch["mixture"].shape == (4, 4000)
    assert batch["length"].tolist() == [4000] * 4
    assert len(batch["path"]) == 4 and batch["path"][3].endswith("two.flac")


def test_corrupt_file_is_reported_when_loaded(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    ds = MixtureFolderDataset(tmp_path, segment_seconds=0.5, sample_rate=SR)
    with pytest.raises(AudioFileError) as exc:
        ds[0]
    assert str(bad) in str(exc.value) and "unreadable or corrupt" in str(exc.value)
