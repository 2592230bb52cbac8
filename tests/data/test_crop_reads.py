"""Reading the crop, not the song: every item is bit-identical to :class:`StemCropDataset`'s, for random and
evaluation crops, padded short songs, any epoch and any access order; bad files are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from duotok.data import StemCropDataset
from duotok.data.crop_reads import CropReadStemDataset, read_range, song_frames
from duotok.errors import AudioFileError, DatasetError

SONGS = (("a", "train", 2.0), ("b", "train", 0.25), ("c", "train", 1.3), ("d", "valid", 1.0))


def _same_item(x: dict, y: dict) -> None:
    assert set(x) == set(y)
    for key in ("mixture", "stems", "accompaniment"):
        assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), key
    for key in ("length", "offset", "song_id", "meta"):
        assert x[key] == y[key], key


@pytest.mark.parametrize("random, crops", [(True, 3), (False, 2)])
def test_items_are_bit_identical_to_decoding_the_whole_song(tmp_path, make_duosynth, random, crops):
    root = make_duosynth(tmp_path / "data", SONGS)
    kwargs = dict(segment_seconds=0.5, sample_rate=16000, crops_per_song=crops, seed=3, random=random)
    whole, ranged = StemCropDataset(root, "train", **kwargs), CropReadStemDataset(root, "train", **kwargs)
    assert len(whole) == len(ranged) == 3 * crops
    for epoch in (0, 2):
        whole.set_epoch(epoch)
        ranged.set_epoch(epoch)
        for index in [5, 0, 3, -1, 1, 2, 4] if crops == 3 else range(len(whole)):   # any order
            _same_item(ranged[index], whole[index])
    padded = ranged[crops]                    # song "b" (0.25 s) is shorter than the crop: zero tail, same as the parent
    assert padded["length"] == 4000 and float(padded["stems"][:, 4000:].abs().sum()) == 0.0


def test_a_song_is_measured_from_its_headers_once(tmp_path, make_duosynth, monkeypatch):
    root = make_duosynth(tmp_path / "data", SONGS)
    data = CropReadStemDataset(root, "train", 0.5, 16000, crops_per_song=2)
    calls = []
    import duotok.data.crop_reads as crop_reads
    real = crop_reads.song_frames
    monkeypatch.setattr(crop_reads, "song_frames", lambda record: calls.append(record.id) or real(record))
    for i in range(len(data)):
        data[i]
    assert calls == ["a", "b", "c"]
    assert song_frames(data.records[0]) == 32000


def test_a_range_is_the_files_samples_and_bad_files_are_refused_by_name(tmp_path, write_audio):
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(3000) * 0.1).astype(np.float32)
    path = write_audio(tmp_path / "x.flac", samples)
    decoded, _ = sf.read(str(path), dtype="float32")
    assert np.array_equal(read_range(path, 16000, 1000, 500), decoded[1000:1500])
    assert np.array_equal(read_range(path, 16000, 2900, 500), decoded[2900:])           # fewer at the end
    with pytest.raises(AudioFileError, match="x.flac.*expected 22050"):
        read_range(path, 22050, 0, 10)
    stereo = write_audio(tmp_path / "s.flac", np.stack([samples, samples], axis=1))
    with pytest.raises(AudioFileError, match="s.flac.*channels"):
        read_range(stereo, 16000, 0, 10)
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not a flac file")
    with pytest.raises(AudioFileError, match="broken.flac"):
        read_range(broken, 16000, 0, 10)
    nan = write_audio(tmp_path / "nan.wav", np.where(np.arange(3000) == 1200, np.nan, samples).astype(np.float32),
                      subtype="FLOAT")
    with pytest.raises(AudioFileError, match="nan.wav.*first at frame 1200"):
        read_range(nan, 16000, 1000, 500)


def test_stems_of_different_lengths_are_refused_naming_the_song(tmp_path, make_duosynth, write_audio):
    root = make_duosynth(tmp_path / "data", SONGS)
    write_audio(root / "songs" / "a" / "bass.flac", np.zeros(100, dtype=np.float32))
    data = CropReadStemDataset(root, "train", 0.5, 16000)
    with pytest.raises(DatasetError, match="songs/a.*bass.flac=100"):
        data[0]


@pytest.mark.filterwarnings("ignore:.*downmixing")
def test_musdb_songs_are_still_decoded_whole(tmp_path, write_audio):
    rng = np.random.default_rng(1)
    for track in ("t1", "t2"):
        for name in ("vocals", "drums", "bass", "other"):
            write_audio(tmp_path / "musdb" / "train" / track / f"{name}.wav",
                        (rng.standard_normal((8000, 2)) * 0.1).astype(np.float32), sample_rate=16000)
    kwargs = dict(segment_seconds=0.2, sample_rate=16000, layout="musdb", crops_per_song=2, seed=1)
    whole, ranged = StemCropDataset(tmp_path / "musdb", "train", **kwargs), \
        CropReadStemDataset(tmp_path / "musdb", "train", **kwargs)
    for i in range(len(whole)):
        _same_item(ranged[i], whole[i])


def test_a_missing_file_is_refused_by_name(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    data = CropReadStemDataset(root, "train", 0.5, 16000)   # (discovery refuses it up front; gone after that)
    (root / "songs" / "c" / "mixture.flac").unlink()
    data[0]
    with pytest.raises(AudioFileError, match="songs/c/mixture.flac"):
        data[2]
