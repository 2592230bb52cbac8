"""dvc.yaml's replica stages train exactly the extra training seeds of params.yaml, and the LM stage
reads every one of their token folders (so a new seed cannot be trained and silently left out)."""

from __future__ import annotations

from pathlib import Path

import yaml

from duotok.config import Params
from duotok.train.replica import replica_seeds

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("replica_duotok", "replica_baselines", "replica_tokens")


def test_replica_stages_cover_the_seeds_of_every_profile():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for profile in ("smoke", "default", "paper"):
        seeds = replica_seeds(Params.load(profile, ROOT / "params.yaml"))
        for name in STAGES:
            assert list(stages[name]["foreach"]) == seeds, (name, profile)
    lm_deps = set(stages["lm_eval"]["deps"])
    assert {f"models/replicas/seed{s}/tokens" for s in seeds} <= lm_deps
    assert {"replicas.base", "replicas.${profile}"} <= set(stages["lm_eval"]["params"])
    # the probe reads the replicas' codecs (their embeddings) as well as their tokens: each model folder
    # (tests/test_dvc_model_deps.py says why not the run folders)
    probe_deps = set(stages["probe"]["deps"])
    codecs = [f"baselines/{c}/model" for c in ("rvq", "mixture_vq", "mucodec", "kmeans")]
    assert {f"models/replicas/seed{s}/{part}" for s in seeds
            for part in ("duotok/tokenizer", "tokens", *codecs)} <= probe_deps
    assert {"replicas.base", "replicas.${profile}"} <= set(stages["probe"]["params"])
