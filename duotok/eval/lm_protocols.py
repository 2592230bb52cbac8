"""The LM evaluation of every codec (SPEC §2), on the corpus tokens of :mod:`duotok.eval.corpus_tokens`.

* :func:`unconditional` — protocol (i): one LM over all of a codec's codebooks, trained on the train
  split, checkpointed on valid, scored on test → CE per codebook, PPL@1024, bits per second.
* :func:`vocal_conditioned` — protocol (ii) for dual-track codecs: accompaniment tokens given the vocal
  tokens (a prefix sequence) and the first ``prefix_seconds`` of the accompaniment, against the same
  accompaniment LM *without* the vocal condition, scored on the same frames. The difference in bits per
  second is how much the vocal track tells about the accompaniment through the tokens.

Equal budget: the same LM sizes, training settings and seed for every codec (``params.yaml: lm``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from duotok.codecs.base import fixed_bitrate, sizes_label
from duotok.eval.corpus_tokens import split_ids
from duotok.eval.lm import evaluate_lm, lm_report, train_token_lm
from duotok.eval.token_lm import TokenLMConfig
from duotok.train.loop import TrainConfig


def crop_frames(seconds: float, frame_rate: float) -> int:
    return max(2, int(round(seconds * frame_rate)))


def _rows(tokens: dict[str, Any], split: str, codebooks: list[int] | None = None) -> list:
    seqs = split_ids(tokens, split)
    return seqs if codebooks is None else [s[codebooks] for s in seqs]


def _lm_config(model: dict[str, Any], sizes: list[int], cond_sizes: list[int] | None = None,
               max_frames: int = 0) -> TokenLMConfig:
    return TokenLMConfig(codebook_sizes=tuple(sizes), cond_codebook_sizes=tuple(cond_sizes or ()),
                         max_positions=max(4096, 2 * max_frames + 8), **model)


def unconditional(tokens: dict[str, Any], params: dict[str, Any], out_dir: Path, resume: bool = True,
                  ) -> dict[str, Any]:
    rate = float(tokens["frame_rate"])
    crop = crop_frames(float(params["crop_seconds"]), rate)
    sizes = list(tokens["codebook_sizes"])
    model, trained = train_token_lm(_lm_config(params["model"], sizes, max_frames=crop),
                                    TrainConfig.from_dict(params["train"]), _rows(tokens, "train"),
                                    _rows(tokens, "valid"), out_dir, crop, resume=resume)
    scores = evaluate_lm(model, _rows(tokens, "test"), crop)
    report = lm_report(scores["ce"], sizes, rate)
    per_codebook = report["bits_per_second_per_codebook"]
    return {"codec": tokens["codec"], "frame_rate": rate, "codebook_sizes": sizes, "codebooks": sizes_label(sizes),
            "kbps": fixed_bitrate(rate, sizes) / 1000.0, "test_frames": scores["frames"],
            "scored_tokens": scores["tokens"], "precision": trained.precision, **report,
            "per_stream_bits_per_second": {stream: sum(per_codebook[k] for k in ks)
                                           for stream, ks in tokens["streams"].items()}}


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
        cfg = _lm_config(params["model"], sizes, cond_sizes if cond else None, max_frames=crop)
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
