"""MagnaTagATune: annotations_final.csv parsing, top-k tag selection, the folder and list splits."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from duotok.data.datasets import DatasetProblems, discover_magnatagatune, load, top_tags
from duotok.errors import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:.*(resampling|downmixing)")

SR = 16000
TAGS = ["guitar", "classical", "slow", "techno", "rock"]
# clip_id, labels per TAGS, mp3_path. Counts: guitar 3, classical 2, slow 3, techno 1, rock 2.
CLIPS = [
    ("2", [1, 1, 0, 0, 0], "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"),
    ("6", [1, 0, 1, 0, 1], "0/tilopa-turkishauch-01-remember-0-29.mp3"),
    ("10", [0, 1, 1, 0, 0], "b/jacob_heringman-blame_not_my_lute-01-la_bressanne-59-88.mp3"),
    ("11", [1, 0, 1, 0, 1], "c/magnatune_compilation-rock-03-the_bitters-96-125.mp3"),
    ("12", [0, 0, 0, 1, 0], "d/strojovna_07-mirnix-04-out-0-29.mp3"),  # only a rare tag
]


def write_annotations(root, clips=CLIPS, tags=TAGS):
    """The published format: tab-separated, every field double-quoted."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations_final.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *tags, "mp3_path"])
        for clip_id, labels, rel in clips:
            writer.writerow([clip_id, *labels, rel])


@pytest.fixture(scope="module")
def clip(tmp_path_factory, encode_tone):
    return encode_tone(tmp_path_factory.mktemp("mtt-src") / "tone.mp3", 330.0, 0.5, rate=16000, channels=1)


@pytest.fixture
def mtt(tmp_path, clip):
    root = tmp_path / "magnatagatune"
    for _, _, rel in CLIPS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / rel)
    write_annotations(root)
    return root


def test_top_tags_counts_then_column_order():
    assert top_tags(TAGS, [3, 2, 3, 1, 2], 3) == ("guitar", "slow", "classical")
    assert top_tags(TAGS, [3, 2, 3, 1, 2], None) == tuple(TAGS)
    assert top_tags(TAGS, [0, 0, 0, 0, 9], 1) == ("rock",)
    with pytest.raises(ValueError):
        top_tags(TAGS, [1] * 5, 0)


def test_discover_top_k_and_folder_split(mtt):
    found = discover_magnatagatune(mtt, top_k=3)
    assert found.tags == ("guitar", "slow", "classical")
    assert [(i.id, i.split, i.tags) for i in found.items] == [
        ("2", "test", ("guitar", "classical")),  # folder f
        ("6", "train", ("guitar", "slow")),  # folder 0; rock is not in the top 3
        ("10", "train", ("slow", "classical")),  # folder b: still train
        ("11", "valid", ("guitar", "slow")),  # folder c
    ]
    assert found.items[0].path == mtt / CLIPS[0][2]
    assert [(p.path.name, p.problem) for p in found.skipped] == [
        ("strojovna_07-mirnix-04-out-0-29.mp3", "clip 12 has none of the 3 kept tags")
    ]
    kept = discover_magnatagatune(mtt, top_k=3, drop_untagged=False)
    assert {i.id: i.tags for i in kept.items}["12"] == () and not kept.skipped


def test_all_tags_and_no_split(mtt):
    found = discover_magnatagatune(mtt, top_k=None, split="none")
    assert found.tags == tuple(TAGS)
    assert {i.split for i in found.items} == {"all"}
    assert {i.id: i.tags for i in found.items}["12"] == ("techno",)


def test_audio_under_mp3_folder(mtt, tmp_path):
    root = tmp_path / "other"
    root.mkdir()
    shutil.move(mtt / "annotations_final.csv", root)
    shutil.move(str(mtt), root / "mp3")
    found = discover_magnatagatune(root)
    assert found.items[0].path == root / "mp3" / CLIPS[0][2]


def test_published_split_lists(mtt, tmp_path):
    lists = tmp_path / "split" / "mtat"
    lists.mkdir(parents=True)
    # sota-music-tagging-models: numpy arrays of "<index>\t<mp3_path>".
    np.save(lists / "train.npy", np.array([f"0\t{CLIPS[0][2]}", f"1\t{CLIPS[3][2]}"]))
    np.save(lists / "valid.npy", np.array([f"2\t{CLIPS[1][2]}"]))
    np.save(lists / "test.npy", np.array([f"3\t{CLIPS[4][2]}"]))
    found = discover_magnatagatune(mtt, split_lists=lists, drop_untagged=False)
    assert [(i.id, i.split) for i in found.items] == [("2", "train"), ("6", "valid"), ("11", "train"), ("12", "test")]
    assert [p.problem for p in found.skipped] == ["clip 10 is in none of the split lists"]
    (lists / "valid.npy").unlink()
    with pytest.raises(DatasetError, match="valid.npy: MagnaTagATune split list not found"):
        discover_magnatagatune(mtt, split_lists=lists)


def test_decode(mtt, peak):
    item = discover_magnatagatune(mtt).items[0]
    x = load(item, SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - SR // 2) < 0.1 * SR
    assert peak(x, SR) == pytest.approx(330, abs=4)


# ------------------------------------------------------------------------------------------ errors


def test_missing_annotations(tmp_path):
    with pytest.raises(DatasetError, match="MagnaTagATune root not found"):
        discover_magnatagatune(tmp_path / "nope")
    with pytest.raises(DatasetError, match="annotations_final.csv: MagnaTagATune annotations file not found"):
        discover_magnatagatune(tmp_path)


def test_comma_separated_file_is_refused(tmp_path):
    (tmp_path / "annotations_final.csv").write_text("clip_id,guitar,mp3_path\n2,1,0/a.mp3\n")
    with pytest.raises(DatasetError, match="expected a tab-separated header"):
        discover_magnatagatune(tmp_path)


def test_bad_rows_and_files_are_all_reported(mtt):
    rows = [
        *CLIPS,
        ("13", [1, 2, 0, 0, 0], "1/x-y-01-z-0-29.mp3"),  # value 2
        ("6", [1, 0, 0, 0, 0], "1/x-y-02-z-0-29.mp3"),  # clip id repeated
        ("x", [1, 0, 0, 0, 0], "1/x-y-03-z-0-29.mp3"),  # clip id not a number
        ("14", [1, 0, 0, 0, 0], "g/x-y-04-z-0-29.mp3"),  # not one of the 16 folders
        ("15", [1, 0, 0, 0, 0], "1/x-y-05-z-0-29.mp3"),  # audio missing
        ("16", [1, 0, 0, 0, 0], "1/x-y-06-z-0-29.mp3"),  # 0-byte mp3, as in the real archive
    ]
    write_annotations(mtt, rows)
    with open(mtt / "annotations_final.csv", "a", encoding="utf-8") as fh:
        fh.write('"17"\t"1"\t"0"\n')  # too few fields
    (mtt / "1").mkdir()
    (mtt / "1/x-y-06-z-0-29.mp3").write_bytes(b"")
    with pytest.raises(DatasetProblems) as info:
        discover_magnatagatune(mtt)
    message = str(info.value)
    assert "7 problem(s)" in message
    for expected in (
        "annotations_final.csv: line 7: tag values must be 0 or 1, got ['2']",
        "line 8: clip_id 6 is listed twice",
        "line 9: invalid clip_id 'x'",
        "line 10: mp3_path 'g/x-y-04-z-0-29.mp3' is not <0-f>/<name>.mp3",
        "x-y-05-z-0-29.mp3: audio file not found (clip 15, annotations_final.csv line 11)",
        "x-y-06-z-0-29.mp3: audio file is empty (0 bytes)",
        "line 13: expected 7 tab-separated fields, got 3",
    ):
        assert expected in message
    assert [i.id for i in discover_magnatagatune(mtt, strict=False).items] == ["2", "6", "10", "11", "12"]
