"""The lyrics-learnability reader: its frame rate is the token rate, a run trains, scores only crops with
sung text and logs a row, and bad arguments are refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from duotok.text import CharVocab
from duotok.train.quick_lyrics import LyricsReader, run

SONGS = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "train", 2.0), ("d", "valid", 2.0), ("g", "valid", 2.0),
         ("e", "test", 2.0), ("f", "test", 2.0))


def _sing(root: Path, lyrics: bool = True) -> None:
    """Give every song syllable timings (the corpus's `meta.json` form), or none at all."""
    for meta_path in (root / "songs").glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        if lyrics:
            meta["lyrics"] = {"syllables": [{"text": "la", "onset": 0.1 + 0.3 * i, "offset": 0.3 + 0.3 * i,
                                             "word": i} for i in range(6)]}
        else:
            meta.pop("lyrics", None)
        meta_path.write_text(json.dumps(meta))


def test_the_reader_emits_one_distribution_per_token_frame():
    vocab = CharVocab()
    reader = LyricsReader(n_mels=16, vocab_size=len(vocab), factor=4, hidden=8)
    out = reader(torch.randn(2, 16, 1001))
    assert out.shape == (2, 250, len(vocab))
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 250), atol=1e-5)
    assert reader.frames(torch.tensor([1001, 401])).tolist() == [250, 100]


def test_a_run_trains_and_scores_the_sung_held_out_crops(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root)
    row = run("t", tmp_path / "runs", root, source="vocals", profile="smoke", steps=3, hidden=8,
              train_songs=3, eval_songs=2, segment_seconds=1.0, log_every=1)
    assert row["eval_split"] == "valid" and row["crops"] == 2.0   # one crop per valid song, both sung
    assert row["cer"] >= 0.0 and row["final_ctc"] > 0.0
    curve = list(csv.DictReader((tmp_path / "runs" / "t" / "train_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in curve] == [1, 2, 3]
    assert list(csv.DictReader((tmp_path / "runs" / "log.csv").read_text().splitlines()))[0]["name"] == "t"


def test_without_sung_held_out_crops_there_is_nothing_to_score(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root, lyrics=False)
    with pytest.raises(ValueError, match="sung text"):
        run("t", tmp_path / "runs", root, profile="smoke", steps=1, hidden=8, train_songs=3, eval_songs=2,
            segment_seconds=1.0)


@pytest.mark.parametrize("kwargs, match", [({"source": "drums"}, "source"), ({"steps": 0}, "steps"),
                                           ({"eval_split": "train"}, "eval_split")])
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run("t", tmp_path / "runs", tmp_path / "data", profile="smoke", **kwargs)
