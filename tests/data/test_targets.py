"""Stage-2 targets cut to a crop: notes → chroma, syllables → lyrics, real data → fallbacks."""

from __future__ import annotations

import torch

from duotok.data.targets import MultiTaskCollate, window_lyrics, window_notes
from duotok.text import CharVocab

META = {
    "notes": {"vocals": [{"pitch": 69, "onset": 1.0, "duration": 0.5}],
              "bass": [{"pitch": 45, "onset": 0.0, "duration": 3.0}],
              "drums": [{"pitch": 36, "onset": 1.0, "duration": 0.1}]},
    "lyrics": {"syllables": [{"text": "Mei", "onset": 1.0, "offset": 1.2, "word": 0},
                             {"text": "ne", "onset": 1.2, "offset": 1.5, "word": 0},
                             {"text": "Seel", "onset": 2.5, "offset": 3.0, "word": 1}]},
}


def test_window_notes_shift_and_skip_drums():
    notes = window_notes(META, 0.8, 1.8)
    assert {n["pitch"] for n in notes} == {69, 45}, "drums carry no pitch class"
    assert next(n for n in notes if n["pitch"] == 69)["onset"] == 1.0 - 0.8


def test_window_lyrics_joins_syllables_of_a_word():
    assert window_lyrics(META, 0.9, 2.0) == "Meine"
    assert window_lyrics(META, 0.0, 3.0) == "Meine Seel"
    assert window_lyrics({"lyrics": "plain text"}, 0, 1) is None


def item(meta, offset=0.8, seconds=1.0):
    n = int(16000 * seconds)
    return {"mixture": torch.randn(n) * 0.1, "stems": torch.randn(4, n) * 0.02, "accompaniment": torch.zeros(n),
            "length": n, "offset": offset, "song_id": "s", "meta": meta}


def test_collate_builds_chroma_and_ctc_targets():
    batch = MultiTaskCollate(CharVocab(), 16000, 160)([item(META), item({})])
    assert batch["chroma"].shape == (2, 12, 101)
    a_frames = batch["chroma"][0, 9]   # pitch class A (both notes are A)
    assert a_frames[30:60].min() == 1.0, "A sounds from 0.2 s on (the vocal) and throughout (the bass)"
    assert batch["has_lyrics"].tolist() == [True, False]
    assert CharVocab().decode(batch["lyrics"][0, : batch["lyrics_lengths"][0]].tolist()) == "meine"
    assert "meta" not in batch
    assert batch["chroma"][1].abs().sum() > 0, "real data falls back to chroma from the audio"
