"""The acoustic RVQ codec baseline (the EnCodec/DAC row of Table 2).

    audio ─ WaveEncoder ─ z (latent_dim, 50 Hz) ─ ResidualVQ (n_codebooks × codebook_size) ─ WaveDecoder ─ audio

It is the stage-4 autoencoder (:mod:`duotok.models.autoencoder`) with its VAE bottleneck replaced by a
residual vector quantizer, trained with the same multi-scale mel + multi-resolution STFT losses plus
the RVQ's commitment loss. Only the bottleneck differs, so the comparison with Duo-Tok isolates
*what the tokens are* (acoustic residuals of the waveform vs. semantic dual-track codes), not the
quality of two unrelated decoders.

Why the quantizer comes from ``vector-quantize-pytorch``: residual VQ with EMA codebooks and
dead-code replacement is a solved, well-tested component (SoundStream/EnCodec recipe); the paper's
method is not about it. The library's codebooks are updated by EMA, not by the optimizer.

Why :func:`RVQCodecModel.from_autoencoder` warm-starts the encoder and decoder from the trained
stage-4 autoencoder: on a 2-core CPU a codec trained from scratch for the same number of steps would
mostly measure under-training. Warm-starting gives the baseline the best decoder this repository has,
which is the conservative choice when the claim under test is that Duo-Tok reconstructs "about as well".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from vector_quantize_pytorch import ResidualVQ

from duotok.io.checkpoint import PretrainedMixin
from duotok.models.autoencoder import AutoencoderConfig, WaveAutoencoder


@dataclass
class RVQConfig:
    n_codebooks: int = 8             # 8 × 10 bit × 50 Hz = 4 kbps (the X-Codec row's rate)
    codebook_size: int = 1024
    decay: float = 0.99              # EMA codebook update
    commitment_weight: float = 1.0   # inside the loss the library returns; scaled again by ``commit_weight``
    dead_code_threshold: float = 2.0  # EMA cluster size under which a code is re-seeded from the batch
    quantize_dropout: bool = False   # SoundStream's bitrate dropout; off: one fixed bitrate is measured


@dataclass
class RVQCodecConfig:
    autoencoder: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(bottleneck="ae"))
    rvq: RVQConfig = field(default_factory=RVQConfig)
    commit_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.autoencoder.bottleneck != "ae":
            raise ValueError("the RVQ codec quantizes the plain encoder output: autoencoder.bottleneck must be 'ae', "
                             f"got {self.autoencoder.bottleneck!r}")


class RVQCodecModel(nn.Module, PretrainedMixin):
    """Mixture audio ↔ ``(n_codebooks, T50)`` codes. Implements the codec interface of
    :mod:`duotok.codecs.base` (one ``"mixture"`` stream)."""

    config_class = RVQCodecConfig
    name = "RVQ codec"

    def __init__(self, config: RVQCodecConfig | None = None):
        super().__init__()
        config = config or RVQCodecConfig()
        self.config = config
        self.autoencoder = WaveAutoencoder(config.autoencoder)
        r = config.rvq
        self.rvq = ResidualVQ(dim=config.autoencoder.latent_dim, num_quantizers=r.n_codebooks,
                              codebook_size=r.codebook_size, decay=r.decay, commitment_weight=r.commitment_weight,
                              kmeans_init=False, threshold_ema_dead_code=r.dead_code_threshold,
                              quantize_dropout=r.quantize_dropout)

    @classmethod
    def from_autoencoder(cls, autoencoder: WaveAutoencoder, rvq: RVQConfig, commit_weight: float = 1.0,
                         ) -> RVQCodecModel:
        """Encoder and decoder from a trained autoencoder (see the module docstring). A VAE encoder's
        output layer gives mean and log-variance; only the mean half is kept, so the warm-started
        codec's continuous latent *is* the autoencoder's deterministic latent."""
        model = cls(RVQCodecConfig(replace(autoencoder.config, bottleneck="ae"), rvq, commit_weight))
        state = autoencoder.state_dict()
        latent_dim = autoencoder.config.latent_dim
        for key in ("encoder.proj.weight", "encoder.proj.bias"):
            if key in state and state[key].shape[0] == 2 * latent_dim:
                state[key] = state[key][:latent_dim]
        model.autoencoder.load_state_dict(state)
        return model

    # ------------------------------------------------------------------ codec interface

    @property
    def sample_rate(self) -> int:
        return self.config.autoencoder.sample_rate

    @property
    def samples_per_token(self) -> int:
        return self.autoencoder.samples_per_latent

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.samples_per_token

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (self.config.rvq.codebook_size,) * self.config.rvq.n_codebooks

    @property
    def streams(self) -> dict[str, tuple[int, ...]]:
        return {"mixture": tuple(range(self.config.rvq.n_codebooks))}

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for layer in self.rvq.layers:
            digest.update(torch.round(layer._codebook.embed.detach().cpu().double() * 1e6).to(torch.int64)
                          .numpy().tobytes())
        return digest.hexdigest()[:16]

    def _latent(self, audio: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(audio).transpose(1, 2)          # (B, L, latent_dim)

    @torch.no_grad()
    def encode(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(T,)`` audio → ``(n_codebooks, ceil(T / 320))`` codes."""
        mixture = torch.as_tensor(mixture, dtype=torch.float32).to(self._device())
        if mixture.dim() != 1:
            raise ValueError(f"expected mono (T,) audio, got shape {tuple(mixture.shape)}")
        with torch.autocast(device_type=mixture.device.type, enabled=False):
            _, indices, _ = self.rvq(self._latent(mixture[None]))
        return indices[0].transpose(0, 1).cpu()

    def encode_stems(self, vocal: torch.Tensor, accompaniment: torch.Tensor) -> torch.Tensor:
        """An acoustic codec of the mixture: the stems are summed."""
        return self.encode(torch.as_tensor(vocal) + torch.as_tensor(accompaniment))

    @torch.no_grad()
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """``(n_codebooks, T)`` → the quantized latent ``(T, latent_dim)`` (the sum of the residual codes)."""
        ids = torch.as_tensor(ids).long().to(self._device())
        return self.rvq.get_output_from_indices(ids.transpose(0, 1)[None])[0].float().cpu()

    def embed_stream(self, ids: torch.Tensor, stream: str) -> torch.Tensor:
        return self.embed(ids)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, num_samples: int | None = None) -> dict[str, torch.Tensor]:
        latent = self.embed(ids).to(self._device()).transpose(0, 1)[None]
        audio = self.autoencoder.decode(latent)[0].float().cpu()
        return {"mixture": audio[:num_samples] if num_samples is not None else audio}

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ training objective

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Same objective as :meth:`WaveAutoencoder.forward` with the RVQ's commitment loss instead of
        the KL; ``lengths`` zero the padding in input and reconstruction and mask it from the codebooks."""
        ae = self.autoencoder
        n = audio.shape[-1]
        sample_mask, latent_mask = ae.length_masks(lengths, n, audio.device)
        if sample_mask is not None:
            audio = audio * sample_mask
        z = ae.encoder(ae._pad(audio)).float().transpose(1, 2)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            quantized, indices, commit = self.rvq(z, mask=latent_mask)
        recon = ae.decoder(quantized.transpose(1, 2))[..., :n]
        if sample_mask is not None:
            recon = recon * sample_mask
        spectral_loss, terms = ae.reconstruction_loss(audio, recon)
        commit = commit.float().sum()
        loss = spectral_loss + self.config.commit_weight * commit
        valid = indices if latent_mask is None else indices[latent_mask]
        used = [valid[..., q].unique().numel() / self.config.rvq.codebook_size for q in range(valid.shape[-1])]
        return loss, {**{name: value.item() for name, value in terms.items()}, "commitment": commit.item(),
                      "usage_first": used[0], "usage_mean": sum(used) / len(used)}
