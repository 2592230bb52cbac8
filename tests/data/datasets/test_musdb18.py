"""MUSDB18 ``.stem.mp4``: discovery, the sigsep stream order, conversion to the MUSDB18-HQ layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from duotok.data.datasets import (
    STEM_STREAMS,
    DatasetProblems,
    convert_stem_mp4_to_hq,
    discover_musdb18,
    discover_musdb18hq,
    load,
    load_stem,
    load_stems,
)
from duotok.data.stems import SOURCES, discover_songs, load_song
from duotok.errors import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:.*(resampling|downmixing)")

SR = 16000
STEM_HZ = {"drums": 220.0, "bass": 110.0, "other": 660.0, "vocals": 880.0}
VALIDATION_TRACK = "Actions - One Minute Smile"  # one of sigsep's 14 validation tracks


@pytest.fixture(scope="module")
def musdb_root(tmp_path_factory, make_stem_mp4):
    root = tmp_path_factory.mktemp("musdb18")
    make_stem_mp4(root / "train" / f"{VALIDATION_TRACK}.stem.mp4")
    make_stem_mp4(root / "train" / "Track A.stem.mp4")
    make_stem_mp4(root / "test" / "Track B.stem.mp4", seconds=0.5)
    (root / "train" / "README.txt").write_text("not a track")
    return root


def test_stream_order_is_sigseps():
    assert STEM_STREAMS == {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}


def test_discover(musdb_root):
    found = discover_musdb18(musdb_root)
    assert [(i.id, i.split) for i in found.items] == [
        (VALIDATION_TRACK, "train"),
        ("Track A", "train"),
        ("Track B", "test"),
    ]
    a = found.items[1]
    assert a.path == musdb_root / "train" / "Track A.stem.mp4" and a.stream == 0
    assert {name: ref.stream for name, ref in a.stems.items()} == {"vocals": 4, "drums": 1, "bass": 2, "other": 3}
    assert a.duration == pytest.approx(1.0, abs=0.01) and found.items[2].duration == pytest.approx(0.5, abs=0.01)
    assert [p.path.name for p in found.skipped] == ["README.txt"]
    assert not found.problems


def test_validation_split(musdb_root):
    found = discover_musdb18(musdb_root, validation=True)
    assert {i.id: i.split for i in found.items}[VALIDATION_TRACK] == "valid"
    assert found.splits == ("valid", "train", "test")


def test_decode_each_stream_in_order(musdb_root, peak):
    item = discover_musdb18(musdb_root).items[1]
    for name in ("vocals", "bass"):  # one stream per ffmpeg call
        audio = load_stem(item, name, SR)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert len(audio) == SR  # AAC tail padding trimmed to the container's 1.0 s
        assert peak(audio, SR) == pytest.approx(STEM_HZ[name], abs=2), name
    stems = load_stems(item, SR)  # all four streams in one ffmpeg pass
    assert stems.shape == (4, SR)
    assert [round(peak(s, SR)) for s in stems] == [round(STEM_HZ[s]) for s in SOURCES]
    mixture = load(item, SR)
    assert mixture.shape == (SR,)
    # Lossy AAC: the mixture stream is close to, not equal to, the sum of the decoded stems.
    summed = stems.sum(axis=0)
    assert np.linalg.norm(mixture - summed) / np.linalg.norm(summed) < 0.1


@pytest.fixture(scope="module")
def converted(musdb_root, tmp_path_factory):
    dst = tmp_path_factory.mktemp("hq") / "musdb18hq"
    return dst, convert_stem_mp4_to_hq(musdb_root, dst)


def test_convert_to_hq_is_read_by_discover_songs(converted, peak):
    dst, report = converted
    assert sorted(p.name for p in report.written) == sorted([VALIDATION_TRACK, "Track A", "Track B"])
    records = discover_songs(dst, "musdb")
    assert [(r.id, r.split) for r in records] == [(VALIDATION_TRACK, "train"), ("Track A", "train"), ("Track B", "test")]
    vocals, rate = sf.read(str(dst / "train" / "Track A" / "vocals.wav"))
    assert rate == 44100 and vocals.shape == (44100, 2)
    assert peak(vocals[:, 0], rate) == pytest.approx(880, abs=2)
    song = load_song(records[1], SR)
    assert song["stems"].shape == (4, SR) and song["mixture"].shape == (SR,)
    assert not [p for p in dst.rglob(".*")], "temp files left behind"


def test_convert_resumes_and_overwrites(musdb_root, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "hq"
    (src / "test").mkdir(parents=True)
    shutil.copy(musdb_root / "test" / "Track B.stem.mp4", src / "test")
    assert [p.name for p in convert_stem_mp4_to_hq(src, dst).written] == ["Track B"]
    again = convert_stem_mp4_to_hq(src, dst)
    assert again.written == [] and [p.name for p in again.kept] == ["Track B"]
    (dst / "test" / "Track B" / "bass.wav").unlink()  # an interrupted earlier run
    assert [p.name for p in convert_stem_mp4_to_hq(src, dst).written] == ["Track B"]
    assert (dst / "test" / "Track B" / "bass.wav").is_file()
    assert [p.name for p in convert_stem_mp4_to_hq(src, dst, overwrite=True).written] == ["Track B"]


def test_musdb18hq_adapter(converted, tmp_path):
    dst = tmp_path / "hq"
    shutil.copytree(converted[0], dst)
    (dst / "test" / "Track B" / "mixture.wav").unlink()  # the HQ layout allows it
    found = discover_musdb18hq(dst, validation=True)
    items = {i.id: i for i in found.items}
    assert items[VALIDATION_TRACK].split == "valid"
    assert items["Track A"].path.name == "mixture.wav"
    b = items["Track B"]
    assert b.path == dst / "test" / "Track B"
    np.testing.assert_allclose(load(b, SR), load_stems(b, SR).sum(axis=0), atol=1e-6)


# ------------------------------------------------------------------------------------------ errors


def test_missing_root_and_not_musdb(tmp_path):
    with pytest.raises(DatasetError, match="MUSDB18 root not found"):
        discover_musdb18(tmp_path / "nope")
    with pytest.raises(DatasetError, match="not a MUSDB18"):
        discover_musdb18(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="no usable items"):
        discover_musdb18(tmp_path)


def test_bad_files_are_all_reported(musdb_root, tmp_path, make_stem_mp4):
    root = tmp_path / "musdb"
    (root / "test").mkdir(parents=True)
    shutil.copy(musdb_root / "test" / "Track B.stem.mp4", root / "test")
    make_stem_mp4(root / "test" / "Two Streams.stem.mp4", seconds=0.3, n_streams=2)
    (root / "test" / "Corrupt.stem.mp4").write_bytes(b"\x00not an mp4" * 50)
    (root / "test" / "Empty.stem.mp4").write_bytes(b"")
    with pytest.raises(DatasetProblems) as info:
        discover_musdb18(root)
    message = str(info.value)
    assert "3 problem(s)" in message
    assert "Two Streams.stem.mp4: has 2 audio stream(s)" in message
    assert "Corrupt.stem.mp4: unreadable or corrupt" in message
    assert "Empty.stem.mp4: audio file is empty" in message
    assert {p.path.name for p in info.value.problems} == {"Two Streams.stem.mp4", "Corrupt.stem.mp4", "Empty.stem.mp4"}

    lenient = discover_musdb18(root, strict=False)
    assert [i.id for i in lenient.items] == ["Track B"]
    assert len(lenient.problems) == 3

    dst = tmp_path / "hq"
    with pytest.raises(DatasetProblems):
        convert_stem_mp4_to_hq(root, dst)
    assert not dst.exists(), "conversion wrote files before checking the source"


def test_the_cli_converts_a_stem_mp4_tree(tmp_path, capsys, make_stem_mp4):
    """``duotok data musdb-hq SRC DST``: the conversion as a command; a second run keeps the tracks."""
    from duotok.cli import main
    from duotok.data.stems import discover_songs

    src = tmp_path / "musdb18"
    make_stem_mp4(src / "train" / "Artist - Song.stem.mp4")
    assert main(["data", "musdb-hq", str(src), str(tmp_path / "hq")]) == 0
    assert "1 track(s) written" in capsys.readouterr().out
    assert [r.id for r in discover_songs(tmp_path / "hq", "musdb")] == ["Artist - Song"]
    assert main(["data", "musdb-hq", str(src), str(tmp_path / "hq")]) == 0
    assert "1 already complete" in capsys.readouterr().out
