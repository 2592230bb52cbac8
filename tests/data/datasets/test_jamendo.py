"""MTG-Jamendo: the official TSV splits, tags, the audio-low mirror, and malformed metadata."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from duotok.data.datasets import DatasetProblems, discover_jamendo, load
from duotok.data.datasets.jamendo import split_files
from duotok.errors import AudioFileError, DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:.*(resampling|downmixing)")

SR = 16000
HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
# Rows in the exact published form (data/splits/split-0/autotagging-*.tsv): tags one per field.
TRAIN = [
    "track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t124.6\tgenre---punkrock",
    "track_0000215\tartist_000014\talbum_000031\t15/215.mp3\t151.4\tgenre---metal\tinstrument---guitar",
]
VALIDATION = ["track_1048592\tartist_424343\talbum_123552\t92/1048592.mp3\t238.2\tgenre---alternative\tmood/theme---emotional"]
TEST = ["track_0786434\tartist_368880\talbum_092222\t34/786434.mp3\t460.8\tgenre---electronic\tgenre---house"]


def write_tsv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def write_split(meta_root, train=TRAIN, validation=VALIDATION, test=TEST, subset="autotagging", k=0):
    folder = meta_root / "data" / "splits" / f"split-{k}"
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        write_tsv(folder / f"{subset}-{name}.tsv", rows)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, encode_tone):
    """One 0.5 s 440 Hz stereo 44.1 kHz mp3, copied to every track path (encoding once is faster)."""
    return encode_tone(tmp_path_factory.mktemp("jamendo-src") / "tone.mp3", 440.0, 0.5)


@pytest.fixture
def jamendo(tmp_path, clip):
    """Audio root + a separate metadata clone; track 215 exists only as the audio-low twin."""
    audio, meta = tmp_path / "audio", tmp_path / "mtg-jamendo-dataset"
    for rel in ("14/214.mp3", "15/215.low.mp3", "92/1048592.mp3", "34/786434.mp3"):
        (audio / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, audio / rel)
    write_split(meta)
    return audio, meta


def test_split_file_names(tmp_path):
    files = split_files(tmp_path, "autotagging_top50tags", 3)
    assert files == {
        "train": tmp_path / "data/splits/split-3/autotagging_top50tags-train.tsv",
        "valid": tmp_path / "data/splits/split-3/autotagging_top50tags-validation.tsv",
        "test": tmp_path / "data/splits/split-3/autotagging_top50tags-test.tsv",
    }
    assert split_files(tmp_path, "autotagging", None) == {"all": tmp_path / "data/autotagging.tsv"}
    with pytest.raises(ValueError, match="subset"):
        split_files(tmp_path, "top50", 0)


def test_discover(jamendo):
    audio, meta = jamendo
    found = discover_jamendo(audio, metadata_root=meta)
    assert [(i.id, i.split) for i in found.items] == [
        ("track_0000214", "train"),
        ("track_0000215", "train"),
        ("track_1048592", "valid"),
        ("track_0786434", "test"),
    ]
    first, low = found.items[0], found.items[1]
    assert first.path == audio / "14/214.mp3" and first.duration == pytest.approx(124.6)
    assert first.tags == ("genre---punkrock",) and first.stems is None
    assert dict(first.meta) == {"artist_id": "artist_000014", "album_id": "album_000031"}
    assert low.path == audio / "15/215.low.mp3"  # the audio-low mirror's name
    assert low.tags == ("genre---metal", "instrument---guitar")
    assert found.items[3].tags == ("genre---electronic", "genre---house")
    assert "mood/theme---emotional" in found.tags and found.tags == tuple(sorted(found.tags))


def test_metadata_in_root_and_unsplit_file(tmp_path, clip):
    shutil.copytree(clip.parent, tmp_path / "14", dirs_exist_ok=True)
    (tmp_path / "14" / "tone.mp3").rename(tmp_path / "14" / "214.mp3")
    write_tsv(tmp_path / "data" / "autotagging.tsv", TRAIN[:1])
    found = discover_jamendo(tmp_path, split_index=None)
    assert [(i.id, i.split) for i in found.items] == [("track_0000214", "all")]


def test_decode(jamendo, peak):
    audio, meta = jamendo
    item = discover_jamendo(audio, metadata_root=meta).items[0]
    with pytest.warns(UserWarning, match="214.mp3: resampling from 44100 Hz to 16000 Hz"):
        x = load(item, SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - SR // 2) < 0.06 * SR  # mp3 framing may add a little
    assert peak(x, SR) == pytest.approx(440, abs=4)


def test_probe_reports_corrupt_audio(jamendo):
    audio, meta = jamendo
    (audio / "34/786434.mp3").write_bytes(b"\x00 not an mp3" * 100)
    with pytest.raises(DatasetProblems, match="786434.mp3: unreadable or corrupt"):
        discover_jamendo(audio, metadata_root=meta, probe=True)
    item = discover_jamendo(audio, metadata_root=meta).items[3]  # without probe: found at load time
    with pytest.raises(AudioFileError, match="786434.mp3"):
        load(item, SR)


# ------------------------------------------------------------------------------------------ errors


def test_missing_root_and_metadata(jamendo, tmp_path):
    audio, meta = jamendo
    with pytest.raises(DatasetError, match="MTG-Jamendo audio root not found"):
        discover_jamendo(tmp_path / "nope", metadata_root=meta)
    (meta / "data/splits/split-0/autotagging-validation.tsv").unlink()
    with pytest.raises(DatasetError, match=r"autotagging-validation\.tsv: MTG-Jamendo metadata file not found"):
        discover_jamendo(audio, metadata_root=meta)
    with pytest.raises(DatasetError, match="split-1/autotagging-train.tsv"):
        discover_jamendo(audio, metadata_root=meta, split_index=1)


def test_wrong_header(jamendo):
    audio, meta = jamendo
    tsv = meta / "data/splits/split-0/autotagging-test.tsv"
    tsv.write_text("TRACK_ID,ARTIST_ID,ALBUM_ID,PATH,DURATION,TAGS\n" + TEST[0] + "\n")
    with pytest.raises(DatasetError, match="autotagging-test.tsv: expected the tab-separated header"):
        discover_jamendo(audio, metadata_root=meta)


def test_malformed_rows_are_all_reported(jamendo):
    audio, meta = jamendo
    bad = [
        TRAIN[0],
        "track_0000216\tartist_000014\talbum_000031\t16/216.mp3",  # too few fields
        "track_0000217\tartist_000014\talbum_000031\t17/217.mp3\tlong\tgenre---metal",  # duration
        "track_0000218\tartist_000014\talbum_000031\t18/218.mp3\t99.0\trock",  # tag without category
        "0000219\tartist_000014\talbum_000031\t19/219.mp3\t99.0\tgenre---metal",  # id
        "track_0000220\tartist_000014\talbum_000031\t../220.mp3\t99.0\tgenre---metal",  # path escapes
        "track_0000221\tartist_000014\talbum_000031\t21/221.mp3\t99.0\tgenre---metal",  # audio missing
        TEST[0],  # also in the test split
    ]
    write_split(meta, train=bad)
    with pytest.raises(DatasetProblems) as info:
        discover_jamendo(audio, metadata_root=meta)
    message = str(info.value)
    assert "7 problem(s)" in message
    for expected in (
        "autotagging-train.tsv: line 3: expected at least 5 tab-separated fields, got 4",
        "line 4: invalid DURATION 'long'",
        "line 5: tags not of the form",
        "line 6: invalid TRACK_ID '0000219'",
        "line 7: invalid PATH '../220.mp3'",
        "21/221.mp3: audio file not found (track_0000221, autotagging-train.tsv line 8)",
        "autotagging-test.tsv: line 2: track_0786434 is also listed in",
    ):
        assert expected in message
    lenient = discover_jamendo(audio, metadata_root=meta, strict=False)
    assert [i.id for i in lenient.items] == ["track_0000214", "track_0786434", "track_1048592"]
    assert len(lenient.problems) == 7


def test_empty_split(jamendo):
    audio, meta = jamendo
    write_split(meta, train=[], validation=[], test=[])
    with pytest.raises(DatasetError, match="mtg_jamendo: no usable items"):
        discover_jamendo(audio, metadata_root=meta)
