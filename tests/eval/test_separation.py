import numpy as np
import pytest

from duotok.eval.separation import bss_eval_track, summarize_tracks

SR = 8000


def stems(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(3 * SR) / SR
    return np.stack([np.sin(2 * np.pi * f * t) * 0.3 + 0.01 * rng.standard_normal(t.size)
                     for f in (220, 330, 110, 550)])


def test_better_estimates_score_higher():
    ref = stems()
    rng = np.random.default_rng(1)
    close = bss_eval_track(ref, ref + 0.01 * rng.standard_normal(ref.shape), SR)
    mixture = np.repeat(ref.sum(axis=0, keepdims=True), 4, axis=0) / 4  # "each stem = a quarter of the mix"
    poor = bss_eval_track(ref, mixture, SR)
    assert set(close) == {"SDR", "SIR", "SAR"} and close["SDR"].shape == (4,)
    assert (close["SDR"] > 25).all()
    assert (poor["SDR"] < 5).all()


def test_summary_skips_silent_stems():
    a = {"SDR": np.array([10.0, np.nan]), "SIR": np.array([1.0, 2.0]), "SAR": np.array([3.0, 4.0])}
    b = {"SDR": np.array([20.0, 4.0]), "SIR": np.array([1.0, 2.0]), "SAR": np.array([3.0, 4.0])}
    out = summarize_tracks([a, b], ["vocals", "drums"])
    assert out["vocals/SDR_mean"] == 15.0
    assert out["drums/SDR_median"] == 4.0
    assert out["SDR_median"] == pytest.approx((15.0 + 4.0) / 2)


def test_shapes_and_nan_are_refused():
    ref = stems()
    with pytest.raises(ValueError, match="must both be"):
        bss_eval_track(ref, ref[:3], SR)
    bad = ref.copy()
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bss_eval_track(ref, bad, SR)


def test_a_silent_stem_gets_nan_and_the_others_are_still_scored():
    ref = stems()
    ref[1] = 0.0  # a song without drums
    rng = np.random.default_rng(2)
    out = bss_eval_track(ref, ref + 0.01 * rng.standard_normal(ref.shape), SR)
    assert np.isnan(out["SDR"][1])
    assert (out["SDR"][[0, 2, 3]] > 25).all()
    assert np.isnan(bss_eval_track(np.zeros((4, SR)), np.zeros((4, SR)), SR)["SDR"]).all()
