"""A small decoder-only LM over parallel token codebooks, for the PPL@1024 evaluation (SPEC, "PPL@1024").

Why this shape: the SPEC measures how *predictable* a tokenizer's tokens are with a fixed, small LM,
so the LM must treat every codec alike. A frame of K parallel codebooks (K = 2 for Duo-Tok) enters as
K embeddings concatenated and projected to the model width, and leaves through K heads that predict
the next frame's K tokens in parallel (no delay pattern, so no codec gets intra-frame context another
lacks). The backbone is ``transformers.Qwen2Model`` (the SPEC's "Qwen2-style toolkit LM": RMSNorm,
RoPE, SwiGLU, biased QKV), fed with ``inputs_embeds`` so its own vocabulary is unused and removed.

Special ids live *inside* each codebook's table, so callers never build them
(:func:`build_lm_inputs` does): target codebook ``k`` with ``V_k`` tokens has ``V_k + 2`` rows —
``0..V_k-1`` tokens, ``V_k`` = SOS, ``V_k + 1`` = EOS (also the filler of padded input positions,
which no real position can see). Its head has ``V_k + 1`` classes: tokens, then EOS as class
``V_k`` (SOS is never a target, so the head's class space has no slot for it). Condition codebooks (protocol ii) have ``V_c + 1`` rows: tokens + SOS_c (SOS_c also fills
padding); they are never predicted.

Layouts, frame by frame::

    unconditional:  [SOS] x_1 ... x_T [EOS]
    conditional:    [SOS_c] c_1 ... c_T [SOS] x_1 ... x_T [EOS]

The condition is a prefix of the same time span (one condition frame per target frame, so it shares
the target's ``lengths``). Rows of a batch are packed left-aligned — the target follows the row's
*real* condition frames directly, and all padding sits at the end — so a plain causal mask is exact
for every row and SDPA's fast causal path applies (RoPE is relative, so a row's absolute offset does
not matter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from duotok.io.checkpoint import PretrainedMixin

__all__ = ["IGNORE_INDEX", "LMInputs", "TokenLM", "TokenLMConfig", "build_lm_inputs"]

#: Target id of positions that are never scored (padding), as ``F.cross_entropy`` expects.
IGNORE_INDEX = -100


@dataclass
class TokenLMConfig:
    """Sizes of a :class:`TokenLM`. ``codebook_sizes`` are the K predicted (target) codebooks;
    ``cond_codebook_sizes`` the condition codebooks of protocol (ii) — empty for the unconditional LM."""

    codebook_sizes: tuple[int, ...] = (1024, 1024)
    cond_codebook_sizes: tuple[int, ...] = ()
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    max_positions: int = 4096
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        self.codebook_sizes = tuple(int(v) for v in self.codebook_sizes)
        self.cond_codebook_sizes = tuple(int(v) for v in self.cond_codebook_sizes)
        if not self.codebook_sizes:
            raise ValueError("codebook_sizes must name at least one codebook")
        if min(self.codebook_sizes + self.cond_codebook_sizes) < 1:
            raise ValueError("every codebook needs at least one token")
        if self.dim < 1 or self.n_layers < 1 or self.n_heads < 1 or self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be a positive multiple of n_heads ({self.n_heads})")

    @property
    def conditional(self) -> bool:
        return bool(self.cond_codebook_sizes)


@dataclass
class LMInputs:
    """Id tensors of one batch with the special ids in place (see the module docstring).

    ``inputs`` (B, K, T+1): SOS, x_1..x_T (table ids); ``targets`` (B, K, T+1) head classes:
    x_1..x_L, EOS (class ``V_k``) at column L, ``IGNORE_INDEX`` after; ``cond_inputs`` (B, K_c, T+1): SOS_c, c_1..c_T (or None);
    ``lengths`` (B,): real frames per row. Column ``j`` of ``inputs`` predicts column ``j`` of ``targets``.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    cond_inputs: torch.Tensor | None = None

    def scored(self, score_from: int = 0, with_eos: bool = True) -> torch.Tensor:
        """(B, T+1) bool: positions whose target counts — real (EOS included when ``with_eos``) and at
        or after ``score_from`` (the first ``score_from`` target frames are a given prefix)."""
        j = torch.arange(self.inputs.shape[-1], device=self.inputs.device)
        limit = self.lengths[:, None] + (1 if with_eos else 0)
        return (j[None] < limit) & (j[None] >= score_from)


def _frames_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    return torch.arange(t, device=lengths.device)[None] < lengths[:, None]


def _check_ids(ids: torch.Tensor, sizes: tuple[int, ...], mask: torch.Tensor, what: str) -> None:
    """Real (unpadded) ids must be tokens of their codebook; padding may hold anything."""
    if ids.dim() != 3 or ids.shape[1] != len(sizes):
        raise ValueError(f"{what} must be (B, {len(sizes)}, T) ids, got shape {tuple(ids.shape)}")
    if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{what} must be an integer tensor, got {ids.dtype}")
    real = torch.where(mask[:, None, :], ids, torch.zeros((), dtype=ids.dtype, device=ids.device))
    limits = torch.tensor(sizes, device=ids.device)[None, :, None]
    if ids.numel() and (bool((real < 0).any()) or bool((real >= limits).any())):
        raise ValueError(f"{what} holds ids outside [0, codebook size) {sizes} at real positions")


def build_lm_inputs(
    ids: torch.Tensor,
    codebook_sizes: tuple[int, ...],
    lengths: torch.Tensor | None = None,
    cond: torch.Tensor | None = None,
    cond_codebook_sizes: tuple[int, ...] = (),
) -> LMInputs:
    """Add SOS/EOS (and SOS_c) to ``ids`` (B, K, T) and ``cond`` (B, K_c, T); frames at or past a row's
    length (``lengths`` (B,), default all T) are padding. Only real ids are validated."""
    b, _, t = ids.shape if ids.dim() == 3 else (0, 0, 0)
    if lengths is None:
        lengths = torch.full((b,), t, dtype=torch.long, device=ids.device)
    lengths = lengths.to(device=ids.device, dtype=torch.long)
    if lengths.shape != (b,) or bool((lengths < 0).any()) or bool((lengths > t).any()):
        raise ValueError(f"lengths must be (B,) = ({b},) values in [0, {t}], got {lengths.tolist()}")
    mask = _frames_mask(lengths, t)
    _check_ids(ids, codebook_sizes, mask, "ids")
    ids = ids.long()
    sizes = torch.tensor(codebook_sizes, device=ids.device)[None, :, None]
    sos = sizes.expand(b, -1, 1)
    body = torch.where(mask[:, None, :], ids, sizes + 1)  # padding inputs -> EOS row
    inputs = torch.cat([sos, body], dim=-1)
    targets = torch.where(mask[:, None, :].expand_as(ids), ids, IGNORE_INDEX)
    targets = torch.cat([targets, torch.full_like(sos, IGNORE_INDEX)], dim=-1)
    # Head classes have no SOS, so EOS is class V_k there (row V_k + 1 of the input table).
    targets.scatter_(-1, lengths[:, None, None].expand(-1, len(codebook_sizes), 1), sos)
    cond_inputs = None
    if cond_codebook_sizes:
        if cond is None:
            raise ValueError("this LM is conditional: pass cond (B, K_c, T)")
        if cond.dim() != 3 or cond.shape[0] != b or cond.shape[-1] != t:
            raise ValueError(f"cond must be (B={b}, K_c, T={t}) (same time span), got {tuple(cond.shape)}")
        _check_ids(cond, cond_codebook_sizes, mask, "cond")
        csizes = torch.tensor(cond_codebook_sizes, device=ids.device)[None, :, None]
        csos = csizes.expand(b, -1, 1)
        cond_inputs = torch.cat([csos, torch.where(mask[:, None, :], cond.long(), csizes)], dim=-1)
    elif cond is not None:
        raise ValueError("this LM is unconditional (cond_codebook_sizes is empty) but cond was given")
    return LMInputs(inputs, targets, lengths, cond_inputs)


class _FrameEmbedding(nn.Module):
    """K tables of width ``dim``, concatenated and projected to ``dim``: one vector per frame."""

    def __init__(self, rows: tuple[int, ...], dim: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(r, dim) for r in rows)
        self.proj = nn.Linear(len(rows) * dim, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, K, T) -> (B, T, dim)
        return self.proj(torch.cat([table(ids[:, k]) for k, table in enumerate(self.tables)], dim=-1))


class TokenLM(nn.Module, PretrainedMixin):
    """Qwen2-style decoder over frames of K parallel codebooks (optionally conditioned on a prefix).

    ``forward(ids, lengths, cond, score_from)`` → ``(loss, metrics)``: the training loss, mean CE over
    every scored position (EOS after the last real frame included) and codebook. :meth:`token_nll` is
    the evaluation count: summed CE per codebook over real token targets only (no EOS).
    """

    config_class = TokenLMConfig

    def __init__(self, config: TokenLMConfig):
        super().__init__()
        self.config = config
        self.embed = _FrameEmbedding(tuple(v + 2 for v in config.codebook_sizes), config.dim)
        self.cond_embed = (
            _FrameEmbedding(tuple(v + 1 for v in config.cond_codebook_sizes), config.dim)
            if config.conditional
            else None
        )
        # Imported here, not with the module: ≈ 5 s that stages which build no LM skip.
        from transformers import Qwen2Config, Qwen2Model

        qwen = Qwen2Config(
            vocab_size=1,
            hidden_size=config.dim,
            intermediate_size=int(config.dim * config.mlp_ratio),
            num_hidden_layers=config.n_layers,
            num_attention_heads=config.n_heads,
            num_key_value_heads=config.n_heads,
            max_position_embeddings=config.max_positions,
            rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
            attention_dropout=0.0,
            use_cache=False,
            tie_word_embeddings=False,
            attn_implementation="sdpa",
        )
        self.backbone = Qwen2Model(qwen)
        # We always pass inputs_embeds: the vocabulary table would be a parameter without gradient,
        # which DDP (find_unused_parameters=False) rejects.
        self.backbone.embed_tokens = None
        self.heads = nn.ModuleList(nn.Linear(config.dim, v + 1) for v in config.codebook_sizes)

    # ------------------------------------------------------------------ layout

    def prepare(
        self, ids: torch.Tensor, lengths: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> LMInputs:
        """:func:`build_lm_inputs` with this model's codebook sizes."""
        c = self.config
        return build_lm_inputs(ids, c.codebook_sizes, lengths, cond, c.cond_codebook_sizes)

    def hidden(self, batch: LMInputs) -> torch.Tensor:
        """(B, T+1, dim) final hidden state at each target input position (SOS, x_1..x_T)."""
        x = self.embed(batch.inputs)
        n = x.shape[1]
        if batch.cond_inputs is None:
            seq, take = x, None
        else:
            assert self.cond_embed is not None
            stacked = torch.cat([self.cond_embed(batch.cond_inputs), x], dim=1)  # (B, 2n, D)
            # Row b: condition columns 0..L_b, then target columns; padding (clamped index) at the end.
            p = torch.arange(2 * n, device=x.device)[None]
            lengths = batch.lengths[:, None]
            src = torch.where(p <= lengths, p, (p + (n - 1) - lengths).clamp_max(2 * n - 1))
            seq = stacked.gather(1, src[..., None].expand(-1, -1, x.shape[-1]))
            take = (torch.arange(n, device=x.device)[None] + lengths + 1).clamp_max(2 * n - 1)
        if seq.shape[1] > self.config.max_positions:
            raise ValueError(f"sequence of {seq.shape[1]} positions exceeds max_positions "
                             f"{self.config.max_positions}")
        h = self.backbone(inputs_embeds=seq).last_hidden_state
        if take is not None:
            h = h.gather(1, take[..., None].expand(-1, -1, h.shape[-1]))
        return h

    def logits(
        self, ids: torch.Tensor, lengths: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per codebook ``(B, T+1, V_k+1)`` logits; position ``j`` predicts frame ``j+1`` (1-based),
        position ``L`` the EOS. For inspection and tests; training selects scored positions first."""
        h = self.hidden(self.prepare(ids, lengths, cond))
        return [head(h) for head in self.heads]

    def _frame_ce(self, batch: LMInputs, scored: torch.Tensor) -> torch.Tensor:
        """(N, K) CE of each of the N ``scored`` positions (row-major order of ``scored``) for each
        codebook, in float32 whatever the autocast dtype."""
        h = self.hidden(batch)[scored]
        return torch.stack([F.cross_entropy(head(h).float(), batch.targets[:, k][scored], reduction="none")
                            for k, head in enumerate(self.heads)], dim=-1)

    def _nll(self, batch: LMInputs, scored: torch.Tensor) -> torch.Tensor:
        """(K,) summed CE over ``scored`` positions, in float32 whatever the autocast dtype."""
        return self._frame_ce(batch, scored).sum(dim=0)

    # ------------------------------------------------------------------ losses

    def forward(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        score_from: int = 0,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        batch = self.prepare(ids, lengths, cond)
        scored = batch.scored(_check_score_from(score_from), with_eos=True)
        count = scored.sum()
        per_codebook = self._nll(batch, scored) / count.clamp_min(1)
        loss = per_codebook.mean()
        metrics = {f"ce_{k}": float(v) for k, v in enumerate(per_codebook.detach())}
        metrics["scored_frames"] = float(count)
        return loss, metrics

    def token_nll(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        score_from: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(nll_sum (K,), count)``: CE summed over real token targets (EOS excluded: it is a property
        of the window cut, not of the codec) at or after ``score_from``, and how many frames that is:
        :meth:`token_nll_per_item` summed over the batch rows."""
        sums, counts = self.token_nll_per_item(ids, lengths, cond, score_from)
        return sums.sum(dim=0), counts.sum()

    def token_nll_per_item(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        score_from: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`token_nll` per batch row: ``(nll_sum (B, K), count (B,))``, float32 sums over each
        row's scored real frames, so a caller can attribute the loss to songs (the per-song values of
        the LM evaluation, :func:`duotok.eval.lm.evaluate_lm`)."""
        batch = self.prepare(ids, lengths, cond)
        scored = batch.scored(_check_score_from(score_from), with_eos=False)
        ce = self._frame_ce(batch, scored)
        rows = scored.nonzero(as_tuple=True)[0]
        sums = ce.new_zeros((scored.shape[0], ce.shape[-1])).index_add_(0, rows, ce)
        return sums, scored.sum(dim=1)


def _check_score_from(score_from: int) -> int:
    if int(score_from) != score_from or score_from < 0:
        raise ValueError(f"score_from must be a non-negative int, got {score_from!r}")
    return int(score_from)
