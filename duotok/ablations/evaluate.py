"""Measure one trained ablation variant (``duotok/ablations/train.py``'s output) with the same
instruments as Table 2, at the ablation budget of ``params.yaml: ablation``:

- the dual-track LM (``params.yaml: lm`` with ``ablation.lm`` steps, one run per seed): PPL@1024, bits/s;
- the tagging probe (``params.yaml: probe`` with ``ablation.probe``): macro AP / AUC over seeds;
- the stage-3 heads on held-out true stems: CER, chroma accuracy, mel L1, and codebook usage / perplexity;
- disentanglement (:mod:`duotok.eval.leakage`): how much each stream predicts the *other* track.

Every variant tokenizes the true stems (as the ``tokens`` stage does for Table 2), so a variant's
numbers differ from the reference's only through its tokenizer, never through the separator.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from duotok.ablations.variants import load_variants, overrides_for
from duotok.codecs.base import fixed_bitrate
from duotok.codecs.duotok import DuoTokCodec
from duotok.config import active_profile, deep_merge, stage_params
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


def variant_dir(name: str, profile: str | None = None) -> Path:
    return resolve(stage_params("ablation", profile)["out_dir"]) / name


def load_variant_codec(name: str, profile: str | None = None) -> DuoTokCodec:
    path = variant_dir(name, profile) / "tokenizer"
    if not (path / "config.json").is_file():
        raise CheckpointError(path, f"variant {name!r} is not trained: run `duotok train ablation --variant {name}`")
    return DuoTokCodec(DuoTok.from_pretrained(path))


def variant_tokens(codec: DuoTokCodec, name: str, root: Path, profile: str | None = None) -> dict[str, Any]:
    """The corpus tokenized from the true stems, cached next to the variant (checked against its codebooks:
    a retrained variant re-tokenizes instead of reading stale tokens)."""
    path = variant_dir(name, profile) / "tokens.pt"
    if path.is_file():
        try:
            return load_corpus_tokens(path, codec)
        except ValueError:
            pass
    tokens = encode_corpus(codec, root, source="oracle")
    save_corpus_tokens(tokens, path)
    return tokens


def lm_runs(tokens: dict[str, Any], name: str, profile: str | None = None) -> dict[str, Any]:
    """The dual-track LM of ``params.yaml: lm`` at the ablation budget, one model per seed."""
    a = stage_params("ablation", profile)
    base = stage_params("lm", profile)
    per_seed = []
    for seed in a["lm"]["seeds"]:
        params = deep_merge(base, {"train": {"steps": a["lm"]["steps"], "seed": seed}})
        r = unconditional(tokens, params, variant_dir(name, profile) / "lm" / f"seed{seed}")
        per_seed.append({"seed": seed, "ppl_1024": r["ppl_1024"], "bits_per_second": r["bits_per_second"],
                         "ce_mean": r["ce_mean"], "per_stream_bits_per_second": r["per_stream_bits_per_second"]})
    return {"per_seed": per_seed, "ppl_1024": seed_spread([r["ppl_1024"] for r in per_seed]),
            "bits_per_second": seed_spread([r["bits_per_second"] for r in per_seed]), "steps": a["lm"]["steps"]}


def probe_settings(block: str, profile: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(probe model, probe train settings) of ``params.yaml: probe`` with ``ablation.<block>`` on top."""
    a = stage_params("ablation", profile)[block]
    p = stage_params("probe", profile)
    train = {**p["train"], **{k: v for k, v in a.items() if k in p["train"]}}
    train["seeds"] = list(a.get("seeds", train["seeds"]))
    train["eval_every"] = min(int(train["eval_every"]), int(train["steps"]))
    return dict(p["model"]), train


def heads_metrics(codec: DuoTokCodec, root: Path, profile: str | None = None) -> dict[str, float]:
    """Stage-3 heads and codebooks on held-out true stems, cut as the quantize stage's evaluation."""
    q = stage_params("quantize", profile)
    model = codec.model.quantizer
    data = StemCropDataset(root, "test", q["data"]["segment_seconds"], model.config.mel.sample_rate,
                           crops_per_song=2, seed=0, random=False)
    scores, _ = dualtrack_metrics(model, data, batch_size=q["train"]["batch_size"])
    return {k: float(scores[k]) for k in HEAD_KEYS if k in scores}


def evaluate_variant(name: str, profile: str | None = None, data_dir: str | os.PathLike[str] | None = None,
                     ) -> dict[str, Any]:
    """Every measurement of one variant, as written to ``reports/metrics/ablations/<name>.json``."""
    profile = profile or active_profile()
    variants = load_variants(profile)
    if name not in variants:
        raise KeyError(f"unknown ablation variant {name!r}; params.yaml: ablation.variants has {sorted(variants)}")
    variant = variants[name]
    root = resolve(data_dir or stage_params("tokens", profile)["root"])
    torch.manual_seed(0)
    start = time.perf_counter()
    codec = load_variant_codec(name, profile)
    tokens = variant_tokens(codec, name, root, profile)
    probe_model, probe_train = probe_settings("probe", profile)
    leak_model, leak_train = probe_settings("leakage", profile)
    leakage = leakage_probe(codec, tokens, root, leak_model, leak_train)
    return {
        "variant": {**variant.to_dict(), "overrides": overrides_for(variant, profile)},
        "profile": profile,
        "bits_per_second": fixed_bitrate(float(tokens["frame_rate"]), tokens["codebook_sizes"]),
        "fingerprint": codec.fingerprint(),
        "lm": lm_runs(tokens, name, profile),
        "probe": probe_codec(codec, tokens, probe_model, probe_train),
        "heads": heads_metrics(codec, root, profile),
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
