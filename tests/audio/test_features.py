"""LogMel agrees with librosa, has the documented frame count, batches and autocasts correctly;
stft/istft round-trip."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from duotok.audio.features import LogMel, istft, magnitude, stft
from duotok.config import stage_params

AUDIO = dict(
    sample_rate=16000,
    n_fft=1024,
    win_length=1024,
    hop_length=160,
    n_mels=128,
    f_min=0.0,
    f_max=8000.0,
    log_floor=1e-5,
)


@pytest.fixture(scope="module")
def logmel() -> LogMel:
    return LogMel(**AUDIO)


def _signal(n: int, seed: int = 0, batch: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(*batch, n, generator=g)


def test_matches_librosa(logmel):
    x = _signal(16000)
    # A quiet half exercises the log floor; a loud tone the top of the range.
    x[8000:] *= 1e-3
    x[:4000] += torch.sin(2 * torch.pi * 440 * torch.arange(4000) / 16000)
    ours = logmel(x).numpy()
    mel = librosa.feature.melspectrogram(
        y=x.numpy().astype(np.float64),
        sr=16000,
        n_fft=1024,
        hop_length=160,
        win_length=1024,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=128,
        fmin=0.0,
        fmax=8000.0,
    )
    ref = np.log(np.maximum(mel, 1e-5))
    assert ours.shape == ref.shape == (128, 101)
    assert (ref == np.log(1e-5)).any()  # the floor really was hit
    np.testing.assert_allclose(ours, ref, atol=2e-5)  # observed ~1e-6: float32 rounding only


@pytest.mark.parametrize("n", [16000, 16159, 16160, 1000])
def test_frame_count(logmel, n):
    out = logmel(_signal(n))
    assert out.shape == (128, n // 160 + 1) == (128, logmel.n_frames(n))
    assert out.dtype == torch.float32


def test_batched_equals_per_item(logmel):
    x = _signal(8000, batch=(2, 3))
    batched = logmel(x)
    assert batched.shape == (2, 3, 128, 51)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[i, j], logmel(x[i, j]), atol=1e-5, rtol=0)


def test_autocast_bfloat16_keeps_float32_precision(logmel):
    x = _signal(8000)
    reference = logmel(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = logmel(x)
        out_bf16_input = logmel(x.to(torch.bfloat16))
    assert out.dtype == torch.float32 and out_bf16_input.dtype == torch.float32
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
    assert torch.isfinite(out_bf16_input).all()


def test_from_params_and_buffers_not_persistent():
    params = stage_params("audio", profile="default")
    module = LogMel.from_params(params)
    assert (module.sample_rate, module.hop_length, module.n_mels) == (
        params["sample_rate"],
        params["hop_length"],
        params["n_mels"],
    )
    assert module.mel_basis.shape == (params["n_mels"], params["n_fft"] // 2 + 1)
    # Filterbank and window are rebuilt from the config, never stored in checkpoints.
    assert module.state_dict() == {}


def test_stft_istft_roundtrip():
    x = _signal(8000, batch=(2,))
    spec = stft(x, n_fft=1024, hop_length=160, win_length=1024)
    assert spec.shape == (2, 513, 51) and spec.is_complex()
    y = istft(spec, n_fft=1024, hop_length=160, win_length=1024, length=8000)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-4, rtol=0)


def test_stft_rejects_too_short_signal():
    with pytest.raises(ValueError, match="too short"):
        stft(torch.zeros(512), n_fft=1024, hop_length=160, win_length=1024)


def test_magnitude_equals_complex_abs_and_keeps_abs_gradient_where_one_flows():
    spec = stft(_signal(4000, batch=(2, 3)), 256, 64, 256)
    torch.testing.assert_close(magnitude(spec), spec.abs(), rtol=1e-6, atol=1e-7)
    assert magnitude(spec).dtype == torch.float32 and not magnitude(spec).is_complex()
    # hypot's gradient at 0 + 0j is NaN; a spectrum that carries a gradient takes abs (gradient 0 there)
    z = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    magnitude(z * 1).sum().backward()
    assert torch.equal(z.grad, torch.zeros_like(z.grad))
    with pytest.raises(ValueError, match="complex"):
        magnitude(spec.abs())
