"""Submixes (issue 17): a crop becomes the vocal stem or the accompaniment alone, with its targets."""

from __future__ import annotations

import pytest
import torch

from duotok.data import SOURCES
from duotok.data.submix import SubmixCollate, Submixer, apply_submix, choose_submix
from duotok.data.targets import MultiTaskCollate
from duotok.text import CharVocab

SR, HOP = 16000, 160


def crop(song_id="s", offset=1.0):
    torch.manual_seed(0)
    stems = torch.randn(4, SR) * 0.1
    meta = {"notes": {"vocals": [{"pitch": 60, "onset": 1.0, "duration": 0.5}],
                      "bass": [{"pitch": 38, "onset": 1.0, "duration": 0.5}]},
            "lyrics": {"syllables": [{"text": "la", "onset": 1.2, "word": 0}]}}
    return {"mixture": stems.sum(0), "stems": stems, "accompaniment": stems[1:].sum(0), "length": SR,
            "offset": offset, "song_id": song_id, "meta": meta}


def test_choice_is_a_pure_function_of_seed_song_and_offset_at_the_asked_rate():
    picks = [choose_submix(f"song{i}", 0.5 * i, 0.4, seed=3) for i in range(4000)]
    assert picks == [choose_submix(f"song{i}", 0.5 * i, 0.4, seed=3) for i in range(4000)]
    share = sum(p is not None for p in picks) / len(picks)
    assert share == pytest.approx(0.4, abs=0.03)
    assert sum(p == "vocals" for p in picks) == pytest.approx(sum(p == "accompaniment" for p in picks), rel=0.15)
    assert picks != [choose_submix(f"song{i}", 0.5 * i, 0.4, seed=4) for i in range(4000)]
    assert all(choose_submix(f"song{i}", 0.0, 0.0, 0) is None for i in range(100))
    with pytest.raises(ValueError, match="probability"):
        choose_submix("s", 0.0, 1.5, 0)


def test_a_vocal_submix_keeps_only_the_vocals_and_their_targets():
    item = apply_submix(crop(), "vocals")
    v = SOURCES.index("vocals")
    assert torch.allclose(item["mixture"], crop()["stems"][v])
    assert item["stems"][[i for i in range(4) if i != v]].abs().sum() == 0
    assert item["accompaniment"].abs().sum() == 0
    assert set(item["meta"]["notes"]) == {"vocals"}
    batch = MultiTaskCollate(CharVocab(), SR, HOP)([item])
    assert batch["lyrics_lengths"].tolist() == [2] and batch["has_lyrics"].tolist() == [True]


def test_an_accompaniment_submix_has_no_vocals_no_lyrics_and_the_others_chroma():
    item = apply_submix(crop(), "accompaniment")
    v = SOURCES.index("vocals")
    assert item["stems"][v].abs().sum() == 0
    assert torch.allclose(item["mixture"], item["accompaniment"])
    batch = MultiTaskCollate(CharVocab(), SR, HOP)([item])
    assert batch["lyrics_lengths"].tolist() == [0] and batch["has_lyrics"].tolist() == [True]
    chroma = batch["chroma"][0]
    assert chroma[38 % 12].sum() > 0 and chroma[60 % 12].sum() == 0, "bass note kept, sung note gone"
    assert crop()["meta"]["lyrics"]["syllables"], "the song's own meta is not modified"


def test_collate_wrapper_leaves_mixtures_alone_at_probability_zero_and_marks_submixes():
    items = [crop(f"song{i}", float(i)) for i in range(8)]
    plain = SubmixCollate(MultiTaskCollate(CharVocab(), SR, HOP), 0.0)(items)
    assert torch.equal(plain["mixture"], torch.stack([it["mixture"] for it in items]))
    mixed = Submixer(1.0, seed=0)(items)
    assert {it["submix"] for it in mixed} <= {"vocals", "accompaniment"}
    for it in mixed:
        assert torch.allclose(it["mixture"], it["stems"].sum(0), atol=1e-6)
