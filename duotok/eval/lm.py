"""Token language-model evaluation (SPEC, "PPL@1024"): how predictable a tokenizer's tokens are.

A small :class:`~duotok.eval.token_lm.TokenLM` is trained on each codec's token sequences and scored
on held-out songs. Two figures come out of the per-codebook token-mean cross-entropies ``L_k`` (nats):

* **PPL@1024** = ``exp(mean_k L_k) / (Vbar / 1024)``: perplexity normalised to a 1024-entry codebook,
  the SPEC's codec comparison. With codebooks of different sizes ``V_k``, ``Vbar`` is their geometric
  mean ``exp(mean_k ln V_k)`` — the size whose uniform predictor has the same mean CE, so a uniform
  predictor scores exactly 1024 whatever the sizes, and it reduces to ``V / 1024`` when all are equal.
* **bits per second** = ``(sum_k L_k / ln 2) * token rate``: the code length an LM needs per second of
  music. Dividing by ``V / 1024`` flatters large codebooks (a uniform 32768-way predictor and a uniform
  64-way one both get 1024), so this codec-independent figure is reported beside it.

Protocols: (i) unconditional over all codebooks; (ii) conditional — target codebooks (e.g. the
accompaniment) given a condition group (e.g. the vocal tokens, same time span) and ``score_from``
target frames of given prefix. Held-out songs are cut into consecutive windows, each scored as its own
``[SOS] ... `` sequence (:func:`evaluate_lm`), so every codec is scored on identical spans.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from duotok.data.stems import EpochCropDataset, crop_offset
from duotok.eval.token_lm import TokenLM, TokenLMConfig
from duotok.train.loop import TrainConfig, Trainer, TrainResult

__all__ = [
    "TokenCropDataset",
    "bits_per_second",
    "collate",
    "evaluate_lm",
    "lm_loss",
    "lm_report",
    "per_song_report",
    "ppl_at_1024",
    "raw_perplexity",
    "train_token_lm",
]

#: Shortest window :func:`evaluate_lm` scores: one frame would be predicted from SOS alone.
MIN_WINDOW_FRAMES = 2


# --------------------------------------------------------------------------- figures


def _ces(mean_ce_per_codebook: Sequence[float]) -> list[float]:
    ces = [float(v) for v in mean_ce_per_codebook]
    if not ces:
        raise ValueError("need the cross-entropy of at least one codebook")
    return ces


def raw_perplexity(mean_ce_per_codebook: Sequence[float]) -> float:
    """``exp(mean_k L_k)``: the per-codebook perplexity, geometric mean over codebooks."""
    ces = _ces(mean_ce_per_codebook)
    return math.exp(sum(ces) / len(ces))


def ppl_at_1024(mean_ce_per_codebook: Sequence[float], codebook_sizes: Sequence[int]) -> float:
    """``exp(mean_k L_k) / (Vbar / 1024)``, ``Vbar`` the geometric mean of the codebook sizes (see the
    module docstring for why); a uniform predictor scores exactly 1024."""
    ces = _ces(mean_ce_per_codebook)
    if len(codebook_sizes) != len(ces) or min(codebook_sizes) < 1:
        raise ValueError(f"need one positive size per codebook: {len(ces)} CEs, sizes {list(codebook_sizes)}")
    mean_log_v = sum(math.log(v) for v in codebook_sizes) / len(codebook_sizes)
    return math.exp(sum(ces) / len(ces) - mean_log_v + math.log(1024))


def bits_per_second(mean_ce_per_codebook: Sequence[float], frame_rate: float) -> float:
    """``(sum_k L_k / ln 2) * frame_rate``: LM code length per second (codec-independent)."""
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    return sum(_ces(mean_ce_per_codebook)) / math.log(2) * float(frame_rate)


def lm_report(
    ce_per_codebook: Sequence[float], codebook_sizes: Sequence[int], frame_rate: float
) -> dict[str, Any]:
    """All figures of one evaluation, as plain floats for ``reports/metrics/*.json``."""
    ces = _ces(ce_per_codebook)
    return {
        "ce_mean": sum(ces) / len(ces),
        "ce_per_codebook": ces,
        "ppl": raw_perplexity(ces),
        "ppl_1024": ppl_at_1024(ces, codebook_sizes),
        "bits_per_second": bits_per_second(ces, frame_rate),
        "bits_per_second_per_codebook": [bits_per_second([c], frame_rate) for c in ces],
    }


# --------------------------------------------------------------------------- data


def _as_sequences(seqs: Sequence[Any], what: str) -> list[torch.Tensor]:
    out = []
    for i, s in enumerate(seqs):
        t = torch.as_tensor(s)
        if t.dim() != 2 or t.shape[-1] < 1 or t.is_floating_point() or t.is_complex():
            raise ValueError(f"{what}[{i}] must be a (K, T >= 1) integer tensor, got {t.dtype} {tuple(t.shape)}")
        out.append(t.long())
    if not out:
        raise ValueError(f"{what} is empty")
    if len({t.shape[0] for t in out}) != 1:
        raise ValueError(f"{what}: songs have different numbers of codebooks {sorted({t.shape[0] for t in out})}")
    return out


def _aligned_cond(
    seqs: list[torch.Tensor], cond: Sequence[Any] | None, what: str
) -> list[torch.Tensor] | None:
    if cond is None:
        return None
    cond_seqs = _as_sequences(cond, what)
    if len(cond_seqs) != len(seqs):
        raise ValueError(f"{what} has {len(cond_seqs)} songs, the targets {len(seqs)}")
    for i, (s, c) in enumerate(zip(seqs, cond_seqs, strict=True)):
        if s.shape[-1] != c.shape[-1]:
            raise ValueError(f"{what}[{i}] has {c.shape[-1]} frames, its target {s.shape[-1]}")
    return cond_seqs


class TokenCropDataset(EpochCropDataset):
    """Crops of ``crop_frames`` frames from per-song token tensors ``(K, T)`` (+ aligned condition
    tensors ``(K_c, T)``), the LM's training items::

        {"ids": (K, L) long, "lengths": L (0-dim long), "cond": (K_c, L) (conditional only),
         "score_from": score_from_frames}

    ``L = min(T, crop_frames)``: a shorter song is used whole and padded by :func:`collate`. As in
    :class:`~duotok.data.stems.StemCropDataset`, crops come from :func:`~duotok.data.stems.crop_offset`:
    random ones are fixed by ``(seed, epoch, index)`` (:meth:`set_epoch` draws new ones), and
    ``random=False`` gives evenly spaced crops for validation. ``crops_per_song=None`` gives song ``i``
    ``ceil(T_i / crop_frames)`` crops, so an epoch sees about every frame once and long songs are not
    under-sampled.
    """

    def __init__(
        self,
        sequences: Sequence[Any],
        crop_frames: int,
        cond_sequences: Sequence[Any] | None = None,
        seed: int = 0,
        random: bool = True,
        crops_per_song: int | None = 1,
        score_from_frames: int = 0,
    ) -> None:
        if crop_frames < 1 or seed < 0 or score_from_frames < 0:
            raise ValueError(f"need crop_frames >= 1, seed >= 0, score_from_frames >= 0; got "
                             f"{crop_frames}, {seed}, {score_from_frames}")
        if crops_per_song is not None and crops_per_song < 1:
            raise ValueError(f"crops_per_song must be >= 1 or None, got {crops_per_song}")
        self.sequences = _as_sequences(sequences, "sequences")
        self.cond_sequences = _aligned_cond(self.sequences, cond_sequences, "cond_sequences")
        self.crop_frames = int(crop_frames)
        self.seed = int(seed)
        self.random = bool(random)
        self.score_from_frames = int(score_from_frames)
        self.epoch = 0
        self.crop_counts = [
            crops_per_song if crops_per_song is not None else math.ceil(s.shape[-1] / self.crop_frames)
            for s in self.sequences
        ]
        self._starts = [0]
        for n in self.crop_counts:
            self._starts.append(self._starts[-1] + n)

    def __len__(self) -> int:
        return self._starts[-1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        song = bisect.bisect_right(self._starts, index) - 1
        seq = self.sequences[song]
        offset = crop_offset(
            seq.shape[-1], self.crop_frames, random=self.random, seed=self.seed, epoch=self.epoch,
            index=index, crop_index=index - self._starts[song], n_crops=self.crop_counts[song],
        )
        piece = seq[:, offset : offset + self.crop_frames]
        item: dict[str, Any] = {
            "ids": piece.clone(),
            "lengths": torch.tensor(piece.shape[-1], dtype=torch.long),
            "score_from": self.score_from_frames,
        }
        if self.cond_sequences is not None:
            item["cond"] = self.cond_sequences[song][:, offset : offset + self.crop_frames].clone()
        return item


def _pad_stack(pieces: Sequence[torch.Tensor], frames: int) -> torch.Tensor:
    """(K, L_i) pieces → (B, K, frames), zero-padded (padding is never read: lengths mark it)."""
    out = torch.zeros((len(pieces), pieces[0].shape[0], frames), dtype=torch.long)
    for i, p in enumerate(pieces):
        out[i, :, : p.shape[-1]] = p
    return out


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pad a list of :class:`TokenCropDataset` items to the longest one in the batch."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    lengths = torch.stack([torch.as_tensor(it["lengths"], dtype=torch.long) for it in items])
    frames = int(lengths.max())
    batch: dict[str, Any] = {"ids": _pad_stack([it["ids"] for it in items], frames), "lengths": lengths}
    if "cond" in items[0]:
        batch["cond"] = _pad_stack([it["cond"] for it in items], frames)
    score_from = {int(it.get("score_from", 0)) for it in items}
    if len(score_from) != 1:
        raise ValueError(f"items disagree on score_from: {sorted(score_from)}")
    batch["score_from"] = score_from.pop()
    return batch


# --------------------------------------------------------------------------- training


def lm_loss(model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """:class:`~duotok.train.loop.Trainer` loss of a :func:`collate` batch (``model`` may be DDP-wrapped)."""
    return model(batch["ids"], batch["lengths"], batch.get("cond"), score_from=int(batch.get("score_from", 0)))


def train_token_lm(
    config: TokenLMConfig,
    train_cfg: TrainConfig,
    train_seqs: Sequence[Any],
    valid_seqs: Sequence[Any] | None,
    out_dir: str | os.PathLike[str],
    crop_frames: int,
    cond_train: Sequence[Any] | None = None,
    cond_valid: Sequence[Any] | None = None,
    score_from: int = 0,
    resume: bool = True,
) -> tuple[TokenLM, TrainResult]:
    """Train a :class:`TokenLM` on random crops with the shared :class:`~duotok.train.loop.Trainer`
    (``train.precision``, resume, csv logs in ``out_dir``); return it in eval mode on the CPU with the
    trainer's result (steps, seconds, the precision it ran in).

    Each song gives ``ceil(T / crop_frames)`` crops per epoch; validation uses evenly spaced crops."""
    if config.conditional != (cond_train is not None):
        raise ValueError("pass cond_train exactly when config.cond_codebook_sizes is set")
    if config.conditional and valid_seqs and cond_valid is None:
        raise ValueError("a conditional LM needs cond_valid beside valid_seqs")
    torch.manual_seed(train_cfg.seed)
    model = TokenLM(config)
    train_data = TokenCropDataset(train_seqs, crop_frames, cond_train, seed=train_cfg.seed, random=True,
                                  crops_per_song=None, score_from_frames=score_from)
    valid_data = None
    if valid_seqs:
        valid_data = TokenCropDataset(valid_seqs, crop_frames, cond_valid if config.conditional else None,
                                      seed=train_cfg.seed, random=False, crops_per_song=None,
                                      score_from_frames=score_from)
    trainer = Trainer(model, lm_loss, train_data, train_cfg, out_dir, valid_data=valid_data, collate_fn=collate)
    result = trainer.fit(resume=resume)
    return model.cpu().eval(), result


# --------------------------------------------------------------------------- evaluation


def _windows(n_frames: int, crop_frames: int) -> list[tuple[int, int]]:
    """Consecutive non-overlapping ``[start, stop)`` windows; a last partial one needs >= 2 frames."""
    spans = [(s, min(s + crop_frames, n_frames)) for s in range(0, n_frames, crop_frames)]
    return [(a, b) for a, b in spans if b - a >= MIN_WINDOW_FRAMES]


@torch.no_grad()
def evaluate_lm(
    model: TokenLM,
    sequences: Sequence[Any],
    crop_frames: int,
    cond_sequences: Sequence[Any] | None = None,
    score_from: int = 0,
    batch_size: int = 8,
    bf16: bool = False,
) -> dict[str, Any]:
    """Token-mean CE per codebook of ``model`` on held-out songs.

    Every song is cut into consecutive ``crop_frames`` windows (a last partial window is kept when it
    has >= 2 frames), each scored as its own sequence from SOS; EOS targets are not counted. In the
    conditional protocol the condition window spans the same frames and the first ``score_from``
    target frames of each window are given, not scored. Deterministic (fixed windows, no sampling),
    float32 unless ``bf16``; the model's train/eval mode is restored afterwards.

    Returns ``{"ce": [L_k], "nll_sum": [..], "tokens": scored frames, "windows": n, "frames": n,
    "per_song": [{"nll_sum": [..], "tokens": n}, ...]}``; ``per_song`` follows the order of
    ``sequences`` (each song's windows summed), so song-level values (:func:`per_song_report`) and a
    bootstrap over test songs can be computed from the same pass as the pooled figures.
    """
    if crop_frames < MIN_WINDOW_FRAMES or batch_size < 1:
        raise ValueError(f"need crop_frames >= {MIN_WINDOW_FRAMES} and batch_size >= 1")
    seqs = _as_sequences(sequences, "sequences")
    conds = _aligned_cond(seqs, cond_sequences, "cond_sequences")
    pieces = [(i, a, b) for i, s in enumerate(seqs) for a, b in _windows(s.shape[-1], crop_frames)]
    if not pieces:
        raise ValueError(f"no song has {MIN_WINDOW_FRAMES} frames to score")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll = torch.zeros(len(model.heads), dtype=torch.float64)
    song_nll = torch.zeros((len(seqs), len(model.heads)), dtype=torch.float64)
    song_count = torch.zeros(len(seqs), dtype=torch.long)
    count = 0
    try:
        for start in range(0, len(pieces), batch_size):
            chunk = pieces[start : start + batch_size]
            items: list[dict[str, Any]] = []
            for i, a, b in chunk:
                item: dict[str, Any] = {"ids": seqs[i][:, a:b], "lengths": torch.tensor(b - a)}
                if conds is not None:
                    item["cond"] = conds[i][:, a:b]
                items.append(item)
            batch = collate(items)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                sums, n = model.token_nll_per_item(batch["ids"].to(device), batch["lengths"].to(device),
                                                   batch["cond"].to(device) if conds is not None else None,
                                                   score_from=score_from)
            song_index = torch.tensor([i for i, _, _ in chunk])
            song_nll.index_add_(0, song_index, sums.double().cpu())
            song_count.index_add_(0, song_index, n.long().cpu())
            nll += sums.double().sum(0).cpu()
            count += int(n.sum())
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError(f"nothing scored: every window is at most score_from={score_from} frames long")
    return {
        "ce": (nll / count).tolist(),
        "nll_sum": nll.tolist(),
        "tokens": count,
        "windows": len(pieces),
        "frames": sum(b - a for _, a, b in pieces),
        "per_song": [{"nll_sum": song_nll[i].tolist(), "tokens": int(song_count[i])} for i in range(len(seqs))],
    }


def per_song_report(
    per_song: Sequence[Mapping[str, Any]],
    song_ids: Sequence[str],
    codebook_sizes: Sequence[int],
    frame_rate: float,
) -> dict[str, dict[str, float]]:
    """``{song id: {"ce_mean", "log_ppl_1024", "bits_per_second", "tokens"}}`` from
    :func:`evaluate_lm`'s ``per_song`` (same order as ``song_ids``): each test song's token-mean CE
    (nats, mean over codebooks), ``ln`` of its PPL@1024 and its LM bits per second. These are the
    per-song values a paired bootstrap over test songs compares
    (:func:`duotok.reporting.verdicts.seed_and_song_verdict`); the pooled figures weight songs by their
    frames, the per-song ones equally. Songs with nothing scored (shorter than two frames) are left out."""
    if len(per_song) != len(song_ids):
        raise ValueError(f"{len(per_song)} per-song records for {len(song_ids)} song ids")
    if len(set(song_ids)) != len(song_ids):
        raise ValueError("song ids must be unique")
    out: dict[str, dict[str, float]] = {}
    for song, record in zip(song_ids, per_song, strict=True):
        n = int(record["tokens"])
        if n == 0:
            continue
        ces = [float(v) / n for v in record["nll_sum"]]
        out[str(song)] = {"ce_mean": sum(ces) / len(ces),
                          "log_ppl_1024": math.log(ppl_at_1024(ces, codebook_sizes)),
                          "bits_per_second": bits_per_second(ces, frame_rate), "tokens": n}
    return out
