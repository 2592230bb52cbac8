"""The evaluation toolkit's Mel distance ("Mel L1"), reimplemented exactly with torch alone.

What the toolkit computes
-------------------------
Codec-Evaluation (``wuzhiyue111/Codec-Evaluation``, file
``codec_evaluation/reconstruction_eval/utils.py``, function ``calculate_mel_distance``; read at
commit ``76e264e4eb952a95409a0da020320f7ba646107b``) does, for ``gt_audio, rec_audio`` of shape
``(B, T)``::

    window_lengths = [32, 64, 128, 256, 512, 1024, 2048]      # "Reference dac"
    num_mels = [5, 10, 20, 40, 80, 160, 320]
    mel_transforms = [torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels) ...]
    for b in range(B):                                        # each item on its own, as (1, T)
        for mel_spec in mel_transforms:
            gt_db = torch.log(torch.clamp(mel_spec(gt_wav), min=1e-5))
            rec_db = torch.log(torch.clamp(mel_spec(rec_wav), min=1e-5))
            total_l1 += torch.mean(torch.abs(gt_db - rec_db))
        msd_list.append((total_l1 / num_scales).item())
    return sum(msd_list) / len(msd_list)

Every other setting is a ``torchaudio.transforms.MelSpectrogram`` default (``pytorch/audio``,
``src/torchaudio/transforms/_transforms.py``: ``MelSpectrogram.__init__``, ``Spectrogram.__init__``,
``MelScale.__init__``; ``src/torchaudio/functional/functional.py``: ``spectrogram``,
``melscale_fbanks``, ``_create_triangular_filterbank``, ``_hz_to_mel``/``_mel_to_hz``):

* ``win_length = n_fft`` (``win_length if win_length is not None else n_fft``), window
  ``torch.hann_window(win_length)`` — the *periodic* Hann window (torch's default).
* ``hop_length = n_fft // 4`` (given explicitly by the toolkit; torchaudio's own default would be
  ``win_length // 2``).
* ``torch.stft(center=True, pad_mode="reflect", normalized=False, onesided=True)``, ``pad=0``.
* ``power=2.0``: ``|STFT|**2`` (a power spectrogram, not a magnitude one).
* ``f_min=0.0``, ``f_max=None`` → ``float(sample_rate // 2)`` (``MelScale``).
* ``norm=None`` (no Slaney area normalisation), ``mel_scale="htk"``:
  ``mel = 2595 * log10(1 + f / 700)``; ``n_mels + 2`` points equally spaced in mel between
  ``f_min`` and ``f_max``, mapped back to Hz; FFT bin ``k`` sits at
  ``linspace(0, sample_rate // 2, n_fft // 2 + 1)[k]``; filter ``m`` is the triangle
  ``max(0, min((f - f_m) / (f_{m+1} - f_m), (f_{m+2} - f) / (f_{m+2} - f_{m+1})))`` with peak 1.
  A triangle that contains no FFT bin (an "empty filter"; torchaudio warns) is 0 in both
  signals, clamps to ``1e-5``, contributes 0 and still counts in the mean. (At 16 kHz none of the
  seven scales has one.)
* Then ``ln`` (``torch.log``, natural log — not DAC's ``log10``) of the mel *power* clamped at
  ``1e-5``; the L1 is the plain mean absolute difference over ``(n_mels, frames)``; the scales are
  averaged with equal weight (``total_l1 / num_scales``); items are averaged with equal weight.

How it differs from DAC's ``MelSpectrogramLoss`` (``descriptinc/descript-audio-codec``,
``dac/nn/loss.py``), which the toolkit cites as its source of the seven scales: DAC takes
``log10`` of ``clamp(mel_magnitude, 1e-5) ** 2`` and adds a ``mag_weight`` × L1 of the raw mel
magnitudes, on audiotools' Slaney mel; the toolkit uses none of that — only the window lengths and
band counts.

How it differs from the DAC-style training loss (:func:`duotok.losses.multiscale_mel_l1`, which
:mod:`duotok.eval.reconstruction` reported as Mel L1 until issue 18 and which the waveform models
still train on): that one uses librosa's *Slaney* mel scale with *area normalisation*
(``norm="slaney"``), which scales each band's weights by ``2 / (f_{m+2} - f_m)`` (≪ 1 at these band
widths), so far more bins fall under the ``1e-5`` clamp in both signals and the distance comes out
1.4–4.4× smaller than the toolkit's (issue 18, item 2; ``tests/eval/test_mel_distance.py`` measures
1.2–5.2× on tonal test pairs). On *loud* broadband noise the two agree to ~1 %: a per-band gain
cancels in a log difference, so the gap is the clamp (plus the Slaney-vs-HTK band placement), i.e.
it grows as the signal gets quieter or sparser. Since issue 18 the reported ``mel_l1``
(:func:`duotok.eval.reconstruction.reconstruction_metrics`) is :func:`toolkit_mel_distance`, the
definition of the published baselines' Mel L1 (:mod:`duotok.eval.published`); the training loss keeps
its own name and code.

This module is torch-only (``torch.stft`` plus the HTK filterbank written out below): torchaudio is
deliberately not a dependency.
"""
from __future__ import annotations

import functools
import math

import torch

__all__ = [
    "TOOLKIT_CLAMP",
    "TOOLKIT_N_MELS",
    "TOOLKIT_WINDOW_LENGTHS",
    "htk_mel_filterbank",
    "toolkit_mel_distance",
    "toolkit_mel_spectrogram",
]

#: The toolkit's seven scales (``window_lengths`` / ``num_mels`` in ``calculate_mel_distance``).
TOOLKIT_WINDOW_LENGTHS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
TOOLKIT_N_MELS: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
#: Floor on the mel power before the natural log (``torch.clamp(mel, min=1e-5)``).
TOOLKIT_CLAMP = 1e-5


def _hz_to_mel_htk(freq: float) -> float:
    """HTK mel scale (torchaudio ``_hz_to_mel(..., mel_scale="htk")``)."""
    return 2595.0 * math.log10(1.0 + freq / 700.0)


def _mel_to_hz_htk(mels: torch.Tensor) -> torch.Tensor:
    """Inverse HTK mel scale (torchaudio ``_mel_to_hz(..., mel_scale="htk")``)."""
    return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)


@functools.lru_cache(maxsize=64)
def _cached_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int,
                       sample_rate: int) -> torch.Tensor:
    """float64 CPU filterbank; callers get a converted copy, never this cached tensor itself."""
    # FFT bin centres: torchaudio's ``torch.linspace(0, sample_rate // 2, n_freqs)`` — note the
    # integer ``sample_rate // 2`` (it only matters for odd sample rates; kept for exactness).
    all_freqs = torch.linspace(0.0, float(sample_rate // 2), n_freqs, dtype=torch.float64)
    m_pts = torch.linspace(_hz_to_mel_htk(f_min), _hz_to_mel_htk(f_max), n_mels + 2, dtype=torch.float64)
    f_pts = _mel_to_hz_htk(m_pts)
    # Triangles between adjacent mel points, peak 1, no area normalisation (norm=None).
    f_diff = f_pts[1:] - f_pts[:-1]                              # (n_mels + 1,)
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)         # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]                         # rising edge: (f - f_m) / (f_{m+1} - f_m)
    up = slopes[:, 2:] / f_diff[1:]                              # falling edge: (f_{m+2} - f) / (...)
    return torch.clamp(torch.minimum(down, up), min=0.0)


def htk_mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int,
                       sample_rate: int) -> torch.Tensor:
    """``(n_freqs, n_mels)`` float64 HTK triangular mel filterbank, torchaudio's
    ``melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk")``.

    Same formula as torchaudio (see the module docstring), evaluated in float64 rather than
    torchaudio's float32, so it equals torchaudio's to float32 rounding. Empty filters (bands that
    fall between two FFT bins) are kept, as torchaudio keeps them: they are part of the toolkit's
    mean. The returned tensor is a fresh copy, safe to modify."""
    if n_freqs < 2 or n_mels < 1:
        raise ValueError(f"need n_freqs >= 2 and n_mels >= 1, got n_freqs={n_freqs}, n_mels={n_mels}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not 0.0 <= f_min <= f_max:
        raise ValueError(f"need 0 <= f_min <= f_max, got f_min={f_min}, f_max={f_max}")
    return _cached_filterbank(int(n_freqs), float(f_min), float(f_max), int(n_mels), int(sample_rate)).clone()


def _check_signal(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point tensor, got dtype {x.dtype}")
    if x.dim() not in (1, 2):
        raise ValueError(f"{name} must be (T,) or (B, T), got shape {tuple(x.shape)}")
    return x


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (the tests' exact reference); float16/bfloat16/float32 run in float32,
    the precision the toolkit itself computes in (torchaudio on float32 audio)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def toolkit_mel_spectrogram(x: torch.Tensor, sample_rate: int, win_length: int, n_mels: int) -> torch.Tensor:
    """Mel *power* spectrogram ``(..., n_mels, frames)`` of ``(..., T)`` audio at one scale, exactly
    ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=win_length, hop_length=win_length // 4,
    n_mels=n_mels)(x)``:

    * ``n_fft = win_length`` and a periodic Hann window of that length — torchaudio's defaults when
      only ``n_fft`` is given; the window spans the whole FFT, no zero padding inside a frame.
    * ``hop = win_length // 4`` — what the toolkit passes (75 % overlap, as in DAC).
    * ``center=True`` with reflect padding of ``win_length // 2`` on each side, so there are
      ``T // hop + 1`` frames and frame ``t`` is centred on sample ``t * hop``; no STFT
      normalisation.
    * power 2 (``|X|**2``, computed as ``re**2 + im**2``, which avoids ``abs``'s ill-defined
      gradient at 0 and equals ``abs().pow(2)`` to rounding).
    * HTK mel filterbank from 0 Hz to ``sample_rate // 2`` with ``norm=None``
      (:func:`htk_mel_filterbank`).

    No log and no clamp here: see :func:`toolkit_mel_distance`. Differentiable; autocast is
    disabled (float16 STFTs are not accurate enough for a metric)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("x must be a real floating-point torch.Tensor")
    if x.dim() < 1:
        raise ValueError("x must have a time axis: (..., T)")
    if win_length < 2:
        raise ValueError(f"win_length must be >= 2, got {win_length}")
    if x.shape[-1] <= win_length // 2:
        raise ValueError(f"a signal of {x.shape[-1]} samples is too short for a centred, reflect-padded "
                         f"{win_length}-sample window (needs more than {win_length // 2})")
    dtype = _compute_dtype(x)
    with torch.autocast(device_type=x.device.type, enabled=False):
        lead = x.shape[:-1]
        flat = x.to(dtype).reshape(-1, x.shape[-1])
        window = torch.hann_window(win_length, periodic=True, dtype=dtype, device=x.device)
        spec = torch.stft(flat, n_fft=win_length, hop_length=win_length // 4, win_length=win_length,
                          window=window, center=True, pad_mode="reflect", normalized=False,
                          onesided=True, return_complex=True)            # (N, n_fft // 2 + 1, frames)
        power = spec.real.square() + spec.imag.square()
        fb = htk_mel_filterbank(win_length // 2 + 1, 0.0, float(sample_rate // 2), n_mels, sample_rate)
        fb = fb.to(device=x.device, dtype=dtype)
        # torchaudio's MelScale: (..., time, freq) @ (freq, n_mels) -> (..., n_mels, time)
        mel = torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)
        return mel.reshape(*lead, n_mels, mel.shape[-1])


def toolkit_mel_distance(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int, *,
                         reduce: bool = True) -> torch.Tensor:
    """Codec-Evaluation's ``calculate_mel_distance`` (lower is better) as a differentiable torch scalar.

    ``reference`` and ``estimate`` are ``(T,)`` or ``(B, T)`` float tensors of the same shape, at
    ``sample_rate``. For each item and each of the seven scales (:data:`TOOLKIT_WINDOW_LENGTHS`,
    :data:`TOOLKIT_N_MELS`): the mean over ``(n_mels, frames)`` of
    ``|ln(max(M_ref, 1e-5)) - ln(max(M_est, 1e-5))|``, with ``M`` the mel power of
    :func:`toolkit_mel_spectrogram`. Why each step is what it is:

    * natural log and clamp ``1e-5`` on the *power* — the toolkit's ``torch.log(torch.clamp(mel,
      min=1e-5))``; the clamp makes bins that are (near-)silent in both signals count as equal;
    * equal-weight mean over the seven scales (``total_l1 / num_scales``), then an equal-weight mean
      over items (``sum(msd_list) / len(msd_list)``) — the toolkit scores each item on its own;
    * symmetric in its arguments (an absolute difference), so the order only matters for gradients.

    With ``reduce=False`` it returns the per-item values, shape ``()`` for ``(T,)`` input and ``(B,)``
    for ``(B, T)`` input, the numbers a report aggregates. Mismatched shapes/devices, non-float or
    non-tensor input, a bad ``sample_rate`` and signals too short for the 2048-sample window
    (``T <= 1024``) raise ``ValueError``."""
    reference = _check_signal("reference", reference)
    estimate = _check_signal("estimate", estimate)
    if reference.shape != estimate.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} "
                         "differ in shape")
    if reference.device != estimate.device:
        raise ValueError(f"reference is on {reference.device} but estimate is on {estimate.device}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int, got {sample_rate!r}")
    if reference.shape[-1] <= max(TOOLKIT_WINDOW_LENGTHS) // 2:
        raise ValueError(f"signals of {reference.shape[-1]} samples are too short: the "
                         f"{max(TOOLKIT_WINDOW_LENGTHS)}-sample scale needs more than "
                         f"{max(TOOLKIT_WINDOW_LENGTHS) // 2}")
    dtype = torch.promote_types(_compute_dtype(reference), _compute_dtype(estimate))
    reference, estimate = reference.to(dtype), estimate.to(dtype)
    with torch.autocast(device_type=reference.device.type, enabled=False):
        per_scale = []
        for win, mels in zip(TOOLKIT_WINDOW_LENGTHS, TOOLKIT_N_MELS, strict=True):
            ref = torch.log(torch.clamp(toolkit_mel_spectrogram(reference, sample_rate, win, mels),
                                        min=TOOLKIT_CLAMP))
            est = torch.log(torch.clamp(toolkit_mel_spectrogram(estimate, sample_rate, win, mels),
                                        min=TOOLKIT_CLAMP))
            per_scale.append((ref - est).abs().mean(dim=(-2, -1)))      # () or (B,)
        per_item = torch.stack(per_scale).mean(dim=0)
        return per_item.mean() if reduce else per_item
