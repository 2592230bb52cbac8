"""The stage evaluations on untrained smoke-size models: numbers in range, independent of the batch
size, and the separation ceiling (oracle masks) above an untrained mask head."""

from __future__ import annotations

import json
import math

import pytest
import torch

from duotok.data import StemCropDataset
from duotok.eval.heads import dualtrack_metrics, multitask_metrics
from duotok.eval.ssl import masked_prediction, target_entropy
from duotok.models.bestrq import BestRQModel
from duotok.models.dualtrack import DualTrackModel
from duotok.models.multitask import MultiTaskModel
from duotok.train import finetune, pretrain, quantize

SONGS = (("a", "train", 2.0), ("t1", "test", 2.0), ("t2", "test", 1.5), ("t3", "test", 2.0))


@pytest.fixture
def held_out(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    for song_id in ("t1", "t2", "t3"):  # syllable timings, so the lyrics head gets a CER
        meta_path = root / "songs" / song_id / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["lyrics"] = {"syllables": [{"text": "la", "onset": 0.2, "word": 0}, {"text": "lo", "onset": 0.9, "word": 1}]}
        meta_path.write_text(json.dumps(meta))
    return StemCropDataset(root, "test", 2.0, 16000, crops_per_song=1, random=False)


def test_masked_prediction_and_target_entropy(held_out):
    torch.manual_seed(0)
    model = BestRQModel(pretrain.build_config("smoke")[0])
    a = masked_prediction(model, held_out, batch_size=2, seed=0)
    b = masked_prediction(model, held_out, batch_size=2, seed=0)
    assert a == b, "seeded masks make the number reproducible"
    assert 0.0 <= a["accuracy"] <= 1.0 and math.isfinite(a["loss"])
    te = target_entropy(model, held_out, batch_size=3)
    assert 0 < te["entropy_bits"] <= te["max_entropy_bits"] == math.log2(model.config.codebook_size)


def test_multitask_metrics_are_batch_size_invariant_and_oracle_beats_untrained(held_out):
    torch.manual_seed(0)
    model = MultiTaskModel(finetune.build_config("smoke")[0])
    one = multitask_metrics(model, held_out, batch_size=1, sdr_items=2)
    three = multitask_metrics(model, held_out, batch_size=3, sdr_items=2)
    for key in ("mel_l1", "chroma_accuracy", "cer"):
        assert one[key] == pytest.approx(three[key], rel=1e-4), key
    assert 0 <= one["chroma_accuracy"] <= 1 and one["cer"] >= 0
    assert one["mask/items"] == 2
    assert one["oracle/SDR_median"] > one["mask/SDR_median"] + 3


def test_dualtrack_metrics_report_each_codebook(held_out):
    torch.manual_seed(0)
    model = DualTrackModel(quantize.build_config("smoke")[0])
    metrics, usage = dualtrack_metrics(model, held_out, batch_size=2)
    expected_frames = sum(math.ceil(int(held_out[i]["length"]) / 640) for i in range(len(held_out)))
    for track in ("vocal", "accompaniment"):
        assert 0 < metrics[f"{track}/usage"] <= 1
        assert 1 <= metrics[f"{track}/perplexity"] <= model.config.codebook_sizes[0]
        # every valid token of every crop is counted once (1 or 2 extra per crop from the STFT's last frame)
        assert expected_frames <= metrics[f"{track}/frames"] <= expected_frames + 2 * len(held_out)
        assert int(usage[track].counts.sum()) == metrics[f"{track}/frames"]
    assert metrics["bits_per_second"] == pytest.approx(2 * 25 * 6)
