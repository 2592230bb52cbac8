"""A replica retrains every codec under a training seed: which params it sets, where it writes, and
what it refuses. The whole replica (training, tokens, one LM per seed) runs in the smoke pipeline test."""

from __future__ import annotations

import pytest

from duotok.config import Params
from duotok.train.replica import (
    SEED_KEYS,
    TOKEN_CODECS,
    replica_dir,
    replica_seeds,
    run,
    seeded_params,
    token_paths,
)


def _get(params: Params, path: tuple[str, ...]):
    value = params.section(path[0])
    for key in path[1:]:
        value = value[key]
    return value


def test_seeded_params_set_every_training_seed_and_point_the_baselines_at_this_seeds_encoders():
    params = Params.load("smoke")
    assert {_get(params, k) for k in SEED_KEYS} == {0}          # the main pipeline is seed 0
    seeded = seeded_params(params, 3)
    assert {_get(seeded, k) for k in SEED_KEYS} == {3}
    data = seeded.section("baselines")["data"]
    assert data["pretrain"] == str(replica_dir(params, 3) / "duotok" / "pretrain" / "model")
    assert data["finetune"] == str(replica_dir(params, 3) / "duotok" / "finetune" / "model")
    # nothing else moves: the autoencoder the RVQ codec starts from is shared, the steps are the same
    assert data["autoencoder"] == params.section("baselines")["data"]["autoencoder"]
    assert seeded.section("pretrain")["train"]["steps"] == params.section("pretrain")["train"]["steps"]
    assert _get(params, SEED_KEYS[0]) == 0                          # the original is untouched


def test_token_paths_list_every_codec_for_every_extra_seed():
    params = Params.load("smoke")
    paths = token_paths(params)
    assert tuple(paths) == TOKEN_CODECS
    seeds = replica_seeds(params)
    assert seeds and 0 not in seeds
    for codec, by_seed in paths.items():
        assert sorted(by_seed) == seeds
        assert all(p == replica_dir(params, s) / "tokens" / f"{codec}.pt" for s, p in by_seed.items())


@pytest.mark.parametrize("seeds", [[0], [1, 1], [True]])
def test_bad_seed_lists_are_refused(seeds):
    params = Params.load("smoke").with_overrides({"replicas": {"seeds": seeds}})
    with pytest.raises(ValueError, match="seed"):
        replica_seeds(params)


def test_run_refuses_an_unknown_part_or_seed_zero():
    with pytest.raises(ValueError, match="part"):
        run("decoder", 1, "smoke")
    with pytest.raises(ValueError, match="seed 0 is the main pipeline"):
        run("tokens", 0, "smoke")


SONGS = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "valid", 2.0), ("d", "test", 2.0))


@pytest.mark.slow
def test_a_smoke_replica_trains_every_codec_and_marks_its_tokens(tmp_path, make_duosynth):
    """The three parts end to end on a tiny corpus: stages 1-3 and the four baselines' tokenizers under
    seed 1, then tokens of all five codecs carrying ``training_seed: 1``; each baseline's codebooks
    differ from another seed's (a replica is a new run, not a copy)."""
    from duotok.eval.corpus_tokens import load_corpus_tokens
    from duotok.train import autoencoder

    root = make_duosynth(tmp_path / "data", SONGS)
    autoencoder.run("smoke", out_dir=tmp_path / "ae", data_dir=root, steps=2)
    params = Params.load("smoke").with_overrides({
        "replicas": {"out_dir": str(tmp_path / "replicas"), "seeds": [1, 2]},
        "baselines": {"data": {"autoencoder": str(tmp_path / "ae" / "model")}},
        "tokens": {"root": str(root)},
    })
    fingerprints = {}
    for seed in (1, 2):
        for part in ("duotok", "baselines", "tokens"):
            record = run(part, seed, params)
            assert record["training_seed"] == seed and (replica_dir(params, seed) / f"{part}.json").is_file()
        for codec, path in token_paths(params).items():
            tokens = load_corpus_tokens(path[seed])
            assert tokens["training_seed"] == seed and {s["split"] for s in tokens["songs"]} == {"train", "valid", "test"}
            fingerprints[(codec, seed)] = tokens["fingerprint"]
    for codec in TOKEN_CODECS:
        assert fingerprints[(codec, 1)] != fingerprints[(codec, 2)], f"{codec}: seeds 1 and 2 gave the same codebooks"
