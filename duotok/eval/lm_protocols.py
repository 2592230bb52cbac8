"""The LM evaluation of every codec (SPEC §2), on the corpus tokens of :mod:`duotok.eval.corpus_tokens`.

* :func:`unconditional` — protocol (i): one LM over all of a codec's codebooks, trained on the train
  split, checkpointed on valid, scored on test → CE per codebook, PPL@1024, bits per second.
* :func:`vocal_conditioned` — protocol (ii) for dual-track codecs: accompaniment tokens given the vocal
  tokens (a prefix sequence) and the first ``prefix_seconds`` of the accompaniment, against the same
  accompaniment LM *without* the vocal condition, scored on the same frames. The difference in bits per
  second is how much the vocal track tells about the accompaniment through the tokens.

Equal budget: the same LM sizes, training settings and seed for every codec (``params.yaml: lm``).

Beside the LM figures, :func:`unconditional` records what a comparison of them needs (issue 18):
the information the test tokens carry (:func:`token_information`: unigram entropy rate in bits/s and
codebook usage, so a PPL win by tokens that say less can be called *confounded*), and each test song's
values keyed by the codec's **training seed** (``per_song_by_seed``), so claims can bootstrap over songs
and, once a codec is trained with several seeds (:func:`merge_training_seeds`), over seeds too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from duotok.codecs.base import fixed_bitrate, sizes_label
from duotok.eval.corpus_tokens import split_ids
from duotok.eval.lm import evaluate_lm, lm_report, per_song_report, train_token_lm
from duotok.eval.token_lm import TokenLMConfig
from duotok.reporting.verdicts import codebook_usage, entropy_rate_bits_per_second
from duotok.train.loop import TrainConfig

#: Training seed recorded for a corpus-tokens file that does not name one: every codec of the default
#: pipeline is trained once, with the seed 0 of params.yaml (pretrain / finetune / quantize /
#: baselines ``train.seed``, ``baselines.fit.seed``).
DEFAULT_TRAINING_SEED = 0


def crop_frames(seconds: float, frame_rate: float) -> int:
    return max(2, int(round(seconds * frame_rate)))


def _rows(tokens: dict[str, Any], split: str, codebooks: list[int] | None = None) -> list:
    seqs = split_ids(tokens, split)
    return seqs if codebooks is None else [s[codebooks] for s in seqs]


def lm_config(model: dict[str, Any], sizes: list[int], cond_sizes: list[int] | None = None,
               max_frames: int = 0) -> TokenLMConfig:
    return TokenLMConfig(codebook_sizes=tuple(sizes), cond_codebook_sizes=tuple(cond_sizes or ()),
                         max_positions=max(4096, 2 * max_frames + 8), **model)


def training_seed(tokens: Mapping[str, Any]) -> int:
    """The seed the codec behind ``tokens`` was trained with: the file's ``training_seed`` when it has
    one, else :data:`DEFAULT_TRAINING_SEED`."""
    seed = tokens.get("training_seed")
    return DEFAULT_TRAINING_SEED if seed is None else int(seed)


def split_song_ids(tokens: Mapping[str, Any], split: str) -> list[str]:
    """Song ids of ``split`` in :func:`~duotok.eval.corpus_tokens.split_ids` order."""
    return [str(song["id"]) for song in tokens["songs"] if song["split"] == split]


def token_information(tokens: Mapping[str, Any], split: str = "test") -> dict[str, Any]:
    """How much the ``split`` tokens could say: the unigram entropy rate (bits/s) of every codebook,
    summed (:func:`~duotok.reporting.verdicts.entropy_rate_bits_per_second`) and per stream, and each
    codebook's usage (:func:`~duotok.reporting.verdicts.codebook_usage`); ``codebook_usage`` is the
    mean used fraction over codebooks. Read beside PPL@1024 and LM bits/s: a low perplexity from tokens
    that carry few bits per second is not a better tokenizer."""
    seqs = [torch_ids.numpy() for torch_ids in split_ids(dict(tokens), split)]
    if not seqs:
        raise ValueError(f"{tokens.get('codec')}: no songs in split {split!r}")
    rate = float(tokens["frame_rate"])
    sizes = [int(v) for v in tokens["codebook_sizes"]]
    per_codebook = {f"q{k}": [s[k] for s in seqs] for k in range(len(sizes))}
    rates = {name: entropy_rate_bits_per_second({name: codes}, rate, {name: sizes[k]})
             for k, (name, codes) in enumerate(per_codebook.items())}
    usage = [codebook_usage(per_codebook[f"q{k}"], v) for k, v in enumerate(sizes)]
    return {
        "split": split,
        "entropy_rate_bps": float(sum(rates.values())),
        "entropy_rate_bps_per_codebook": [rates[f"q{k}"] for k in range(len(sizes))],
        "entropy_rate_bps_per_stream": {stream: float(sum(rates[f"q{k}"] for k in ks))
                                        for stream, ks in tokens["streams"].items()},
        "codebook_usage": float(np.mean([u["usage"] for u in usage])),
        "codebook_usage_per_codebook": usage,
    }


def merge_training_seeds(results: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """One codec's :func:`unconditional` results for several *codec-training* seeds (``{seed: result}``,
    each on the tokens of the codec trained with that seed) → the first seed's record (the Table-2
    figures stay those of that run), with ``per_song_by_seed`` holding every seed's songs and
    ``training_seeds`` / ``per_training_seed`` (each seed's PPL@1024, bits/s and entropy rate) beside
    it. Seeds must be distinct and score the same test songs."""
    if not results:
        raise ValueError("need the result of at least one training seed")
    seeds = sorted(int(s) for s in results)
    if len(set(seeds)) != len(results):
        raise ValueError(f"duplicate training seeds {sorted(results)}")
    by_seed = {int(s): r for s, r in results.items()}
    first = by_seed[seeds[0]]
    songs = {seed: set(next(iter(r["per_song_by_seed"].values()))) for seed, r in by_seed.items()}
    odd = [seed for seed in seeds if songs[seed] != songs[seeds[0]]]
    if odd:
        raise ValueError(f"training seed(s) {odd} scored other test songs than seed {seeds[0]}")
    out = dict(first)
    out["per_song_by_seed"] = {str(seed): next(iter(by_seed[seed]["per_song_by_seed"].values())) for seed in seeds}
    out["training_seeds"] = seeds
    out["per_training_seed"] = {str(seed): {"ppl_1024": by_seed[seed]["ppl_1024"],
                                            "bits_per_second": by_seed[seed]["bits_per_second"],
                                            "entropy_rate_bps": by_seed[seed]["token_information"]["entropy_rate_bps"]}
                                for seed in seeds}
    return out


def unconditional(tokens: dict[str, Any], params: dict[str, Any], out_dir: Path, resume: bool = True,
                  ) -> dict[str, Any]:
    rate = float(tokens["frame_rate"])
    crop = crop_frames(float(params["crop_seconds"]), rate)
    sizes = list(tokens["codebook_sizes"])
    model, trained = train_token_lm(lm_config(params["model"], sizes, max_frames=crop),
                                    TrainConfig.from_dict(params["train"]), _rows(tokens, "train"),
                                    _rows(tokens, "valid"), out_dir, crop, resume=resume)
    scores = evaluate_lm(model, _rows(tokens, "test"), crop)
    report = lm_report(scores["ce"], sizes, rate)
    per_codebook = report["bits_per_second_per_codebook"]
    seed = training_seed(tokens)
    information = token_information(tokens, "test")
    return {"codec": tokens["codec"], "frame_rate": rate, "codebook_sizes": sizes, "codebooks": sizes_label(sizes),
            "kbps": fixed_bitrate(rate, sizes) / 1000.0, "test_frames": scores["frames"],
            "scored_tokens": scores["tokens"], "precision": trained.precision, **report,
            "per_stream_bits_per_second": {stream: sum(per_codebook[k] for k in ks)
                                           for stream, ks in tokens["streams"].items()},
            "token_information": information,
            "entropy_rate_bps": information["entropy_rate_bps"],
            "codebook_usage": information["codebook_usage"],
            "training_seeds": [seed],
            "lm_seed": TrainConfig.from_dict(params["train"]).seed,
            "per_song_by_seed": {
                str(seed): per_song_report(scores["per_song"], split_song_ids(tokens, "test"), sizes, rate)}}


def vocal_conditioned(tokens: dict[str, Any], params: dict[str, Any], out_dir: Path, resume: bool = True,
                      ) -> dict[str, Any]:
    streams = tokens["streams"]
    if set(streams) != {"vocal", "accompaniment"}:
        raise ValueError(f"{tokens['codec']}: the vocal-conditioned protocol needs vocal and accompaniment streams, "
                         f"not {list(streams)}")
    rate = float(tokens["frame_rate"])
    crop = crop_frames(float(params["crop_seconds"]), rate)
    prefix = int(round(float(params["prefix_seconds"]) * rate))
    acc, voc = list(streams["accompaniment"]), list(streams["vocal"])
    sizes = [tokens["codebook_sizes"][k] for k in acc]
    cond_sizes = [tokens["codebook_sizes"][k] for k in voc]
    train_cfg = TrainConfig.from_dict(params["train"])
    results = {}
    for name, cond in (("accompaniment only", None), ("given vocals", voc)):
        cfg = lm_config(params["model"], sizes, cond_sizes if cond else None, max_frames=crop)
        model, trained = train_token_lm(cfg, train_cfg, _rows(tokens, "train", acc), _rows(tokens, "valid", acc),
                                        out_dir / ("acc_given_vocals" if cond else "acc_only"), crop,
                                        cond_train=_rows(tokens, "train", cond) if cond else None,
                                        cond_valid=_rows(tokens, "valid", cond) if cond else None,
                                        score_from=prefix, resume=resume)
        scores = evaluate_lm(model, _rows(tokens, "test", acc), crop,
                             cond_sequences=_rows(tokens, "test", cond) if cond else None, score_from=prefix)
        results[name] = {**lm_report(scores["ce"], sizes, rate), "scored_tokens": scores["tokens"],
                         "precision": trained.precision}
    base = results["accompaniment only"]["bits_per_second"]
    given = results["given vocals"]["bits_per_second"]
    return {"codec": tokens["codec"], "prefix_seconds": prefix / rate, "crop_seconds": crop / rate,
            "accompaniment_only": results["accompaniment only"], "given_vocals": results["given vocals"],
            "bits_per_second_saved": base - given, "relative_saving": (base - given) / base if base else None}
