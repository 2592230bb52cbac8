"""Mask-based separators (issue 19): the trained stage-2 model's four-stem mask head, and the oracle
ratio mask that bounds every mask-based system from above.

Both multiply the mixture's STFT by one real mask per stem and invert with the *mixture's* phase
(:func:`duotok.models.heads.separate`), so the oracle row of a results table says how much of a
mask system's error is the mask and how much is the shared phase and the STFT grid.

:class:`MaskHeadSeparator` here wraps a stage-2 :class:`~duotok.models.multitask.MultiTaskModel`
(``MultiTaskModel.from_pretrained(models/multitask/model)``), so the separation table can score the
mask head as soon as stage 2 is trained, without a stage-3 quantizer; a :class:`duotok.DuoTok`'s is
``MaskHeadSeparator(tok.separator, tok.config.chunk_seconds, tok.config.chunk_batch)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch

from duotok.audio.chunks import batch_slices, split_chunks
from duotok.audio.masks import ratio_masks
from duotok.models.heads import separate
from duotok.models.multitask import MultiTaskModel
from duotok.separation.base import STEMS, check_stems


def check_mixture(mixture: torch.Tensor | np.ndarray, *, model_rate: int, sample_rate: int | None = None,
                  min_samples: int = 1, who: str = "separator") -> torch.Tensor:
    """The mixture as a float32 ``(T,)`` tensor, or a ValueError naming what is wrong.

    Refused: integer PCM (a separator takes float audio in [-1, 1]; an int16 array would be
    separated at 32768x the level), anything not 1-D, NaN/inf samples, fewer than ``min_samples``
    samples (the STFT's reflect padding needs more than ``n_fft / 2``), and a stated ``sample_rate``
    other than the model's (audio at another rate would be separated as if it were at the model's)."""
    if sample_rate is not None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"{who}: sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        if int(sample_rate) != int(model_rate):
            raise ValueError(f"{who}: the mixture is at {int(sample_rate)} Hz but this separator reads "
                             f"{model_rate} Hz audio; resample it first (duotok.audio.io.resample)")
    array = mixture if isinstance(mixture, torch.Tensor) else np.asarray(mixture)
    is_float = array.is_floating_point() if isinstance(array, torch.Tensor) else array.dtype.kind == "f"
    if not is_float:
        raise ValueError(f"{who}: the mixture must be float audio in [-1, 1], got {array.dtype} samples "
                         "(scale integer PCM first, e.g. int16 / 32768)")
    x = torch.as_tensor(array).detach().to(torch.float32)
    if x.dim() != 1:
        raise ValueError(f"{who}: expected a mono mixture of shape (samples,), got {tuple(x.shape)}")
    if x.numel() < max(1, min_samples):
        raise ValueError(f"{who}: the mixture has {x.numel()} samples; at least {max(1, min_samples)} are needed")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        raise ValueError(f"{who}: the mixture contains {int(bad.sum())} NaN or inf sample(s), first at sample "
                         f"{int(torch.nonzero(bad)[0, 0])}")
    return x


def stem_matrix(stems: Mapping[str, torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray, n_samples: int,
                who: str = "references") -> torch.Tensor:
    """True stems as a float32 ``(4, T)`` tensor in :data:`STEMS` order, from a ``{stem: (T,)}``
    mapping or a ``(4, T)`` array (the order :func:`duotok.data.load_song` returns)."""
    if isinstance(stems, Mapping):
        return torch.stack(list(check_stems(stems, n_samples, who).values()))
    x = torch.as_tensor(stems if isinstance(stems, torch.Tensor) else np.asarray(stems)).to(torch.float32)
    if tuple(x.shape) != (len(STEMS), n_samples):
        raise ValueError(f"{who}: expected ({len(STEMS)}, {n_samples}) stems in the order {STEMS}, "
                         f"got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{who}: the stems contain NaN or inf")
    return x


class MaskHeadSeparator:
    """The stage-2 model's mask head as a :class:`~duotok.separation.base.Separator`.

    The same inference path as :meth:`duotok.DuoTok.separate` — fixed chunks of ``chunk_seconds``
    (the encoder was trained on crops, and chunks bound memory), the padded tail masked by its valid
    length, the model in eval mode (the bottleneck noise acts only in training), only the mask head
    run — but all four stems come out instead of vocals and accompaniment."""

    name = "Duo-Tok mask head"

    def __init__(self, model: MultiTaskModel, chunk_seconds: float = 10.0, chunk_batch: int = 8):
        if "mask" not in model.heads:
            raise ValueError(f"this stage-2 model has no mask head (heads: {sorted(model.heads)}); it cannot separate")
        if model.config.n_sources != len(STEMS):
            raise ValueError(f"the mask head predicts {model.config.n_sources} sources, not the {len(STEMS)} of {STEMS}")
        mel = model.config.mel
        if chunk_batch < 1:
            raise ValueError(f"chunk_batch must be >= 1, got {chunk_batch}")
        if not chunk_seconds > 0 or round(chunk_seconds * mel.sample_rate) <= mel.n_fft // 2:
            raise ValueError(f"chunk_seconds={chunk_seconds} is too short: a chunk needs more than "
                             f"{mel.n_fft // 2} samples for the STFT")
        self.model = model
        self.chunk_seconds = float(chunk_seconds)
        self.chunk_batch = int(chunk_batch)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], chunk_seconds: float = 10.0, chunk_batch: int = 8,
                        map_location: str | torch.device = "cpu") -> MaskHeadSeparator:
        """Load a stage-2 checkpoint folder (e.g. ``models/multitask/model``) and wrap it."""
        return cls(MultiTaskModel.from_pretrained(directory, map_location), chunk_seconds, chunk_batch)

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.mel.sample_rate)

    @torch.inference_mode()
    def separate(self, mixture: torch.Tensor | np.ndarray, *, sample_rate: int | None = None,
                 ) -> dict[str, torch.Tensor]:
        """Mono mixture ``(T,)`` → ``{stem: (T,)}`` (CPU float32). ``sample_rate``, if given, must be the
        model's (see :func:`check_mixture`)."""
        x = check_mixture(mixture, model_rate=self.sample_rate, sample_rate=sample_rate, who=self.name)
        mel = self.model.config.mel
        device = next(self.model.parameters()).device
        chunks, lengths = split_chunks(x, int(round(self.chunk_seconds * self.sample_rate)))
        was_training = self.model.training
        self.model.eval()
        try:
            parts = []
            for rows in batch_slices(len(chunks), self.chunk_batch):
                audio = chunks[rows].to(device)
                out = self.model.infer(audio, lengths[rows].to(device), heads=("mask",))
                stems = separate(out["outputs"]["mask"], audio, mel.n_fft, mel.hop_length, mel.win_length,
                                 length=audio.shape[-1])
                parts.append(stems.float().cpu())  # (b, S, chunk)
        finally:
            self.model.train(was_training)
        joined = torch.cat(parts).transpose(0, 1).reshape(len(STEMS), -1)[:, : x.numel()]
        return check_stems(dict(zip(STEMS, joined, strict=True)), x.numel(), self.name)


class OracleMaskSeparator:
    """The ideal ratio mask ``|S_s|^p / Σ_k |S_k|^p`` computed from the TRUE stems — an upper bound
    for any system that masks the mixture STFT and keeps its phase, **not a separation system**: it
    reads the answers. ``power=1`` is the magnitude-ratio mask (IRM), ``power=2`` the Wiener-like
    power-ratio mask.

    Why report it: it tells how far a mask system could get on this STFT grid (the stage-2 mask head
    uses ``n_fft=1024, hop=160``, the Open-Unmix-style model ``1024/256``), so a low score of a trained
    separator can be read as a bad mask rather than a ceiling of masking itself. Because it needs the
    references, :meth:`separate` refuses; call :meth:`separate_with_references` (the attribute
    ``needs_references`` tells :func:`duotok.separation.evaluate.score_separator` to pass them)."""

    needs_references = True

    def __init__(self, sample_rate: int, n_fft: int = 1024, hop: int = 160, power: float = 1.0,
                 win_length: int | None = None):
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        win_length = int(win_length or n_fft)
        if n_fft < 2 or not 1 <= hop <= win_length <= n_fft:
            raise ValueError(f"need 1 <= hop <= win_length <= n_fft, got n_fft={n_fft}, hop={hop}, "
                             f"win_length={win_length}")
        if not power > 0:
            raise ValueError(f"power must be positive, got {power}")
        self._sample_rate = int(sample_rate)
        self.n_fft, self.hop, self.win_length, self.power = int(n_fft), int(hop), win_length, float(power)
        self.name = f"oracle ratio mask (p={self.power:g}, n_fft={self.n_fft}, hop={self.hop})"

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def separate(self, mixture: torch.Tensor | np.ndarray) -> dict[str, torch.Tensor]:
        """Refused: the oracle needs the true stems (see the class docstring)."""
        raise TypeError(f"{self.name} is an upper bound computed from the true stems, not a separator: call "
                        "separate_with_references(mixture, stems)")

    @torch.inference_mode()
    def separate_with_references(self, mixture: torch.Tensor | np.ndarray,
                                 stems: Mapping[str, torch.Tensor | np.ndarray] | torch.Tensor | np.ndarray, *,
                                 sample_rate: int | None = None) -> dict[str, torch.Tensor]:
        """``mixture (T,)`` and the true stems (``(4, T)`` in :data:`STEMS` order, or ``{stem: (T,)}``)
        → ``{stem: (T,)}``: the oracle masks applied to the mixture's STFT."""
        x = check_mixture(mixture, model_rate=self.sample_rate, sample_rate=sample_rate,
                          min_samples=self.n_fft // 2 + 1, who=self.name)
        refs = stem_matrix(stems, x.numel())
        masks = ratio_masks(refs, self.n_fft, self.hop, self.win_length, power=self.power)
        out = separate(masks, x, self.n_fft, self.hop, self.win_length, length=x.numel())
        return check_stems(dict(zip(STEMS, out, strict=True)), x.numel(), self.name)
