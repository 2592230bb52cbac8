"""Stage 3: dual-codebook SimVQ with hard routing (paper, Fig. 4).

    vocal stem mel ─┐                    ┌ route 0 → proj_in → SimVQ (vocal codebook) → proj_out ┐
                    ├→ frozen lower enc. ┤                                                         ├→ upper enc. → heads
    accomp. mel ────┘   (one batch)      └ route 1 → proj_in → SimVQ (accomp. codebook) → proj_out ┘

The lower encoder is frozen (stage 2's), so the codebooks quantize a fixed representation; both
tracks go through it in one batch of 2B items; the route is known (it is which stem an item is), so
a vocal frame can never use the accompaniment codebook. The upper encoder and the chroma, mel and
lyrics heads (no mask head) start from stage 2 and keep the tokens semantic. Each track is
supervised with its own targets: its own mel, its own chroma (vocal notes vs bass + other), and
lyrics for the vocal track only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from duotok.audio.features import LogMel, frame_mask_from_lengths
from duotok.io.checkpoint import PretrainedMixin
from duotok.models.bestrq import MelConfig
from duotok.models.encoder import DuoEncoder, EncoderConfig
from duotok.models.heads import (
    build_heads,
    chroma_loss,
    chroma_metrics,
    ctc_loss,
    mel_l1_loss,
    weighted_total,
)
from duotok.models.multitask import MultiTaskModel
from duotok.quantization.base import QuantizedResult
from duotok.quantization.dual import TRACKS, DualCodebookQuantizer, expand_route
from duotok.text import CharVocab

VOCAL, ACCOMPANIMENT = 0, 1


@dataclass
class DualHeadsConfig:
    lyrics: bool = True
    mel: bool = True
    chroma: bool = True
    lyrics_weight: float = 0.1
    mel_weight: float = 1.0
    chroma_weight: float = 1.0
    vq_weight: float = 1.0


@dataclass
class DualTrackConfig:
    #: What checkpoints written before a field existed were trained with (see ``config_from_dict``).
    LEGACY_VALUES: ClassVar[dict[str, object]] = {"bottleneck_norm": "none", "codebook_init": "random",
                                                  "codebook_lookup": "l2", "codebook_shrinkage": 0.0,
                                                  "lyrics_context": 0}

    mel: MelConfig = field(default_factory=MelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    bottleneck_dim: int = 64
    bottleneck_norm: str = "none"   # stage 2's (finetune.model.bottleneck_norm): layer | none
    lyrics_context: int = 0         # stage 2's (finetune.model.lyrics_context): the shared lyrics head's shape
    codebook_sizes: tuple[int, int] = (1024, 1024)
    beta: float = 0.25
    quantizer_seed: int = 0
    codebook_init: str = "random"   # random: SimVQ's own start; data: mean/covariance of the inputs (init_codebooks)
    codebook_lookup: str = "l2"     # l2 (SimVQ as published) | cosine: directions of standardised features (issue 17)
    codebook_shrinkage: float = 0.0  # data start: covariance blended with its isotropic part (1 = no whitening)
    heads: DualHeadsConfig = field(default_factory=DualHeadsConfig)
    vocab_size: int = len(CharVocab())


def stack_tracks(vocals: torch.Tensor, accompaniment: torch.Tensor, length: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, T)`` vocals and accompaniment → one ``(2B, T)`` batch, its route (vocal rows first) and
    lengths: how both tracks share one pass through the frozen lower encoder."""
    b = vocals.shape[0]
    if accompaniment.shape != vocals.shape:
        raise ValueError(f"vocals {tuple(vocals.shape)} and accompaniment {tuple(accompaniment.shape)} differ in shape")
    if length is None:
        length = torch.full((b,), vocals.shape[-1], device=vocals.device)
    route = torch.cat([torch.full((b,), VOCAL), torch.full((b,), ACCOMPANIMENT)]).to(vocals.device)
    return torch.cat([vocals, accompaniment], dim=0), route, torch.cat([length, length])


class DualTrackModel(nn.Module, PretrainedMixin):
    config_class = DualTrackConfig

    def __init__(self, config: DualTrackConfig | None = None):
        super().__init__()
        config = config or DualTrackConfig()
        if config.codebook_init not in ("random", "data"):
            raise ValueError(f"codebook_init must be 'random' or 'data', got {config.codebook_init!r}")
        self.config = config
        dim = config.encoder.dim
        self.logmel = LogMel(**vars(config.mel))
        self.encoder = DuoEncoder(config.encoder)
        self.encoder.freeze_lower()
        self.quantizer = DualCodebookQuantizer(dim, config.bottleneck_dim, config.codebook_sizes, beta=config.beta,
                                               seed=config.quantizer_seed, norm=config.bottleneck_norm,
                                               lookup=config.codebook_lookup)
        self.heads = build_heads(tuple(n for n in ("lyrics", "mel", "chroma") if getattr(config.heads, n)), dim,
                                 n_mels=config.mel.n_mels, vocab_size=config.vocab_size,
                                 factor=config.encoder.downsample, lyrics_context=config.lyrics_context)

    @classmethod
    def from_finetune(cls, stage2: MultiTaskModel, config: DualTrackConfig) -> DualTrackModel:
        """Encoder (lower frozen, upper trainable) and the shared heads from stage 2; both branches'
        projections start as stage 2's proj_in / proj_out (same bottleneck, so the codebooks first
        quantize exactly what the stage-2 upper blocks learned to read)."""
        if stage2.config.encoder != config.encoder or stage2.config.mel != config.mel:
            raise ValueError("stage-3 encoder/mel config differs from the stage-2 checkpoint's")
        if stage2.config.bottleneck_norm != config.bottleneck_norm:
            raise ValueError(f"bottleneck_norm {config.bottleneck_norm!r} differs from stage 2's "
                             f"{stage2.config.bottleneck_norm!r}")
        if stage2.config.lyrics_context != config.lyrics_context:
            raise ValueError(f"lyrics_context {config.lyrics_context} differs from stage 2's {stage2.config.lyrics_context}")
        if stage2.config.bottleneck_dim != config.bottleneck_dim:
            raise ValueError(f"bottleneck_dim {config.bottleneck_dim} differs from stage 2's "
                             f"{stage2.config.bottleneck_dim}")
        model = cls(config)
        model.encoder.load_state_dict(stage2.encoder.state_dict())
        model.encoder.freeze_lower()
        for branch in model.quantizer.branches:
            branch.proj_in.load_state_dict(stage2.proj_in.state_dict())
            branch.proj_out.load_state_dict(stage2.proj_out.state_dict())
        for name, head in model.heads.items():
            if name in stage2.heads:
                head.load_state_dict(stage2.heads[name].state_dict())
        return model

    @torch.no_grad()
    def init_codebooks(self, audio: torch.Tensor, route: torch.Tensor,
                       lengths: torch.Tensor | None = None) -> dict[str, int]:
        """The data-dependent codebook start (``codebook_init: data``): each branch's SimVQ is set to the
        mean and covariance of its own track's inputs (the frozen lower encoder, then that branch's
        ``proj_in``) on single-track ``audio`` ``(N, samples)`` with ``route`` ``(N,)``; a tied
        (shared) codebook is fitted to both tracks. Returns the frames each branch was fitted on."""
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], device=audio.device)
        mel = self.logmel(audio)
        frame_mask = self.frame_mask(lengths, mel.shape[-1])
        token_mask = self.encoder.downsample_mask(frame_mask)
        lower = self.encoder.forward_lower(self.encoder.embed(mel, frame_mask), token_mask)
        route = expand_route(route, lower.shape[0], lower.shape[1], lower.device)
        branches = self.quantizer.branches
        groups = [(TRACKS, route >= 0)] if branches[0] is branches[1] else \
            [((name,), route == k) for k, name in enumerate(TRACKS)]
        fitted: dict[str, int] = {}
        for names, selected in groups:
            rows = selected & token_mask
            branch = branches[TRACKS.index(names[0])]
            branch.vq.init_from_data(branch.project(lower[rows]), shrinkage=self.config.codebook_shrinkage)
            fitted.update({name: int(rows.sum()) for name in names})
        return fitted

    # ------------------------------------------------------------------ tokenizer-facing pieces

    def frame_mask(self, lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
        """100 Hz validity mask from sample lengths."""
        return frame_mask_from_lengths(lengths, n_frames, self.config.mel.hop_length)

    def quantize(self, audio: torch.Tensor, route: torch.Tensor, lengths: torch.Tensor | None = None,
                 ) -> tuple[QuantizedResult, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Audio (N, samples) of single tracks and their route (N,) → (quantized result, log-mel,
        100 Hz frame mask, 25 Hz token mask). ``result.codes`` are the tokens."""
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], device=audio.device)
        mel = self.logmel(audio)
        frame_mask = self.frame_mask(lengths, mel.shape[-1])
        token_mask = self.encoder.downsample_mask(frame_mask)
        with torch.no_grad():  # the lower encoder is frozen: no graph needed below the codebooks
            lower = self.encoder.forward_lower(self.encoder.embed(mel, frame_mask), token_mask)
        return self.quantizer(lower, route, token_mask), mel, frame_mask, token_mask

    def infer(self, audio: torch.Tensor, route: torch.Tensor, lengths: torch.Tensor | None = None) -> dict:
        """Quantize single tracks and run the upper encoder and heads: ``{"result", "outputs", "mel",
        "frame_mask", "token_mask"}`` (no losses) — for evaluation and the notebooks."""
        result, mel, frame_mask, token_mask = self.quantize(audio, route, lengths)
        h = self.encoder.forward_upper(result.quantized, token_mask)
        return {"result": result, "outputs": {name: head(h) for name, head in self.heads.items()}, "mel": mel,
                "frame_mask": frame_mask, "token_mask": token_mask}

    def forward(self, vocals: torch.Tensor, accompaniment: torch.Tensor, length: torch.Tensor,
                chroma_vocals: torch.Tensor | None = None, chroma_accompaniment: torch.Tensor | None = None,
                lyrics: torch.Tensor | None = None, lyrics_lengths: torch.Tensor | None = None,
                has_lyrics: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        b = vocals.shape[0]
        run = self.infer(*stack_tracks(vocals, accompaniment, length))
        result, mel, frame_mask, token_mask = run["result"], run["mel"], run["frame_mask"], run["token_mask"]
        outputs = run["outputs"]
        losses: dict[str, torch.Tensor] = {"vq": result.loss}
        if "mel" in outputs:
            target = self.encoder.normalize_masked(mel, frame_mask)
            losses["mel"] = mel_l1_loss(outputs["mel"], target, frame_mask)
        chroma = None
        if chroma_vocals is not None and chroma_accompaniment is not None:
            chroma = torch.cat([chroma_vocals, chroma_accompaniment], dim=0)
        if "chroma" in outputs and chroma is not None:
            losses["chroma"] = chroma_loss(outputs["chroma"], chroma, frame_mask)
        if "lyrics" in outputs and lyrics is not None and has_lyrics is not None and bool(has_lyrics.any()):
            keep = has_lyrics.to(torch.bool)  # vocal items only: the first b rows
            losses["lyrics"] = ctc_loss(outputs["lyrics"][:b][keep], token_mask[:b][keep].sum(dim=1),
                                        lyrics[keep], lyrics_lengths[keep])
        total, metrics = weighted_total(losses, self.config.heads)
        metrics.update({k: float(v) for k, v in result.metrics.items()})
        if "chroma" in outputs and chroma is not None:
            for name, rows in zip(TRACKS, (slice(0, b), slice(b, 2 * b)), strict=True):
                m = chroma_metrics(outputs["chroma"][rows], chroma[rows], frame_mask[rows])
                metrics[f"{name}/chroma_accuracy"] = m["accuracy"]
        return total, metrics
