"""The ``open_dataset`` registry, the shared item/problem types, and decoding edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from duotok.data.datasets import (
    DATASETS,
    AudioItem,
    AudioRef,
    DatasetProblems,
    Discovery,
    Problem,
    dataset_options,
    decode,
    open_dataset,
)
from duotok.data.datasets.items import MAX_LISTED, finish
from duotok.errors import AudioFileError, ConfigError, DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:.*(resampling|downmixing)")


def test_registry_names():
    assert set(DATASETS) == {"musdb18", "musdb18hq", "mtg_jamendo", "magnatagatune", "gtzan", "folder"}
    assert dataset_options("folder") == ("extensions", "probe", "strict")
    assert "split_index" in dataset_options("mtg_jamendo") and "top_k" in dataset_options("magnatagatune")


def test_open_dataset_passes_options(tmp_path, encode_tone):
    encode_tone(tmp_path / "a.wav", 440.0, 0.2)
    encode_tone(tmp_path / "b.flac", 440.0, 0.2)
    found = open_dataset("folder", tmp_path, extensions=[".flac"], probe=True)
    assert isinstance(found, Discovery) and [i.id for i in found.items] == ["b.flac"]
    assert found.items[0].duration == pytest.approx(0.2)


def test_open_dataset_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'fma'; known: musdb18, musdb18hq"):
        open_dataset("fma", tmp_path)
    with pytest.raises(ConfigError, match=r"dataset 'gtzan' has no option\(s\) \['top_k'\]; valid: split_lists"):
        open_dataset("gtzan", tmp_path, top_k=50)


def test_open_dataset_strict_and_lenient(tmp_path, encode_tone):
    encode_tone(tmp_path / "a.wav", 440.0, 0.2)
    (tmp_path / "b.wav").write_bytes(b"")
    with pytest.raises(DatasetProblems, match="b.wav: audio file is empty"):
        open_dataset("folder", tmp_path)
    lenient = open_dataset("folder", tmp_path, strict=False)
    assert [i.id for i in lenient.items] == ["a.wav"] and len(lenient.problems) == 1


def test_problem_list_is_truncated_but_complete(tmp_path):
    problems = [Problem(tmp_path / f"{n}.wav", "audio file not found") for n in range(MAX_LISTED + 5)]
    found = Discovery("x", tmp_path, [AudioItem("a", tmp_path / "a.wav", "all")], problems)
    with pytest.raises(DatasetProblems) as info:
        finish(found, strict=True)
    assert f"{MAX_LISTED + 5} problem(s)" in str(info.value) and "... and 5 more" in str(info.value)
    assert len(info.value.problems) == MAX_LISTED + 5
    assert isinstance(info.value, DatasetError) and info.value.path == str(tmp_path)


def test_empty_discovery_mentions_its_problems(tmp_path):
    found = Discovery("x", tmp_path, [], [Problem(tmp_path / "a.wav", "audio file not found")])
    with pytest.raises(DatasetError, match=r"x: no usable items found; 1 problem\(s\):\n  .*a\.wav: audio file not found"):
        finish(found, strict=False)


def test_discovery_split_selection(tmp_path):
    items = [AudioItem(n, tmp_path / n, s) for n, s in (("a", "train"), ("b", "test"), ("c", "train"))]
    found = Discovery("x", tmp_path, items)
    assert found.splits == ("train", "test")
    assert [i.id for i in found.split("train")] == ["a", "c"] and found.split() == items
    with pytest.raises(DatasetError, match=r"no items in split\(s\) \['valid'\]"):
        found.split("valid")
    assert len({*items, *found.split("train")}) == 3  # hashable despite the dict fields


def test_decode_errors_name_the_file(tmp_path, make_stem_mp4):
    stem_file = make_stem_mp4(tmp_path / "t.stem.mp4", seconds=0.2, n_streams=2)
    with pytest.raises(AudioFileError, match=r"t\.stem\.mp4: has 2 audio stream\(s\); stream\(s\) \[4\] were requested"):
        decode(AudioRef(stem_file, 4), 16000)
    with pytest.raises(AudioFileError, match="missing.m4a: file not found"):
        decode(AudioRef(tmp_path / "missing.m4a"), 16000)
    assert str(AudioRef(Path("x.mp4"), 2)) == "x.mp4 (audio stream 2)"


def test_missing_ffmpeg_is_explained(tmp_path, make_stem_mp4, monkeypatch):
    stem_file = make_stem_mp4(tmp_path / "t.stem.mp4", seconds=0.2, n_streams=1)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(AudioFileError, match="'ffprobe' not found on PATH; it is needed to read .mp4 files"):
        decode(AudioRef(stem_file, 0), 16000)
