"""Reading the crop, not the song: every :class:`StemCropDataset` item is bit-identical to the same crop cut
from the whole decoded song, for random and evaluation crops, padded short songs, any epoch and any access
order; MUSDB songs are decoded whole; bad files are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from duotok.audio.io import read_range
from duotok.data import StemCropDataset
from duotok.data.stems import ACCOMPANIMENT, SOURCES, crop_offset, crop_pad, load_song, song_length
from duotok.errors import AudioFileError, DatasetError

SONGS = (("a", "train", 2.0), ("b", "train", 0.25), ("c", "train", 1.3), ("d", "valid", 1.0))


def _same_item(x: dict, y: dict) -> None:
    assert set(x) == set(y)
    for key in ("mixture", "stems", "accompaniment"):
        assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), key
    for key in ("length", "offset", "song_id", "meta"):
        assert x[key] == y[key], key


def _whole_song_item(data: StemCropDataset, index: int) -> dict:
    """The item as cut from the whole decoded song (how every item was made before crops were read)."""
    index %= len(data)
    song_index, crop_index = divmod(index, data.crops_per_song)
    song = load_song(data.records[song_index], data.sample_rate)
    offset = crop_offset(song["stems"].shape[-1], data.segment, random=data.random, seed=data.seed, epoch=data.epoch,
                         index=index, crop_index=crop_index, n_crops=data.crops_per_song)
    stems, length = crop_pad(song["stems"], offset, data.segment)
    mixture, _ = crop_pad(song["mixture"], offset, data.segment)
    return {"mixture": torch.from_numpy(mixture), "stems": torch.from_numpy(stems),
            "accompaniment": torch.from_numpy(stems[[SOURCES.index(s) for s in ACCOMPANIMENT]].sum(axis=0)),
            "length": length, "offset": offset / data.sample_rate, "song_id": data.records[song_index].id,
            "meta": song["meta"]}


@pytest.mark.parametrize("random, crops", [(True, 3), (False, 2)])
def test_items_are_bit_identical_to_decoding_the_whole_song(tmp_path, make_duosynth, random, crops):
    root = make_duosynth(tmp_path / "data", SONGS)
    ranged = StemCropDataset(root, "train", segment_seconds=0.5, sample_rate=16000, crops_per_song=crops, seed=3,
                             random=random)
    assert len(ranged) == 3 * crops
    for epoch in (0, 2):
        ranged.set_epoch(epoch)
        for index in [5, 0, 3, -1, 1, 2, 4] if crops == 3 else range(len(ranged)):   # any order
            _same_item(ranged[index], _whole_song_item(ranged, index))
    padded = ranged[crops]                    # song "b" (0.25 s) is shorter than the crop: zero tail, same as the parent
    assert padded["length"] == 4000 and float(padded["stems"][:, 4000:].abs().sum()) == 0.0


def test_a_song_is_measured_from_its_headers_once_and_never_decoded_whole(tmp_path, make_duosynth, monkeypatch):
    root = make_duosynth(tmp_path / "data", SONGS)
    data = StemCropDataset(root, "train", 0.5, 16000, crops_per_song=2)
    calls = []
    import duotok.data.stems as stems
    real = stems.song_length
    monkeypatch.setattr(stems, "song_length", lambda record, rate: calls.append(record.id) or real(record, rate))
    monkeypatch.setattr(stems, "load_song", lambda *a: pytest.fail("a duosynth song was decoded whole"))
    for _ in range(2):
        for i in range(len(data)):
            data[i]
    assert calls == ["a", "b", "c"]
    assert song_length(data.records[0], 16000) == 32000


def test_a_range_is_the_files_samples_and_bad_files_are_refused_by_name(tmp_path, write_audio):
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(3000) * 0.1).astype(np.float32)
    path = write_audio(tmp_path / "x.flac", samples)
    decoded, _ = sf.read(str(path), dtype="float32", always_2d=True)
    assert np.array_equal(read_range(path, 1000, 500), decoded[1000:1500])
    assert np.array_equal(read_range(path, 2900, 500), decoded[2900:])           # fewer at the end
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not a flac file")
    with pytest.raises(AudioFileError, match="broken.flac"):
        read_range(broken, 0, 10)
    nan = write_audio(tmp_path / "nan.wav", np.where(np.arange(3000) == 1200, np.nan, samples).astype(np.float32),
                      subtype="FLOAT")
    with pytest.raises(AudioFileError, match="nan.wav.*first at frame 1200"):
        read_range(nan, 1000, 500)
    read_range(nan, 1300, 500)                                # outside the range, not seen


def test_a_song_at_another_rate_or_in_stereo_is_refused_naming_the_file(tmp_path, make_duosynth, write_audio):
    root = make_duosynth(tmp_path / "data", SONGS)
    write_audio(root / "songs" / "a" / "drums.flac", np.zeros(32000, dtype=np.float32), sample_rate=22050)
    with pytest.raises(AudioFileError, match="songs/a/drums.flac.*expected 16000"):
        StemCropDataset(root, "train", 0.5, 16000)[0]
    write_audio(root / "songs" / "c" / "other.flac", np.zeros((20800, 2), dtype=np.float32))
    with pytest.raises(AudioFileError, match="songs/c/other.flac.*channels"):
        StemCropDataset(root, "train", 0.5, 16000)[2]


def test_stems_of_different_lengths_are_refused_naming_the_song(tmp_path, make_duosynth, write_audio):
    root = make_duosynth(tmp_path / "data", SONGS)
    write_audio(root / "songs" / "a" / "bass.flac", np.zeros(100, dtype=np.float32))
    data = StemCropDataset(root, "train", 0.5, 16000)
    with pytest.raises(DatasetError, match="songs/a.*bass.flac=100"):
        data[0]


@pytest.mark.filterwarnings("ignore:.*downmixing")
def test_musdb_songs_are_still_decoded_whole(tmp_path, write_audio):
    rng = np.random.default_rng(1)
    for track in ("t1", "t2"):
        for name in ("vocals", "drums", "bass", "other"):
            write_audio(tmp_path / "musdb" / "train" / track / f"{name}.wav",
                        (rng.standard_normal((8000, 2)) * 0.1).astype(np.float32), sample_rate=16000)
    data = StemCropDataset(tmp_path / "musdb", "train", segment_seconds=0.2, sample_rate=16000, layout="musdb",
                           crops_per_song=2, seed=1)
    for i in range(len(data)):
        _same_item(data[i], _whole_song_item(data, i))
    assert len(data._cache) == 2                              # decoded whole, and cached


def test_a_missing_file_is_refused_by_name(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    data = StemCropDataset(root, "train", 0.5, 16000)   # (discovery refuses it up front; gone after that)
    (root / "songs" / "c" / "mixture.flac").unlink()
    data[0]
    with pytest.raises(DatasetError, match="songs/c: missing mixture file \\(mixture.flac\\)"):   # as load_song says
        data[2]
