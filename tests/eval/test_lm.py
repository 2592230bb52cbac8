"""Token-LM evaluation: PPL@1024 / bits-per-second arithmetic, crops, window cutting, Trainer wiring."""

from __future__ import annotations

import json
import math

import pytest
import torch

from duotok.eval.lm import (
    TokenCropDataset,
    bits_per_second,
    collate,
    evaluate_lm,
    lm_loss,
    lm_report,
    per_song_report,
    ppl_at_1024,
    raw_perplexity,
    train_token_lm,
)
from duotok.eval.token_lm import TokenLM, TokenLMConfig
from duotok.train.loop import TrainConfig


@pytest.mark.parametrize("v", [64, 1024, 32768])
@pytest.mark.parametrize("k", [1, 2])
def test_uniform_predictor_scores_1024(v, k):
    assert ppl_at_1024([math.log(v)] * k, [v] * k) == pytest.approx(1024.0, rel=1e-12)
    assert raw_perplexity([math.log(v)] * k) == pytest.approx(v, rel=1e-12)


def test_mixed_codebook_sizes_use_the_geometric_mean():
    sizes = [256, 4096]  # Vbar = sqrt(256 * 4096) = 1024
    assert ppl_at_1024([math.log(256), math.log(4096)], sizes) == pytest.approx(1024.0, rel=1e-12)
    ces = [1.0, 3.0]
    assert ppl_at_1024(ces, sizes) == pytest.approx(math.exp(2.0) / (1024 / 1024), rel=1e-12)
    assert ppl_at_1024(ces, [64, 1024]) == pytest.approx(math.exp(2.0) / (256 / 1024), rel=1e-12)
    with pytest.raises(ValueError):
        ppl_at_1024(ces, [1024])


def test_bits_per_second_of_uniform_codebooks():
    assert bits_per_second([math.log(1024)] * 2, 25) == pytest.approx(500.0, rel=1e-12)  # 2 x 10 bit x 25 Hz
    report = lm_report([math.log(1024)] * 2, [1024, 1024], 25)
    assert report["ppl_1024"] == pytest.approx(1024.0)
    assert report["ppl"] == pytest.approx(1024.0)
    assert report["ce_mean"] == pytest.approx(math.log(1024))
    assert report["bits_per_second_per_codebook"] == pytest.approx([250.0, 250.0])
    assert report["bits_per_second"] == pytest.approx(500.0)


def _songs(lengths, k=2, v=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, v, (k, t), generator=g) for t in lengths]


def test_crops_are_deterministic_aligned_and_short_songs_padded():
    songs = _songs([50, 6])
    conds = [s[:1] + 100 for s in songs]  # condition = recognisable function of the target
    data = TokenCropDataset(songs, 10, conds, seed=3, crops_per_song=2, score_from_frames=1)
    again = TokenCropDataset(songs, 10, conds, seed=3, crops_per_song=2, score_from_frames=1)
    assert len(data) == 4
    for i in range(4):
        a, b = data[i], again[i]
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["cond"], b["cond"])
        assert torch.equal(a["cond"], a["ids"][:1] + 100)  # same time span
    assert data[2]["ids"].shape == (2, 6) and int(data[2]["lengths"]) == 6  # whole short song
    data.set_epoch(1)
    assert any(not torch.equal(data[i]["ids"], again[i]["ids"]) for i in range(2))
    batch = collate([data[0], data[2]])
    assert batch["ids"].shape == (2, 2, 10) and batch["cond"].shape == (2, 1, 10)
    assert batch["lengths"].tolist() == [10, 6] and batch["score_from"] == 1
    assert torch.equal(batch["ids"][1, :, :6], data[2]["ids"])
    proportional = TokenCropDataset(songs, 10, crops_per_song=None, random=False)
    assert proportional.crop_counts == [5, 1] and len(proportional) == 6
    for j, offset in enumerate([4, 12, 20, 28, 36]):  # evenly spaced over the 40 frames of room
        assert torch.equal(proportional[j]["ids"], songs[0][:, offset : offset + 10])


def test_lm_loss_matches_the_model_forward():
    torch.manual_seed(0)
    model = TokenLM(TokenLMConfig((8, 8), (8,), dim=32, n_layers=1, n_heads=2)).eval()
    songs = _songs([12, 7])
    data = TokenCropDataset(songs, 10, [s[:1] for s in songs], score_from_frames=2)
    batch = collate([data[0], data[1]])
    with torch.no_grad():
        loss, metrics = lm_loss(model, batch)
        direct, _ = model(batch["ids"], batch["lengths"], batch["cond"], score_from=2)
    assert float(loss) == float(direct)
    assert metrics["scored_frames"] == (10 + 1 - 2) + (7 + 1 - 2)


def test_evaluate_lm_cuts_windows_and_counts_tokens():
    torch.manual_seed(0)
    model = TokenLM(TokenLMConfig((8, 8), dim=32, n_layers=1, n_heads=2))
    songs = _songs([25, 21, 1, 10])
    # windows of 10: 25 -> 10, 10, 5; 21 -> 10, 10 (last frame alone dropped); 1 -> none; 10 -> 10
    out = evaluate_lm(model, songs, crop_frames=10, batch_size=4)
    assert out["windows"] == 6 and out["frames"] == 55 and out["tokens"] == 55
    assert len(out["ce"]) == 2 and model.training  # mode restored
    again = evaluate_lm(model, songs, crop_frames=10, batch_size=3)
    assert again["ce"] == pytest.approx(out["ce"], rel=1e-5)
    # the first window alone, scored directly, matches its share of the sums
    with torch.no_grad():
        nll, n = model.eval().token_nll(songs[3][None])
    single = evaluate_lm(model, songs[3:], crop_frames=10)
    assert single["tokens"] == int(n) == 10
    assert single["nll_sum"] == pytest.approx(nll.tolist(), rel=1e-5)


def test_evaluate_lm_conditional_skips_the_prefix_per_window():
    torch.manual_seed(0)
    model = TokenLM(TokenLMConfig((8,), (8,), dim=32, n_layers=1, n_heads=2))
    songs = _songs([25, 12], k=1)
    conds = _songs([25, 12], k=1, seed=1)
    # windows: 10, 10, 5, 10, 2 -> minus 3 per window (the 2-frame window scores nothing)
    out = evaluate_lm(model, songs, 10, cond_sequences=conds, score_from=3)
    assert out["windows"] == 5 and out["tokens"] == 7 + 7 + 2 + 7 + 0
    with pytest.raises(ValueError, match="frames"):
        evaluate_lm(model, songs, 10, cond_sequences=[c[:, :-1] for c in conds])


def test_train_token_lm_runs_the_trainer_and_resumes(tmp_path):
    songs = _songs([40, 30, 35, 20])
    cfg = TokenLMConfig((8, 8), dim=32, n_layers=1, n_heads=2)
    train_cfg = TrainConfig(steps=3, batch_size=4, warmup_steps=1, log_every=1, eval_every=3, save_every=3,
                            precision="bf16")
    model, result = train_token_lm(cfg, train_cfg, songs, songs[:2], tmp_path / "lm", crop_frames=10)
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert result.step == 3 and result.precision["used"] == "bf16"
    assert (tmp_path / "lm" / "model" / "config.json").is_file()
    assert (tmp_path / "lm" / "valid_log.csv").is_file()
    reloaded = TokenLM.from_pretrained(tmp_path / "lm" / "model")
    for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    longer = TrainConfig(**{**train_cfg.__dict__, "steps": 4})
    train_token_lm(cfg, longer, songs, songs[:2], tmp_path / "lm", crop_frames=10)
    rows = (tmp_path / "lm" / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]  # resumed at step 3, no duplicates
    with pytest.raises(ValueError, match="cond_train"):
        train_token_lm(TokenLMConfig((8, 8), (8,), dim=32, n_layers=1, n_heads=2), train_cfg, songs, None,
                       tmp_path / "c", crop_frames=10)


def test_evaluate_lm_per_song_sums_match_the_pooled_ones_and_each_song_alone():
    """Issue 18: the per-song values come from the same pass as the pooled figures, and a song's share
    does not depend on which other songs were batched with it."""
    torch.manual_seed(0)
    model = TokenLM(TokenLMConfig((8, 8), dim=32, n_layers=1, n_heads=2))
    songs = _songs([25, 21, 1, 10])
    out = evaluate_lm(model, songs, crop_frames=10, batch_size=4)
    per_song = out["per_song"]
    assert [s["tokens"] for s in per_song] == [25, 20, 0, 10]
    assert sum(s["tokens"] for s in per_song) == out["tokens"]
    pooled = [sum(s["nll_sum"][k] for s in per_song) for k in range(2)]
    assert pooled == pytest.approx(out["nll_sum"], rel=1e-6)
    alone = evaluate_lm(model, songs[:1], crop_frames=10)
    assert alone["per_song"][0]["nll_sum"] == pytest.approx(per_song[0]["nll_sum"], rel=1e-5)


def test_per_song_report_round_trips_through_json():
    per_song = [{"nll_sum": [2 * math.log(1024), 2 * math.log(1024)], "tokens": 2},
                {"nll_sum": [0.5, 1.5], "tokens": 1}, {"nll_sum": [0.0, 0.0], "tokens": 0}]
    report = per_song_report(per_song, ["a", "b", "empty"], [1024, 1024], 25.0)
    assert set(report) == {"a", "b"}  # nothing scored: left out, not a zero
    assert report["a"]["log_ppl_1024"] == pytest.approx(math.log(1024))
    assert report["a"]["bits_per_second"] == pytest.approx(500.0)  # uniform: 2 x 10 bit x 25 Hz
    assert report["b"]["ce_mean"] == pytest.approx(1.0) and report["b"]["tokens"] == 1
    assert report["b"]["bits_per_second"] == pytest.approx(2.0 / math.log(2) * 25.0)
    assert json.loads(json.dumps(report)) == report
    with pytest.raises(ValueError, match="song ids"):
        per_song_report(per_song, ["a", "b"], [1024, 1024], 25.0)
    with pytest.raises(ValueError, match="unique"):
        per_song_report(per_song, ["a", "a", "b"], [1024, 1024], 25.0)
