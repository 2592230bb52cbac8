"""Measure one trained ablation variant (``duotok/ablations/train.py``'s output) with the same
instruments as Table 2, at the ablation budget of ``params.yaml: ablation``:

- the dual-track LM (``params.yaml: lm`` with ``ablation.lm`` steps, one run per seed): PPL@1024, bits/s;
- the tagging probe (``params.yaml: probe`` with ``ablation.probe``): macro AP / AUC over seeds;
- the stage-3 heads on held-out true stems: CER, chroma accuracy, mel L1, and codebook usage / perplexity;
- disentanglement (:mod:`duotok.eval.leakage`): how much each stream predicts the *other* track.

Every variant tokenizes the true stems (as the ``tokens`` stage does for Table 2), so a variant's
numbers differ from the reference's only through its tokenizer, never through the separator.

Each measurement keeps its per-song values (the LM's ln PPL@1024 and bits/s per test song, averaged
over LM seeds; the probe's per-song AP, averaged over probe seeds), so the report can set training
seeds and a paired bootstrap over test songs behind every claim
(:func:`duotok.reporting.verdicts.seed_and_song_verdict`). The probe's AP averages the tags with at
least ``probe.min_positive_test_songs`` positive test songs, as Table 2's does (the dropped tags are
named in the metrics). ``train_seed`` picks which training of the variant is measured
(:func:`duotok.ablations.train.variants_root`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from duotok.ablations.train import variants_root
from duotok.ablations.variants import load_variants, overrides_for
from duotok.codecs.base import fixed_bitrate
from duotok.codecs.duotok import DuoTokCodec
from duotok.config import Params, as_params, deep_merge
from duotok.data import StemCropDataset
from duotok.errors import CheckpointError
from duotok.eval.corpus_tokens import encode_corpus, load_corpus_tokens, save_corpus_tokens
from duotok.eval.heads import dualtrack_metrics
from duotok.eval.leakage import leakage_probe, seed_spread
from duotok.eval.lm_protocols import unconditional
from duotok.eval.probe_codecs import probe_codec
from duotok.paths import resolve
from duotok.tokenizer import DuoTok

#: The stage-3 head / codebook numbers kept in the ablation tables (``dualtrack_metrics`` keys).
HEAD_KEYS = ("vocal/cer", "vocal/chroma_accuracy", "accompaniment/chroma_accuracy", "vocal/mel_l1",
             "accompaniment/mel_l1", "vocal/usage", "accompaniment/usage", "vocal/perplexity",
             "accompaniment/perplexity")


def variant_dir(name: str, params: Params | str | None = None, train_seed: int = 0) -> Path:
    """``<variants_root(train_seed)>/<name>``: one trained variant's folder. Here and below, ``params`` is the
    caller's resolved :class:`Params` (or a profile name, read once by :func:`evaluate_variant`)."""
    return variants_root(as_params(params), train_seed) / name


def load_variant_codec(name: str, params: Params | str | None = None, train_seed: int = 0) -> DuoTokCodec:
    path = variant_dir(name, params, train_seed) / "tokenizer"
    if not (path / "config.json").is_file():
        raise CheckpointError(path, f"variant {name!r} (training seed {train_seed}) is not trained: run "
                                    f"`python -m duotok.ablations.train --variant {name} --train-seed {train_seed}`")
    return DuoTokCodec(DuoTok.from_pretrained(path))


def variant_tokens(codec: DuoTokCodec, name: str, root: Path, params: Params | str | None = None,
                   train_seed: int = 0) -> dict[str, Any]:
    """The corpus tokenized from the true stems, cached next to the variant (checked against its codebooks:
    a retrained variant re-tokenizes instead of reading stale tokens)."""
    path = variant_dir(name, params, train_seed) / "tokens.pt"
    if path.is_file():
        try:
            return load_corpus_tokens(path, codec)
        except ValueError:
            pass
    tokens = encode_corpus(codec, root, source="oracle")
    save_corpus_tokens(tokens, path)
    return tokens


def per_song_mean(per_seed: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """``{song: {metric: mean over the LM seeds}}`` of the songs every LM seed scored."""
    songs = sorted(set.intersection(*(set(r[key]) for r in per_seed))) if per_seed else []
    metrics = ("log_ppl_1024", "bits_per_second")
    return {song: {m: float(sum(r[key][song][m] for r in per_seed) / len(per_seed)) for m in metrics}
            for song in songs}


def lm_runs(tokens: dict[str, Any], name: str, params: Params | str | None = None, train_seed: int = 0) -> dict[str, Any]:
    """The dual-track LM of ``params.yaml: lm`` at the ablation budget, one model per LM seed; each test
    song's ln PPL@1024 and bits/s (``per_song``, mean over the LM seeds) for the song bootstrap."""
    params = as_params(params)
    a = params.section("ablation")
    base = params.section("lm")
    per_seed = []
    for seed in a["lm"]["seeds"]:
        lm = deep_merge(base, {"train": {"steps": a["lm"]["steps"], "seed": seed}})
        r = unconditional(tokens, lm, variant_dir(name, params, train_seed) / "lm" / f"seed{seed}")
        (songs,) = r["per_song_by_seed"].values()   # one token file: one codec-training seed
        per_seed.append({"seed": seed, "ppl_1024": r["ppl_1024"], "bits_per_second": r["bits_per_second"],
                         "ce_mean": r["ce_mean"], "per_stream_bits_per_second": r["per_stream_bits_per_second"],
                         "per_song": songs})
    return {"per_seed": per_seed, "ppl_1024": seed_spread([r["ppl_1024"] for r in per_seed]),
            "bits_per_second": seed_spread([r["bits_per_second"] for r in per_seed]), "steps": a["lm"]["steps"],
            "per_song": per_song_mean(per_seed, "per_song")}


def probe_settings(block: str, params: Params | str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(probe model, probe train settings) of ``params.yaml: probe`` with ``ablation.<block>`` on top."""
    params = as_params(params)
    a = params.section("ablation")[block]
    p = params.section("probe")
    train = {**p["train"], **{k: v for k, v in a.items() if k in p["train"]}}
    train["seeds"] = list(a.get("seeds", train["seeds"]))
    train["eval_every"] = min(int(train["eval_every"]), int(train["steps"]))
    return dict(p["model"]), train


def heads_metrics(codec: DuoTokCodec, root: Path, params: Params | str | None = None) -> dict[str, float]:
    """Stage-3 heads and codebooks on held-out true stems, cut as the quantize stage's evaluation."""
    q = as_params(params).section("quantize")
    model = codec.model.quantizer
    data = StemCropDataset(root, "test", q["data"]["segment_seconds"], model.config.mel.sample_rate,
                           crops_per_song=2, seed=0, random=False)
    scores, _ = dualtrack_metrics(model, data, batch_size=q["train"]["batch_size"])
    return {k: float(scores[k]) for k in HEAD_KEYS if k in scores}


def evaluate_variant(name: str, params: Params | str | None = None, data_dir: str | os.PathLike[str] | None = None,
                     train_seed: int = 0) -> dict[str, Any]:
    """Every measurement of one trained variant (training seed ``train_seed``), as written to
    ``reports/metrics/ablations/<name>.json`` (seed 0) or ``.../seed<S>/<name>.json``. ``params``: the
    caller's resolved params, or a profile name (``None``: the active one), read once here."""
    params = as_params(params)
    variants = load_variants(params)
    if name not in variants:
        raise KeyError(f"unknown ablation variant {name!r}; params.yaml: ablation.variants has {sorted(variants)}")
    variant = variants[name]
    root = resolve(data_dir or params.section("tokens")["root"])
    torch.manual_seed(0)
    start = time.perf_counter()
    codec = load_variant_codec(name, params, train_seed)
    tokens = variant_tokens(codec, name, root, params, train_seed)
    probe_model, probe_train = probe_settings("probe", params)
    leak_model, leak_train = probe_settings("leakage", params)
    leakage = leakage_probe(codec, tokens, root, leak_model, leak_train)
    min_positive = params.section("probe").get("min_positive_test_songs")
    return {
        "variant": {**variant.to_dict(), "overrides": overrides_for(variant, params)},
        "profile": params.profile,
        "train_seed": train_seed,
        "bits_per_second": fixed_bitrate(float(tokens["frame_rate"]), tokens["codebook_sizes"]),
        "fingerprint": codec.fingerprint(),
        "lm": lm_runs(tokens, name, params, train_seed),
        "probe": probe_codec(codec, tokens, probe_model, probe_train, min_positive_test_songs=min_positive),
        "heads": heads_metrics(codec, root, params),
        "leakage": leakage,
        "eval_seconds": round(time.perf_counter() - start, 1),
    }


def json_safe(obj: Any) -> Any:
    """NaN / inf → None (``null``): strict JSON for ``dvc metrics`` and other readers. Undefined cells
    (a leakage ratio whose own-stream probe is no better than chance) stay visible as missing values."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
