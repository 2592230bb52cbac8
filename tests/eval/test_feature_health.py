"""duotok.eval.feature_health: the effective rank and the linear read-out pinned against independent
computations (an entropy from scipy, sklearn's Ridge and r2_score)."""

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from duotok.eval.feature_health import (
    effective_rank,
    encoder_feature_health,
    linear_readout_r2,
    token_targets,
)
from duotok.models.bestrq import BestRQConfig, BestRQModel, MelConfig
from duotok.models.encoder import EncoderConfig


def _with_spectrum(spread: np.ndarray, n: int = 400, seed: int = 0) -> np.ndarray:
    """(n, D) centred features whose covariance eigenvalues are ∝ spread² (orthonormal, centred columns)."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, len(spread)))
    q, _ = np.linalg.qr(g - g.mean(axis=0))
    return q * spread + 3.0          # an offset: the rank must not see the mean


def test_effective_rank_is_exp_entropy_of_the_normalised_spectrum():
    spread = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])
    got = effective_rank(_with_spectrum(spread))
    p = spread**2 / np.sum(spread**2)
    assert got["effective_rank"] == pytest.approx(np.exp(entropy(p)), rel=1e-9)
    assert got["top1_share"] == pytest.approx(p[0], rel=1e-9)


def test_effective_rank_of_equal_directions_and_of_one_direction():
    assert effective_rank(_with_spectrum(np.ones(7)))["effective_rank"] == pytest.approx(7.0, rel=1e-9)
    one = effective_rank(_with_spectrum(np.array([2.0, 0.0, 0.0])))
    assert one["effective_rank"] == pytest.approx(1.0, abs=1e-6)
    assert one["top1_share"] == pytest.approx(1.0, abs=1e-9)


def test_effective_rank_refuses_features_without_variance_or_frames():
    with pytest.raises(ValueError, match="variance"):
        effective_rank(np.ones((10, 4)))
    with pytest.raises(ValueError, match="N >= 2"):
        effective_rank(np.ones((1, 4)))


def _regression(seed: int = 0, n: int = 300, noise: float = 0.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)) * np.array([1.0, 10.0, 0.1, 2.0, 1.0, 5.0]) + 4.0
    w = rng.standard_normal((6, 3))
    y = x @ w + 1.5 + noise * rng.standard_normal((n, 3))
    return x, y


def test_linear_readout_equals_sklearn_ridge_on_standardised_inputs():
    x, y = _regression()
    xtr, ytr, xva, yva = x[:200], y[:200], x[200:], y[200:]
    ridge = 0.05
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    reference = Ridge(alpha=ridge * len(xtr)).fit((xtr - mu) / sd, ytr)
    expected = r2_score(yva, reference.predict((xva - mu) / sd), multioutput="variance_weighted")
    assert linear_readout_r2(xtr, ytr, xva, yva, ridge) == pytest.approx(expected, rel=1e-9)


def test_linear_readout_reads_a_linear_map_and_not_noise():
    x, y = _regression(noise=0.0)
    assert linear_readout_r2(x[:200], y[:200], x[200:], y[200:], ridge=1e-8) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(1)
    unrelated = rng.standard_normal(y.shape)
    assert linear_readout_r2(x[:200], unrelated[:200], x[200:], unrelated[200:]) < 0.05


def test_linear_readout_refuses_bad_shapes_and_ridge():
    x, y = _regression()
    with pytest.raises(ValueError, match="one row per frame"):
        linear_readout_r2(x[:200], y[:199], x[200:], y[200:])
    with pytest.raises(ValueError, match="ridge"):
        linear_readout_r2(x[:200], y[:200], x[200:], y[200:], ridge=0.0)


def _tiny_stage1(seed: int = 0) -> BestRQModel:
    torch.manual_seed(seed)
    mel = MelConfig(n_mels=16, n_fft=256, win_length=256, hop_length=160)
    return BestRQModel(BestRQConfig(mel=mel, encoder=EncoderConfig(n_mels=16, dim=16, n_lower=1, n_upper=1,
                                                                   n_heads=2), codebook_size=32))


def test_token_targets_align_features_and_the_mel_frames_each_token_covers():
    model = _tiny_stage1()
    clip = torch.randn(16000)                            # 101 mel frames → 25 whole tokens of 4 frames
    lower, upper, mel = token_targets(model, clip)
    assert lower.shape == (25, 16) and upper.shape == (25, 16)
    assert mel.shape == (25, 4 * 16)
    normed = model.encoder.normalize(model.logmel(clip[None]))[0]
    assert torch.allclose(mel[3], normed[:, 12:16].T.reshape(-1))


def test_encoder_feature_health_reports_both_stacks():
    model = _tiny_stage1()
    g = torch.Generator().manual_seed(0)
    clips = [torch.randn(16000, generator=g) * (0.1 + i) for i in range(4)]
    out = encoder_feature_health(model, clips[:3], clips[3:])
    assert set(out) == {"lower", "upper"}
    for stack in out.values():
        assert 1.0 <= stack["effective_rank"] <= 16.0
        assert 0.0 < stack["top1_share"] <= 1.0
        assert np.isfinite(stack["mel_readout_r2"])
    with pytest.raises(ValueError, match="at least one"):
        encoder_feature_health(model, [], clips)
