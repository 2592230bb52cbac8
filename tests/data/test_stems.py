"""Song discovery and loading for both layouts, their error messages, and StemCropDataset crops."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from duotok.data.stems import (
    SOURCES,
    StemCropDataset,
    collate_stems,
    crop_offset,
    discover_songs,
    load_song,
)
from duotok.errors import AudioFileError, DatasetError

SR = 16000


def _record(records, song_id):
    return next(r for r in records if r.id == song_id)


# ------------------------------------------------------------------------------------- duosynth


def test_discover_duosynth(duosynth_root):
    records = discover_songs(duosynth_root)
    assert [(r.id, r.split, r.layout) for r in records] == [
        ("song-a", "train", "duosynth"),
        ("song-b", "train", "duosynth"),
        ("song-c", "valid", "duosynth"),
        ("song-d", "test", "duosynth"),
    ]
    a = records[0]
    assert a.path == duosynth_root / "songs" / "song-a"
    assert a.duration == pytest.approx(2.0) and a.sample_rate == SR
    assert a.meta == {"work": "work-song-a"}
    assert discover_songs(duosynth_root, layout="duosynth") == records


def test_load_duosynth_song(duosynth_root):
    song = load_song(_record(discover_songs(duosynth_root), "song-a"), SR)
    assert song["mixture"].shape == (32000,) and song["mixture"].dtype == np.float32
    assert song["stems"].shape == (4, 32000) and song["stems"].dtype == np.float32
    np.testing.assert_allclose(song["mixture"], song["stems"].sum(axis=0), atol=5e-4)
    assert song["meta"]["work"] == "work-song-a"
    assert song["meta"]["lyrics"] == "la la song-a"
    assert song["meta"]["notes"]["vocals"][0]["pitch"] == 69
    # SOURCES order: the fixture's vocals carry a 440 Hz tone, the drums none.
    spectrum = np.abs(np.fft.rfft(song["stems"], axis=-1))
    assert spectrum[0, 880] > 10 * spectrum[1, 880]


def test_missing_root():
    with pytest.raises(DatasetError, match="dataset root not found"):
        discover_songs("/nonexistent/duotok-data")


def test_no_songs_found(tmp_path):
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(DatasetError) as exc:
        discover_songs(tmp_path)
    assert str(tmp_path) in str(exc.value) and "no songs found" in str(exc.value)


def test_missing_stem_names_stem_and_folder(duosynth_root):
    folder = duosynth_root / "songs" / "song-c"
    (folder / "bass.flac").unlink()
    with pytest.raises(DatasetError) as exc:
        discover_songs(duosynth_root)
    assert str(folder) in str(exc.value)
    assert "missing stem" in str(exc.value) and "'bass' (bass.flac)" in str(exc.value)


def test_missing_stem_after_discovery_is_caught_by_load(duosynth_root):
    record = _record(discover_songs(duosynth_root), "song-d")
    (record.path / "other.flac").unlink()
    with pytest.raises(DatasetError, match=r"'other' \(other\.flac\)"):
        load_song(record, SR)


def test_manifest_song_with_missing_folder(duosynth_root):
    folder = duosynth_root / "songs" / "song-b"
    shutil.rmtree(folder)
    with pytest.raises(DatasetError) as exc:
        discover_songs(duosynth_root)
    message = str(exc.value)
    assert str(folder) in message and "manifest.json" in message and "folder is missing" in message


def test_duosynth_mixture_is_required(duosynth_root):
    folder = duosynth_root / "songs" / "song-a"
    (folder / "mixture.flac").unlink()
    with pytest.raises(DatasetError) as exc:
        discover_songs(duosynth_root)
    assert str(folder) in str(exc.value) and "mixture.flac" in str(exc.value)


def test_stems_of_different_lengths(duosynth_root, write_audio):
    folder = duosynth_root / "songs" / "song-c"
    write_audio(folder / "drums.flac", np.zeros(15000, np.float32))
    record = _record(discover_songs(duosynth_root), "song-c")
    with pytest.raises(DatasetError) as exc:
        load_song(record, SR)
    message = str(exc.value)
    assert str(folder) in message and "different lengths" in message
    assert "drums.flac=15000" in message and "vocals.flac=16000" in message


def test_duosynth_mixture_of_different_length(duosynth_root, write_audio):
    folder = duosynth_root / "songs" / "song-c"
    write_audio(folder / "mixture.flac", np.zeros(16001, np.float32))
    with pytest.raises(DatasetError, match=r"mixture\.flac=16001"):
        load_song(_record(discover_songs(duosynth_root), "song-c"), SR)


def test_duosynth_file_at_wrong_rate_is_refused_not_converted(duosynth_root, write_audio):
    path = write_audio(duosynth_root / "songs" / "song-c" / "vocals.flac", np.zeros(22050, np.float32), 22050)
    with pytest.raises(AudioFileError) as exc:
        load_song(_record(discover_songs(duosynth_root), "song-c"), SR)
    assert str(path) in str(exc.value) and "22050 Hz" in str(exc.value)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m.update(format="other"), "not a duosynth manifest"),
        (lambda m: m.update(version=2), "unsupported manifest version 2"),
        (lambda m: m["songs"][0].update(split="training"), "split 'training'"),
        (lambda m: m["songs"].append(dict(m["songs"][0])), "listed twice"),
        (lambda m: m.update(songs=[]), "no songs found"),
    ],
)
def test_malformed_manifest(duosynth_root, edit, fragment):
    path = duosynth_root / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError) as exc:
        discover_songs(duosynth_root)
    assert str(path) in str(exc.value) and fragment in str(exc.value)


def test_manifest_invalid_json(duosynth_root):
    (duosynth_root / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="invalid JSON"):
        discover_songs(duosynth_root)


# ---------------------------------------------------------------------------------------- MUSDB


def test_discover_musdb_with_split_folders(tmp_path, make_musdb):
    root = make_musdb(tmp_path / "musdb")
    records = discover_songs(root)
    assert [(r.id, r.split, r.layout) for r in records] == [
        ("Track A", "train", "musdb"),
        ("Track B", "test", "musdb"),
    ]
    assert records[0].duration == pytest.approx(1.0) and records[0].sample_rate == 44100


def test_musdb_is_resampled_and_downmixed_with_warnings(tmp_path, make_musdb):
    root = make_musdb(tmp_path / "musdb")
    record = discover_songs(root)[0]
    with pytest.warns(UserWarning) as caught:
        song = load_song(record, SR)
    messages = [str(w.message) for w in caught]
    assert any("vocals.wav: resampling from 44100 Hz to 16000 Hz" in m for m in messages)
    assert any("mixture.wav: downmixing 2 channels" in m for m in messages)
    assert song["stems"].shape == (4, SR) and song["mixture"].shape == (SR,)


def test_musdb_without_mixture_sums_stems(tmp_path, make_musdb):
    root = make_musdb(
        tmp_path / "musdb", tracks=(("train", "T", 0.5),), with_mixture=False, split_folders=False
    )
    records = discover_songs(root, layout="musdb")
    assert [(r.id, r.split) for r in records] == [("T", "train")]
    assert not (records[0].path / "mixture.wav").exists()
    with pytest.warns(UserWarning):
        song = load_song(records[0], SR)
    np.testing.assert_array_equal(song["mixture"], song["stems"].sum(axis=0))
    assert np.abs(song["mixture"]).max() > 0.1


def test_musdb_partial_track_is_reported(tmp_path, make_musdb):
    root = make_musdb(tmp_path / "musdb")
    folder = root / "test" / "Track B"
    (folder / "drums.wav").unlink()
    with pytest.raises(DatasetError) as exc:
        discover_songs(root)
    assert str(folder) in str(exc.value) and "'drums' (drums.wav)" in str(exc.value)


# ------------------------------------------------------------------------------ StemCropDataset


def _offsets(dataset) -> list[float]:
    return [dataset[i]["offset"] for i in range(len(dataset))]


def test_crop_item_contents(duosynth_root):
    ds = StemCropDataset(duosynth_root, "train", segment_seconds=0.5, sample_rate=SR, crops_per_song=3)
    assert len(ds) == 6
    item = ds[1]
    assert set(item) == {"mixture", "stems", "accompaniment", "length", "offset", "song_id", "meta"}
    assert item["song_id"] == "song-a" and item["length"] == 8000
    assert item["mixture"].shape == (8000,) and item["stems"].shape == (4, 8000)
    assert item["mixture"].dtype == torch.float32
    torch.testing.assert_close(item["accompaniment"], item["stems"][1:].sum(0))
    # The crop really is the song's audio at the reported offset.
    song = load_song(ds.records[0], SR)
    start = round(item["offset"] * SR)
    np.testing.assert_array_equal(item["stems"].numpy(), song["stems"][:, start : start + 8000])
    np.testing.assert_array_equal(item["mixture"].numpy(), song["mixture"][start : start + 8000])
    assert item["meta"]["lyrics"] == "la la song-a"


def test_short_song_is_zero_padded(duosynth_root):
    ds = StemCropDataset(duosynth_root, "train", segment_seconds=0.5, sample_rate=SR)
    item = ds[1]  # song-b: 0.25 s = 4000 samples
    assert item["song_id"] == "song-b"
    assert item["offset"] == 0.0 and item["length"] == 4000
    assert item["stems"].shape == (4, 8000)
    assert item["stems"][:, 4000:].abs().sum() == 0 and item["mixture"][4000:].abs().sum() == 0
    assert item["stems"][:, :4000].abs().sum() > 0


def test_crops_are_reproducible_and_change_with_epoch(duosynth_root):
    kwargs = dict(segment_seconds=0.25, sample_rate=SR, crops_per_song=4, seed=7)
    a, b = (
        StemCropDataset(duosynth_root, "train", **kwargs),
        StemCropDataset(duosynth_root, "train", **kwargs),
    )
    epoch0 = _offsets(a)
    assert epoch0 == _offsets(b)
    assert epoch0 == [a[i]["offset"] for i in reversed(range(len(a)))][::-1]  # order-independent
    assert len(set(epoch0[:4])) == 4  # the crops of one song differ
    a.set_epoch(1)
    epoch1 = _offsets(a)
    assert epoch1[:4] != epoch0[:4]
    a.set_epoch(0)
    assert _offsets(a) == epoch0
    other_seed = StemCropDataset(duosynth_root, "train", **{**kwargs, "seed": 8})
    assert _offsets(other_seed)[:4] != epoch0[:4]


def test_random_crops_leave_the_global_rngs_alone(duosynth_root):
    """What exact resume relies on (duotok.train.loop): a crop depends on (seed, epoch, index) only and
    reading one draws nothing from the global torch / NumPy / Python RNGs, so a resumed run can skip
    consumed batches by index and the model's masks and noise continue from the restored RNG state."""
    import random

    from duotok.eval.lm import TokenCropDataset

    stems = StemCropDataset(duosynth_root, "train", segment_seconds=0.25, sample_rate=SR, crops_per_song=4, seed=7)
    tokens = TokenCropDataset([torch.arange(40).reshape(2, 20)] * 3, crop_frames=5, seed=7, crops_per_song=2)
    for data in (stems, tokens):
        data.set_epoch(3)
        before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
        items = [data[i] for i in range(len(data))]
        assert torch.equal(torch.get_rng_state(), before[0])
        assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]
        later = data[len(data) - 1]  # read alone, as after skipping the others
        for key, value in later.items():
            if torch.is_tensor(value):
                assert torch.equal(value, items[-1][key])


def test_deterministic_crops_are_centred_and_ignore_epoch(duosynth_root):
    ds = StemCropDataset(duosynth_root, "train", segment_seconds=0.5, sample_rate=SR, random=False)
    assert ds[0]["offset"] == pytest.approx((32000 - 8000) / 2 / SR)
    ds.set_epoch(5)
    assert ds[0]["offset"] == pytest.approx((32000 - 8000) / 2 / SR)
    two = StemCropDataset(
        duosynth_root, "train", segment_seconds=0.5, sample_rate=SR, random=False, crops_per_song=2
    )
    assert [two[i]["offset"] * SR for i in range(2)] == [6000, 18000]


def test_crop_offset_bounds():
    offsets = {crop_offset(1000, 100, random=True, seed=0, epoch=0, index=i) for i in range(500)}
    assert min(offsets) >= 0 and max(offsets) <= 900 and len(offsets) > 200
    assert crop_offset(50, 100, random=True, seed=0, epoch=0, index=3) == 0


def test_dataloader_workers_give_the_same_crops(duosynth_root):
    ds = StemCropDataset(
        duosynth_root, "train", segment_seconds=0.25, sample_rate=SR, crops_per_song=2, seed=3
    )
    serial = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_stems)))
    parallel = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_stems, num_workers=2)))
    assert serial["mixture"].shape == (4, 4000) and serial["stems"].shape == (4, 4, 4000)
    assert serial["song_id"] == ["song-a", "song-a", "song-b", "song-b"]
    assert isinstance(serial["meta"], list) and serial["meta"][2]["lyrics"] == "la la song-b"
    assert serial["length"].dtype == torch.int64 and serial["length"].tolist() == [4000, 4000, 4000, 4000]
    assert serial["offset"].dtype == torch.float64
    torch.testing.assert_close(serial["mixture"], parallel["mixture"])
    torch.testing.assert_close(serial["offset"], parallel["offset"])


def test_cache_is_bounded_and_not_pickled(duosynth_root):
    ds = StemCropDataset(duosynth_root, "train", segment_seconds=0.1, sample_rate=SR, cache_size=1)
    ds.song(0), ds.song(1)            # whole songs (duosynth items read only their crop)
    assert len(ds._cache) == 1
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone._cache) == 0
    torch.testing.assert_close(clone[0]["mixture"], ds[0]["mixture"])


def test_unknown_split(duosynth_root):
    with pytest.raises(DatasetError, match=r"no songs in split 'dev'.*'test', 'train', 'valid'"):
        StemCropDataset(duosynth_root, "dev", segment_seconds=0.5, sample_rate=SR)


def test_duosynth_rate_mismatch_is_caught_up_front(duosynth_root):
    with pytest.raises(DatasetError, match="corpus is at 16000 Hz but 22050 Hz was requested"):
        StemCropDataset(duosynth_root, "train", segment_seconds=0.5, sample_rate=22050)


def test_musdb_crop_dataset(tmp_path, make_musdb):
    root = make_musdb(tmp_path / "musdb")
    ds = StemCropDataset(root, "test", segment_seconds=1.0, sample_rate=SR)
    with pytest.warns(UserWarning):
        item = ds[0]
    assert item["song_id"] == "Track B" and item["length"] == 8000 and item["stems"].shape == (4, SR)
    assert sf.info(str(ds.records[0].file("vocals"))).channels == 2
    assert len(SOURCES) == item["stems"].shape[0]
