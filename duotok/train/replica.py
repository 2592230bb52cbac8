"""Every codec of the comparison trained again under another training seed (issue 18).

A verdict such as "Duo-Tok's tokens are the easiest to model" compares *trained codecs*. With one
training run per codec, a difference may be the luck of one run (its initialisation, the order of its
crops), not the recipe. This module trains each codec of the comparison again under a *training
seed* ``S`` and tokenizes the corpus with it, so the LM evaluation can give every codec one LM per
training seed and the claims can bootstrap over songs **and** seeds
(:func:`duotok.eval.lm_protocols.merge_training_seeds`, :mod:`duotok.reporting.claims`).

What a training seed replaces (:data:`SEED_KEYS`): every seed that decides a codec's training —
stages 1-3 of Duo-Tok (``pretrain`` / ``finetune`` / ``quantize.train.seed``: initialisation and crop
order), the codebook fits of the frozen-feature baselines (``baselines.fit.seed``) and the RVQ codec's
training (``baselines.rvq.train.seed``). The frozen-feature baselines read *this seed's* stage-1/2
encoders, as seed 0's read seed 0's: a replica is the recipe again, not a new codebook on the same
encoder. Shared, not retrained: the corpus, and the stage-4 autoencoder the RVQ codec starts from
(it is the RVQ codec's frozen front end, as the corpus is everyone's).

No decoders: the LM and the probe read tokens only, so a replica stops at the tokenizers. Table 2's
reconstruction columns therefore rest on seed 0 alone, and the report says so.

Three parts, one DVC stage each per seed (``replica_duotok@S``, ``replica_baselines@S``,
``replica_tokens@S``; notebook ``05_training_seed``), so a stopped run keeps what finished:

* ``duotok``: stages 1-3 → ``<out>/seed<S>/duotok/{pretrain,finetune,quantize}``, the tokenizer
  bundle in ``.../duotok/tokenizer``;
* ``baselines``: the four token baselines' tokenizers → ``<out>/seed<S>/baselines/<codec>/model``;
* ``tokens``: the corpus tokens of every codec → ``<out>/seed<S>/tokens/<codec>.pt``, each file
  carrying ``training_seed: S``.

Seed 0 is the main pipeline (``models/``); :func:`token_paths` lists the extra seeds' token files for
the LM stage. Every part resumes: the trainers restart from their ``last/`` checkpoints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from duotok.config import PROFILES, Params, as_params, deep_merge
from duotok.io.files import write_json_atomic
from duotok.paths import resolve

__all__ = ["PARTS", "SEED_KEYS", "replica_dir", "run", "seeded_params", "token_paths"]

#: The params that decide a codec's training, as ``(section, key, ..., "seed")`` paths.
SEED_KEYS: tuple[tuple[str, ...], ...] = (
    ("pretrain", "train", "seed"),
    ("finetune", "train", "seed"),
    ("quantize", "train", "seed"),
    ("baselines", "fit", "seed"),
    ("baselines", "rvq", "train", "seed"),
)
PARTS = ("duotok", "baselines", "tokens")
#: The codecs whose tokens an LM reads, in the order of the comparison.
TOKEN_CODECS = ("duotok", "rvq", "mixture_vq", "mucodec", "kmeans")


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for key in reversed(path):
        out = {key: out}
    return out


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 1:
        raise ValueError(f"a replica's training seed is an integer >= 1 (seed 0 is the main pipeline), got {seed!r}")
    return seed


def replica_seeds(params: Params) -> list[int]:
    """``replicas.seeds``: the extra training seeds, each checked (>= 1, no repeats)."""
    seeds = [_check_seed(s) for s in params.section("replicas")["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"replicas.seeds repeats a seed: {seeds}")
    return seeds


def replica_dir(params: Params, seed: int) -> Path:
    """``<replicas.out_dir>/seed<S>``."""
    return resolve(params.section("replicas")["out_dir"]) / f"seed{_check_seed(seed)}"


def seeded_params(params: Params, seed: int) -> Params:
    """``params`` with every key of :data:`SEED_KEYS` set to ``seed``, and the frozen-feature baselines
    reading this replica's stage-1/2 encoders."""
    duotok = replica_dir(params, seed) / "duotok"
    layers: dict[str, Any] = {}
    for path in SEED_KEYS:
        layers = deep_merge(layers, _nested(path, int(seed)))
    layers = deep_merge(layers, {"baselines": {"data": {"pretrain": str(duotok / "pretrain" / "model"),
                                                        "finetune": str(duotok / "finetune" / "model")}}})
    return params.with_overrides(layers)


# --------------------------------------------------------------------------- the three parts


def train_duotok(params: Params, seed: int, root: Path, resume: bool = True) -> dict[str, Any]:
    """Stages 1-3 under ``seed``; returns each stage's result summary."""
    from duotok.train import finetune, pretrain, quantize

    p = seeded_params(params, seed)
    out = replica_dir(params, seed) / "duotok"
    results = {}
    r1 = pretrain.run(p, out / "pretrain", root, resume=resume)
    results["pretrain"] = r1
    r2 = finetune.run(p, out / "finetune", root, init=out / "pretrain" / "model", resume=resume)
    results["finetune"] = r2
    r3 = quantize.run(p, out / "quantize", root, init=out / "finetune" / "model", resume=resume,
                      tokenizer_dir=out / "tokenizer")
    results["quantize"] = r3
    return {stage: {"steps": r.step, "seconds": r.seconds, "precision": r.precision, "valid": r.valid}
            for stage, r in results.items()}


def train_baselines(params: Params, seed: int, root: Path, resume: bool = True) -> dict[str, Any]:
    """The four token baselines' tokenizers under ``seed`` (no decoders: tokens are all the LM reads)."""
    from duotok.train.baselines import TOKEN_BASELINES, train_feature_tokenizer, train_rvq

    p = seeded_params(params, seed)
    out = replica_dir(params, seed) / "baselines"
    info: dict[str, Any] = {}
    for codec in TOKEN_BASELINES:
        t0 = time.time()
        if codec == "rvq":
            model, result = train_rvq(p, out / codec, root, resume)
        else:
            model, result = train_feature_tokenizer(codec, p, root)
        model.save_pretrained(out / codec / "model")
        info[codec] = {"seconds": time.time() - t0, "fingerprint": model.fingerprint(),
                       **{k: v for k, v in result.items() if k in ("steps", "valid_usage", "fit_seconds")}}
    return info


def load_replica_codec(params: Params, seed: int, codec: str) -> Any:
    """One codec of a replica, for tokenizing (encoders only)."""
    from duotok.codecs.duotok import DuoTokCodec
    from duotok.codecs.feature_tokenizer import FeatureTokenizer
    from duotok.codecs.rvq import RVQCodecModel
    from duotok.tokenizer.model import DuoTok

    base = replica_dir(params, seed)

    def duotok() -> DuoTokCodec:   # loaded only where it is needed: it is the largest model here
        return DuoTokCodec(DuoTok.from_pretrained(base / "duotok" / "tokenizer").eval())

    if codec == "duotok":
        return duotok()
    path = base / "baselines" / codec / "model"
    if codec == "rvq":
        return RVQCodecModel.from_pretrained(path).eval()
    tokenizer = FeatureTokenizer.from_pretrained(path).eval()
    if "mixture" not in tokenizer.streams:
        tokenizer.with_separator(duotok().separate)   # this seed's separator, for tokens.source: separated
    return tokenizer


def tokenize(params: Params, seed: int, root: Path, codecs: tuple[str, ...] = TOKEN_CODECS) -> dict[str, Any]:
    """The corpus tokens of each codec of the replica, marked with its training seed."""
    from duotok.eval.corpus_tokens import encode_corpus, save_corpus_tokens

    t = params.section("tokens")
    out = replica_dir(params, seed) / "tokens"
    info = {}
    for codec in codecs:
        t0 = time.time()
        tokens = encode_corpus(load_replica_codec(params, seed, codec), root, tuple(t["splits"]), t["source"])
        tokens["training_seed"] = int(seed)
        path = save_corpus_tokens(tokens, out / f"{codec}.pt")
        info[codec] = {"path": str(path), "seconds": time.time() - t0, "fingerprint": tokens["fingerprint"]}
    return info


def token_paths(params: Params) -> dict[str, dict[int, Path]]:
    """``{codec: {seed: token file}}`` of every extra training seed (what ``06_lm`` reads beside seed 0)."""
    return {codec: {seed: replica_dir(params, seed) / "tokens" / f"{codec}.pt" for seed in replica_seeds(params)}
            for codec in TOKEN_CODECS}


def run(part: str, seed: int, params: Params | str | None = None, data_dir: str | Path | None = None,
        resume: bool = True) -> dict[str, Any]:
    """One part of the replica of ``seed``; writes and returns ``<replica>/<part>.json``."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    params = as_params(params)
    _check_seed(seed)
    root = resolve(data_dir or params.section("tokens")["root"])
    t0 = time.time()
    if part == "duotok":
        info = train_duotok(params, seed, root, resume)
    elif part == "baselines":
        info = train_baselines(params, seed, root, resume)
    else:
        info = tokenize(params, seed, root)
    record = {"part": part, "training_seed": int(seed), "profile": params.profile, "seconds": time.time() - t0,
              "seed_keys": [".".join(k) for k in SEED_KEYS], "results": info}
    write_json_atomic(replica_dir(params, seed) / f"{part}.json", record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="duotok train replica", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", required=True, choices=PARTS)
    parser.add_argument("--seed", required=True, type=int, help="the training seed (>= 1)")
    parser.add_argument("--profile", choices=PROFILES)
    parser.add_argument("--data-dir", help="corpus folder (default: tokens.root)")
    parser.add_argument("--restart", action="store_true", help="ignore last/ checkpoints")
    args = parser.parse_args(argv)
    record = run(args.part, args.seed, args.profile, args.data_dir, resume=not args.restart)
    print(f"replica seed {args.seed}, {args.part}: {record['seconds']:.0f} s → {replica_dir(as_params(args.profile), args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
