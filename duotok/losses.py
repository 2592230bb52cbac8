"""The spectral training losses every waveform model here shares (the stage-4 autoencoder, the RVQ
codec baseline): a multi-scale log-mel L1 and a multi-resolution STFT loss, all in float32.

Why one module: both models train on the same objective, and a loss that lives in ``eval/`` or in one
model file makes the other import upward or copy it. The multi-scale mel distance here is a
DAC-style *training* loss (librosa's Slaney filterbank, area-normalised); it is **not** the Mel L1
that :mod:`duotok.eval.reconstruction` reports, which is the evaluation toolkit's definition
(:func:`duotok.eval.mel_distance.toolkit_mel_distance`: HTK scale, no normalisation, ln of the
power clamped at 1e-5), 1.5-2.6x larger on the same signals (issue 18).

The mel and magnitude losses are blind to phase: a signal with exactly the reference's STFT magnitudes
and random phases scores ~0 on both, yet sounds rough and scores PESQ ~1.5 (issue 18). The phase-aware
terms below (all off by default, so the original recipe is reproduced exactly) are what lets a model
that predicts its own phase learn it:

* :func:`multiresolution_complex_loss` — L1 between power-law compressed complex spectra;
* :func:`phase_losses` — APNet's anti-wrapping instantaneous-phase / group-delay / instantaneous-
  angular-frequency errors, weighted by the reference magnitude;
* :func:`waveform_l1` — the plain sample-domain L1.

:func:`spectral_reconstruction_loss` combines them with one STFT per resolution shared by every term.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch

from duotok.audio.features import mel_filterbank, stft

LOG_EPS = 1e-5

#: The toolkit's (DAC's) seven scales: window length in samples and number of mel bands.
MEL_WINDOW_LENGTHS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
MEL_N_MELS: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
MEL_CLAMP = 1e-5


@functools.lru_cache(maxsize=64)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Slaney mel filterbank up to Nyquist. At the smallest windows some bands get no FFT bin
    ("empty filters", as in DAC); those bands are 0 in both signals and contribute 0 distance."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Empty filters detected")
        return torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels, 0.0, sample_rate / 2))


def log_mel_power(audio: torch.Tensor, sample_rate: int, window_length: int, n_mels: int,
                  clamp: float = MEL_CLAMP) -> torch.Tensor:
    """``(..., T)`` → ``(..., n_mels, frames)`` natural-log mel power at one scale (float32)."""
    spec = stft(audio, window_length, window_length // 4, window_length)
    with torch.autocast(device_type=audio.device.type, enabled=False):
        power = spec.real.square() + spec.imag.square()
        basis = _mel_basis(int(sample_rate), int(window_length), int(n_mels)).to(audio.device)
        return torch.log(torch.clamp(torch.matmul(basis, power), min=clamp))


def multiscale_mel_l1(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                      window_lengths: tuple[int, ...] = MEL_WINDOW_LENGTHS,
                      n_mels: tuple[int, ...] = MEL_N_MELS, clamp: float = MEL_CLAMP,
                      reduce: bool = True) -> torch.Tensor:
    """Multi-scale log-mel L1 between ``(..., T)`` signals.

    Returns a scalar (mean over everything) with ``reduce=True``, else one value per leading index
    ``(...)`` — the per-item numbers the reports aggregate. Differentiable in ``estimate``."""
    if reference.shape != estimate.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} differ in shape")
    if len(window_lengths) != len(n_mels) or not window_lengths:
        raise ValueError("window_lengths and n_mels must be non-empty and of equal length")
    if reference.shape[-1] <= max(window_lengths) // 2:
        raise ValueError(f"signals of {reference.shape[-1]} samples are too short for a {max(window_lengths)}-sample "
                         "window")
    per_scale = []
    for win, mels in zip(window_lengths, n_mels, strict=True):
        ref = log_mel_power(reference, sample_rate, win, mels, clamp)
        est = log_mel_power(estimate, sample_rate, win, mels, clamp)
        per_scale.append((ref - est).abs().mean(dim=(-2, -1)))
    distance = torch.stack(per_scale).mean(dim=0)
    return distance.mean() if reduce else distance


#: Power-law exponent ``c`` of the compressed spectra ``|S|^c · e^{iφ}`` (MP-SENet's value).
COMPLEX_COMPRESSION = 0.3
#: Power floor inside the compression: below ``|S| = 1e-4`` the factor ``|S|^{c-1}`` (and its gradient)
#: stops growing. A full-scale sine gives ``|S| ≈ window / 4`` (64 … 512 here), so this is ≥ 115 dB down.
COMPRESSION_POWER_FLOOR = 1e-8
#: The estimate's phase gradient ``1 / |Ŝ|`` is floored at this fraction of the reference's RMS bin
#: magnitude (60 dB down), so a bin the estimate has (nearly) silenced cannot blow the gradient up.
PHASE_GRAD_FLOOR = 1e-3
#: Power floor of ``|S|`` (sqrt of a floored power: ``|S|`` has an infinite gradient at exactly 0).
MAGNITUDE_POWER_FLOOR = 1e-12


def _spectrum(audio: torch.Tensor, window: int) -> torch.Tensor:
    """Complex64 STFT at one loss resolution: Hann window, hop = window / 4, centred (reflect)."""
    return stft(audio, window, window // 4, window)


def _power(spec: torch.Tensor) -> torch.Tensor:
    return spec.real.square() + spec.imag.square()


def _magnitude_of(spec: torch.Tensor) -> torch.Tensor:
    # sqrt of a floored power: |S| has an infinite gradient at exactly 0 (e.g. masked padding).
    return torch.sqrt(_power(spec).clamp_min(MAGNITUDE_POWER_FLOOR))


def _magnitude_terms(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Spectral convergence + log-magnitude L1 of two magnitude spectrograms at one resolution."""
    convergence = torch.linalg.vector_norm(ref - est) / torch.linalg.vector_norm(ref).clamp_min(1e-7)
    log_l1 = (torch.log(ref + LOG_EPS) - torch.log(est + LOG_EPS)).abs().mean()
    return convergence + log_l1


def multiresolution_stft_loss(reference: torch.Tensor, estimate: torch.Tensor,
                              windows: tuple[int, ...]) -> torch.Tensor:
    """Mean over ``windows`` (Hann, hop = window / 4) of spectral convergence ``‖|S| − |Ŝ|‖_F / ‖|S|‖_F``
    (over the whole batch, so one silent item cannot divide by zero) plus the mean absolute difference of
    ``log(|S| + 1e-5)``. Float32 throughout. Magnitude only: blind to phase."""
    return _multiresolution_terms(reference, estimate, windows, ("stft",))["stft"]


#: The per-resolution terms :func:`_multiresolution_terms` can compute from one pair of spectrograms.
RESOLUTION_TERMS = ("stft", "complex", "phase")


def _multiresolution_terms(reference: torch.Tensor, estimate: torch.Tensor, windows: tuple[int, ...],
                           wanted: tuple[str, ...], compression: float = COMPLEX_COMPRESSION,
                           ) -> dict[str, torch.Tensor]:
    """The ``wanted`` terms (of :data:`RESOLUTION_TERMS`), each a mean over ``windows``, from **one** STFT
    of each signal per window: ``stft`` (spectral convergence + log-magnitude L1), ``complex``
    (compressed complex L1) and, for ``phase``, ``ip`` / ``gd`` / ``iaf``. Autocast off, float32 — the
    one loop behind :func:`multiresolution_stft_loss`, :func:`multiresolution_complex_loss`,
    :func:`phase_losses` and :func:`spectral_reconstruction_loss`."""
    unknown = set(wanted) - set(RESOLUTION_TERMS)
    if unknown:
        raise ValueError(f"unknown resolution terms {sorted(unknown)}; known: {RESOLUTION_TERMS}")
    names = [n for n in ("stft", "complex") if n in wanted] + (["ip", "gd", "iaf"] if "phase" in wanted else [])
    with torch.autocast(device_type=reference.device.type, enabled=False):
        reference, estimate = reference.float(), estimate.float()
        totals = {name: reference.new_zeros(()) for name in names}
        for win in windows:
            ref_spec, est_spec = _spectrum(reference, win), _spectrum(estimate, win)
            if "stft" in totals:
                totals["stft"] = totals["stft"] + _magnitude_terms(_magnitude_of(ref_spec), _magnitude_of(est_spec))
            if "complex" in totals:
                totals["complex"] = totals["complex"] + _complex_term(ref_spec, est_spec, compression)
            if "phase" in wanted:
                for name, term in zip(("ip", "gd", "iaf"), _phase_terms(ref_spec, est_spec, compression), strict=True):
                    totals[name] = totals[name] + term
        return {name: total / len(windows) for name, total in totals.items()}


# --------------------------------------------------------------------------- phase-aware losses


def compress_spectrum(spec: torch.Tensor, compression: float = COMPLEX_COMPRESSION) -> torch.Tensor:
    """``|S|^c · e^{iφ}`` of a complex spectrogram, i.e. ``S · |S|^{c−1}`` with the power floored at
    :data:`COMPRESSION_POWER_FLOOR` (a bin at exactly 0 stays 0, with a bounded gradient)."""
    scale = _power(spec).clamp_min(COMPRESSION_POWER_FLOOR).pow((compression - 1.0) / 2.0)
    return torch.complex(spec.real * scale, spec.imag * scale)


def stft_magnitude_distance(ref_spec: torch.Tensor, est_spec: torch.Tensor) -> torch.Tensor:
    """:func:`multiresolution_stft_loss` at one resolution, from two complex spectrograms: spectral
    convergence + log-magnitude L1. Depends on ``|S|`` only."""
    with torch.autocast(device_type=ref_spec.device.type, enabled=False):
        return _magnitude_terms(_magnitude_of(ref_spec), _magnitude_of(est_spec))


def complex_spectrum_distance(ref_spec: torch.Tensor, est_spec: torch.Tensor,
                              compression: float = COMPLEX_COMPRESSION) -> torch.Tensor:
    """:func:`multiresolution_complex_loss` at one resolution, from two complex spectrograms."""
    with torch.autocast(device_type=ref_spec.device.type, enabled=False):
        return _complex_term(ref_spec, est_spec, compression)


def _complex_term(ref_spec: torch.Tensor, est_spec: torch.Tensor, compression: float) -> torch.Tensor:
    ref, est = compress_spectrum(ref_spec, compression), compress_spectrum(est_spec, compression)
    # Complex abs: its gradient at exactly 0 is 0 (torch.sgn), so identical bins are safe.
    return (est - ref).abs().sum() / ref.abs().sum().clamp_min(1e-7)


def multiresolution_complex_loss(reference: torch.Tensor, estimate: torch.Tensor, windows: tuple[int, ...],
                                 compression: float = COMPLEX_COMPRESSION) -> torch.Tensor:
    """Relative L1 distance between power-law compressed complex spectra, mean over ``windows``:
    ``Σ |C(Ŝ) − C(S)| / Σ |C(S)|`` with ``C(S) = |S|^c · e^{iφ}`` (``c`` = ``compression``), summed over
    the whole batch like the spectral convergence (a silent item cannot divide by zero).

    Why this form:

    * **Complex, so phase counts.** ``|C(Ŝ) − C(S)| = |S|^c · |1 − e^{iΔφ}|`` for exact magnitudes: 0 when
      the phase is right, ``4/π ≈ 1.27`` (relative) for random phase, 1.0 for silence. Magnitude losses
      give random phase ~0.
    * **Compressed, not raw real/imaginary parts.** A raw complex L1 is dominated by the few loudest
      bins — in music the bass and kick, 40–60 dB above a vocal's upper harmonics — so the phase of most
      audible bins would not count. A log cannot be taken of a complex value; the power law with
      ``c ≈ 0.3`` is the usual middle ground: MP-SENet (Lu et al. 2023, ``yxlu-0102/MP-SENet``,
      ``train.py``: ``mag_pha_stft(..., h.compress_factor)`` and ``loss_com = mse(clean_com, com_g) * 2``
      on the compressed spectra, beside an anti-wrapping phase loss and a time-domain L1), and Braun &
      Tashev 2021 for speech enhancement. For contrast, ``auraloss``'s STFT losses
      (``csteinmetz1/auraloss``, ``freq.py``: spectral convergence + log magnitude, Yamamoto et al.) are
      magnitude-only, like :func:`multiresolution_stft_loss` here.
    * **Euclidean complex distance** ``|C(Ŝ) − C(S)|`` per bin rather than separate L1s of the real and
      imaginary parts: it does not depend on the arbitrary orientation of the complex plane, and an L1
      (not L2, as MP-SENet) so that bins with large errors (early training, transients) do not dominate.
    * **Relative** (divided by ``Σ|C(S)|``) so its scale does not depend on the level of the batch and the
      weight in the objective means the same for quiet vocals and loud mixtures.

    Float32 throughout, differentiable in ``estimate``."""
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1], got {compression}")
    return _multiresolution_terms(reference, estimate, windows, ("complex",), compression)["complex"]


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """``|x − 2π · round(x / 2π)|``: the distance of an angle difference to the nearest multiple of 2π,
    in ``[0, π]`` (the anti-wrapping function of Ai & Ling's NSPP / APNet phase losses)."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def _safe_angle(spec: torch.Tensor, floor: torch.Tensor | float) -> torch.Tensor:
    """``angle(spec)`` whose backward uses ``|spec|² ≥ floor²``: the forward value is exact, the gradient
    is ``atan2``'s ``(−Im, Re) / max(|S|², floor²)``, so a near-zero bin cannot make it explode."""
    value = torch.angle(spec.detach())
    if not spec.requires_grad:
        return value
    fixed = spec.detach()
    power = _power(fixed).clamp_min(torch.as_tensor(floor, dtype=fixed.real.dtype).square())
    # Value 0 (up to rounding, removed below), gradient (−Im, Re) / power w.r.t. (Re, Im) of ``spec``.
    linear = (fixed.real * spec.imag - fixed.imag * spec.real) / power
    return value + (linear - linear.detach())


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)


def _phase_terms(ref_spec: torch.Tensor, est_spec: torch.Tensor, compression: float,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(instantaneous phase, group delay, instantaneous angular frequency) errors at one resolution."""
    ref_spec = ref_spec.detach()
    floor = PHASE_GRAD_FLOOR * torch.sqrt(_power(ref_spec).mean()).clamp_min(1e-12)
    ref_phase = torch.angle(ref_spec)
    est_phase = _safe_angle(est_spec, floor)
    weight = _power(ref_spec).pow(compression / 2.0)        # |S|^c of the reference: silent bins count 0
    ip = _weighted_mean(anti_wrap(ref_phase - est_phase), weight)
    # Group delay: the phase difference between neighbouring bins (frequency axis, dim -2); a pair counts
    # by the geometric mean of its two bins' weights (both must carry energy for the difference to mean
    # something). Instantaneous angular frequency: the same along time (dim -1).
    gd = _weighted_mean(anti_wrap(ref_phase.diff(dim=-2) - est_phase.diff(dim=-2)),
                        torch.sqrt(weight[..., 1:, :] * weight[..., :-1, :]))
    iaf = _weighted_mean(anti_wrap(ref_phase.diff(dim=-1) - est_phase.diff(dim=-1)),
                         torch.sqrt(weight[..., 1:] * weight[..., :-1]))
    return ip, gd, iaf


def phase_spectrum_distances(ref_spec: torch.Tensor, est_spec: torch.Tensor,
                             compression: float = COMPLEX_COMPRESSION) -> dict[str, torch.Tensor]:
    """:func:`phase_losses` at one resolution, from two complex ``(..., freq, frames)`` spectrograms."""
    with torch.autocast(device_type=ref_spec.device.type, enabled=False):
        return dict(zip(("ip", "gd", "iaf"), _phase_terms(ref_spec, est_spec, compression), strict=True))


def phase_losses(reference: torch.Tensor, estimate: torch.Tensor, windows: tuple[int, ...],
                 compression: float = COMPLEX_COMPRESSION) -> dict[str, torch.Tensor]:
    """APNet-style anti-wrapping phase losses, each a mean over ``windows``:

    * ``ip``  — instantaneous phase error ``aw(φ − φ̂)``;
    * ``gd``  — group delay error ``aw(Δ_f φ − Δ_f φ̂)`` (phase difference between adjacent bins);
    * ``iaf`` — instantaneous angular frequency error ``aw(Δ_t φ − Δ_t φ̂)`` (between adjacent frames),

    with ``aw`` = :func:`anti_wrap`, so an error of ``2π + ε`` costs ``ε``. Each is in ``[0, π]``: 0 for
    the exact phase, ``π/2`` on average for random phase.

    Why these three (Ai & Ling, "Neural speech phase prediction based on parallel estimation architecture
    and anti-wrapping losses", 2023, ``YangAi520/NSPP``; APNet, Ai & Ling 2023, ``YangAi520/APNet``;
    MP-SENet uses the same): the instantaneous phase alone is nearly white noise across bins and frames,
    while its derivatives carry the structure an ear hears — group delay the timing of transients within a
    frame (smearing = pre-echo), the instantaneous frequency whether a partial is continued coherently from
    frame to frame (roughness/"phasiness", which is what random or frame-wise inconsistent phase sounds like).

    Changed from the published form: the published means count every bin alike; here each bin is
    **weighted by the reference's compressed magnitude** ``|S|^c`` (a pair of bins by the geometric mean
    of the two), so the phase of silent or noise-floor bins — undefined, and inaudible — does not count;
    with ``c`` = the complex loss's exponent, ``ip`` is the small-error limit of
    :func:`multiresolution_complex_loss` per unit magnitude. The weighted mean runs over the whole batch.
    The estimate's phase has a floored gradient (:data:`PHASE_GRAD_FLOOR`). Float32, differentiable."""
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1], got {compression}")
    return _multiresolution_terms(reference, estimate, windows, ("phase",), compression)


def waveform_l1(reference: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Mean absolute sample difference (float32). The most direct phase-sensitive term, and the one
    HiFi-GAN-style vocoders drop as too strict (it asks for the exact waveform, which a slight phase
    offset of a high partial already misses); useful as a small weight beside the spectral terms (APNet
    and MP-SENet keep one)."""
    with torch.autocast(device_type=reference.device.type, enabled=False):
        return (reference.float() - estimate.float()).abs().mean()


# --------------------------------------------------------------------------- the combined objective


def spectral_reconstruction_loss(reference: torch.Tensor, estimate: torch.Tensor, sample_rate: int,
                                 stft_windows: tuple[int, ...], mel_weight: float, stft_weight: float,
                                 complex_weight: float = 0.0, phase_weight: float = 0.0, wave_weight: float = 0.0,
                                 compression: float = COMPLEX_COMPRESSION,
                                 phase_terms: tuple[str, ...] = ("ip", "gd", "iaf"),
                                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reconstruction objective, autocast off, float32:

    ``mel_weight · mel L1 + stft_weight · multi-resolution STFT + complex_weight · compressed complex L1
    + phase_weight · (sum of the phase_terms among ip, gd, iaf) + wave_weight · waveform L1``.

    Returns the weighted sum and the terms for the logs: ``mel_l1`` and ``stft`` always; ``complex``,
    ``phase`` (the weighted sum of ``phase_terms``) with all three ``phase_ip`` / ``phase_gd`` /
    ``phase_iaf``, and ``wave`` only when their weight is > 0 (a term that is off costs nothing, and the
    default reproduces the magnitude-only objective exactly). The STFTs at ``stft_windows`` are computed
    once and shared by the STFT, complex and phase terms.

    Only ``gd`` and ``iaf`` can be learned by a decoder whose latent carries no absolute phase (the
    magnitude-only encoder): for it ``ip`` and the complex term cannot go below their random-phase values,
    and the complex term then rewards shrinking the magnitude where the phase is unknown."""
    with torch.autocast(device_type=reference.device.type, enabled=False):
        reference, estimate = reference.float(), estimate.float()
        mel = multiscale_mel_l1(reference, estimate, sample_rate)
        use_complex, use_phase = complex_weight > 0, phase_weight > 0
        wanted = ("stft",) + (("complex",) if use_complex else ()) + (("phase",) if use_phase else ())
        parts = _multiresolution_terms(reference, estimate, stft_windows, wanted, compression)
        terms: dict[str, torch.Tensor] = {"mel_l1": mel, "stft": parts["stft"]}
        loss = mel_weight * mel + stft_weight * parts["stft"]
        if use_complex:
            terms["complex"] = parts["complex"]
            loss = loss + complex_weight * terms["complex"]
        if use_phase:
            phases = ("ip", "gd", "iaf")
            unknown = set(phase_terms) - set(phases)
            if unknown or not phase_terms:
                raise ValueError(f"phase_terms must name some of {phases}, got {phase_terms!r}")
            terms["phase"] = sum((parts[name] for name in phase_terms), reference.new_zeros(()))
            terms.update({f"phase_{name}": parts[name] for name in phases})
            loss = loss + phase_weight * terms["phase"]
        if wave_weight > 0:
            terms["wave"] = waveform_l1(reference, estimate)
            loss = loss + wave_weight * terms["wave"]
        return loss, terms
