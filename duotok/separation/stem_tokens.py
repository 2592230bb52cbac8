"""Stem tokens of the generative separator: the RVQ codec's first ``K`` codebooks of each stem, the
MusicGen delay pattern that lays them out for a language model, and the *token ceiling* — how well
the true stems survive the round trip through ``K`` codebooks.

Why the acoustic RVQ codec (:class:`~duotok.codecs.rvq.RVQCodecModel`) and its *first* ``K``
codebooks: a residual quantizer is coarse-to-fine, so the sum of the first ``K`` codebook vectors is
the best ``K``-codebook approximation of the latent it was trained to give; ``K`` trades generation
cost (``K`` heads, ``K - 1`` extra delay steps) against the ceiling, which
:func:`stem_token_ceiling` measures for each candidate ``K``. The codec is applied to each stem alone
(it is a codec of any mono signal, not only of mixtures).

Why the delay pattern (MusicGen, Copet et al. 2023): codebook ``k`` is shifted right by ``k`` frames,
so at step ``s`` the model emits codebook 0 of frame ``s``, codebook 1 of frame ``s - 1`` … — each
finer codebook is predicted after the coarser ones of its frame are known, with one sequence position
per frame. Flattening the codebooks would give the same conditioning at ``K`` times the sequence
length, which a 2-core CPU cannot afford. The shifted-in cells hold a special pad id (the codebook's
size, one past its last token): they are deterministic, never sampled and never scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from duotok.codecs.rvq import RVQCodecModel
from duotok.separation.base import STEMS

__all__ = [
    "apply_delay",
    "decode_stems",
    "delay_pad_mask",
    "embed_partial",
    "encode_stems",
    "stem_token_ceiling",
    "undo_delay",
]


def delay_pad_mask(n_codebooks: int, n_frames: int, device: torch.device | None = None) -> torch.Tensor:
    """``(K, T + K - 1)`` bool, True where the delay pattern of ``T`` frames holds the pad id:
    codebook ``k`` at step ``s`` is a pad when ``s < k`` (still in its delay) or ``s - k >= T``
    (its frames are over). The sampler and :func:`undo_delay` use the same rule."""
    if n_codebooks < 1 or n_frames < 0:
        raise ValueError(f"need n_codebooks >= 1 and n_frames >= 0, got {n_codebooks}, {n_frames}")
    steps = torch.arange(n_frames + n_codebooks - 1, device=device)[None, :]
    k = torch.arange(n_codebooks, device=device)[:, None]
    return (steps < k) | (steps - k >= n_frames)


def apply_delay(codes: torch.Tensor, pad_id: int) -> torch.Tensor:
    """``(..., K, T)`` codes → ``(..., K, T + K - 1)``: codebook ``k`` shifted right by ``k`` steps,
    the ``k`` leading and ``K - 1 - k`` trailing cells filled with ``pad_id``."""
    if codes.dim() < 2:
        raise ValueError(f"expected (..., K, T) codes, got shape {tuple(codes.shape)}")
    *lead, k_books, n_frames = codes.shape
    out = torch.full((*lead, k_books, n_frames + k_books - 1), int(pad_id), dtype=codes.dtype, device=codes.device)
    for k in range(k_books):
        out[..., k, k : k + n_frames] = codes[..., k, :]
    return out


def undo_delay(delayed: torch.Tensor, pad_id: int | None = None) -> torch.Tensor:
    """Inverse of :func:`apply_delay`: ``(..., K, S)`` → ``(..., K, S - K + 1)``.

    With ``pad_id`` the delay cells are checked to hold it (a generator that wrote a token there broke
    the pattern: ``ValueError``), so a round trip is exact and a malformed sequence fails loudly."""
    if delayed.dim() < 2:
        raise ValueError(f"expected (..., K, S) delayed codes, got shape {tuple(delayed.shape)}")
    k_books, steps = delayed.shape[-2], delayed.shape[-1]
    n_frames = steps - k_books + 1
    if n_frames < 0:
        raise ValueError(f"{steps} delayed steps cannot hold {k_books} codebooks (need at least {k_books - 1})")
    if pad_id is not None:
        pads = delay_pad_mask(k_books, n_frames, delayed.device).expand_as(delayed)
        if bool((delayed[pads] != pad_id).any()):
            raise ValueError(f"delayed codes hold tokens where the delay pattern needs the pad id {pad_id}")
    return torch.stack([delayed[..., k, k : k + n_frames] for k in range(k_books)], dim=-2)


# --------------------------------------------------------------------------- codec round trip


def _check_k(codec: RVQCodecModel, n_codebooks: int) -> int:
    total = codec.config.rvq.n_codebooks
    if int(n_codebooks) != n_codebooks or not 1 <= n_codebooks <= total:
        raise ValueError(f"K must be an integer in [1, {total}] (the codec's codebooks), got {n_codebooks!r}")
    return int(n_codebooks)


def encode_stems(codec: RVQCodecModel, stems: torch.Tensor | np.ndarray, n_codebooks: int) -> torch.Tensor:
    """``(S, T)`` stems (``S`` = 4 in :data:`STEMS` order) → ``(S, K, ceil(T / hop))`` long: the first
    ``K`` codebooks of each stem encoded alone."""
    stems = torch.as_tensor(stems, dtype=torch.float32)
    if stems.dim() != 2:
        raise ValueError(f"expected (n_stems, T) stems, got shape {tuple(stems.shape)}")
    k = _check_k(codec, n_codebooks)
    return torch.stack([codec.encode(stem)[:k] for stem in stems]).long()


@torch.no_grad()
def embed_partial(codec: RVQCodecModel, ids: torch.Tensor) -> torch.Tensor:
    """``(K, T)`` ids of the first ``K <= n_codebooks`` codebooks → the ``(T, latent_dim)`` latent
    given by the sum of their code vectors.

    ``vector_quantize_pytorch``'s ``get_output_from_indices`` refuses fewer indices than quantizers
    unless the RVQ was trained with quantizer dropout, but it zeroes the vector of any index ``-1``
    (that is how it represents dropped quantizers). Padding the missing codebooks with ``-1`` therefore
    gives exactly the partial residual sum through the library's own path (including any output
    projection), with no reimplementation of its codebook layout."""
    ids = torch.as_tensor(ids).long()
    if ids.dim() != 2:
        raise ValueError(f"expected (K, T) ids, got shape {tuple(ids.shape)}")
    k = _check_k(codec, ids.shape[0])
    total = codec.config.rvq.n_codebooks
    full = torch.full((total, ids.shape[1]), -1, dtype=torch.long)
    full[:k] = ids
    device = next(codec.parameters()).device
    return codec.rvq.get_output_from_indices(full.T[None].to(device))[0].float().cpu()


@torch.no_grad()
def decode_stems(codec: RVQCodecModel, codes: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``(S, K, T_tok)`` codes → ``(S, num_samples)`` float32 audio: each stem's partial residual
    latent (:func:`embed_partial`) rendered by the codec's decoder, trimmed (or zero-padded) to
    ``num_samples`` so the stems line up with the mixture they came from."""
    codes = torch.as_tensor(codes).long()
    if codes.dim() != 3:
        raise ValueError(f"expected (n_stems, K, T) codes, got shape {tuple(codes.shape)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    device = next(codec.parameters()).device
    latents = torch.stack([embed_partial(codec, c) for c in codes]).transpose(1, 2).to(device)
    audio = codec.autoencoder.decode(latents).float().cpu()[:, :num_samples]
    if audio.shape[-1] < num_samples:
        audio = torch.nn.functional.pad(audio, (0, num_samples - audio.shape[-1]))
    return audio


# --------------------------------------------------------------------------- the ceiling


def _song_stems(song: Mapping[str, Any], index: int) -> tuple[str, np.ndarray]:
    if "stems" not in song:
        raise ValueError(f"songs[{index}] has no 'stems' (expected load_song's (4, T) array)")
    stems = np.asarray(song["stems"], dtype=np.float32)
    if stems.ndim != 2 or stems.shape[0] != len(STEMS):
        raise ValueError(f"songs[{index}]['stems'] must be ({len(STEMS)}, T), got {stems.shape}")
    return str(song.get("id", index)), stems


def _summary(rows: list[dict[str, Any]], k_values: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in k_values:
        per_stem: dict[str, dict[str, float]] = {}
        for stem in STEMS:
            sel = [r for r in rows if r["K"] == k and r["stem"] == stem]
            per_stem[stem] = {m: float(np.nanmean([r[m] for r in sel])) if sel else float("nan")
                              for m in ("mel_l1", "sdr", "sir", "sar")}
        per_stem["mean"] = {m: float(np.nanmean([per_stem[s][m] for s in STEMS])) for m in ("mel_l1", "sdr")}
        out[str(k)] = per_stem
    return out


@torch.no_grad()
def stem_token_ceiling(
    codec: RVQCodecModel,
    songs: Iterable[Mapping[str, Any]],
    k_values: Sequence[int] = (1, 2, 4, 8),
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """The separation quality a *perfect* token generator would reach with ``K`` codebooks.

    For every song (``load_song``-style mappings with ``"stems"`` ``(4, T)`` and optionally ``"id"``)
    and every ``K``: the TRUE stems are encoded, cut to ``K`` codebooks, decoded
    (:func:`decode_stems`), and scored against the true stems with the toolkit Mel L1
    (:func:`~duotok.eval.reconstruction.toolkit_mel_l1`) and museval SDR/SIR/SAR
    (:func:`~duotok.eval.separation.bss_eval_track`, all four stems together). A generated separation
    can only be as good as this, so its gap to the ceiling is the LM's error and the ceiling's gap to
    the truth is the codec's. ``max_seconds`` keeps only the start of long songs (evaluation cost).

    Returns ``{"rows": [{"song", "K", "stem", "mel_l1", "sdr", "sir", "sar"}, ...],
    "summary": {"K": {stem: {metric: mean over songs}, "mean": {"mel_l1", "sdr"}}}}`` (NaN-aware means:
    a silent stem has no SDR)."""
    from duotok.eval.reconstruction import toolkit_mel_l1
    from duotok.eval.separation import bss_eval_track

    k_values = [_check_k(codec, k) for k in k_values]
    if not k_values:
        raise ValueError("k_values is empty")
    rate = codec.sample_rate
    all_codes_needed = max(k_values)
    rows: list[dict[str, Any]] = []
    for index, song in enumerate(songs):
        song_id, stems = _song_stems(song, index)
        if max_seconds is not None:
            stems = stems[:, : int(round(max_seconds * rate))]
        n = stems.shape[-1]
        codes = encode_stems(codec, stems, all_codes_needed)
        for k in k_values:
            decoded = decode_stems(codec, codes[:, :k], n).numpy()
            bss = bss_eval_track(stems, decoded, rate)
            for s, stem in enumerate(STEMS):
                mel = toolkit_mel_l1(stems[s], decoded[s], rate) if n > 1024 else float("nan")
                rows.append({"song": song_id, "K": k, "stem": stem, "mel_l1": mel,
                             "sdr": float(bss["SDR"][s]), "sir": float(bss["SIR"][s]), "sar": float(bss["SAR"][s])})
    if not rows:
        raise ValueError("no songs given")
    return {"rows": rows, "summary": _summary(rows, k_values)}
