"""``TokenDecoder``: stage 4 as one module — token embeddings → DiT → autoencoder latents → audio.

    quantized embeddings (25 Hz) ─→ LatentDiT (flow matching, track-conditioned) ─→ latents (50 Hz)
                                                                 ─→ WaveAutoencoder.decode ─→ 16 kHz audio

It holds the autoencoder (only its decoder is used here, but the whole model is kept so one
checkpoint also re-encodes) and the DiT, plus the default sampling settings. :class:`DuoTok` owns one
when it is a complete codec (``models/codec``): ``DuoTok.decode`` does the chunking and the ids →
embeddings step, this module the generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from duotok.io.checkpoint import PretrainedMixin
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder
from duotok.models.dit import DiTConfig, LatentDiT


@dataclass
class TokenDecoderConfig:
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    steps: int = 16              # Euler steps of the flow-matching ODE
    cfg_scale: float = 1.5       # classifier-free guidance; 1 = conditional branch only
    seed: int = 0                # decoding is seeded: the same tokens give the same audio


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
        self.config = config
        self.autoencoder = WaveAutoencoder(config.autoencoder)
        self.dit = LatentDiT(config.dit)

    @classmethod
    def from_parts(cls, autoencoder: WaveAutoencoder, dit: LatentDiT, steps: int = 16, cfg_scale: float = 1.5,
                   seed: int = 0) -> TokenDecoder:
        """Bundle a trained autoencoder and a DiT trained on its latents."""
        model = cls(TokenDecoderConfig(autoencoder.config, dit.config, steps, cfg_scale, seed))
        model.autoencoder.load_state_dict(autoencoder.state_dict())
        model.dit.load_state_dict(dit.state_dict())
        return model.eval()

    @property
    def samples_per_token(self) -> int:
        return self.autoencoder.samples_per_latent * self.config.dit.cond_upsample

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, track: torch.Tensor, steps: int | None = None,
                 cfg_scale: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Quantized embeddings ``(B, T_tok, cond_dim)`` of tracks ``track`` ``(B,)`` → audio
        ``(B, T_tok · samples_per_token)``."""
        steps = self.config.steps if steps is None else int(steps)
        cfg_scale = self.config.cfg_scale if cfg_scale is None else float(cfg_scale)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        latents = self.dit.sample(cond, track, steps=steps, cfg_scale=cfg_scale, generator=generator)
        return self.autoencoder.decode(latents.transpose(1, 2).float())
