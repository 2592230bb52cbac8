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
