"""``TokenDecoder``: stage 4 as one module — token embeddings → DiT → autoencoder latents → audio.

    quantized embeddings (25 Hz) ─→ LatentDiT (flow matching, track-conditioned) ─→ latents (50 Hz)
                                                                 ─→ WaveAutoencoder.decode ─→ 16 kHz audio

It holds the autoencoder (only its decoder is used here, but the whole model is kept so one
checkpoint also re-encodes) and the DiT, plus the default sampling settings. :class:`DuoTok` owns one
when it is a complete codec (``models/codec``): ``DuoTok.decode`` does the chunking and the ids →
embeddings step, this module the generation.

Decoding settings live in the config (``params.yaml: decoder.sampling``, chosen on validation by
notebook 04b): Euler ``steps`` on a grid with ``time_shift`` (:func:`~duotok.models.dit.flow_time_grid`),
guidance ``cfg_scale``, the noise ``seed``, and the ``precision`` the DiT samples in. ``precision``
follows ``train.precision`` (:mod:`duotok.train.precision`): ``auto`` runs the DiT under bfloat16
autocast only where the hardware computes bf16 natively (measured on the AVX512-BF16 EPYC, 30 s of both
tracks at 8 steps: 12.7x real time against 8.2x in float32, validation Mel L1 equal to three decimals),
float32 elsewhere, where emulated bf16 would be 10-20x slower. The ODE state, the guidance mix and the
autoencoder stay float32 either way. ``fp32`` is the default of a config that does not name it, so
codecs saved before the option decode as they did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from duotok.io.checkpoint import PretrainedMixin
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
from duotok.models.dit import DiTConfig, LatentDiT, flow_time_grid
from duotok.train.precision import Precision, check_setting, resolve_precision


@dataclass
class TokenDecoderConfig:
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    steps: int = 16              # Euler steps of the flow-matching ODE
    cfg_scale: float = 1.5       # classifier-free guidance; 1 = conditional branch only
    seed: int = 0                # decoding is seeded: the same tokens give the same audio
    time_shift: float = 1.0      # Euler grid: 1 uniform, > 1 finer near the noise end (SD3's shift)
    precision: str = "fp32"      # the DiT's sampling precision: auto | bf16 | fp32 (see the module doc)

    # Codecs saved before these fields existed sampled on the uniform grid in float32.
    LEGACY_VALUES: ClassVar[dict[str, object]] = {"time_shift": 1.0, "precision": "fp32"}


class TokenDecoder(nn.Module, PretrainedMixin):
    config_class = TokenDecoderConfig

    def __init__(self, config: TokenDecoderConfig | None = None):
        super().__init__()
        config = config or TokenDecoderConfig()
        if config.dit.latent_dim != config.autoencoder.latent_dim:
            raise ValueError(f"the DiT generates {config.dit.latent_dim}-dim latents but the autoencoder's are "
                             f"{config.autoencoder.latent_dim}-dim")
        if config.steps < 1:
            raise ValueError(f"steps must be at least 1, got {config.steps}")
        flow_time_grid(1, float(config.time_shift))  # a clear error for a bad shift, at load time
        check_setting(config.precision)
        self.config = config
        self._precisions: dict[tuple[str, str], Precision] = {}
        self.autoencoder = WaveAutoencoder(config.autoencoder)
        self.dit = LatentDiT(config.dit)

    @classmethod
    def from_parts(cls, autoencoder: WaveAutoencoder, dit: LatentDiT, steps: int = 16, cfg_scale: float = 1.5,
                   seed: int = 0, time_shift: float = 1.0, precision: str = "fp32") -> TokenDecoder:
        """Bundle a trained autoencoder and a DiT trained on its latents."""
        model = cls(TokenDecoderConfig(autoencoder.config, dit.config, steps, cfg_scale, seed, float(time_shift),
                                       precision))
        model.autoencoder.load_state_dict(autoencoder.state_dict())
        model.dit.load_state_dict(dit.state_dict())
        return model.eval()

    @property
    def samples_per_token(self) -> int:
        return self.autoencoder.samples_per_latent * self.config.dit.cond_upsample

    def sampling_precision(self, setting: str | None = None) -> Precision:
        """The precision the DiT samples in here: ``setting`` (default the config's) resolved for this
        module's device, once per (setting, device)."""
        setting = check_setting(self.config.precision if setting is None else setting)
        device = next(self.parameters()).device
        key = (setting, str(device))
        if key not in self._precisions:
            self._precisions[key] = resolve_precision(setting, device)
        return self._precisions[key]

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, track: torch.Tensor, steps: int | None = None,
                 cfg_scale: float | None = None, generator: torch.Generator | None = None,
                 time_shift: float | None = None, precision: str | None = None) -> torch.Tensor:
        """Quantized embeddings ``(B, T_tok, cond_dim)`` of tracks ``track`` ``(B,)`` → audio
        ``(B, T_tok · samples_per_token)``; ``None`` settings are the config's."""
        steps = self.config.steps if steps is None else int(steps)
        cfg_scale = self.config.cfg_scale if cfg_scale is None else float(cfg_scale)
        time_shift = float(self.config.time_shift if time_shift is None else time_shift)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        with self.sampling_precision(precision).autocast():
            latents = self.dit.sample(cond, track, steps=steps, cfg_scale=cfg_scale, generator=generator,
                                      time_shift=time_shift)
        return self.autoencoder.decode(latents.transpose(1, 2).float())
