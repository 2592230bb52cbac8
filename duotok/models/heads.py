"""The four stage-2 heads on 25 Hz bottleneck features ``(B, T25, dim)``: chroma, mel reconstruction,
source-separation masks (all upsampled to the 100 Hz frame grid of their targets) and a CTC lyrics
head (kept at 25 Hz — characters are far slower than 25 per second).

Why several heads: each forces a different kind of information through the bottleneck (harmony,
timbre/spectral detail, which source is where, phonetic content), so the tokens stay musically
meaningful instead of collapsing onto whatever one objective needs.

Time alignment: the encoder turns ``T100`` mel frames into ``ceil(T100 / 4)`` tokens, so the heads'
``4 * T25`` frames can exceed the target's ``T100`` by up to 3; the losses crop predictions to the
target length (and refuse predictions shorter than their targets).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from duotok.audio.masks import apply_masks
from duotok.modules.conv import ConvUpsample

N_PITCH_CLASSES = 12


def crop_time(pred: torch.Tensor, target_frames: int) -> torch.Tensor:
    """Crop ``pred``'s last (time) axis to ``target_frames``; error if it is shorter."""
    if pred.shape[-1] < target_frames:
        raise ValueError(f"prediction has {pred.shape[-1]} frames, fewer than the target's {target_frames}")
    return pred[..., :target_frames]


def _frame_weights(
    frame_mask: torch.Tensor | None, batch: int, frames: int, device: torch.device
) -> torch.Tensor:
    """Float ``(B, T)`` weights: 1 on valid frames, 0 on padding (all ones without a mask)."""
    if frame_mask is None:
        return torch.ones(batch, frames, device=device)
    if frame_mask.shape != (batch, frames):
        raise ValueError(f"frame_mask of shape {tuple(frame_mask.shape)}, expected {(batch, frames)}")
    return frame_mask.to(device=device, dtype=torch.float32)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor, per_frame: int) -> torch.Tensor:
    """Mean of ``values`` (already weighted) over ``weights.sum() * per_frame`` elements (0 if empty)."""
    return values.sum() / (weights.sum() * per_frame).clamp_min(1.0)


class _UpsampledHead(nn.Module):
    """ConvUpsample to ``channels`` at ``factor`` x the input rate, returned channels-first."""

    def __init__(self, dim: int, channels: int, factor: int, hidden: int | None):
        super().__init__()
        self.up = ConvUpsample(dim, channels, factor=factor, hidden=hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x).transpose(1, 2)  # (B, T100, C) → (B, C, T100)


# ----------------------------------------------------------------------------------------- chroma


class ChromaHead(_UpsampledHead):
    """Features ``(B, T25, dim)`` → chroma logits ``(B, 12, T25 * factor)``."""

    def __init__(self, dim: int, factor: int = 4, hidden: int | None = None):
        super().__init__(dim, N_PITCH_CLASSES, factor, hidden)


def chroma_loss(
    logits: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy (with logits) against chroma targets ``(B, 12, T)`` in [0, 1], averaged
    over pitch classes and valid frames. BCE, not softmax CE: several pitch classes sound at once."""
    logits = crop_time(logits, target.shape[-1]).float()
    weights = _frame_weights(frame_mask, target.shape[0], target.shape[-1], logits.device)
    bce = F.binary_cross_entropy_with_logits(logits, target.float(), reduction="none")
    return _masked_mean(bce * weights[:, None], weights, N_PITCH_CLASSES)


@torch.no_grad()
def chroma_counts(
    logits: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor | None = None
) -> tuple[float, float, int]:
    """(correct frames, summed cosine, counted frames) over valid, non-silent target frames (a
    silent frame has no strongest pitch class): the summable form of :func:`chroma_metrics`, so an
    evaluation over many batches can weight each batch by its frames."""
    logits = crop_time(logits, target.shape[-1]).float()
    target = target.float()
    keep = target.amax(dim=1) > 0
    if frame_mask is not None:
        keep = keep & frame_mask.to(device=keep.device, dtype=torch.bool)
    prob = logits.sigmoid()
    correct = (prob.argmax(dim=1) == target.argmax(dim=1))[keep]
    cosine = F.cosine_similarity(prob, target, dim=1, eps=1e-8)[keep]
    return float(correct.sum()), float(cosine.sum()), int(keep.sum())


def chroma_metrics(
    logits: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor | None = None
) -> dict[str, float]:
    """``accuracy``: how often the most likely predicted pitch class is the target's strongest one;
    ``cosine``: mean cosine similarity of predicted probabilities and target. Both over valid,
    non-silent target frames; NaN if there are none."""
    correct, cosine, n = chroma_counts(logits, target, frame_mask)
    if n == 0:
        return {"accuracy": float("nan"), "cosine": float("nan")}
    return {"accuracy": correct / n, "cosine": cosine / n}


# -------------------------------------------------------------------------------------------- mel


class MelHead(_UpsampledHead):
    """Features ``(B, T25, dim)`` → log-mel reconstruction ``(B, n_mels, T25 * factor)``."""

    def __init__(self, dim: int, n_mels: int = 128, factor: int = 4, hidden: int | None = None):
        super().__init__(dim, n_mels, factor, hidden)
        self.n_mels = n_mels


def mel_l1_loss(
    pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute error between log-mels ``(B, n_mels, T)`` over valid frames."""
    pred = crop_time(pred, target.shape[-1]).float()
    weights = _frame_weights(frame_mask, target.shape[0], target.shape[-1], pred.device)
    error = (pred - target.float()).abs() * weights[:, None]
    return _masked_mean(error, weights, target.shape[1])


# ------------------------------------------------------------------------------------------ masks


class MaskHead(nn.Module):
    """Features ``(B, T25, dim)`` → ratio masks ``(B, S, F, T25 * factor)``, softmax over sources so
    they sum to one in every bin — like :func:`duotok.audio.masks.ratio_masks`, whose oracle masks
    are the natural targets, and so the separated stems always add back up to the mixture.

    ``spectrum=True`` (issue 17) also reads the mixture's own magnitude spectrum ``(B, F, T100)``:
    the 25 Hz features are upsampled to ``hidden`` channels and, frame by frame, joined with the
    per-frame standardised log-magnitude before a two-layer MLP predicts the masks. Why: from 25 Hz
    features alone a mask must guess where each harmonic lies in 513 bins; the mixture spectrum
    gives it that resolution, and the features say which source a partial belongs to."""

    def __init__(
        self, dim: int, n_sources: int = 4, n_freq: int = 513, factor: int = 4, hidden: int | None = None,
        spectrum: bool = False,
    ):
        super().__init__()
        self.n_sources = n_sources
        self.n_freq = n_freq
        self.spectrum = spectrum
        if spectrum:
            hidden = hidden or 2 * dim
            self.up = ConvUpsample(dim, dim, factor=factor)
            self.mlp = nn.Sequential(nn.Linear(dim + n_freq, hidden), nn.GELU(), nn.Linear(hidden, n_sources * n_freq))
        else:
            self.up = ConvUpsample(dim, n_sources * n_freq, factor=factor, hidden=hidden)

    def forward(self, x: torch.Tensor, mixture_mag: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.up(x)  # (B, T100, S * F), or (B, T100, dim) with the spectrum
        batch, frames = logits.shape[:2]
        if self.spectrum:
            if mixture_mag is None or mixture_mag.shape[:2] != (batch, self.n_freq):
                raise ValueError(f"this mask head reads the mixture magnitude (B, {self.n_freq}, T); got "
                                 f"{None if mixture_mag is None else tuple(mixture_mag.shape)}")
            spec = mixture_mag.float().clamp_min(1e-5).log().transpose(1, 2)[:, :frames]  # (B, T, F)
            spec = F.layer_norm(spec, (self.n_freq,))
            if spec.shape[1] < frames:  # the heads' 4 * T25 frames may exceed the STFT's by up to 3
                spec = F.pad(spec, (0, 0, 0, frames - spec.shape[1]))
            logits = self.mlp(torch.cat([logits, spec.to(logits.dtype)], dim=-1))
        logits = logits.view(batch, frames, self.n_sources, self.n_freq).float()
        return logits.softmax(dim=2).permute(0, 2, 3, 1)  # (B, S, F, T100)


def mask_loss(
    masks: torch.Tensor,
    mixture_mag: torch.Tensor,
    stem_mags: torch.Tensor,
    frame_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """L1 between masked mixture magnitudes ``masks * |X|`` and the stems' magnitudes ``|S_s|``
    ``(B, S, F, T)``, over valid frames. Comparing magnitudes (not masks) weights each bin by its
    energy, so silent bins — where any mask is right — cost nothing."""
    frames = stem_mags.shape[-1]
    masks = crop_time(masks, frames).float()
    weights = _frame_weights(frame_mask, stem_mags.shape[0], frames, masks.device)
    error = (masks * mixture_mag.float().unsqueeze(1) - stem_mags.float()).abs()
    # Weight each frame's sum over stems and bins, not every (B, S, F, T) element: the same value,
    # without a second pass over the largest tensor of the stage-2 step.
    return _masked_mean(error.sum(dim=(1, 2)) * weights, weights, stem_mags.shape[1] * stem_mags.shape[2])


def separate(
    masks: torch.Tensor,
    mixture_wave: torch.Tensor,
    n_fft: int,
    hop: int,
    win: int,
    length: int | None = None,
) -> torch.Tensor:
    """Stem waveforms ``(B, S, length)`` from predicted masks ``(B, S, F, T)`` and the mixture
    ``(B, samples)`` via :func:`duotok.audio.masks.apply_masks`. The masks' frame count is matched to
    the mixture STFT's ``samples // hop + 1``: extra frames are cropped, missing ones get ``1 / S``
    (split evenly, the same convention ``ratio_masks`` uses for silence)."""
    stft_frames = mixture_wave.shape[-1] // hop + 1
    frames = masks.shape[-1]
    if frames > stft_frames:
        masks = masks[..., :stft_frames]
    elif frames < stft_frames:
        pad = masks.new_full((*masks.shape[:-1], stft_frames - frames), 1.0 / masks.shape[-3])
        masks = torch.cat([masks, pad], dim=-1)
    return apply_masks(mixture_wave, masks, n_fft, hop, win, length=length)


# ----------------------------------------------------------------------------------------- lyrics


class LyricsHead(nn.Module):
    """Features ``(B, T25, dim)`` → CTC log-probabilities ``(B, T25, vocab_size)`` (float32; index 0
    is the blank of :class:`duotok.text.CharVocab`).

    ``context`` = 0 is the paper's linear head. ``context`` = H > 0 first runs a one-layer
    bidirectional GRU of H units per direction over the frames (issue 17): at the ``default`` budget
    the upper Transformer is barely trained and gives a linear head no usable context, and greedy
    CTC then emits only blanks; a log-mel + BiGRU reader of the same crops learns the lyrics within a
    few hundred steps (``reports/experiments/quick_log.md``). The GRU runs in float32 (no bf16 GRU
    kernels on CPU)."""

    def __init__(self, dim: int, vocab_size: int, context: int = 0):
        super().__init__()
        if context < 0:
            raise ValueError(f"lyrics head context must be >= 0 (0 = linear), got {context}")
        self.vocab_size = vocab_size
        self.context = (nn.GRU(dim, context, batch_first=True, bidirectional=True) if context else None)
        self.proj = nn.Linear(2 * context if context else dim, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.context is not None:
            with torch.autocast(device_type=x.device.type, enabled=False):
                x, _ = self.context(x.float())
        return self.proj(x).float().log_softmax(dim=-1)


def ctc_loss(
    log_probs: torch.Tensor,
    frame_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
) -> torch.Tensor:
    """CTC loss for batch-first log-probs ``(B, T, V)``; targets padded ``(B, S)`` or concatenated
    ``(sum S,)`` as :func:`torch.nn.functional.ctc_loss` accepts. ``zero_infinity`` because a window
    can hold more characters than frames (infeasible alignment): such items then add no gradient
    instead of an infinite loss.

    Each item's loss is divided by its number of characters (as torch's ``"mean"``) — except a
    window with no lyrics (an empty target: blank in every frame), whose loss is divided by its
    number of frames. torch's ``"mean"`` divides it by ``max(0, 1)`` instead, so one empty window
    outweighs a whole batch of sung ones and teaches the head that blank is always safe (issue 17).
    """
    losses = F.ctc_loss(
        log_probs.float().transpose(0, 1),
        targets.long(),
        frame_lengths.long(),
        target_lengths.long(),
        blank=blank,
        reduction="none",
        zero_infinity=True,
    )
    target_lengths = target_lengths.to(losses.device)
    per = torch.where(target_lengths > 0, target_lengths, frame_lengths.to(losses.device)).clamp_min(1)
    return (losses / per.to(losses.dtype)).mean()


def build_heads(names: tuple[str, ...], dim: int, *, n_mels: int, vocab_size: int, factor: int,
                n_sources: int = 4, n_freq: int = 513, mask_spectrum: bool = False,
                lyrics_context: int = 0) -> nn.ModuleDict:
    """The heads named in ``names`` (any of lyrics, mel, chroma, mask), in that order; stages 2 and 3
    build theirs here so a stage-3 head has exactly the shape of its stage-2 namesake."""
    makers = {
        "lyrics": lambda: LyricsHead(dim, vocab_size, context=lyrics_context),
        "mel": lambda: MelHead(dim, n_mels, factor=factor),
        "chroma": lambda: ChromaHead(dim, factor=factor),
        "mask": lambda: MaskHead(dim, n_sources, n_freq, factor=factor, spectrum=mask_spectrum),
    }
    unknown = set(names) - set(makers)
    if unknown:
        raise ValueError(f"unknown heads {sorted(unknown)}; known: {sorted(makers)}")
    return nn.ModuleDict({name: makers[name]() for name in makers if name in names})


def weighted_total(losses: dict[str, torch.Tensor], weights_from: object) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of ``losses[name] * weights_from.<name>_weight`` and the detached per-loss metrics
    (``<name>_loss``): how stages 2 and 3 combine their heads, so ablations weight both alike."""
    total = sum(getattr(weights_from, f"{name}_weight") * loss for name, loss in losses.items())
    return total, {f"{name}_loss": float(loss.detach()) for name, loss in losses.items()}
