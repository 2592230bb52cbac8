"""Honest-verdict helpers (issue 18): token information rates pinned against hand computations, the
paired song bootstrap against a direct loop, the seed + song verdict's three conditions, the
information confound of PPL wins, and the AP tag filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

import duotok.reporting.verdicts as verdicts
from duotok.reporting.claims import combined_spread
from duotok.reporting.verdicts import (
    A_BETTER,
    B_BETTER,
    CONFOUNDED,
    NOT_TESTABLE,
    TIE,
    codebook_usage,
    confounded,
    entropy_rate_bits_per_second,
    information_aware_verdict,
    paired_bootstrap,
    seed_and_song_verdict,
    tags_with_enough_positives,
    unigram_entropy_rate,
)

# ----------------------------------------------------------------------------- information in tokens


@pytest.mark.parametrize("k", [1, 2, 8, 1024])
def test_uniform_use_of_k_codes_gives_log2_k_times_rate(k: int) -> None:
    codes = np.random.default_rng(0).permutation(np.repeat(np.arange(k), 3))
    assert unigram_entropy_rate(codes, 25.0) == pytest.approx(math.log2(k) * 25.0, abs=1e-9)


def test_constant_stream_carries_nothing() -> None:
    assert unigram_entropy_rate(np.full(500, 17), 75.0, codebook_size=1024) == 0.0


def test_hand_computed_skewed_distribution() -> None:
    # p = (1/2, 1/4, 1/4): H = 0.5*1 + 2 * 0.25*2 = 1.5 bits/token; at 12.5 tokens/s = 18.75 bits/s.
    assert unigram_entropy_rate([3, 3, 5, 9], 12.5) == pytest.approx(18.75)
    # Unused codes of a declared codebook add nothing.
    assert unigram_entropy_rate([3, 3, 5, 9], 12.5, codebook_size=16) == pytest.approx(18.75)


def test_per_song_arrays_are_pooled_and_shape_is_ignored() -> None:
    songs = [np.array([0, 0, 1]), np.array([[2, 2], [2, 1]])]  # ragged, one 2-D
    pooled = np.array([0, 0, 1, 2, 2, 2, 1])
    assert unigram_entropy_rate(songs, 25.0) == pytest.approx(unigram_entropy_rate(pooled, 25.0))


@pytest.mark.parametrize(("codes", "rate", "size", "match"), [
    (np.array([0.0, 1.0]), 25.0, None, "integer"),
    (np.array([0, -1, 2]), 25.0, None, "negative"),
    (np.array([], dtype=np.int64), 25.0, None, "no tokens"),
    ([], 25.0, None, "no tokens"),
    ([np.array([], dtype=np.int64)], 25.0, None, "no tokens"),
    (np.array([0, 1]), 0.0, None, "positive"),
    (np.array([0, 1]), math.nan, None, "positive"),
    (np.array([0, 8]), 25.0, 8, "outside a codebook of 8"),
    (np.array([0, 1]), 25.0, 0, "codebook_size"),
])
def test_entropy_rate_rejects_bad_input(codes, rate, size, match) -> None:
    with pytest.raises(ValueError, match=match):
        unigram_entropy_rate(codes, rate, codebook_size=size)


def test_multi_stream_rate_sums_streams_at_their_own_rates() -> None:
    vocal = np.tile(np.arange(4), 10)  # 2 bits/token
    accomp = np.zeros(40, dtype=np.int64)  # 0 bits/token
    rvq_fine = np.tile(np.arange(8), 5)  # 3 bits/token
    assert entropy_rate_bits_per_second({"vocal": vocal, "accompaniment": accomp}, 25.0) == pytest.approx(50.0)
    total = entropy_rate_bits_per_second({"vocal": vocal, "fine": rvq_fine}, {"vocal": 25.0, "fine": 50.0},
                                         codebook_sizes={"vocal": 4, "fine": 8})
    assert total == pytest.approx(2 * 25.0 + 3 * 50.0)


def test_multi_stream_rate_errors_name_the_stream() -> None:
    with pytest.raises(ValueError, match="'accompaniment'"):
        entropy_rate_bits_per_second({"vocal": [0, 1], "accompaniment": [0, 1]}, {"vocal": 25.0})
    with pytest.raises(ValueError, match="'vocals'"):
        entropy_rate_bits_per_second({"vocal": [0, 1]}, 25.0, codebook_sizes={"vocals": 4})
    with pytest.raises(ValueError, match="stream 'vocal'.*outside"):
        entropy_rate_bits_per_second({"vocal": [0, 9]}, 25.0, codebook_sizes={"vocal": 4})
    with pytest.raises(ValueError, match="at least one stream"):
        entropy_rate_bits_per_second({}, 25.0)


def test_codebook_usage_by_hand() -> None:
    usage = codebook_usage([0, 0, 1, 2], 8)
    assert usage["frames"] == 4 and usage["used"] == 3 and usage["dead"] == 5
    assert usage["usage"] == pytest.approx(3 / 8)
    assert usage["entropy_bits"] == pytest.approx(1.5)
    assert usage["max_entropy_bits"] == pytest.approx(3.0)
    assert usage["perplexity"] == pytest.approx(2 ** 1.5)
    assert usage["entropy_fraction"] == pytest.approx(0.5)
    assert codebook_usage([0, 0, 0], 1)["entropy_fraction"] == 1.0
    with pytest.raises(ValueError, match="outside a codebook of 2"):
        codebook_usage([0, 2], 2)


def test_codebook_usage_agrees_with_simvq_usage_statistics() -> None:
    torch = pytest.importorskip("torch")
    from duotok.quantization.simvq import usage_statistics

    codes = torch.from_numpy(np.random.default_rng(3).zipf(1.5, size=4000) % 64)
    usage = codebook_usage(codes, 64)  # a torch tensor is accepted as is
    perplexity, used_fraction = usage_statistics(torch.bincount(codes, minlength=64))
    assert usage["perplexity"] == pytest.approx(perplexity, rel=1e-9)
    assert usage["usage"] == pytest.approx(used_fraction)
    assert unigram_entropy_rate(codes, 25.0) == pytest.approx(math.log2(perplexity) * 25.0, rel=1e-9)


# ----------------------------------------------------------------------------- paired bootstrap


def _songs(values) -> dict[str, float]:
    return {f"song{i:02d}": float(v) for i, v in enumerate(values)}


def _direct_bootstrap(a: dict, b: dict, n_resamples: int, seed: int, confidence: float) -> tuple[float, float, float]:
    """The documented algorithm, written as plainly as possible: one resample per loop iteration, the
    mean by hand, linear-interpolation percentiles by hand."""
    songs = list(a)
    diffs = [a[s] - b[s] for s in songs]
    n = len(diffs)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        means.append(sum(diffs[i] for i in idx) / n)
    ordered = sorted(means)

    def percentile(q: float) -> float:
        pos = q * (len(ordered) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])

    alpha = 1 - confidence
    below = sum(m <= 0 for m in means)
    above = sum(m >= 0 for m in means)
    p = min(1.0, 2 * (min(below, above) + 1) / (n_resamples + 1))
    return percentile(alpha / 2), percentile(1 - alpha / 2), p


def test_identical_inputs_give_zero_interval_and_p_one() -> None:
    a = _songs(np.random.default_rng(1).normal(size=12))
    out = paired_bootstrap(a, dict(a), n_resamples=500)
    assert out["mean_diff"] == 0.0
    assert out["low"] <= 0.0 <= out["high"]
    assert out["p_two_sided"] == 1.0


def test_constant_shift_gives_degenerate_interval_at_the_shift() -> None:
    base = np.random.default_rng(2).normal(size=15)
    out = paired_bootstrap(_songs(base + 1.0), _songs(base), n_resamples=1000)
    assert out["mean_diff"] == pytest.approx(1.0, abs=1e-12)
    assert out["low"] == pytest.approx(1.0, abs=1e-12)
    assert out["high"] == pytest.approx(1.0, abs=1e-12)
    assert out["p_two_sided"] == pytest.approx(2 / 1001)  # never exactly 0


def test_bootstrap_matches_a_direct_loop() -> None:
    rng = np.random.default_rng(4)
    a, b = _songs(rng.normal(0.3, 1.0, size=9)), _songs(rng.normal(0.0, 1.0, size=9))
    out = paired_bootstrap(a, b, n_resamples=2000, seed=11, confidence=0.9)
    low, high, p = _direct_bootstrap(a, b, 2000, 11, 0.9)
    assert out["low"] == pytest.approx(low, abs=1e-12)
    assert out["high"] == pytest.approx(high, abs=1e-12)
    assert out["p_two_sided"] == pytest.approx(p)
    assert out["n_songs"] == 9 and out["n_resamples"] == 2000


def test_bootstrap_interval_has_the_normal_theory_width() -> None:
    """Independent of the algorithm: for many songs the percentile interval of a mean difference is
    close to mean ± 1.96 sd / sqrt(n)."""
    rng = np.random.default_rng(5)
    d = rng.normal(0.5, 2.0, size=400)
    out = paired_bootstrap(_songs(d), _songs(np.zeros(400)), n_resamples=4000, seed=0)
    half = 1.96 * d.std() / math.sqrt(len(d))
    assert out["low"] == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert out["high"] == pytest.approx(d.mean() + half, abs=0.1 * half)
    assert out["p_two_sided"] < 0.01


def test_bootstrap_is_seeded_chunk_free_and_pairs_by_song_id(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    a, b = _songs(rng.normal(size=10)), _songs(rng.normal(size=10))
    first = paired_bootstrap(a, b, n_resamples=700, seed=3)
    assert paired_bootstrap(a, b, n_resamples=700, seed=3) == first
    assert paired_bootstrap(a, b, n_resamples=700, seed=4)["low"] != first["low"]
    # b listed in another order: still paired by id, same result.
    assert paired_bootstrap(a, dict(reversed(list(b.items()))), n_resamples=700, seed=3) == first
    # Drawing the resamples in small chunks changes nothing.
    monkeypatch.setattr(verdicts, "_MAX_DRAWS_PER_CHUNK", 25)
    assert paired_bootstrap(a, b, n_resamples=700, seed=3) == first


def test_bootstrap_refuses_mismatched_songs_by_name() -> None:
    a = {"intro": 1.0, "verse": 2.0, "solo": 3.0}
    b = {"intro": 1.0, "verse": 2.0, "bridge": 3.0}
    with pytest.raises(ValueError, match=r"only in per_song_a: 'solo'.*only in per_song_b: 'bridge'"):
        paired_bootstrap(a, b)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_resamples": 0}, "n_resamples"),
    ({"confidence": 1.0}, "confidence"),
    ({"confidence": 0.0}, "confidence"),
])
def test_bootstrap_rejects_bad_settings(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        paired_bootstrap({"x": 1.0, "y": 2.0}, {"x": 0.0, "y": 1.0}, **kwargs)


def test_bootstrap_rejects_too_few_songs_and_non_finite_values() -> None:
    with pytest.raises(ValueError, match="at least 2 songs"):
        paired_bootstrap({"x": 1.0}, {"x": 0.0})
    with pytest.raises(ValueError, match="non-finite.*'y'"):
        paired_bootstrap({"x": 1.0, "y": math.nan}, {"x": 0.0, "y": 1.0})


# ----------------------------------------------------------------------------- seed + song verdict


def _by_seed(per_song: np.ndarray, seed_offsets: list[float]) -> dict[int, dict[str, float]]:
    return {seed: _songs(per_song + off) for seed, off in enumerate(seed_offsets)}


def test_clear_difference_beyond_seeds_and_songs() -> None:
    base = np.random.default_rng(7).normal(size=20)
    a = _by_seed(base + 1.0, [0.0, 0.05, -0.05])
    b = _by_seed(base, [0.02, -0.02, 0.0])
    out = seed_and_song_verdict(a, b, higher_is_better=True, n_resamples=1000)
    assert out["verdict"] == A_BETTER
    assert out["diff"] == pytest.approx(1.0 - 0.0, abs=1e-9)
    # Spread: population std of per-seed means, a's + b's.
    expected = combined_spread(np.std([0.0, 0.05, -0.05]), np.std([0.02, -0.02, 0.0]))
    assert out["seed_spread"] == pytest.approx(expected)
    low, high = out["interval"]
    assert 0 < low <= 1.0 <= high
    assert (out["n_seeds_a"], out["n_seeds_b"], out["n_songs"]) == (3, 3, 20)
    assert "excludes 0" in out["reason"]
    # Same numbers, lower is better: b wins.
    assert seed_and_song_verdict(a, b, higher_is_better=False, n_resamples=1000)["verdict"] == B_BETTER


def test_song_interval_uses_each_songs_mean_over_seeds() -> None:
    rng = np.random.default_rng(12)
    a = {seed: _songs(rng.exponential(size=8) + 1.0) for seed in range(3)}  # skewed: median != mean
    b = {seed: _songs(rng.exponential(size=8)) for seed in range(2)}
    out = seed_and_song_verdict(a, b, higher_is_better=True, n_resamples=800, seed=5)
    song_mean_a = {s: np.mean([a[k][s] for k in a]) for s in a[0]}
    song_mean_b = {s: np.mean([b[k][s] for k in b]) for s in b[0]}
    direct = paired_bootstrap(song_mean_a, song_mean_b, n_resamples=800, seed=5)
    assert out["interval"] == pytest.approx((direct["low"], direct["high"]))
    assert out["diff"] == pytest.approx(direct["mean_diff"])
    assert out["mean_a"] == pytest.approx(np.mean([np.mean(list(v.values())) for v in a.values()]))


def test_difference_within_seed_spread_is_a_tie() -> None:
    base = np.random.default_rng(8).normal(size=20)
    a = _by_seed(base + 0.5, [-1.0, 1.0])  # per-seed means 0.5 ± 1: std 1
    b = _by_seed(base, [0.0, 0.0])
    out = seed_and_song_verdict(a, b, higher_is_better=True, n_resamples=500)
    assert out["verdict"] == TIE
    assert out["seed_spread"] == pytest.approx(1.0)
    assert "within seed spread" in out["reason"]


def test_song_interval_through_zero_is_a_tie_even_beyond_seed_spread() -> None:
    swing = np.array([1.0, -1.0] * 5) + 0.05  # mean +0.05, but songs disagree wildly
    base = np.random.default_rng(9).normal(size=10)
    a = _by_seed(base + swing, [0.0, 0.0])  # identical seeds: spread 0
    b = _by_seed(base, [0.0, 0.0])
    out = seed_and_song_verdict(a, b, higher_is_better=True, n_resamples=1000)
    assert out["seed_spread"] == 0.0 and out["diff"] == pytest.approx(0.05)
    low, high = out["interval"]
    assert low < 0 < high
    assert out["verdict"] == TIE and "does not exclude 0" in out["reason"]


def test_one_seed_or_one_song_is_not_testable() -> None:
    base = np.arange(5.0)
    one_seed = seed_and_song_verdict(_by_seed(base + 10, [0.0]), _by_seed(base, [0.0, 0.1]),
                                     higher_is_better=True, names=("Duo-Tok", "DAC"))
    assert one_seed["verdict"] == NOT_TESTABLE
    assert "Duo-Tok has 1 training seed" in one_seed["reason"]
    assert one_seed["mean_a"] == pytest.approx(12.0) and one_seed["interval"] is None
    assert one_seed["seed_spread"] is None
    one_song = seed_and_song_verdict({0: {"s": 2.0}, 1: {"s": 2.1}}, {0: {"s": 1.0}, 1: {"s": 1.1}},
                                     higher_is_better=True)
    assert one_song["verdict"] == NOT_TESTABLE and "1 test song" in one_song["reason"]
    assert one_song["n_songs"] == 1
    none = seed_and_song_verdict({}, _by_seed(base, [0.0, 0.1]), higher_is_better=True)
    assert none["verdict"] == NOT_TESTABLE and none["mean_a"] is None and none["n_seeds_a"] == 0


def test_verdict_refuses_inconsistent_song_sets() -> None:
    with pytest.raises(ValueError, match=r"only in a seed 1: 'extra'"):
        seed_and_song_verdict({0: {"x": 1.0, "y": 2.0}, 1: {"x": 1.0, "y": 2.0, "extra": 0.0}},
                              {0: {"x": 1.0, "y": 2.0}, 1: {"x": 1.0, "y": 2.0}}, higher_is_better=True)
    with pytest.raises(ValueError, match=r"only in b: 'z'"):
        seed_and_song_verdict({0: {"x": 1.0, "y": 2.0}, 1: {"x": 1.0, "y": 2.0}},
                              {0: {"x": 1.0, "y": 2.0, "z": 0.0}, 1: {"x": 1.0, "y": 2.0, "z": 0.0}},
                              higher_is_better=True)


# ----------------------------------------------------------------------------- information confound


def test_confounded_only_for_per_token_lm_metrics_won_with_less_information() -> None:
    assert confounded(100.0, 200.0, "ppl_1024") is True
    assert confounded(100.0, 200.0, "lm_loss") is True
    assert confounded(200.0, 100.0, "ppl_1024") is False
    assert confounded(150.0, 150.0, "ppl_1024") is False
    assert confounded(100.0, 200.0, "bits_per_second") is False
    assert confounded(100.0, 200.0, "ap") is False
    with pytest.raises(ValueError, match="unknown metric 'ppl1024'"):
        confounded(100.0, 200.0, "ppl1024")
    with pytest.raises(ValueError, match="non-negative"):
        confounded(-1.0, 200.0, "ppl_1024")


def _win(verdict: str) -> dict:
    return {"verdict": verdict, "reason": "r", "diff": -1.0}


def test_information_aware_verdict_rewrites_only_confounded_wins() -> None:
    out = information_aware_verdict(_win(A_BETTER), 50.0, 500.0, "ppl_1024")
    assert out["verdict"] == CONFOUNDED and out["winner"] == "a" and out["confounded"] is True
    assert "50 bits/s against 500" in out["reason"]
    assert information_aware_verdict(_win(B_BETTER), 500.0, 50.0, "ppl_1024")["verdict"] == CONFOUNDED
    # The winner carries more information: the win stands.
    kept = information_aware_verdict(_win(A_BETTER), 500.0, 50.0, "ppl_1024")
    assert kept["verdict"] == A_BETTER and kept["confounded"] is False
    # LM bits/s and AP are not confounded by information content.
    assert information_aware_verdict(_win(A_BETTER), 50.0, 500.0, "bits_per_second")["verdict"] == A_BETTER
    assert information_aware_verdict(_win(A_BETTER), 50.0, 500.0, "ap")["verdict"] == A_BETTER
    # Ties pass through.
    assert information_aware_verdict(_win(TIE), 50.0, 500.0, "ppl_1024")["verdict"] == TIE


def test_information_aware_verdict_with_unknown_entropy() -> None:
    out = information_aware_verdict(_win(A_BETTER), None, 500.0, "ppl_1024")
    assert out["verdict"] == NOT_TESTABLE and out["confounded"] is None
    assert "entropy rate of a is unknown" in out["reason"]
    tie = information_aware_verdict(_win(TIE), math.nan, 500.0, "ppl_1024")
    assert tie["verdict"] == TIE and tie["confounded"] is None
    assert information_aware_verdict(_win(A_BETTER), None, None, "ap")["verdict"] == A_BETTER
    with pytest.raises(ValueError, match="'verdict' key"):
        information_aware_verdict({"reason": "r"}, 1.0, 2.0, "ppl_1024")


def test_collapsed_codec_wins_perplexity_but_reads_confounded() -> None:
    """End to end: a codec stuck on 2 codes has more predictable tokens (lower per-song loss) than one
    using 256 codes; the seed + song verdict calls the win, the information check takes it back."""
    rng = np.random.default_rng(10)
    collapsed = rng.integers(0, 2, size=2000)
    rich = rng.integers(0, 256, size=2000)
    h_collapsed = unigram_entropy_rate(collapsed, 25.0, codebook_size=1024)
    h_rich = unigram_entropy_rate(rich, 25.0, codebook_size=1024)
    assert h_collapsed < h_rich
    songs = rng.normal(size=12)
    loss_collapsed = _by_seed(0.7 + 0.1 * songs, [0.0, 0.01, -0.01])
    loss_rich = _by_seed(5.0 + 0.1 * songs, [0.0, 0.02, -0.02])
    raw = seed_and_song_verdict(loss_collapsed, loss_rich, higher_is_better=False, n_resamples=500)
    assert raw["verdict"] == A_BETTER
    assert information_aware_verdict(raw, h_collapsed, h_rich, "lm_loss")["verdict"] == CONFOUNDED


# ----------------------------------------------------------------------------- tagging AP


def test_tags_with_too_few_positives_or_no_negatives_are_dropped_and_named() -> None:
    labels = {"rock": [1, 1, 1, 0], "jazz": [1, 0, 0, 0], "all": [1, 1, 1, 1], "none": [0, 0, 0, 0],
              "pop": np.array([True, True, False, False])}
    kept, dropped = tags_with_enough_positives(labels, min_positive=2)
    assert kept == ["rock", "pop"]
    assert dropped == {"jazz": "1 positive test song(s) < 2", "none": "0 positive test song(s) < 2",
                       "all": "0 negative test song(s) < 1"}
    kept, dropped = tags_with_enough_positives(labels, min_positive=1, min_negative=0)
    assert kept == ["rock", "jazz", "all", "pop"] and list(dropped) == ["none"]


def test_tag_filter_rejects_bad_labels() -> None:
    with pytest.raises(ValueError, match=r"different numbers of test songs.*'short'"):
        tags_with_enough_positives({"rock": [1, 0, 1], "short": [1, 0]}, min_positive=1)
    with pytest.raises(ValueError, match="'rock'.*0/1"):
        tags_with_enough_positives({"rock": [1, 2, 0]}, min_positive=1)
    with pytest.raises(ValueError, match="min_positive"):
        tags_with_enough_positives({"rock": [1, 0]}, min_positive=0)
