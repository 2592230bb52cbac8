"""The LM evaluation's records (issue 18): token information beside the LM figures, and per-song
values keyed by the codec's training seed that survive the metrics file and merge over seeds."""

from __future__ import annotations

import json
import math

import pytest
import torch

from duotok.eval.lm_protocols import (
    DEFAULT_TRAINING_SEED,
    merge_training_seeds,
    split_song_ids,
    token_information,
    training_seed,
    unconditional,
)

PARAMS = {"crop_seconds": 0.4, "model": {"dim": 16, "n_layers": 1, "n_heads": 2},
          "train": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "log_every": 1, "eval_every": 2,
                    "save_every": 2, "seed": 0}}


def _tokens(seed: int = 0, first_codebook_codes: int = 8) -> dict:
    g = torch.Generator().manual_seed(seed)
    songs = []
    for i, (split, frames) in enumerate([("train", 30), ("train", 24), ("valid", 20), ("test", 22), ("test", 15),
                                         ("test", 30)]):
        ids = torch.stack([torch.randint(0, first_codebook_codes, (frames,), generator=g),
                           torch.randint(0, 8, (frames,), generator=g)])
        songs.append({"id": f"song{i}", "split": split, "tags": [], "ids": ids})
    return {"codec": "toy", "frame_rate": 25.0, "codebook_sizes": [8, 8],
            "streams": {"vocal": [0], "accompaniment": [1]}, "source": "oracle", "songs": songs}


def test_token_information_of_a_collapsed_and_a_uniform_codebook():
    tokens = _tokens()
    for song in tokens["songs"]:
        song["ids"][0] = 3                                     # codebook 0 stuck on one code
        song["ids"][1] = torch.arange(song["ids"].shape[1]) % 8  # codebook 1 cycles through all 8
    info = token_information(tokens)
    # test frames: 22 + 15 + 30 = 67; codebook 1 is close to uniform, codebook 0 carries nothing
    assert info["entropy_rate_bps_per_codebook"][0] == 0.0
    assert info["entropy_rate_bps_per_codebook"][1] == pytest.approx(3 * 25.0, rel=0.01)
    assert info["entropy_rate_bps"] == pytest.approx(sum(info["entropy_rate_bps_per_codebook"]))
    assert info["entropy_rate_bps_per_stream"] == {"vocal": 0.0, "accompaniment": info["entropy_rate_bps"]}
    assert info["codebook_usage"] == pytest.approx((1 / 8 + 1) / 2)
    assert info["codebook_usage_per_codebook"][0]["frames"] == 67 and info["split"] == "test"
    with pytest.raises(ValueError, match="no songs"):
        token_information(tokens, "nope")


def test_training_seed_defaults_to_the_params_seed():
    assert training_seed({}) == DEFAULT_TRAINING_SEED == 0
    assert training_seed({"training_seed": 3}) == 3
    assert split_song_ids(_tokens(), "test") == ["song3", "song4", "song5"]


def test_unconditional_exports_per_song_values_keyed_by_training_seed(tmp_path):
    result = unconditional(_tokens(), PARAMS, tmp_path / "lm")
    assert result["training_seeds"] == [0] and result["lm_seed"] == 0
    by_seed = json.loads(json.dumps(result))["per_song_by_seed"]  # what lm.json stores
    assert list(by_seed) == ["0"] and list(by_seed["0"]) == ["song3", "song4", "song5"]
    songs = by_seed["0"]
    assert sum(s["tokens"] for s in songs.values()) == result["scored_tokens"] == 67
    # token-weighted mean of the per-song CE is the pooled CE
    pooled = sum(s["ce_mean"] * s["tokens"] for s in songs.values()) / result["scored_tokens"]
    assert pooled == pytest.approx(result["ce_mean"], rel=1e-5)
    for s in songs.values():
        assert s["bits_per_second"] == pytest.approx(2 * s["ce_mean"] / math.log(2) * 25.0)
        assert s["log_ppl_1024"] == pytest.approx(s["ce_mean"] - math.log(8) + math.log(1024))
    assert result["entropy_rate_bps"] == result["token_information"]["entropy_rate_bps"] > 0
    assert 0 < result["codebook_usage"] <= 1


def _record(seed: int, songs: dict, ppl: float, entropy: float) -> dict:
    return {"codec": "toy", "ppl_1024": ppl, "bits_per_second": 10 * ppl, "training_seeds": [seed],
            "token_information": {"entropy_rate_bps": entropy}, "entropy_rate_bps": entropy,
            "per_song_by_seed": {str(seed): songs}}


def test_merge_training_seeds_keeps_the_first_run_and_every_seeds_songs():
    songs = {"a": {"bits_per_second": 1.0}, "b": {"bits_per_second": 2.0}}
    merged = merge_training_seeds({1: _record(1, songs, 4.0, 90.0), 0: _record(0, songs, 3.0, 100.0)})
    assert merged["ppl_1024"] == 3.0 and merged["training_seeds"] == [0, 1]
    assert set(merged["per_song_by_seed"]) == {"0", "1"}
    assert merged["per_training_seed"]["1"] == {"ppl_1024": 4.0, "bits_per_second": 40.0, "entropy_rate_bps": 90.0}
    assert merge_training_seeds({0: _record(0, songs, 3.0, 100.0)})["training_seeds"] == [0]
    with pytest.raises(ValueError, match="other test songs"):
        merge_training_seeds({0: _record(0, songs, 3.0, 1.0), 1: _record(1, {"a": songs["a"]}, 3.0, 1.0)})
    with pytest.raises(ValueError, match="at least one"):
        merge_training_seeds({})
