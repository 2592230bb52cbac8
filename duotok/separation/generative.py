"""Separation as token generation (SPEC §3): a mixture encoder gives the prefix of a decoder-only
LLaMA-style language model that generates the RVQ codec tokens of the four stems, one stem after
another; the codec's decoder renders them.

Sequence (cross-track, the paper's method)::

    [prefix: mixture encoder, T positions] [BOS_s1] d1_0 … d1_{S-1} [BOS_s2] d2_0 … d2_{S-1} … [BOS_s4] …

``dj`` are stem ``j``'s first ``K`` codebooks in the MusicGen delay pattern (:mod:`.stem_tokens`):
``S = T + K - 1`` steps, each one sequence position whose input is the *sum* of the ``K`` codebook
embeddings of the previous step and whose output feeds ``K`` heads that predict the ``K`` tokens of
the current step. The position after ``BOS_j`` predicts step 0; the input ``dj_{S-1}`` predicts
nothing of stem ``j`` but is kept, so the next stem sees the whole previous stem. A learned
stem-type embedding (0 = prefix, 1 + index in :data:`~.base.STEMS` = that stem) is added to every
position, so the model knows which stem it writes whatever the order (``stem_order`` is an
ablation). The loss (label smoothing 0.1) covers stem tokens only — never the prefix, never the
deterministic pad cells of the delay pattern.

``cross_track = False`` (the paper's ablation) gives every stem its own sequence
``[prefix] [BOS_j] dj …``: a stem is then conditioned on the mixture only, at training and at
generation time (the stems become rows of one batch).

Mixture encoders (``encoder``, an ablation of the paper):

* ``"conformer"`` — learnable: log-mel at the codec's hop (50 Hz, one frame per token frame) → a small
  Conformer (:mod:`.conformer`) → a linear map to the LM width;
* ``"frozen_ssl"`` — the frozen stage-1 BEST-RQ encoder (:class:`~duotok.models.bestrq.BestRQModel`)
  at 25 Hz, repeated ×2 to 50 Hz, then a learned linear map;
* ``"mixture_tokens"`` — no encoder: the codec's first ``K`` codebooks of the mixture, embedded with
  the stem tokens' own tables (the mixture and its stems live in the same codec space; sharing tells
  the LM so from the first step), not delayed (the whole prefix is known at once).

Why ``transformers.LlamaModel`` fed with ``inputs_embeds`` (its vocabulary table is removed): the
paper's LM is LLaMA-style (RMSNorm, RoPE, SwiGLU), and its KV cache (``past_key_values``) makes each
generated step cost one position. No dropout (attention dropout would disable PyTorch's fused CPU
attention kernel). The heads run in float32 whatever the autocast dtype (a 1024-way softmax in bf16
loses the small probabilities that top-p sampling and the loss depend on).

Padding in a batch (a song shorter than the crop): each row is *packed* — its real positions first, in
order, all padding at the end — so a plain causal mask is exact, SDPA's fast causal path applies,
and a row's relative layout (RoPE) is the one generation will see for a song of that length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from duotok.audio.features import LogMel
from duotok.codecs.rvq import RVQCodecModel
from duotok.io.checkpoint import PretrainedMixin
from duotok.models.bestrq import BestRQConfig, BestRQModel
from duotok.separation.base import STEMS, check_stems
from duotok.separation.conformer import ConformerConfig, ConformerEncoder
from duotok.separation.stem_tokens import apply_delay, decode_stems, delay_pad_mask, undo_delay

if TYPE_CHECKING:                      # imported where a model is built: ≈ 5 s that stages without one skip
    from transformers import DynamicCache

__all__ = [
    "ENCODERS",
    "IGNORE_INDEX",
    "GenerativeSeparator",
    "GenerativeSeparatorConfig",
    "TokenLMSeparator",
    "generative_loss",
    "sample_tokens",
]

ENCODERS = ("conformer", "frozen_ssl", "mixture_tokens")
IGNORE_INDEX = -100
#: Fixed affine map of natural-log mel power to O(1) inputs (floor ln 1e-5 ≈ -11.5, loud bins ≈ +5);
#: a learned projection follows, so only the order of magnitude matters. Per-utterance normalisation
#: would hide the mixture's loudness, which the stem tokens encode.
MEL_CENTER, MEL_SCALE = -4.0, 4.0


@dataclass
class GenerativeSeparatorConfig:
    """Sizes and choices of :class:`GenerativeSeparator` (``params.yaml: separation.generative.model``).

    ``n_codebooks`` (K) and ``codebook_size`` must match the RVQ codec's (its first K codebooks);
    ``sample_rate`` / ``hop_length`` its rate and samples per token (checked where the codec is
    given). ``max_frames`` is the longest stem (in 50 Hz frames) one sequence may hold: longer
    mixtures are separated in chunks. ``ssl`` is filled from ``ssl_dir`` by :meth:`GenerativeSeparator.build`
    (kept in the config so a saved separator rebuilds without the SSL checkpoint)."""

    n_codebooks: int = 4
    codebook_size: int = 1024
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 3.0
    rope_theta: float = 10000.0
    encoder: str = "conformer"
    conformer: ConformerConfig = field(default_factory=lambda: ConformerConfig(input_dim=80, dim=192, n_layers=2,
                                                                               n_heads=4))
    mel_bins: int = 80
    mel_n_fft: int = 1024
    sample_rate: int = 16000
    hop_length: int = 320
    ssl_dir: str = ""
    ssl: BestRQConfig | None = None
    cross_track: bool = True
    stem_order: tuple[str, ...] = STEMS
    label_smoothing: float = 0.1
    max_frames: int = 500

    def __post_init__(self) -> None:
        self.stem_order = tuple(self.stem_order)
        for name in ("n_codebooks", "codebook_size", "dim", "n_layers", "n_heads", "mel_bins", "mel_n_fft",
                     "sample_rate", "hop_length", "max_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"generative.{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"generative.dim ({self.dim}) must split into n_heads ({self.n_heads}) even head dims")
        if self.encoder not in ENCODERS:
            raise ValueError(f"generative.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.encoder == "conformer" and self.conformer.input_dim != self.mel_bins:
            raise ValueError(f"conformer.input_dim ({self.conformer.input_dim}) must equal mel_bins ({self.mel_bins})")
        if sorted(self.stem_order) != sorted(STEMS) or len(set(self.stem_order)) != len(STEMS):
            raise ValueError(f"stem_order must be a permutation of {STEMS}, got {self.stem_order}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")

    @property
    def pad_id(self) -> int:
        """The delay pattern's pad id: one past the last token of a codebook (its own table row)."""
        return self.codebook_size

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def steps(self) -> int:
        """Delayed steps of a ``max_frames`` stem: ``max_frames + K - 1``."""
        return self.max_frames + self.n_codebooks - 1

    @property
    def max_positions(self) -> int:
        """Longest sequence: the prefix plus four stem blocks of ``1 + steps`` positions (cross-track)."""
        return self.max_frames + len(STEMS) * (1 + self.steps)


# --------------------------------------------------------------------------- mixture encoders


def _fit_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``(B, T', D)`` cut or zero-padded to ``frames`` along time (mel and SSL frame counts differ
    from the token count by the centred STFT's extra frame or the ×2 upsampling's rounding)."""
    if x.shape[1] >= frames:
        return x[:, :frames]
    return F.pad(x, (0, 0, 0, frames - x.shape[1]))


class _MelConformerPrefix(nn.Module):
    """Mixture audio → log-mel at the codec's hop (frame ``i`` centred on sample ``i·hop``, so mel
    frames and token frames share one 50 Hz grid) → Conformer → linear map to the LM width."""

    def __init__(self, config: GenerativeSeparatorConfig):
        super().__init__()
        self.logmel = LogMel(sample_rate=config.sample_rate, n_fft=config.mel_n_fft, hop_length=config.hop_length,
                             n_mels=config.mel_bins)
        self.conformer = ConformerEncoder(config.conformer)
        self.proj = nn.Linear(config.conformer.dim, config.dim)

    def forward(self, audio: torch.Tensor, frames: int, mask: torch.Tensor) -> torch.Tensor:
        mel = self.logmel(audio.float()).transpose(1, 2)                    # (B, N // hop + 1, n_mels)
        x = (_fit_frames(mel, frames) - MEL_CENTER) / MEL_SCALE
        return self.proj(self.conformer(x, mask))


class _FrozenSSLPrefix(nn.Module):
    """Mixture audio → the frozen BEST-RQ encoder (25 Hz) → repeated to the token rate → linear map.
    Frozen: no gradients, always in eval mode (its features are what stage 1 learned)."""

    def __init__(self, config: GenerativeSeparatorConfig):
        super().__init__()
        if config.ssl is None:
            raise ValueError("encoder 'frozen_ssl' needs the BEST-RQ config: build the model with "
                             "GenerativeSeparator.build(config) and config.ssl_dir set")
        ssl_rate = config.ssl.mel.sample_rate
        hop = config.ssl.mel.hop_length * config.ssl.encoder.downsample
        if ssl_rate != config.sample_rate or hop % config.hop_length:
            raise ValueError(f"the SSL encoder ({ssl_rate} Hz, {hop} samples per feature) must run at the codec's "
                             f"rate {config.sample_rate} Hz with a hop that is a multiple of {config.hop_length}")
        self.upsample = hop // config.hop_length
        self.hop = config.hop_length
        self.ssl = BestRQModel(config.ssl)
        self.ssl.requires_grad_(False)
        self.ssl.eval()
        self.proj = nn.Linear(config.ssl.encoder.dim, config.dim)

    def train(self, mode: bool = True) -> _FrozenSSLPrefix:
        super().train(mode)
        self.ssl.eval()
        return self

    def forward(self, audio: torch.Tensor, frames: int, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mel = self.ssl.logmel(audio.float())
            samples = mask.sum(dim=1) * self.hop
            frame_mask = self.ssl.frame_mask(samples.clamp_max(audio.shape[-1]), mel.shape[-1])
            feats = self.ssl.encoder(mel, frame_mask).float()
        up = feats.repeat_interleave(self.upsample, dim=1)
        return self.proj(_fit_frames(up, frames))


# --------------------------------------------------------------------------- sampling


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``(B, V)`` logits → ``(B,)`` token ids. ``temperature == 0`` is greedy (argmax); otherwise the
    distribution is tempered, cut to the ``top_k`` most likely tokens (0 = no cut), then to the
    smallest set whose probability reaches ``top_p`` (nucleus; the most likely token always stays),
    and sampled with ``generator`` so a seed reproduces a separation."""
    if temperature < 0 or top_k < 0 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"need temperature >= 0, top_k >= 0, 0 < top_p <= 1; got {temperature}, {top_k}, {top_p}")
    logits = logits.float()
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = (probs.cumsum(dim=-1) - probs) >= top_p          # mass before this token already reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[..., 0]


# --------------------------------------------------------------------------- the model


@dataclass
class _Layout:
    """One batch's sequence layout. ``embeds`` ``(R, N, D)`` packed; ``unpack`` ``(R, N)`` maps the
    unpacked position ``i`` to its packed index; ``block_starts`` the unpacked position of each stem
    block's BOS; ``targets`` ``(R, n_blocks, K, S)`` head classes (``IGNORE_INDEX`` where unscored);
    ``stems`` ``(R, n_blocks)`` the STEMS index of each block."""

    embeds: torch.Tensor
    unpack: torch.Tensor | None
    block_starts: list[int]
    targets: torch.Tensor
    stems: torch.Tensor


class GenerativeSeparator(nn.Module, PretrainedMixin):
    """Mixture encoder + LLaMA LM over delayed stem tokens (module docstring).

    ``forward(features, codes, lengths)`` → ``(loss, metrics)`` (teacher forcing; the Trainer's loss);
    :meth:`logits` the per-head logits of the same pass; :meth:`generate` the delayed stem tokens of a
    mixture, with the KV cache. ``features`` is mixture audio ``(B, N)`` for the ``conformer`` and
    ``frozen_ssl`` encoders (``N = T · hop``, zero-padded past a row's length) and the mixture's codec
    ids ``(B, K, T)`` for ``mixture_tokens``; ``codes`` ``(B, 4, K, T)`` the stems' ids in
    :data:`STEMS` order; ``lengths`` ``(B,)`` real frames per row (None = all ``T``)."""

    config_class = GenerativeSeparatorConfig

    def __init__(self, config: GenerativeSeparatorConfig | None = None):
        super().__init__()
        config = config or GenerativeSeparatorConfig()
        self.config = config
        k, v, d = config.n_codebooks, config.codebook_size, config.dim
        self.token_embed = nn.ModuleList(nn.Embedding(v + 1, d) for _ in range(k))   # row v = delay pad
        self.type_embed = nn.Embedding(1 + len(STEMS), d)                           # 0 = prefix
        self.bos = nn.Embedding(len(STEMS), d)
        self.heads = nn.ModuleList(nn.Linear(d, v) for _ in range(k))
        self.prefix_encoder: nn.Module | None = None
        if config.encoder == "conformer":
            self.prefix_encoder = _MelConformerPrefix(config)
        elif config.encoder == "frozen_ssl":
            self.prefix_encoder = _FrozenSSLPrefix(config)
        from transformers import LlamaConfig, LlamaModel

        llama = LlamaConfig(
            vocab_size=1, hidden_size=d, intermediate_size=int(round(d * config.mlp_ratio)),
            num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
            num_key_value_heads=config.n_heads, max_position_embeddings=config.max_positions,
            rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
            attention_dropout=0.0, use_cache=False, tie_word_embeddings=False, attn_implementation="sdpa",
            bos_token_id=None, eos_token_id=None, pad_token_id=None)
        self.lm = LlamaModel(llama)
        self.lm.embed_tokens = None    # inputs_embeds only: an unused table would break DDP
        self._init_weights()

    def _init_weights(self) -> None:
        """LLaMA's N(0, 0.02) for the tables and heads this class adds, so token, BOS, type and
        prefix inputs start on the scale the backbone's own initialisation assumes."""
        for module in (*self.token_embed, self.type_embed, self.bos, *self.heads):
            nn.init.normal_(module.weight, std=0.02)
        for head in self.heads:
            nn.init.zeros_(head.bias)

    @classmethod
    def build(cls, config: GenerativeSeparatorConfig) -> GenerativeSeparator:
        """A fresh model; for ``frozen_ssl``, the BEST-RQ config and weights are read from
        ``config.ssl_dir`` (its config is copied into ``config.ssl`` so the saved separator is
        self-contained)."""
        if config.encoder != "frozen_ssl":
            return cls(config)
        if not config.ssl_dir:
            raise ValueError("encoder 'frozen_ssl' needs ssl_dir: the stage-1 BEST-RQ checkpoint directory")
        ssl = BestRQModel.from_pretrained(config.ssl_dir)
        model = cls(replace(config, ssl=ssl.config))
        assert isinstance(model.prefix_encoder, _FrozenSSLPrefix)
        model.prefix_encoder.ssl.load_state_dict(ssl.state_dict())
        return model

    def train(self, mode: bool = True) -> GenerativeSeparator:
        super().train(mode)
        if self.prefix_encoder is not None:
            self.prefix_encoder.train(mode)   # keeps a frozen SSL encoder in eval mode
        return self

    # ------------------------------------------------------------------ embeddings

    @property
    def _order(self) -> list[int]:
        return [STEMS.index(s) for s in self.config.stem_order]

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """``(..., K, S)`` ids (pad id allowed) → ``(..., S, dim)``: the sum of the K codebook embeddings."""
        return sum(table(ids[..., k, :]) for k, table in enumerate(self.token_embed))  # type: ignore[return-value]

    def _bos(self, stems: torch.Tensor) -> torch.Tensor:
        """``(R,)`` STEMS indices → ``(R, 1, dim)`` BOS inputs (BOS of the stem + its type)."""
        return (self.bos(stems) + self.type_embed(stems + 1))[:, None]

    def prefix(self, features: torch.Tensor, lengths: torch.Tensor | None = None,
               n_frames: int | None = None) -> torch.Tensor:
        """``(B, T, dim)`` prefix embeddings (with the prefix type embedding) of the mixture."""
        c = self.config
        if c.encoder == "mixture_tokens":
            if features.dim() != 3 or features.shape[1] != c.n_codebooks:
                raise ValueError(f"encoder 'mixture_tokens' expects mixture ids (B, {c.n_codebooks}, T), "
                                 f"got {tuple(features.shape)}")
            x = self.embed_tokens(features.long().clamp(0, c.codebook_size))
        else:
            if features.dim() != 2:
                raise ValueError(f"encoder {c.encoder!r} expects mixture audio (B, N), got {tuple(features.shape)}")
            frames = n_frames if n_frames is not None else math.ceil(features.shape[-1] / c.hop_length)
            lengths = _lengths(lengths, features.shape[0], frames, features.device)
            mask = torch.arange(frames, device=features.device)[None] < lengths[:, None]
            assert self.prefix_encoder is not None
            x = self.prefix_encoder(features, frames, mask)
        return x + self.type_embed.weight[0]

    # ------------------------------------------------------------------ teacher forcing

    def _layout(self, features: torch.Tensor, codes: torch.Tensor, lengths: torch.Tensor | None) -> _Layout:
        c = self.config
        k = c.n_codebooks
        if codes.dim() != 4 or codes.shape[1] != len(STEMS) or codes.shape[2] != k:
            raise ValueError(f"codes must be (B, {len(STEMS)}, {k}, T) stem ids, got {tuple(codes.shape)}")
        b, _, _, t = codes.shape
        if t > c.max_frames:
            raise ValueError(f"{t} frames exceed max_frames={c.max_frames}")
        lengths = _lengths(lengths, b, t, codes.device)
        real_frame = torch.arange(t, device=codes.device)[None] < lengths[:, None]            # (B, T)
        codes = torch.where(real_frame[:, None, None], codes.long(), c.pad_id)[:, self._order]
        real_codes = codes[real_frame[:, None, None].expand_as(codes)]
        if bool(((real_codes < 0) | (real_codes >= c.codebook_size)).any()):
            raise ValueError(f"codes hold ids outside [0, {c.codebook_size}) at real frames")
        delayed = _delay(codes, c.pad_id)                                                     # (B, n, K, S)
        steps = delayed.shape[-1]
        prefix = self.prefix(features, lengths, n_frames=t)
        if prefix.shape[1] != t:
            raise ValueError(f"the mixture gives {prefix.shape[1]} prefix frames but the stems have {t}")
        order = torch.tensor(self._order, device=codes.device)
        # Block input j: BOS, then the embeddings of delayed steps 0 .. S-1 (the last predicts nothing).
        tok = self.embed_tokens(delayed) + self.type_embed(order + 1)[None, :, None]          # (B, n, S, D)
        bos = self._bos(order)[None].expand(b, -1, -1, -1)                                    # (B, n, 1, D)
        blocks = torch.cat([bos, tok], dim=2)                                                 # (B, n, S+1, D)
        block_real = torch.arange(steps + 1, device=codes.device)[None] < (lengths + k)[:, None]  # (B, S+1)
        targets = torch.where(delayed == c.pad_id, IGNORE_INDEX, delayed)
        if c.cross_track:
            seq = torch.cat([prefix, blocks.flatten(1, 2)], dim=1)
            real = torch.cat([real_frame, block_real.repeat(1, len(order))], dim=1)
            starts = [t + j * (steps + 1) for j in range(len(order))]
            stems = order[None].expand(b, -1)
        else:   # one sequence per stem: rows b·n + j
            n = len(order)
            seq = torch.cat([prefix.repeat_interleave(n, dim=0), blocks.flatten(0, 1)], dim=1)
            real = torch.cat([real_frame, block_real], dim=1).repeat_interleave(n, dim=0)
            starts = [t]
            targets = targets.flatten(0, 1)[:, None]
            stems = order.repeat(b)[:, None]
        packed, unpack = _pack(seq, real)
        return _Layout(packed, unpack, starts, targets, stems)

    def _hidden(self, layout: _Layout) -> torch.Tensor:
        """``(R, n_blocks, S, D)`` LM outputs at each block's predicting positions (BOS .. step S-2)."""
        if layout.embeds.shape[1] > self.config.max_positions:
            raise ValueError(f"sequence of {layout.embeds.shape[1]} positions exceeds {self.config.max_positions}")
        h = self.lm(inputs_embeds=layout.embeds).last_hidden_state
        if layout.unpack is not None:
            h = h.gather(1, layout.unpack[..., None].expand(-1, -1, h.shape[-1]))
        steps = layout.targets.shape[-1]
        return torch.stack([h[:, s : s + steps] for s in layout.block_starts], dim=1)

    def _head_logits(self, h: torch.Tensor) -> list[torch.Tensor]:
        with torch.autocast(device_type=h.device.type, enabled=False):
            return [head(h.float()) for head in self.heads]

    def logits(self, features: torch.Tensor, codes: torch.Tensor,
               lengths: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Teacher-forced ``([K × (R, n_blocks, S, V)], targets (R, n_blocks, K, S))``; blocks in
        ``stem_order`` (cross-track: ``R = B``, 4 blocks; otherwise ``R = 4B`` rows ``b·4 + j``, one
        block). Position ``s`` of a block predicts delayed step ``s``."""
        layout = self._layout(features, codes, lengths)
        return self._head_logits(self._hidden(layout)), layout.targets

    def forward(self, features: torch.Tensor, codes: torch.Tensor,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Label-smoothed cross-entropy over every scored stem token (all stems and codebooks pooled),
        and metrics: unsmoothed ``ce``, ``acc`` (top-1), ``ce_<stem>``, ``ce_k<k>``."""
        layout = self._layout(features, codes, lengths)
        h = self._hidden(layout)                                           # (R, n, S, D)
        targets = layout.targets.transpose(2, 3)                           # (R, n, S, K)
        scored = targets != IGNORE_INDEX
        keep = scored.any(dim=-1)                                          # positions with >= 1 target
        logits = self._head_logits(h[keep])                                # K × (P, V)
        tgt = targets[keep]                                                # (P, K)
        logp = torch.stack([lg.log_softmax(dim=-1) for lg in logits], dim=1)  # (P, K, V)
        valid = tgt != IGNORE_INDEX
        safe = tgt.clamp_min(0)
        nll = -logp.gather(-1, safe[..., None])[..., 0]
        smooth = -logp.mean(dim=-1)
        eps = self.config.label_smoothing
        count = valid.sum().clamp_min(1)
        loss = (((1 - eps) * nll + eps * smooth) * valid).sum() / count
        with torch.no_grad():
            metrics = {"ce": float((nll * valid).sum() / count),
                       "acc": float(((logp.argmax(-1) == tgt) & valid).sum() / count),
                       "scored_tokens": float(count)}
            stem_of = layout.stems[:, :, None].expand(-1, -1, keep.shape[-1])[keep]   # (P,)
            for i, name in enumerate(STEMS):
                sel = valid & (stem_of == i)[:, None]
                if bool(sel.any()):
                    metrics[f"ce_{name}"] = float((nll * sel).sum() / sel.sum())
            for k in range(nll.shape[1]):
                metrics[f"ce_k{k}"] = float((nll[:, k] * valid[:, k]).sum() / valid[:, k].sum().clamp_min(1))
        return loss, metrics

    # ------------------------------------------------------------------ generation

    def _step(self, inputs: torch.Tensor, cache: DynamicCache) -> list[torch.Tensor]:
        """Feed ``(R, m, D)`` new positions through the cached LM; the K heads' ``(R, V)`` logits at
        the last one."""
        h = self.lm(inputs_embeds=inputs, past_key_values=cache, use_cache=True).last_hidden_state[:, -1]
        return self._head_logits(h)

    @torch.no_grad()
    def generate(
        self,
        mixture_features: torch.Tensor,
        n_frames: int | None = None,
        temperature: float = 0.8,
        top_k: int = 50,
        top_p: float = 0.95,
        generator: torch.Generator | None = None,
        forced: torch.Tensor | None = None,
        return_logits: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Delayed stem ids ``(B, 4, K, n_frames + K - 1)`` in :data:`STEMS` order, generated step by
        step with the KV cache (each step feeds one position), the stems in ``stem_order`` one after
        another (cross-track) or as independent rows (``cross_track=False``). Delay cells hold the pad
        id and are never sampled; every other cell is drawn per codebook head by :func:`sample_tokens`.

        ``forced`` ``(B, 4, K, n_frames)`` (STEMS order) feeds the given tokens instead of samples:
        teacher forcing through the generation path, for scoring and for checking it against
        :meth:`logits`; with ``return_logits`` the per-step head logits come back too, as
        ``[K × (R, n_blocks, S, V)]`` laid out like :meth:`logits`."""
        was_training = self.training
        self.eval()     # dropout off while generating; the caller's mode is restored
        try:
            return self._generate(mixture_features, n_frames, temperature, top_k, top_p, generator, forced,
                                  return_logits)
        finally:
            self.train(was_training)

    def _generate(self, mixture_features: torch.Tensor, n_frames: int | None, temperature: float, top_k: int,
                  top_p: float, generator: torch.Generator | None, forced: torch.Tensor | None,
                  return_logits: bool) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        c = self.config
        b = mixture_features.shape[0]
        if n_frames is None:
            n_frames = (mixture_features.shape[-1] if c.encoder == "mixture_tokens"
                        else math.ceil(mixture_features.shape[-1] / c.hop_length))
        if not 1 <= n_frames <= c.max_frames:
            raise ValueError(f"n_frames must be in [1, max_frames={c.max_frames}], got {n_frames}: separate longer "
                             "mixtures in chunks")
        device = mixture_features.device
        k, steps, pad = c.n_codebooks, n_frames + c.n_codebooks - 1, c.pad_id
        pads = delay_pad_mask(k, n_frames).tolist()                                  # [K][S] bool
        forced_delayed = None
        if forced is not None:
            if forced.shape != (b, len(STEMS), k, n_frames):
                raise ValueError(f"forced must be ({b}, {len(STEMS)}, {k}, {n_frames}), got {tuple(forced.shape)}")
            forced_delayed = _delay(forced.long().to(device), pad)                  # (B, 4, K, S)
        prefix = self.prefix(mixture_features, None, n_frames)
        if prefix.shape[1] != n_frames:
            raise ValueError(f"the mixture gives {prefix.shape[1]} prefix frames, n_frames is {n_frames}")
        order = torch.tensor(self._order, device=device)
        if c.cross_track:
            rows, plan = b, [order[j].expand(b) for j in range(len(order))]
        else:
            rows, plan = b * len(order), [order.repeat(b)]
            prefix = prefix.repeat_interleave(len(order), dim=0)
        row_batch = torch.arange(rows, device=device) // (rows // b)
        out = torch.full((rows, len(plan), k, steps), pad, dtype=torch.long, device=device)
        logits_out: list[list[torch.Tensor]] = [[] for _ in range(k)]
        from transformers import DynamicCache

        cache = DynamicCache(config=self.lm.config)
        pending = prefix
        for j, stems in enumerate(plan):
            pending = torch.cat([pending, self._bos(stems)], dim=1)
            type_vec = self.type_embed(stems + 1)[:, None]
            for s in range(steps):
                logits = self._step(pending, cache)
                tokens = torch.full((rows, k), pad, dtype=torch.long, device=device)
                for q in range(k):
                    if return_logits:
                        logits_out[q].append(logits[q])
                    if pads[q][s]:
                        continue
                    if forced_delayed is not None:
                        tokens[:, q] = forced_delayed[row_batch, stems, q, s]
                    else:
                        tokens[:, q] = sample_tokens(logits[q], temperature, top_k, top_p, generator)
                out[:, j, :, s] = tokens
                pending = self.embed_tokens(tokens[:, :, None]) + type_vec           # (R, 1, D)
        result = _to_stems_order(out, b, order)
        if not return_logits:
            return result
        n_blocks = len(plan)
        stacked = [torch.stack(lq).view(n_blocks, steps, rows, -1).permute(2, 0, 1, 3) for lq in logits_out]
        return result, stacked


def _to_stems_order(out: torch.Tensor, b: int, order: torch.Tensor) -> torch.Tensor:
    """``(R, n_blocks, K, S)`` generated in ``stem_order`` → ``(B, 4, K, S)`` in :data:`STEMS` order."""
    n = len(order)
    per_batch = out.reshape(b, n, *out.shape[2:])      # cross-track: (B, n, ...); else rows b·n + j, one block
    result = torch.empty_like(per_batch)
    result[:, order] = per_batch
    return result


def _lengths(lengths: torch.Tensor | None, b: int, t: int, device: torch.device) -> torch.Tensor:
    if lengths is None:
        return torch.full((b,), t, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device).long().reshape(-1)
    if lengths.shape != (b,) or bool((lengths < 1).any()) or bool((lengths > t).any()):
        raise ValueError(f"lengths must be ({b},) values in [1, {t}], got {lengths.tolist()}")
    return lengths


def _delay(codes: torch.Tensor, pad_id: int) -> torch.Tensor:
    return apply_delay(codes, pad_id)


def _pack(seq: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Move each row's real positions to the front, in order (module docstring: why). Returns the
    packed sequence and, when anything moved, the map from unpacked positions to packed indices."""
    if bool(real.all()):
        return seq, None
    order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)     # packed index -> unpacked pos
    packed = seq.gather(1, order[..., None].expand(-1, -1, seq.shape[-1]))
    return packed, torch.argsort(order, dim=1)


def generative_loss(model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """The :class:`~duotok.train.loop.Trainer` loss: ``batch`` from
    :class:`~duotok.separation.train_generative.GenerativeCropDataset` (``features``, ``codes``,
    ``lengths``)."""
    return model(batch["features"], batch["codes"], batch["lengths"])


# --------------------------------------------------------------------------- the Separator view


class TokenLMSeparator:
    """The :class:`~duotok.separation.base.Separator` of the generative model: mixture ``(T,)`` →
    features (the audio, or its codec ids for ``mixture_tokens``) → :meth:`GenerativeSeparator.generate`
    → undo the delay → each stem's K codebooks decoded by the RVQ codec → four ``(T,)`` stems.

    Seeded: every call draws from a fresh ``torch.Generator`` seeded with ``seed``, so the same
    mixture always gives the same stems (``temperature=0`` is greedy)."""

    name = "token LM"

    def __init__(self, model: GenerativeSeparator, codec: RVQCodecModel, temperature: float = 0.8,
                 top_k: int = 50, top_p: float = 0.95, seed: int = 0):
        c = model.config
        problems = []
        if codec.config.rvq.codebook_size != c.codebook_size:
            problems.append(f"codebook size {codec.config.rvq.codebook_size} vs the model's {c.codebook_size}")
        if codec.config.rvq.n_codebooks < c.n_codebooks:
            problems.append(f"{codec.config.rvq.n_codebooks} codebooks, the model needs {c.n_codebooks}")
        if codec.samples_per_token != c.hop_length or codec.sample_rate != c.sample_rate:
            problems.append(f"{codec.sample_rate} Hz / hop {codec.samples_per_token} vs the model's "
                            f"{c.sample_rate} Hz / hop {c.hop_length}")
        if problems:
            raise ValueError("the codec does not fit the generative model: " + "; ".join(problems))
        self.model = model.eval()
        self.codec = codec.eval()
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike[str], codec_dir: str | os.PathLike[str],
                        **sampling: Any) -> TokenLMSeparator:
        return cls(GenerativeSeparator.from_pretrained(model_dir), RVQCodecModel.from_pretrained(codec_dir),
                   **sampling)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.as_tensor(mixture, dtype=torch.float32)
        if x.dim() != 1 or x.numel() == 0:
            raise ValueError(f"{self.name}: expected a non-empty mono (T,) mixture, got shape {tuple(x.shape)}")
        c = self.model.config
        n_frames = math.ceil(x.numel() / c.hop_length)
        if c.encoder == "mixture_tokens":
            features = self.codec.encode(x)[: c.n_codebooks][None]
        else:
            features = torch.nn.functional.pad(x, (0, n_frames * c.hop_length - x.numel()))[None]
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        delayed = self.model.generate(features.to(device), n_frames, self.temperature, self.top_k, self.top_p,
                                      generator)
        assert isinstance(delayed, torch.Tensor)
        codes = undo_delay(delayed[0].cpu(), pad_id=c.pad_id)                         # (4, K, T)
        audio = decode_stems(self.codec, codes, x.numel())
        return check_stems(dict(zip(STEMS, audio, strict=True)), x.numel(), self.name)

