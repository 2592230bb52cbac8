"""The toolkit's Mel distance (Codec-Evaluation ``calculate_mel_distance``) against an independent
numpy computation: explicit reflect padding and framing, a periodic Hann window written out,
``np.fft.rfft``, and an HTK filterbank built from ``mel = 2595 log10(1 + f / 700)`` with triangles
obtained by ``np.interp`` between adjacent mel points — torchaudio's construction, written another way.

Plus sanity relations (identity, symmetry, the ``ln 4`` shift of a 2x gain), batching, gradients,
input validation, and the difference from the Slaney/area-normalised DAC-style training loss
``duotok.losses.multiscale_mel_l1``, which was reported as Mel L1 before issue 18 (item 2). Signals are 4000 samples: fast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from duotok.eval.mel_distance import (
    TOOLKIT_CLAMP,
    TOOLKIT_N_MELS,
    TOOLKIT_WINDOW_LENGTHS,
    htk_mel_filterbank,
    toolkit_mel_distance,
    toolkit_mel_spectrogram,
)
from duotok.losses import multiscale_mel_l1

N_SAMPLES = 4000

# --------------------------------------------------------------------------------------------------
# Independent numpy reference
# --------------------------------------------------------------------------------------------------


def _np_htk_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                       f_max: float | None = None) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels): triangle m rises from mel point m to m+1 and falls to m+2 (peak 1),
    read off at the FFT bin frequencies by linear interpolation."""
    f_max = float(sample_rate // 2) if f_max is None else f_max
    bin_freqs = np.linspace(0.0, sample_rate // 2, n_fft // 2 + 1)
    mel_lo, mel_hi = (2595.0 * np.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    edges_hz = 700.0 * (10.0 ** (np.linspace(mel_lo, mel_hi, n_mels + 2) / 2595.0) - 1.0)
    fb = np.zeros((bin_freqs.size, n_mels))
    for m in range(n_mels):
        lo, centre, hi = edges_hz[m], edges_hz[m + 1], edges_hz[m + 2]
        fb[:, m] = np.interp(bin_freqs, [lo, centre, hi], [0.0, 1.0, 0.0], left=0.0, right=0.0)
    return fb


def _np_mel_power(x: np.ndarray, sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, frames) mel power of a 1-D signal: centred frames, reflect padding, hop n_fft / 4."""
    hop = n_fft // 4
    padded = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + (padded.size - n_fft) // hop
    frames = np.stack([padded[i * hop: i * hop + n_fft] for i in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)     # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2               # (frames, n_fft//2+1)
    return (power @ _np_htk_filterbank(n_fft, n_mels, sample_rate)).T


def _np_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """Mean over items of the mean over scales of mean |ln max(M, 1e-5) - ln max(M', 1e-5)|."""
    reference, estimate = np.atleast_2d(reference), np.atleast_2d(estimate)
    per_item = []
    for ref, est in zip(reference, estimate, strict=True):
        scales = []
        for n_fft, n_mels in zip(TOOLKIT_WINDOW_LENGTHS, TOOLKIT_N_MELS, strict=True):
            a = np.log(np.maximum(_np_mel_power(ref, sample_rate, n_fft, n_mels), 1e-5))
            b = np.log(np.maximum(_np_mel_power(est, sample_rate, n_fft, n_mels), 1e-5))
            scales.append(np.mean(np.abs(a - b)))
        per_item.append(np.mean(scales))
    return float(np.mean(per_item))


# --------------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------------


def _tone(sample_rate: int, seed: int) -> np.ndarray:
    """A few harmonics of a random pitch with a decaying envelope, plus a trace of noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_SAMPLES) / sample_rate
    f0 = rng.uniform(110.0, 440.0)
    x = sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
    return x * np.exp(-2.0 * t) + 1e-3 * rng.standard_normal(N_SAMPLES)


def _noise(seed: int, amplitude: float = 0.3) -> np.ndarray:
    return amplitude * np.random.default_rng(seed).standard_normal(N_SAMPLES)


def _pairs(sample_rate: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, reference, estimate): degraded copies of tonal and noise signals, and unrelated pairs."""
    rng = np.random.default_rng(sample_rate)
    tone, tone2, noise = _tone(sample_rate, 1), _tone(sample_rate, 2), _noise(3)
    smoothed = np.convolve(tone, np.ones(4) / 4, mode="same")                  # a crude low-pass
    return [
        ("tone+noise", tone, tone + 0.01 * rng.standard_normal(N_SAMPLES)),
        ("tone-lowpass", tone, smoothed),
        ("tone-vs-tone", tone, tone2),
        ("noise-vs-noise", noise, _noise(4)),
        ("noise-quiet", noise, 0.1 * noise + 1e-4 * rng.standard_normal(N_SAMPLES)),
    ]


# --------------------------------------------------------------------------------------------------
# Against the numpy reference
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [16000, 24000])
@pytest.mark.parametrize(("n_fft", "n_mels"), list(zip(TOOLKIT_WINDOW_LENGTHS, TOOLKIT_N_MELS, strict=True)))
def test_filterbank_matches_textbook_htk(sample_rate: int, n_fft: int, n_mels: int) -> None:
    fb = htk_mel_filterbank(n_fft // 2 + 1, 0.0, float(sample_rate // 2), n_mels, sample_rate)
    assert fb.shape == (n_fft // 2 + 1, n_mels) and fb.dtype == torch.float64
    np.testing.assert_allclose(fb.numpy(), _np_htk_filterbank(n_fft, n_mels, sample_rate), rtol=1e-10, atol=1e-12)
    assert float(fb.max()) <= 1.0 and float(fb.min()) >= 0.0      # peak-1 triangles, no area norm


def test_filterbank_band_limits_and_validation() -> None:
    fb = htk_mel_filterbank(513, 300.0, 5000.0, 40, 16000)
    np.testing.assert_allclose(fb.numpy(), _np_htk_filterbank(1024, 40, 16000, 300.0, 5000.0),
                               rtol=1e-10, atol=1e-12)
    fb[:] = 0.0                                            # a copy: the cache is not corrupted
    assert float(htk_mel_filterbank(513, 300.0, 5000.0, 40, 16000).sum()) > 0
    for bad in [(1, 0.0, 8000.0, 5, 16000), (17, 0.0, 8000.0, 0, 16000), (17, 9000.0, 8000.0, 5, 16000),
                (17, 0.0, 8000.0, 5, 0)]:
        with pytest.raises(ValueError):
            htk_mel_filterbank(*bad)


@pytest.mark.parametrize("sample_rate", [16000, 24000])
def test_mel_spectrogram_matches_numpy(sample_rate: int) -> None:
    x = _tone(sample_rate, 5) + _noise(6, 0.05)
    for n_fft, n_mels in zip(TOOLKIT_WINDOW_LENGTHS, TOOLKIT_N_MELS, strict=True):
        got = toolkit_mel_spectrogram(torch.from_numpy(x), sample_rate, n_fft, n_mels).numpy()
        want = _np_mel_power(x, sample_rate, n_fft, n_mels)
        assert got.shape == want.shape == (n_mels, N_SAMPLES // (n_fft // 4) + 1)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * float(want.max()))


@pytest.mark.parametrize("sample_rate", [16000, 24000])
def test_distance_matches_numpy(sample_rate: int) -> None:
    for name, ref, est in _pairs(sample_rate):
        want = _np_distance(ref, est, sample_rate)
        got64 = toolkit_mel_distance(torch.from_numpy(ref), torch.from_numpy(est), sample_rate)
        assert got64.dtype == torch.float64 and got64.dim() == 0
        assert float(got64) == pytest.approx(want, rel=1e-4), name
        got32 = toolkit_mel_distance(torch.from_numpy(ref).float(), torch.from_numpy(est).float(), sample_rate)
        assert got32.dtype == torch.float32
        assert float(got32) == pytest.approx(want, rel=1e-4), name


def test_batch_is_mean_of_items_and_reduce_false() -> None:
    pairs = _pairs(16000)
    ref = torch.from_numpy(np.stack([p[1] for p in pairs]))
    est = torch.from_numpy(np.stack([p[2] for p in pairs]))
    per_item = toolkit_mel_distance(ref, est, 16000, reduce=False)
    assert per_item.shape == (len(pairs),)
    singles = [float(toolkit_mel_distance(r, e, 16000)) for r, e in zip(ref, est, strict=True)]
    np.testing.assert_allclose(per_item.numpy(), singles, rtol=1e-12)
    assert float(toolkit_mel_distance(ref, est, 16000)) == pytest.approx(np.mean(singles), rel=1e-12)
    assert float(toolkit_mel_distance(ref, est, 16000)) == pytest.approx(
        _np_distance(ref.numpy(), est.numpy(), 16000), rel=1e-4)
    assert toolkit_mel_distance(ref[0], est[0], 16000, reduce=False).shape == ()


# --------------------------------------------------------------------------------------------------
# Sanity relations
# --------------------------------------------------------------------------------------------------


def test_identical_is_zero_and_symmetric() -> None:
    _, ref, est = _pairs(16000)[0]
    a, b = torch.from_numpy(ref), torch.from_numpy(est)
    assert float(toolkit_mel_distance(a, a.clone(), 16000)) == 0.0
    assert float(toolkit_mel_distance(a, b, 16000)) == float(toolkit_mel_distance(b, a, 16000)) > 0.0


def test_double_gain_shifts_every_live_bin_by_ln4() -> None:
    """A 2x gain multiplies every mel power by 4: each bin above the clamp moves by exactly ln 4.
    For loud white noise every non-empty band is far above 1e-5, so the distance is ln 4 times the
    fraction of non-empty bands (the empty ones are clamped alike in both and add 0)."""
    sr = 16000
    x = torch.from_numpy(_noise(7, amplitude=0.5))
    expected = 0.0
    for n_fft, n_mels in zip(TOOLKIT_WINDOW_LENGTHS, TOOLKIT_N_MELS, strict=True):
        m1 = toolkit_mel_spectrogram(x, sr, n_fft, n_mels)
        m2 = toolkit_mel_spectrogram(2 * x, sr, n_fft, n_mels)
        live = m1 > TOOLKIT_CLAMP
        torch.testing.assert_close(torch.log(m2[live]) - torch.log(m1[live]),
                                   torch.full_like(m1[live], math.log(4.0)))
        non_empty = htk_mel_filterbank(n_fft // 2 + 1, 0.0, sr / 2, n_mels, sr).amax(dim=0) > 0
        assert bool(live.any(dim=-1).eq(non_empty).all())          # loud: live <=> non-empty band
        expected += math.log(4.0) * float(non_empty.double().mean()) / len(TOOLKIT_WINDOW_LENGTHS)
    got = float(toolkit_mel_distance(x, 2 * x, sr))
    assert got == pytest.approx(expected, rel=1e-9)
    assert 0.8 * math.log(4.0) < got < math.log(4.0) * (1 + 1e-12)


def test_gradient_flows_and_is_finite() -> None:
    _, ref, est = _pairs(16000)[1]
    estimate = torch.from_numpy(est).float().requires_grad_(True)
    toolkit_mel_distance(torch.from_numpy(ref).float(), estimate, 16000).backward()
    assert estimate.grad is not None
    assert bool(torch.isfinite(estimate.grad).all()) and float(estimate.grad.abs().sum()) > 0


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reference", "estimate", "sample_rate", "match"), [
    (torch.zeros(4000), torch.zeros(4001), 16000, "differ in shape"),
    (torch.zeros(2, 4000), torch.zeros(4000), 16000, "differ in shape"),
    (torch.zeros(4000, dtype=torch.int16), torch.zeros(4000, dtype=torch.int16), 16000, "floating-point"),
    (torch.zeros(4000), torch.zeros(4000, dtype=torch.int32), 16000, "floating-point"),
    (torch.zeros(4000, dtype=torch.complex64), torch.zeros(4000, dtype=torch.complex64), 16000,
     "floating-point"),
    (np.zeros(4000), np.zeros(4000), 16000, "torch.Tensor"),
    (torch.zeros(1, 2, 4000), torch.zeros(1, 2, 4000), 16000, r"\(T,\) or \(B, T\)"),
    (torch.zeros(1024), torch.zeros(1024), 16000, "too short"),
    (torch.zeros(4000), torch.zeros(4000), 0, "sample_rate"),
    (torch.zeros(4000), torch.zeros(4000), 16000.0, "sample_rate"),
])
def test_rejects_bad_input(reference: object, estimate: object, sample_rate: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        toolkit_mel_distance(reference, estimate, sample_rate)  # type: ignore[arg-type]


def test_spectrogram_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        toolkit_mel_spectrogram(torch.zeros(100, dtype=torch.int64), 16000, 32, 5)
    with pytest.raises(ValueError, match="too short"):
        toolkit_mel_spectrogram(torch.zeros(16), 16000, 32, 5)


# --------------------------------------------------------------------------------------------------
# The bug of issue 18 (item 2): the training loss, once reported as Mel L1, is not this one
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [16000, 24000])
def test_differs_from_the_dac_style_training_loss(sample_rate: int) -> None:
    """The training loss ``multiscale_mel_l1`` (librosa Slaney mel, area-normalised) is a different number.

    Where part of the spectrum is quiet (tones, a quiet estimate) it is several times smaller: the area
    normalisation scales each band's power down by ``2 / (f_{m+2} - f_m)``, pushing more bins under the
    1e-5 clamp in both signals. For *loud* broadband noise (both noise pairs) the two agree to ~1 %, because
    a per-band constant cancels in a log difference; only the band placement (Slaney vs HTK) differs.
    The ratios are printed (``pytest -s``) for the record."""
    rows = []
    for name, ref, est in _pairs(sample_rate):
        a, b = torch.from_numpy(ref).float(), torch.from_numpy(est).float()
        rows.append((name, float(toolkit_mel_distance(a, b, sample_rate)), float(multiscale_mel_l1(a, b, sample_rate))))
    print()
    for name, toolkit, dac in rows:
        print(f"sr={sample_rate} {name}: toolkit={toolkit:.4f} dac={dac:.4f} "
              f"toolkit/dac={toolkit / dac:.3f}")
    for name, toolkit, dac in rows:
        assert toolkit != dac, name
        if name.startswith("tone"):                        # quiet spectral regions: the clamp bites
            assert toolkit / dac > 1.15, (name, toolkit, dac)
