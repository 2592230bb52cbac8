"""A continuous waveform autoencoder for 16 kHz mono audio: the project's stand-in for the paper's ear-VAE.

    audio ─ STFT (n_fft 1024, hop 160) ─ log|S| ─ Conv1d ─ ConvNeXt ×n ─ stride-2 Conv1d ─ bottleneck ─ z (50 Hz)
    z ─ Conv1d ─ ConvNeXt (50 Hz) ─ ×2 upsample ─ ConvNeXt (100 Hz) ─ LayerNorm ─ Linear ─ exp/phase ─ iSTFT

Why these choices:

* **STFT-domain encoder, iSTFT decoder (Vocos-style).** Every convolution runs at 100 Hz or 50 Hz, never
  at the 16 kHz audio rate: a DAC/EnCodec-style stack of strided and transposed convolutions at the
  sample rate is far too slow to train on a 2-core CPU, while the decoder here predicts a log-magnitude
  and a phase per STFT bin and lets one inverse FFT do the upsampling to samples.
* **50 Hz latent** (320 samples per latent frame), the latent rate of the paper's ear-VAE, so the
  diffusion decoder that models the latent sees the same sequence lengths as in the paper.
* **A small KL weight** (VAE bottleneck): not for sampling from the prior, only to keep the latent's
  scale bounded and roughly unit-variance, which the diffusion decoder that models the latent needs.
  The plain ``"ae"`` bottleneck is there for ablations.
* **No adversarial loss**: the objective is a DAC-style multi-scale mel L1 (:mod:`duotok.losses`; the
  evaluation reports the toolkit's Mel distance, a close relative, :mod:`duotok.eval.mel_distance`)
  + multi-resolution STFT (spectral convergence + log magnitude) + KL.
  GAN discriminators are left out so that training fits a CPU budget. Those two losses see magnitudes
  only, so the phase the head predicts is unsupervised — random phase on the exact magnitudes scores ~0
  on both (issue 18). Optional phase-aware terms (``complex_weight``, ``phase_weight``, ``wave_weight``;
  :mod:`duotok.losses`) supervise it; all are 0 by default, which is the original recipe.
* **Where the phase comes from.** The encoder sees ``log|S|`` only (``encoder_input="magnitude"``), so
  the latent carries no phase and the decoder has to invent one, like a vocoder. Worse, a convolutional
  decoder cannot *integrate*: the STFT phase of a steady partial advances by ``2π · f · hop / sr`` per
  frame, so over a sustained note the decoder would have to produce a phase ramp from an input that does
  not change — it cannot, and the frames of a held vowel then overlap-add with mismatched phase (the
  beating/roughness that makes the ceiling no better than random phase). Two options address it:

  - ``encoder_input="complex"``: the encoder also sees the compressed complex spectrum ``|S|^c e^{iφ}``
    (real and imaginary parts), so the latent can carry phase — as a waveform encoder's (DAC, the
    paper's ear-VAE) does — and the complex / instantaneous-phase losses become learnable;
  - ``phase_head="integrated"``: the head predicts the *phase advance* per frame, the bin's nominal
    ``2π k · hop / n_fft`` plus a deviation ``π · tanh(d)``, and the phase is its running sum over frames
    (float64, wrapped) — the phase-vocoder / phase-gradient-integration principle (Průša et al. 2017:
    phase derivatives follow from the local magnitude; integrating them gives a coherent phase). A steady
    partial then needs a constant output. The absolute phase stays arbitrary, so use it with the
    ``gd`` / ``iaf`` phase terms (``phase_terms``), not the instantaneous phase or complex terms.

* **Phase head** (``phase_head``): ``"angle"`` (the original, Vocos' own head) reads the phase as an
  angle ``p`` and uses ``cos p, sin p``; ``"unit"`` predicts two numbers ``x, y`` per bin and uses the unit
  vector ``(x + iy) / |x + iy|`` — APNet's "parallel phase estimation" (two linear outputs, phase
  ``atan2(I, R)``): a wrapped phase target is discontinuous as an angle (a jump of 2π where it wraps)
  but continuous as a point on the unit circle. It costs 513 more outputs of the final linear layer.
  ``"integrated"``: see above (same layout as ``"angle"``).

The bottleneck is a separate module (:class:`Bottleneck`): the encoder only asks it how many channels
to produce and the decoder only consumes its ``latent``. An RVQ codec baseline reuses
:class:`WaveEncoder` / :class:`WaveDecoder` unchanged and puts a quantizer bottleneck in
:func:`build_bottleneck` (the ``"rvq"`` seam), returning its commitment loss among ``losses``.

Spectral maths (STFT, iSTFT, the decoder head's exp/cos/sin and all losses) runs in float32 even under
``torch.autocast``; the ConvNeXt trunk is free to run in bfloat16.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from duotok.audio.features import istft, magnitude, stft
from duotok.errors import CheckpointError
from duotok.io.checkpoint import CONFIG_NAME, PretrainedMixin, config_from_dict
from duotok.losses import LOG_EPS, MEL_WINDOW_LENGTHS, compress_spectrum, spectral_reconstruction_loss

BOTTLENECKS = ("vae", "ae")  # "rvq" will join when the codec baseline lands (see build_bottleneck)
PHASE_HEADS = ("angle", "unit", "integrated")
ENCODER_INPUTS = ("magnitude", "complex")
PHASE_TERMS = ("ip", "gd", "iaf")
#: Config fields added after checkpoints existed, with the value that reproduces those checkpoints: a
#: ``config.json`` without them loads with these (see :meth:`WaveAutoencoder.read_config`).
LEGACY_DEFAULTS: dict[str, object] = {"encoder_input": "magnitude", "phase_head": "angle", "complex_weight": 0.0,
                                      "phase_weight": 0.0, "phase_terms": PHASE_TERMS, "wave_weight": 0.0,
                                      "complex_compression": 0.3}
LOGVAR_RANGE = (-10.0, 5.0)

__all__ = [
    "AutoencoderConfig",
    "Bottleneck",
    "BottleneckOutput",
    "ConvNeXtBlock",
    "IdentityBottleneck",
    "VAEBottleneck",
    "WaveAutoencoder",
    "WaveDecoder",
    "WaveEncoder",
    "build_bottleneck",
]


@dataclass
class AutoencoderConfig:
    #: What checkpoints written before a field existed were trained with (see ``config_from_dict``):
    #: the magnitude-only recipe of issues 1-17.
    LEGACY_VALUES: ClassVar[dict[str, object]] = {
        "encoder_input": "magnitude", "phase_head": "angle", "complex_weight": 0.0, "phase_weight": 0.0,
        "phase_terms": list(PHASE_TERMS), "wave_weight": 0.0, "complex_compression": 0.3}

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 160          # 100 Hz STFT frames; the latent is at half that rate
    dim: int = 256
    n_blocks: int = 4              # ConvNeXt blocks in the encoder, and (split 50 Hz / 100 Hz) in the decoder
    kernel_size: int = 7
    mlp_ratio: int = 2             # ConvNeXt pointwise MLP width = mlp_ratio * dim
    latent_dim: int = 32
    bottleneck: str = "vae"        # vae | ae
    kl_weight: float = 1e-4
    mel_weight: float = 1.0
    stft_weight: float = 1.0
    stft_windows: tuple[int, ...] = (256, 512, 1024, 2048)
    max_log_magnitude: float = 6.0  # clamp of the head's log-magnitude before exp (exp(6) ≈ 403)
    encoder_input: str = "magnitude"  # magnitude: log|S| | complex: log|S| + Re, Im of |S|^c e^{iφ}
    phase_head: str = "angle"      # angle | unit: (x + iy) / |x + iy| | integrated: running sum of phase advances
    complex_weight: float = 0.0    # compressed complex STFT L1 (duotok.losses.multiresolution_complex_loss)
    phase_weight: float = 0.0      # anti-wrapping phase losses (duotok.losses.phase_losses) ...
    phase_terms: tuple[str, ...] = PHASE_TERMS  # ... summed over these: ip, gd, iaf
    wave_weight: float = 0.0       # waveform L1
    complex_compression: float = 0.3  # c of |S|^c e^{iφ} in the complex loss and the phase losses' weights

    def __post_init__(self) -> None:
        self.stft_windows = tuple(int(w) for w in self.stft_windows)
        self.phase_terms = tuple(self.phase_terms)
        positive = {"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length,
                    "dim": self.dim, "kernel_size": self.kernel_size, "mlp_ratio": self.mlp_ratio,
                    "latent_dim": self.latent_dim}
        for name, value in positive.items():
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {self.n_blocks}")
        if self.n_fft % 2 or self.n_fft < 2 * self.hop_length:
            raise ValueError(f"n_fft must be even and >= 2 * hop_length (= {2 * self.hop_length}), got {self.n_fft}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-length depthwise conv), got {self.kernel_size}")
        if self.bottleneck not in BOTTLENECKS:
            raise ValueError(f"bottleneck must be one of {BOTTLENECKS}, got {self.bottleneck!r}")
        for name in ("kl_weight", "mel_weight", "stft_weight", "complex_weight", "phase_weight", "wave_weight"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {getattr(self, name)!r}")
        if not self.stft_windows or any(w < 4 or w % 4 for w in self.stft_windows):
            raise ValueError(f"stft_windows must be non-empty multiples of 4 (hop = window / 4), got {self.stft_windows}")
        if not math.isfinite(self.max_log_magnitude):
            raise ValueError("max_log_magnitude must be finite")
        if self.phase_head not in PHASE_HEADS:
            raise ValueError(f"phase_head must be one of {PHASE_HEADS}, got {self.phase_head!r}")
        if self.encoder_input not in ENCODER_INPUTS:
            raise ValueError(f"encoder_input must be one of {ENCODER_INPUTS}, got {self.encoder_input!r}")
        distinct_known = set(self.phase_terms) <= set(PHASE_TERMS) and len(set(self.phase_terms)) == len(self.phase_terms)
        if not self.phase_terms or not distinct_known:
            raise ValueError(f"phase_terms must be distinct names from {PHASE_TERMS}, got {self.phase_terms!r}")
        if not 0.0 < self.complex_compression <= 1.0:
            raise ValueError(f"complex_compression must be in (0, 1], got {self.complex_compression!r}")

    @property
    def samples_per_latent(self) -> int:
        return 2 * self.hop_length

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def min_loss_samples(self) -> int:
        """``forward`` needs crops longer than this: the widest mel / STFT window's reflect padding."""
        return max(max(MEL_WINDOW_LENGTHS), max(self.stft_windows)) // 2


# --------------------------------------------------------------------------- building blocks


class ConvNeXtBlock(nn.Module):
    """1-D ConvNeXt block on ``(B, C, T)``: depthwise conv → LayerNorm over channels → Linear(C, r·C) →
    GELU → Linear(r·C, C) → layer scale → residual. The length is preserved (odd kernel, zero padding)."""

    def __init__(self, dim: int, kernel_size: int = 7, mlp_ratio: int = 4, layer_scale: float = 1e-2):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, mlp_ratio * dim)
        self.pw2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


def _blocks(config: AutoencoderConfig, n: int) -> nn.Sequential:
    # Vocos' layer-scale init 1 / n_layers: the residual stream starts close to the identity.
    scale = 1.0 / max(1, 2 * config.n_blocks)
    return nn.Sequential(*(ConvNeXtBlock(config.dim, config.kernel_size, config.mlp_ratio, scale) for _ in range(n)))


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, T)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class WaveEncoder(nn.Module):
    """``(B, T)`` audio, ``T`` a multiple of ``2 * hop_length`` → ``(B, out_channels, T / (2 * hop))``.

    The input is a log-magnitude STFT (``n_fft / 2 + 1`` channels, 100 Hz) — with
    ``encoder_input="complex"`` also the real and imaginary parts of the compressed spectrum
    ``|S|^c e^{iφ}`` (3 x 513 channels); the last ``center=True`` frame is dropped so ``T`` samples give
    exactly ``T / hop`` frames, then a stride-2 conv halves that."""

    def __init__(self, config: AutoencoderConfig, out_channels: int):
        super().__init__()
        self.config = config
        # Kernel 3, not kernel_size: with 513 input channels the embedding would otherwise hold a quarter
        # of the model's parameters; the depthwise convs of the blocks provide the temporal context.
        in_channels = config.n_freqs * (1 if config.encoder_input == "magnitude" else 3)
        self.embed = nn.Conv1d(in_channels, config.dim, kernel_size=3, padding=1)
        self.embed_norm = _ChannelLayerNorm(config.dim, eps=1e-6)
        self.blocks = _blocks(config, config.n_blocks)
        self.downsample = nn.Sequential(  # merge frame pairs: 100 Hz → 50 Hz
            _ChannelLayerNorm(config.dim, eps=1e-6),
            nn.Conv1d(config.dim, config.dim, kernel_size=2, stride=2),
        )
        self.proj = nn.Conv1d(config.dim, out_channels, kernel_size=3, padding=1)
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)

    def spectrum(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` → complex64 ``(B, n_fft / 2 + 1, T // hop)``: the STFT the encoder reads."""
        c = self.config
        n_frames = audio.shape[-1] // c.hop_length
        if audio.shape[-1] <= c.n_fft // 2:  # too short for reflect padding: extend with silence, keep n_frames
            audio = F.pad(audio, (0, c.n_fft // 2 + 1 - audio.shape[-1]))
        return stft(audio, c.n_fft, c.hop_length, c.n_fft, window=self.window)[..., :n_frames]

    def log_magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` → ``(B, n_fft / 2 + 1, T // hop)`` float32 ``log(|S| + 1e-5)``."""
        spec = self.spectrum(audio)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            return torch.log(magnitude(spec) + LOG_EPS)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """The encoder's input, float32 ``(B, C, T // hop)``: ``log(|S| + 1e-5)`` (``C`` = 513), and with
        ``encoder_input="complex"`` the real and imaginary parts of ``|S|^c e^{iφ}`` after it (``C`` = 3 x 513)."""
        spec = self.spectrum(audio)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            log_mag = torch.log(magnitude(spec) + LOG_EPS)
            if self.config.encoder_input == "magnitude":
                return log_mag
            compressed = compress_spectrum(spec, self.config.complex_compression)
            return torch.cat([log_mag, compressed.real, compressed.imag], dim=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[-1] % self.config.samples_per_latent:
            raise ValueError(f"WaveEncoder needs a multiple of {self.config.samples_per_latent} samples, "
                             f"got {audio.shape[-1]} (WaveAutoencoder.encode pads for you)")
        h = self.embed_norm(self.embed(self.features(audio)))
        return self.proj(self.downsample(self.blocks(h)))


class WaveDecoder(nn.Module):
    """``(B, latent_dim, L)`` → ``(B, L * 2 * hop)`` float32 audio through a Vocos iSTFT head.

    ConvNeXt blocks at 50 Hz, a ×2 transposed-conv upsample to the 100 Hz STFT frame rate, more blocks,
    then per frame and bin a log-magnitude ``m`` and a unit phase factor ``u``: ``S = exp(min(m,
    max_log_magnitude)) · u``. With ``phase_head="angle"`` the head gives an angle ``p`` and ``u = e^{ip}``;
    with ``"unit"`` it gives ``x, y`` and ``u = (x + iy) / |x + iy|``; with ``"integrated"`` it gives a
    deviation ``d`` and ``u = e^{iφ}``, ``φ_t = Σ_{s ≤ t} (2π k · hop / n_fft + π tanh d_s)``. ``L * 320``
    samples have ``2L + 1`` centred frames; the decoder makes ``2L``, so the last is repeated before the
    inverse STFT."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        n_low = config.n_blocks // 2
        self.embed = nn.Conv1d(config.latent_dim, config.dim, config.kernel_size, padding=config.kernel_size // 2)
        self.embed_norm = _ChannelLayerNorm(config.dim, eps=1e-6)
        self.blocks_low = _blocks(config, n_low)
        self.upsample = nn.ConvTranspose1d(config.dim, config.dim, kernel_size=2, stride=2)
        self.blocks_high = _blocks(config, config.n_blocks - n_low)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        # "angle": log-magnitude + angle per bin (the original layout: same key, same shape);
        # "unit": log-magnitude + x + y per bin; "integrated": log-magnitude + phase-advance deviation.
        outputs_per_bin = 3 if config.phase_head == "unit" else 2
        self.head = nn.Linear(config.dim, outputs_per_bin * config.n_freqs)
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)
        # The phase advance per frame of a sinusoid at each bin's centre frequency, wrapped (float64; not
        # saved: it follows from n_fft and hop_length).
        k = torch.arange(config.n_freqs, dtype=torch.float64)
        advance = torch.remainder(2 * math.pi * k * config.hop_length / config.n_fft, 2 * math.pi)
        self.register_buffer("bin_advance", advance[:, None], persistent=False)

    def head_outputs(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, latent_dim, L)`` → float32 ``(log_magnitude, cos φ, sin φ)``, each ``(B, n_fft / 2 + 1, 2L)``:
        the clamped log-magnitude and the real and imaginary parts of the unit phase factor."""
        h = self.blocks_low(self.embed_norm(self.embed(latent)))
        h = self.blocks_high(self.upsample(h))
        h = self.norm(h.transpose(1, 2))
        # The head runs in float32: a bf16 log-magnitude would carry percent-level errors into exp().
        with torch.autocast(device_type=latent.device.type, enabled=False):
            out = self.head(h.float()).transpose(1, 2)
            if self.config.phase_head == "angle":
                log_mag, phase = out.chunk(2, dim=1)
                cos, sin = torch.cos(phase), torch.sin(phase)
            elif self.config.phase_head == "integrated":
                log_mag, deviation = out.chunk(2, dim=1)
                # float64 running sum: after 1000 frames float32 would keep only ~1e-4 rad of it.
                step = self.bin_advance + math.pi * torch.tanh(deviation).double()
                phase = torch.remainder(torch.cumsum(step, dim=-1), 2 * math.pi).float()
                cos, sin = torch.cos(phase), torch.sin(phase)
            else:
                log_mag, x, y = out.chunk(3, dim=1)
                # A floored norm: (x, y) = (0, 0) has no direction; its gradient stays finite.
                norm = torch.sqrt((x.square() + y.square()).clamp_min(1e-12))
                cos, sin = x / norm, y / norm
            return torch.clamp(log_mag, max=self.config.max_log_magnitude), cos, sin

    def spectrogram(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, latent_dim, L)`` → complex64 ``(B, n_fft / 2 + 1, 2L)``."""
        log_mag, cos, sin = self.head_outputs(latent)
        with torch.autocast(device_type=latent.device.type, enabled=False):
            mag = torch.exp(log_mag)
            return torch.complex(mag * cos, mag * sin)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        c = self.config
        spec = self.spectrogram(latent)
        spec = torch.cat([spec, spec[..., -1:]], dim=-1)  # 2L → 2L + 1 frames (center=True framing)
        return istft(spec, c.n_fft, c.hop_length, c.n_fft, length=latent.shape[-1] * c.samples_per_latent,
                     window=self.window)


# --------------------------------------------------------------------------- bottlenecks


@dataclass
class BottleneckOutput:
    """What a bottleneck hands the decoder and the objective.

    ``latent`` is what the decoder reconstructs from during training (a sample for the VAE, the
    quantized vectors for an RVQ); ``mean`` the deterministic latent that ``encode`` returns; ``losses``
    the unweighted regularisers (``"kl"``; an RVQ would add ``"commitment"``)."""

    latent: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


class Bottleneck(nn.Module):
    """Interface: the encoder produces ``in_channels`` channels at 50 Hz; ``distribution`` turns them into
    ``(mean, logvar | None)`` and ``forward`` into a :class:`BottleneckOutput` with ``latent_dim`` channels."""

    in_channels: int

    def distribution(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> BottleneckOutput:
        raise NotImplementedError


class VAEBottleneck(Bottleneck):
    """Diagonal Gaussian: the encoder gives mean and log-variance (clamped to [-10, 5]). In training mode
    ``forward`` samples ``mean + std · eps``; in eval mode it passes the mean (deterministic validation)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.in_channels = 2 * latent_dim

    def distribution(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = h.float().chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> BottleneckOutput:
        """``mask`` (B, L) bool marks real latent frames; the KL is a mean over those only."""
        mean, logvar = self.distribution(h)
        latent = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if self.training else mean
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar)
        if mask is not None:
            weights = mask[:, None, :].to(kl.dtype).expand_as(kl)
            kl = (kl * weights).sum() / weights.sum().clamp_min(1.0)
        else:
            kl = kl.mean()
        return BottleneckOutput(latent, mean, logvar, {"kl": kl})


class IdentityBottleneck(Bottleneck):
    """Plain autoencoder: the encoder output is the latent, with no regulariser."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.in_channels = latent_dim

    def distribution(self, h: torch.Tensor) -> tuple[torch.Tensor, None]:
        return h.float(), None

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> BottleneckOutput:
        mean, _ = self.distribution(h)
        return BottleneckOutput(mean, mean)


def build_bottleneck(config: AutoencoderConfig) -> Bottleneck:
    """The bottleneck named by ``config.bottleneck``. The seam for the RVQ codec baseline: add an
    ``"rvq"`` branch returning a quantizer :class:`Bottleneck` (in_channels = latent_dim)."""
    if config.bottleneck == "vae":
        return VAEBottleneck(config.latent_dim)
    if config.bottleneck == "ae":
        return IdentityBottleneck(config.latent_dim)
    raise ValueError(f"unknown bottleneck {config.bottleneck!r}; expected one of {BOTTLENECKS}")


# --------------------------------------------------------------------------- losses


# --------------------------------------------------------------------------- the model


class WaveAutoencoder(nn.Module, PretrainedMixin):
    """16 kHz mono audio ↔ ``(latent_dim, 50 Hz)`` latents. See the module docstring for the design.

    ``encode`` zero-pads inputs at the end to a multiple of :attr:`samples_per_latent` (320) samples, so
    ``T`` samples give ``ceil(T / 320)`` latent frames; ``decode`` returns ``L * 320`` samples (trim to
    the original length yourself, or use :meth:`reconstruct`)."""

    config_class = AutoencoderConfig

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        config = config or AutoencoderConfig()
        self.config = config
        self.bottleneck = build_bottleneck(config)
        self.encoder = WaveEncoder(config, self.bottleneck.in_channels)
        self.decoder = WaveDecoder(config)

    @classmethod
    def read_config(cls, directory: str | os.PathLike[str]) -> AutoencoderConfig:
        """The checkpoint's config, as :meth:`PretrainedMixin.read_config` validates it, except that a
        ``config.json`` written before the fields of :data:`LEGACY_DEFAULTS` existed loads with those
        values (the ones its weights were trained with) instead of failing on "missing field(s)"."""
        try:
            return super().read_config(directory)
        except CheckpointError as exc:
            if "missing field(s)" not in str(exc):
                raise
        path = Path(directory) / CONFIG_NAME
        header = json.loads(path.read_text(encoding="utf-8"))
        try:
            return config_from_dict(cls.config_class, {**LEGACY_DEFAULTS, **header["config"]})
        except (TypeError, ValueError) as exc:
            raise CheckpointError(path, str(exc)) from exc

    # ------------------------------------------------------------------ geometry

    @property
    def samples_per_latent(self) -> int:
        return self.config.samples_per_latent

    @property
    def latent_rate(self) -> float:
        return self.config.sample_rate / self.samples_per_latent

    def latent_length(self, n_samples: int) -> int:
        return -(-int(n_samples) // self.samples_per_latent)

    def _pad(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 2:
            raise ValueError(f"expected (B, T) audio, got shape {tuple(audio.shape)}")
        if audio.shape[-1] == 0:
            raise ValueError("cannot encode an empty signal")
        extra = self.latent_length(audio.shape[-1]) * self.samples_per_latent - audio.shape[-1]
        return F.pad(audio, (0, extra)) if extra else audio

    # ------------------------------------------------------------------ inference API

    def encode_distribution(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, T)`` → ``(mean, logvar)``, each ``(B, latent_dim, ceil(T / 320))`` float32; ``logvar`` is
        ``None`` for the ``"ae"`` bottleneck. The input is zero-padded at the end to a multiple of 320."""
        return self.bottleneck.distribution(self.encoder(self._pad(audio)))

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Deterministic latent (the mean, in train and eval mode alike): ``(B, T)`` →
        ``(B, latent_dim, ceil(T / 320))``, or ``(T,)`` → ``(latent_dim, ceil(T / 320))``."""
        if audio.dim() == 1:
            return self.encode(audio[None])[0]
        return self.encode_distribution(audio)[0]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """``(B, latent_dim, L)`` → ``(B, L * 320)`` float32 audio, or ``(latent_dim, L)`` → ``(L * 320,)``."""
        if latent.dim() == 2:
            return self.decode(latent[None])[0]
        if latent.dim() != 3 or latent.shape[1] != self.config.latent_dim:
            raise ValueError(f"expected (B, {self.config.latent_dim}, L) latents, got shape {tuple(latent.shape)}")
        return self.decoder(latent)

    @torch.no_grad()
    def reconstruct(self, audio: torch.Tensor) -> torch.Tensor:
        """``decode(encode(audio))`` trimmed to the input length; ``(B, T)`` or ``(T,)``."""
        return self.decode(self.encode(audio))[..., : audio.shape[-1]]

    # ------------------------------------------------------------------ training objective

    def length_masks(self, lengths: torch.Tensor | None, n: int, device: torch.device,
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(B, n)`` valid-sample and ``(B, latent_length(n))`` valid-latent masks of crops padded to ``n``
        samples (``None``, ``None`` without ``lengths``): what every loss over padded crops masks out."""
        if lengths is None:
            return None, None
        lengths = lengths.to(device).long()
        sample_mask = torch.arange(n, device=device)[None, :] < lengths[:, None]
        starts = torch.arange(self.latent_length(n), device=device) * self.samples_per_latent
        return sample_mask, starts[None, :] < lengths[:, None]

    def reconstruction_loss(self, audio: torch.Tensor, recon: torch.Tensor,
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted reconstruction objective of the config (mel, STFT and, where their weights are
        > 0, the complex, phase and waveform terms) between ``(B, T)`` signals; float32. Shared with
        the RVQ codec baseline, which trains on the same objective."""
        c = self.config
        return spectral_reconstruction_loss(audio, recon, c.sample_rate, c.stft_windows, c.mel_weight,
                                            c.stft_weight, complex_weight=c.complex_weight,
                                            phase_weight=c.phase_weight, wave_weight=c.wave_weight,
                                            compression=c.complex_compression, phase_terms=c.phase_terms)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss on ``(B, T)`` crops (``T`` > :attr:`AutoencoderConfig.min_loss_samples`).

        ``mel_weight · multi-scale mel L1 + stft_weight · multi-resolution STFT + kl_weight · KL`` (+ the
        phase-aware terms whose weights are > 0, see :meth:`reconstruction_loss`), in float32. With
        ``lengths`` (B,), samples at or beyond an item's length are zeroed in the input and in the
        reconstruction (padding is not content), and the KL covers only latent frames that start inside
        the item. The VAE samples its latent in training mode and uses the mean in eval mode.
        Metrics: ``mel_l1``, ``stft``, ``kl`` (VAE only), ``latent_std`` (std of the mean latent), and
        ``complex`` / ``phase`` (+ ``phase_ip``, ``phase_gd``, ``phase_iaf``) / ``wave`` when enabled."""
        c = self.config
        if audio.dim() != 2:
            raise ValueError(f"expected (B, T) audio, got shape {tuple(audio.shape)}")
        n = audio.shape[-1]
        if n <= c.min_loss_samples:
            raise ValueError(f"training crops need more than {c.min_loss_samples} samples, got {n}")
        sample_mask, latent_mask = self.length_masks(lengths, n, audio.device)
        if sample_mask is not None:
            audio = audio * sample_mask
        out = self.bottleneck(self.encoder(self._pad(audio)), latent_mask)
        recon = self.decoder(out.latent)[..., :n]
        if sample_mask is not None:
            recon = recon * sample_mask
        loss, terms = self.reconstruction_loss(audio, recon)
        if "kl" in out.losses:
            loss = loss + c.kl_weight * out.losses["kl"].float()
        metrics = {name: value.item() for name, value in terms.items()}
        metrics.update({name: value.item() for name, value in out.losses.items()})
        mean = out.mean if latent_mask is None else out.mean.transpose(1, 2)[latent_mask]
        metrics["latent_std"] = mean.detach().float().std().item() if mean.numel() > 1 else 0.0
        return loss, metrics
