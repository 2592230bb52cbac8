"""GTZAN: the original .au archive and the wav copy, genre tags, the fault-filtered split lists."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from duotok.data.datasets import GENRES, DatasetProblems, discover_gtzan, load
from duotok.errors import AudioFileError, DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:.*(resampling|downmixing)")

SR = 16000
GTZAN_RATE = 22050


def make_gtzan(folder, suffix=".au", per_genre=2, seconds=0.2, make_tone=None):
    """``<folder>/<genre>/<genre>.000NN<suffix>``: 22 050 Hz mono 16-bit, as in the archive."""
    for g, genre in enumerate(GENRES):
        for n in range(per_genre):
            path = folder / genre / f"{genre}.{n:05d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            audio = make_tone(200.0 + 50 * g, seconds, GTZAN_RATE)
            sf.write(str(path), audio, GTZAN_RATE, subtype="PCM_16", format="AU" if suffix == ".au" else "WAV")
    return folder


@pytest.fixture
def original(tmp_path, make_tone):
    root = tmp_path / "gtzan"
    make_gtzan(root / "genres", make_tone=make_tone)
    (root / "genres" / "input.mf").write_text("blues/blues.00000.au\tblues\n")  # marsyas collection file
    return root


def test_discover_original_archive(original):
    found = discover_gtzan(original)
    assert len(found) == 20 and found.tags == GENRES
    first = found.items[0]
    assert (first.id, first.split, first.tags) == ("blues.00000", "all", ("blues",))
    assert first.path == original / "genres" / "blues" / "blues.00000.au"
    assert {i.tags[0] for i in found.items} == set(GENRES)
    assert all(i.tags == (i.id.split(".")[0],) for i in found.items)
    assert [p.path.name for p in found.skipped] == ["input.mf"]


@pytest.mark.parametrize("sub", ["genres_original", "Data/genres_original", "."])
def test_wav_copy_layouts(tmp_path, make_tone, sub):
    root = tmp_path / "gtzan"
    make_gtzan(root / sub, suffix=".wav", per_genre=1, make_tone=make_tone)
    found = discover_gtzan(root)
    assert [i.id for i in found.items][:2] == ["blues.00000", "classical.00000"]
    assert found.items[0].path.suffix == ".wav"


def test_decode_au(original, peak):
    item = discover_gtzan(original).items[2]  # classical: 250 Hz
    with pytest.warns(UserWarning, match="resampling from 22050 Hz to 16000 Hz"):
        x = load(item, SR)
    assert x.dtype == np.float32 and x.shape == (round(0.2 * SR),)
    assert peak(x, SR) == pytest.approx(250, abs=6)


def test_probe_reports_durations_and_corrupt_files(original):
    (original / "genres/jazz/jazz.00001.au").write_bytes(b"\x00" * 64)  # like the wav copy's jazz.00054
    with pytest.raises(DatasetProblems, match=r"jazz\.00001\.au: unreadable or corrupt"):
        discover_gtzan(original, probe=True)
    found = discover_gtzan(original, probe=True, strict=False)
    assert len(found) == 19 and found.items[0].duration == pytest.approx(0.2)
    broken = next(i for i in discover_gtzan(original).items if i.id == "jazz.00001")
    with pytest.raises(AudioFileError, match=r"jazz\.00001\.au"):
        load(broken, SR)


def test_fault_filtered_split_lists(original, tmp_path):
    lists = tmp_path / "split" / "gtzan"
    lists.mkdir(parents=True)
    # As published (coreyker/dnn-mgr, copied in sota-music-tagging-models split/gtzan): .wav names.
    (lists / "train_filtered.txt").write_text("blues/blues.00000.wav\nrock/rock.00001.wav\n")
    (lists / "valid_filtered.txt").write_text("jazz/jazz.00000.wav\n")
    (lists / "test_filtered.txt").write_text("pop/pop.00001.wav\n\n")
    found = discover_gtzan(original, split_lists=lists)
    assert [(i.id, i.split) for i in found.items] == [
        ("blues.00000", "train"),
        ("jazz.00000", "valid"),
        ("pop.00001", "test"),
        ("rock.00001", "train"),
    ]
    assert len([p for p in found.skipped if p.problem == "not in the fault-filtered split lists"]) == 16
    assert found.split("train", "test") == [found.items[0], found.items[2], found.items[3]]

    (lists / "test_filtered.txt").write_text("pop.00001.wav\n")
    with pytest.raises(DatasetError, match=r"test_filtered\.txt: line 1: expected <genre>/<genre>\.000NN\.wav"):
        discover_gtzan(original, split_lists=lists)


# ------------------------------------------------------------------------------------------ errors


def test_not_gtzan(tmp_path):
    with pytest.raises(DatasetError, match="GTZAN root not found"):
        discover_gtzan(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no GTZAN genre folders"):
        discover_gtzan(tmp_path)


def test_bad_files_are_all_reported(original, make_tone):
    genres = original / "genres"
    for f in (genres / "reggae").iterdir():
        f.unlink()
    (genres / "reggae").rmdir()
    sf.write(str(genres / "jazz" / "blues.00007.au"), make_tone(300.0, 0.1, GTZAN_RATE), GTZAN_RATE, format="AU")
    sf.write(str(genres / "rock" / "rock.00000.wav"), make_tone(300.0, 0.1, GTZAN_RATE), GTZAN_RATE)
    (genres / "pop" / "pop.00001.au").write_bytes(b"")
    with pytest.raises(DatasetProblems) as info:
        discover_gtzan(original)
    message = str(info.value)
    assert "4 problem(s)" in message
    assert "reggae: genre folder missing" in message
    assert "jazz/blues.00007.au: file name is not jazz.000NN.au (in folder jazz/)" in message
    assert "rock.00000.wav: clip rock.00000 is present twice (also rock.00000.au)" in message
    assert "pop.00001.au: audio file is empty (0 bytes)" in message
