"""Stage 2: multi-task fine-tuning with Gaussian replacement noise at the bottleneck (paper, Fig. 3).

    mel → downsample → lower blocks → proj_in → noise → proj_out → upper blocks → heads
                                                                     ├ lyrics (CTC, 25 Hz)
                                                                     ├ mel reconstruction (100 Hz)
                                                                     ├ chroma (100 Hz)
                                                                     └ 4-stem STFT masks (100 Hz)

The heads are "semantic guardrails": they force the bottleneck — where stage 3 puts its codebooks —
to keep lyrics, harmony, timbre and source structure. The noise (probability and std are not
published: parameters, ablated later) makes the upper blocks robust to corrupted bottleneck frames,
which is what quantization will do to them. Every head can be switched off and weighted, for the
ablations. ``forward`` returns ``(loss, metrics)`` so DDP sees the whole computation.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from duotok.audio.features import LogMel, frame_mask_from_lengths, magnitude, stft
from duotok.io.checkpoint import PretrainedMixin
from duotok.models.bestrq import BestRQModel, MelConfig
from duotok.models.encoder import DuoEncoder, EncoderConfig
from duotok.models.heads import (
    build_heads,
    chroma_loss,
    chroma_metrics,
    ctc_loss,
    mask_loss,
    mel_l1_loss,
    weighted_total,
)
from duotok.models.noise import BottleneckNoise
from duotok.quantization.dual import bottleneck_norm
from duotok.text import CharVocab

HEADS = ("lyrics", "mel", "chroma", "mask")


@dataclass
class NoiseConfig:
    #: A checkpoint written before the warm-up existed was noised at ``prob`` from its first step.
    LEGACY_VALUES: ClassVar[dict[str, object]] = {"warmup_steps": 0}

    mode: str = "replace"     # replace | matched | additive | off
    prob: float = 0.5
    std: float = 1.0
    warmup_steps: int = 0     # prob ramps linearly from 0 over these training steps (0: from the start)


@dataclass
class HeadsConfig:
    """Which heads exist and their loss weights (a weight of 0 keeps the head but ignores it)."""

    lyrics: bool = True
    mel: bool = True
    chroma: bool = True
    mask: bool = True
    lyrics_weight: float = 1.0
    mel_weight: float = 1.0
    chroma_weight: float = 1.0
    mask_weight: float = 1.0


#: How the bottleneck pair starts (``MultiTaskConfig.bottleneck_init``).
BOTTLENECK_INITS = ("default", "orthogonal")


@torch.no_grad()
def orthogonal_bottleneck_(proj_in: nn.Linear, proj_out: nn.Linear) -> None:
    """Initialise the bottleneck pair so that ``proj_out(proj_in(h))`` is the orthogonal projection of ``h``
    onto a random N-dimensional subspace (the identity when N = dim): ``proj_in``'s rows orthonormal,
    ``proj_out = proj_inᵀ``, zero biases. Why: :class:`nn.Linear`'s default initialisation shrinks what reaches
    the upper stack (std 1.00 → 0.36 at dim 256, ``reports/experiments/quick_log.md``); this pair passes the
    N-dimensional part of the stream unchanged (at N = dim, the lower stack's own features)."""
    if proj_in.out_features > proj_in.in_features or proj_out.weight.shape != proj_in.weight.T.shape:
        raise ValueError(f"an orthogonal bottleneck needs proj_in (dim → N ≤ dim) and proj_out (N → dim), got "
                         f"{tuple(proj_in.weight.shape)} and {tuple(proj_out.weight.shape)}")
    nn.init.orthogonal_(proj_in.weight)
    proj_out.weight.copy_(proj_in.weight.T)
    for layer in (proj_in, proj_out):
        if layer.bias is not None:
            layer.bias.zero_()



@dataclass
class MultiTaskConfig:
    #: What checkpoints written before a field existed were trained with (see ``config_from_dict``).
    LEGACY_VALUES: ClassVar[dict[str, object]] = {"bottleneck_norm": "none", "mask_spectrum": False,
                                                  "lyrics_context": 0, "bottleneck_init": "default"}

    mel: MelConfig = field(default_factory=MelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    bottleneck_dim: int = 64
    bottleneck_norm: str = "none"   # layer: per-frame standardisation after proj_in (issue 17) | none
    bottleneck_init: str = "default"  # default: nn.Linear's | orthogonal: proj_out = proj_inᵀ, orthonormal rows
    mask_spectrum: bool = False     # the mask head also reads the mixture's magnitude spectrum (issue 17)
    lyrics_context: int = 0         # >0: BiGRU units per direction before the linear lyrics head (issue 17)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    vocab_size: int = len(CharVocab())
    n_sources: int = 4


class MultiTaskModel(nn.Module, PretrainedMixin):
    config_class = MultiTaskConfig

    def __init__(self, config: MultiTaskConfig | None = None):
        super().__init__()
        config = config or MultiTaskConfig()
        self.config = config
        dim = config.encoder.dim
        self.logmel = LogMel(**vars(config.mel))
        self.encoder = DuoEncoder(config.encoder)
        self.proj_in = nn.Linear(dim, config.bottleneck_dim)
        self.bottleneck_norm = bottleneck_norm(config.bottleneck_norm, config.bottleneck_dim)
        self.noise = BottleneckNoise(config.noise.mode, config.noise.prob, config.noise.std,
                                     config.noise.warmup_steps)
        self.proj_out = nn.Linear(config.bottleneck_dim, dim)
        if config.bottleneck_init not in BOTTLENECK_INITS:
            raise ValueError(f"bottleneck_init must be one of {BOTTLENECK_INITS}, got {config.bottleneck_init!r}")
        if config.bottleneck_init == "orthogonal":
            orthogonal_bottleneck_(self.proj_in, self.proj_out)
        self.heads = build_heads(tuple(n for n in HEADS if getattr(config.heads, n)), dim,
                                 n_mels=config.mel.n_mels, vocab_size=config.vocab_size,
                                 factor=config.encoder.downsample, n_sources=config.n_sources,
                                 n_freq=config.mel.n_fft // 2 + 1, mask_spectrum=config.mask_spectrum,
                                 lyrics_context=config.lyrics_context)

    @classmethod
    def from_pretrain(cls, pretrained: BestRQModel, config: MultiTaskConfig) -> MultiTaskModel:
        """Stage 2 starts from stage 1's encoder (including its mel normalisation)."""
        if pretrained.config.encoder != config.encoder or pretrained.config.mel != config.mel:
            raise ValueError("stage-2 encoder/mel config differs from the stage-1 checkpoint's: "
                             f"{pretrained.config.encoder} vs {config.encoder}")
        model = cls(config)
        model.encoder.load_state_dict(pretrained.encoder.state_dict())
        return model

    # ------------------------------------------------------------------ the network

    def frame_mask(self, lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
        """100 Hz validity mask from sample lengths."""
        return frame_mask_from_lengths(lengths, n_frames, self.config.mel.hop_length)

    def bottleneck_features(self, mel: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Lower encoder → proj_in (→ normalisation): the (B, T25, bottleneck_dim) features stage 3 quantizes."""
        token_mask = self.encoder.downsample_mask(frame_mask)
        x = self.encoder.forward_lower(self.encoder.embed(mel, frame_mask), token_mask)
        return self.bottleneck_norm(self.proj_in(x))

    def decode_bottleneck(self, z: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """proj_out → upper encoder: what the heads read."""
        return self.encoder.forward_upper(self.proj_out(z), token_mask)

    def infer(self, mixture: torch.Tensor, length: torch.Tensor | None = None,
              heads: Collection[str] | None = None) -> dict:
        """Everything but the losses: ``{"outputs": {head: output}, "mel", "frame_mask", "token_mask",
        "noised"}``. The bottleneck noise acts only in training mode, so in eval mode this is the
        clean network that evaluation, the notebooks and :class:`duotok.DuoTok` use. ``heads`` limits
        the outputs to those heads (``("mask",)`` to separate: the others cost a third of the time)."""
        if heads is not None and not set(heads) <= set(self.heads):
            raise ValueError(f"unknown heads {sorted(set(heads) - set(self.heads))}; this model has "
                             f"{sorted(self.heads)}")
        if length is None:
            length = torch.full((mixture.shape[0],), mixture.shape[-1], device=mixture.device)
        mel = self.logmel(mixture)
        frame_mask = self.frame_mask(length, mel.shape[-1])
        token_mask = self.encoder.downsample_mask(frame_mask)
        z = self.bottleneck_features(mel, frame_mask)
        z, noised = self.noise(z, token_mask)
        h = self.decode_bottleneck(z, token_mask)
        wanted = [name for name in self.heads if heads is None or name in heads]
        mixture_mag = self.mixture_magnitude(mixture) if "mask" in wanted else None
        outputs = {name: self.heads[name](h, mixture_mag) if name == "mask" and self.config.mask_spectrum
                   else self.heads[name](h) for name in wanted}
        return {"outputs": outputs, "mel": mel, "frame_mask": frame_mask, "token_mask": token_mask,
                "noised": noised, "mixture_mag": mixture_mag}

    def mixture_magnitude(self, mixture: torch.Tensor) -> torch.Tensor:
        """``|STFT|`` ``(B, F, T100)`` of the mixture on the mask head's grid."""
        m = self.config.mel
        return magnitude(stft(mixture, m.n_fft, m.hop_length, m.win_length))

    def forward(self, mixture: torch.Tensor, length: torch.Tensor, stems: torch.Tensor | None = None,
                chroma: torch.Tensor | None = None, lyrics: torch.Tensor | None = None,
                lyrics_lengths: torch.Tensor | None = None, has_lyrics: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, dict[str, float]]:
        run = self.infer(mixture, length)
        outputs, mel, frame_mask = run["outputs"], run["mel"], run["frame_mask"]
        losses = self.losses(outputs, mel, frame_mask, run["token_mask"], run["mixture_mag"], stems, chroma,
                             lyrics, lyrics_lengths, has_lyrics)
        total, metrics = weighted_total(losses, self.config.heads)
        metrics["noised_fraction"] = float(run["noised"].float().mean())
        if "chroma" in outputs and chroma is not None:
            metrics.update({f"chroma_{k}": v for k, v in chroma_metrics(outputs["chroma"], chroma, frame_mask).items()})
        return total, metrics

    def losses(self, outputs, mel, frame_mask, token_mask, mix_mag, stems, chroma, lyrics, lyrics_lengths,
               has_lyrics) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if "mel" in outputs:
            target = self.encoder.normalize_masked(mel, frame_mask)
            losses["mel"] = mel_l1_loss(outputs["mel"], target, frame_mask)
        if "chroma" in outputs and chroma is not None:
            losses["chroma"] = chroma_loss(outputs["chroma"], chroma, frame_mask)
        if "mask" in outputs and stems is not None:
            m = self.config.mel
            stem_mags = magnitude(stft(stems, m.n_fft, m.hop_length, m.win_length))
            losses["mask"] = mask_loss(outputs["mask"], mix_mag, stem_mags, frame_mask)
        if "lyrics" in outputs and lyrics is not None and has_lyrics is not None and bool(has_lyrics.any()):
            keep = has_lyrics.to(torch.bool)
            losses["lyrics"] = ctc_loss(outputs["lyrics"][keep], token_mask[keep].sum(dim=1), lyrics[keep],
                                        lyrics_lengths[keep])
        return losses
