"""Token statistics per training seed: values from the files, and no mislabelled seed merged."""

from __future__ import annotations

import math

import pytest
import torch

from duotok.eval.corpus_tokens import FORMAT, VERSION, save_corpus_tokens
from duotok.reporting.replicas import token_information_by_seed


def _tokens(ids: list[list[int]], seed: int | None) -> dict:
    tokens = {"format": FORMAT, "version": VERSION, "codec": "toy", "fingerprint": f"f{seed}", "frame_rate": 2.0,
              "codebook_sizes": [4], "streams": {"mixture": [0]}, "source": "oracle",
              "songs": [{"id": f"s{i}", "split": "test", "tags": [], "ids": torch.tensor([x])}
                        for i, x in enumerate(ids)]}
    if seed is not None:
        tokens["training_seed"] = seed
    return tokens


def test_entropy_rate_and_usage_per_seed(tmp_path):
    seed0 = save_corpus_tokens(_tokens([[0, 0, 0, 0]], None), tmp_path / "a.pt")   # no field: seed 0
    seed1 = save_corpus_tokens(_tokens([[0, 1, 2, 3]], 1), tmp_path / "b.pt")
    table = token_information_by_seed({"toy": {0: seed0, 1: seed1}})
    assert table.loc[("toy", 0), "entropy_rate_bps"] == 0.0            # one code: no information
    assert math.isclose(table.loc[("toy", 1), "entropy_rate_bps"], 2.0 * 2.0)   # 2 bits x 2 frames/s
    assert table.loc[("toy", 0), "codebook_usage"] == 0.25 and table.loc[("toy", 1), "codebook_usage"] == 1.0


def test_a_mislabelled_seed_is_an_error(tmp_path):
    path = save_corpus_tokens(_tokens([[0, 1]], 2), tmp_path / "c.pt")
    with pytest.raises(ValueError, match="training seed 2, listed as seed 1"):
        token_information_by_seed({"toy": {1: path}})
