"""The notebooks' lyrics example: the first held-out crop with sung text, read by an (untrained) stage-3
model from its vocal track."""

from __future__ import annotations

import json

import torch

from duotok.data import StemCropDataset
from duotok.data.targets import MultiTaskCollate
from duotok.eval.heads import first_sung_crop
from duotok.models.dualtrack import VOCAL, DualTrackModel
from duotok.text import CharVocab
from duotok.train import quantize

SONGS = (("a", "train", 1.0), ("t1", "test", 1.0), ("t2", "test", 1.0), ("t3", "test", 1.0))


def _syllables(root, song_id, syllables):
    meta_path = root / "songs" / song_id / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["lyrics"] = {"syllables": syllables}
    meta_path.write_text(json.dumps(meta))


def _held_out(root):
    return StemCropDataset(root, "test", 1.0, 16000, crops_per_song=1, random=False)


def test_first_sung_crop_skips_crops_without_sung_text(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)   # t1: lyrics without timings
    _syllables(root, "t2", [{"text": "la", "onset": 5.0}])   # timed, but sung after the crop
    _syllables(root, "t3", [{"text": "Her", "onset": 0.2, "word": 0}, {"text": "zen", "onset": 0.4, "word": 0}])
    held_out = _held_out(root)
    collate = MultiTaskCollate(CharVocab(), 16000, 160, per_track=True)
    index, batch = first_sung_crop(held_out, collate)
    assert index == 2 and held_out[index]["song_id"] == "t3"
    assert batch["lyrics_text"] == ["Herzen"] and batch["stems"].shape[0] == 1

    torch.manual_seed(0)
    model = DualTrackModel(quantize.build_config("smoke")[0]).eval()
    with torch.no_grad():
        run = model.infer(batch["stems"][:, 0], torch.tensor([VOCAL]), batch["length"])
    heard = CharVocab().greedy_ctc_decode(run["outputs"]["lyrics"], run["token_mask"].sum(dim=1))[0]
    assert isinstance(heard, str)


def test_first_sung_crop_is_none_without_sung_text(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    assert first_sung_crop(_held_out(root), MultiTaskCollate(CharVocab(), 16000, 160)) is None
