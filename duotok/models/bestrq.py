"""Stage 1: the BEST-RQ pre-training model — log-mel front end, the Duo-Tok encoder, a frozen
random-projection quantizer that makes the targets, and a linear prediction head.

Its ``forward(audio, lengths)`` returns ``(loss, metrics)`` so that DDP's forward hook sees the
whole computation (the training loop only ever calls the model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from duotok.audio.features import LogMel, frame_mask_from_lengths
from duotok.io.checkpoint import PretrainedMixin
from duotok.models.encoder import DuoEncoder, EncoderConfig
from duotok.quantization.bestrq import (
    RandomProjectionQuantizer,
    bestrq_loss,
    expand_mask,
    replace_masked,
    span_mask,
    stack_frames,
)


@dataclass
class MelConfig:
    """The log-mel front end (``params.yaml: audio``)."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5


@dataclass
class BestRQConfig:
    """Sizes and masking of stage 1 (paper: 24-layer encoder; MusicFM: 4096 codes, 16-dim codes,
    400 ms spans masked with probability ≈ 0.6 and replaced by N(0, 0.1) noise)."""

    mel: MelConfig = field(default_factory=MelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    codebook_size: int = 4096
    code_dim: int = 16
    quantizer_seed: int = 0
    mask_prob: float = 0.6
    mask_span: int = 10
    noise_std: float = 0.1


class BestRQModel(nn.Module, PretrainedMixin):
    config_class = BestRQConfig

    def __init__(self, config: BestRQConfig | None = None):
        super().__init__()
        config = config or BestRQConfig()
        if config.mel.n_mels != config.encoder.n_mels:
            raise ValueError(f"mel.n_mels={config.mel.n_mels} differs from encoder.n_mels={config.encoder.n_mels}")
        self.config = config
        self.logmel = LogMel(**vars(config.mel))
        self.encoder = DuoEncoder(config.encoder)
        self.quantizer = RandomProjectionQuantizer(config.mel.n_mels * config.encoder.downsample, config.code_dim,
                                                   config.codebook_size, seed=config.quantizer_seed)
        self.head = nn.Linear(config.encoder.dim, config.codebook_size)

    def frame_mask(self, lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
        """100 Hz validity mask from sample lengths."""
        return frame_mask_from_lengths(lengths, n_frames, self.config.mel.hop_length)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked prediction of the frozen quantizer's codes. ``audio`` (B, samples), ``lengths``
        (B,) valid samples (None = all valid)."""
        mel = self.logmel(audio)                                   # (B, n_mels, F)
        n_frames = mel.shape[-1]
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], device=audio.device)
        frame_mask = self.frame_mask(lengths, n_frames)
        normed = self.encoder.normalize_masked(mel, frame_mask)
        targets = self.quantizer(stack_frames(normed, self.config.encoder.downsample))
        token_mask = self.encoder.downsample_mask(frame_mask)
        mask = span_mask(targets.shape[0], targets.shape[1], mask_prob=self.config.mask_prob,
                         span=self.config.mask_span, generator=generator,
                         lengths=token_mask.sum(dim=1), device=audio.device)
        frames_masked = expand_mask(mask, self.config.encoder.downsample, n_frames)
        noisy = replace_masked(normed.transpose(1, 2), frames_masked, std=self.config.noise_std,
                               generator=generator).transpose(1, 2)
        features = self.encoder(noisy, frame_mask, normalized=True)
        logits = self.head(features).float()
        loss, accuracy = bestrq_loss(logits, targets, mask)
        return loss, {"accuracy": float(accuracy), "masked_fraction": float(mask.float().mean())}

    @torch.no_grad()
    def targets(self, audio: torch.Tensor) -> torch.Tensor:
        """The frozen quantizer's codes of clean audio (for the target-entropy diagnostic)."""
        normed = self.encoder.normalize(self.logmel(audio))
        return self.quantizer(stack_frames(normed, self.config.encoder.downsample))
