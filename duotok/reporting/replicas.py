"""Does retraining give the same codec? Token statistics of each codec per training seed (issue 18).

Read beside the LM verdicts: when one codec's entropy rate or usage moves more between two of its own
training runs than between it and a rival, a verdict resting on one run would be reporting luck."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd

from duotok.eval.corpus_tokens import load_corpus_tokens
from duotok.eval.lm_protocols import token_information, training_seed

__all__ = ["token_information_by_seed"]


def token_information_by_seed(paths: Mapping[str, Mapping[int, str | os.PathLike[str]]],
                              split: str = "test") -> pd.DataFrame:
    """One row per (codec, training seed): the ``split`` tokens' unigram entropy rate (bits/s) and mean
    codebook usage (:func:`~duotok.eval.lm_protocols.token_information`). ``paths`` is
    ``{codec: {seed: token file}}``; a file whose recorded ``training_seed`` differs from its key is an
    error (a mislabelled replica would silently merge two seeds)."""
    rows = []
    for codec, by_seed in paths.items():
        for seed, path in sorted(by_seed.items()):
            tokens = load_corpus_tokens(path)
            if training_seed(tokens) != int(seed):
                raise ValueError(f"{path}: tokens of training seed {training_seed(tokens)}, listed as seed {seed}")
            info = token_information(tokens, split)
            rows.append({"codec": codec, "training_seed": int(seed), "entropy_rate_bps": info["entropy_rate_bps"],
                         "codebook_usage": info["codebook_usage"], "fingerprint": tokens["fingerprint"]})
    return pd.DataFrame(rows).set_index(["codec", "training_seed"])
