"""An Open-Unmix-style discriminative separator (issue 19): the classic spectrogram-masking baseline
the generative separator of the second paper is compared with (Open-Unmix: 5.3 dB SDR on MUSDB18-HQ
averaged over stems, SPEC §3).

Design (after Stöter et al., 2019, "Open-Unmix — A Reference Implementation for Music Source
Separation"), per STFT frame of the mono mixture::

    |X| → log → standardise per bin (mean/std buffers fitted on training crops) → crop to max_bin
        → Linear (bottleneck) → LayerNorm → tanh
        → 3-layer BiLSTM ─┐
        └─ skip ──────────┴→ concat → Linear → LayerNorm → ReLU → Linear → 4 × F masks
    stem_s = iSTFT(mask_s · X)          (the mixture's phase)

Where this departs from the reference implementation, and why:

* **One model for all four stems** (Open-Unmix trains one network per target): a 4 × F output head
  costs one LSTM pass instead of four, which matters on a 2-core CPU, and the stems compete for the
  mixture's energy inside one model, as they do in the stage-2 mask head it is compared with.
* **Log-magnitude input** (Open-Unmix feeds the linear magnitude): standardised log-magnitudes
  span the same few units in quiet and loud bins, so a small bottleneck is not dominated by the
  loudest partials.
* **Sigmoid masks** by default (Open-Unmix: ReLU on an estimated magnitude, unbounded). With the
  mixture's phase a stem's magnitude only exceeds the mixture's where stems cancel, which is rare, so
  ``[0, 1]`` is the right range; a sigmoid keeps a gradient everywhere (a ReLU unit that goes negative
  on every frame never recovers, which happens early with a small model and a high learning rate).
  ``mask="relu"`` (the reference's choice) and ``"softmax"`` (masks that sum to one over stems, as the
  stage-2 mask head's) are available for the ablation. The output bias starts every mask at ``1/4``,
  so the untrained model already splits the mixture into four stems that add back up to it.
* **LayerNorm** instead of BatchNorm: crops of songs shorter than the segment are zero-padded, and
  padded frames would enter batch statistics; with the small CPU batches used here the running
  averages of eval mode would also differ noticeably from the training-time batch statistics.
* No multichannel Wiener post-filter (the corpus is mono; "the mixture phase" is the baseline).

Sizes (``n_fft=1024`` → 513 bins, 4 stems, all bins in; trainable parameters, the normalisation
buffers excluded): ``hidden_size=128`` → 661,636; ``192`` → 1,237,188; ``256`` (the default) →
1,976,580; ``512`` (Open-Unmix's width; it has ~8.9 M per target at 44.1 kHz stereo) → 6,572,548.
Speed of the default (batch 8 × 3-s crops, ``train.threads: 1``), measured under ``nice`` on the
2-core machine while another training job kept both cores busy: 0.75 s per step of which ~0.2 s is
the model (forward + backward + AdamW) and the rest is decoding a whole song per random crop
(:class:`~duotok.data.StemCropDataset`), plus ~13 s to fit the normalisation: ~800 steps in 10
minutes. Use one torch thread on such a machine: torch's default of two, competing with the other
job, made the same steps take over 10 s each.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from duotok.audio.chunks import batch_slices, split_chunks
from duotok.audio.features import frame_mask_from_lengths, istft, magnitude, stft
from duotok.data.stems import StemCropDataset, collate_stems, discover_songs
from duotok.io.checkpoint import PretrainedMixin, config_with_defaults
from duotok.io.files import write_json_atomic
from duotok.separation.base import STEMS, check_stems
from duotok.separation.mask_separators import check_mixture
from duotok.train.loop import TrainConfig, Trainer, TrainResult

MASKS = ("sigmoid", "relu", "softmax")
LOSSES = ("mse", "l1")


@dataclass
class OpenUnmixConfig:
    """Sizes and STFT of :class:`OpenUnmix`. The STFT is 1024/256 (64 ms window, 75 % overlap): the
    reference's 4096/1024 at 44.1 kHz scaled to 16 kHz. The stage-2 mask head uses hop 160; a
    coarser hop here makes the LSTM 1.6x shorter, which is what a CPU budget buys most with."""

    #: Fields added after checkpoints were written, with the behaviour before they existed (none yet).
    LEGACY_VALUES: ClassVar[dict[str, object]] = {}

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    hidden_size: int = 256        # bottleneck width; the BiLSTM has hidden_size / 2 units per direction
    n_layers: int = 3
    max_bin: int | None = None    # input bins the network reads (None: all n_fft / 2 + 1); masks cover all
    dropout: float = 0.0          # between LSTM layers (Open-Unmix: 0.4; our small runs do not overfit)
    mask: str = "sigmoid"         # sigmoid | relu | softmax (see the module docstring)
    log_floor: float = 1e-5       # |X| is clamped here before the log (as the mel front end)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def input_bins(self) -> int:
        return self.max_bin or self.n_bins

    def validate(self) -> None:
        """A ValueError naming the setting, before any layer is built with it."""
        if self.sample_rate <= 0 or self.n_fft < 2 or not 1 <= self.hop_length <= self.win_length <= self.n_fft:
            raise ValueError(f"need sample_rate > 0 and 1 <= hop_length <= win_length <= n_fft, got {self}")
        if self.hidden_size < 2 or self.hidden_size % 2:
            raise ValueError(f"hidden_size must be even (split over two LSTM directions), got {self.hidden_size}")
        if self.n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {self.n_layers}")
        if self.max_bin is not None and not 1 <= self.max_bin <= self.n_bins:
            raise ValueError(f"max_bin must be in [1, {self.n_bins}] (or None), got {self.max_bin}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if not self.log_floor > 0:
            raise ValueError(f"log_floor must be positive, got {self.log_floor}")


def _initial_bias(mask: str, n_stems: int) -> float:
    """The output bias that makes every untrained mask ``1 / n_stems`` (stems sum to the mixture)."""
    if mask == "sigmoid":
        return math.log(1.0 / (n_stems - 1))   # sigmoid(b) = 1 / n_stems
    if mask == "relu":
        return 1.0 / n_stems
    return 0.0                                 # softmax of equal logits


class OpenUnmix(nn.Module, PretrainedMixin):
    """Mixture ``(B, T)`` → four masks ``(B, 4, F, frames)`` on its STFT grid (see the module
    docstring). ``input_mean``/``input_std`` are persistent buffers (saved with the weights); fit them
    with :meth:`fit_normalization` before training."""

    config_class = OpenUnmixConfig

    def __init__(self, config: OpenUnmixConfig | None = None):
        super().__init__()
        config = config or OpenUnmixConfig()
        config.validate()
        self.config = config
        hidden, bins = config.hidden_size, config.input_bins
        self.register_buffer("input_mean", torch.zeros(bins))
        self.register_buffer("input_std", torch.ones(bins))
        self.fc1 = nn.Linear(bins, hidden, bias=False)
        self.norm1 = nn.LayerNorm(hidden)
        self.lstm = nn.LSTM(hidden, hidden // 2, num_layers=config.n_layers, bidirectional=True, batch_first=True,
                            dropout=config.dropout if config.n_layers > 1 else 0.0)
        self.fc2 = nn.Linear(2 * hidden, hidden, bias=False)
        self.norm2 = nn.LayerNorm(hidden)
        self.fc3 = nn.Linear(hidden, len(STEMS) * config.n_bins)
        nn.init.constant_(self.fc3.bias, _initial_bias(config.mask, len(STEMS)))

    # ------------------------------------------------------------------ spectra

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``(..., F, frames)`` on this model's grid (float32 whatever the autocast)."""
        c = self.config
        return stft(audio, c.n_fft, c.hop_length, c.win_length)

    def features(self, mag: torch.Tensor) -> torch.Tensor:
        """``|X|`` ``(B, F, N)`` → the network's input ``(B, N, input_bins)``: standardised log-magnitude."""
        x = mag[:, : self.config.input_bins].float().clamp_min(self.config.log_floor).log()
        return ((x.transpose(1, 2) - self.input_mean) / self.input_std)

    @torch.no_grad()
    def fit_normalization(self, batches: Iterable[Mapping[str, Any]]) -> int:
        """Set ``input_mean``/``input_std`` to the per-bin mean and std of the log-magnitude over the
        *valid* frames of ``batches`` (dicts with ``mixture (B, T)`` and ``length (B,)``, as
        :func:`~duotok.data.collate_stems` yields). Returns the number of frames used. Why fitted and
        frozen (Open-Unmix initialises learnable ones from the same statistics): the statistics of the
        training data are what the network should see as "zero, unit", and buffers keep them out of
        weight decay."""
        total = torch.zeros(self.config.input_bins, dtype=torch.float64)
        squares = torch.zeros_like(total)
        count = 0
        for batch in batches:
            mixture = torch.as_tensor(batch["mixture"]).float()
            lengths = torch.as_tensor(batch["length"])
            logmag = magnitude(self.spectrogram(mixture))[:, : self.config.input_bins].clamp_min(self.config.log_floor).log()
            valid = frame_mask_from_lengths(lengths, logmag.shape[-1], self.config.hop_length)
            frames = logmag.transpose(1, 2)[valid].double()   # (n_valid, bins)
            total += frames.sum(dim=0)
            squares += frames.square().sum(dim=0)
            count += frames.shape[0]
        if count == 0:
            raise ValueError("fit_normalization: no valid frames in the batches given")
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt()
        self.input_mean.copy_(mean.float())
        self.input_std.copy_(std.clamp_min(1e-2).float())  # a bin that never changes would divide by ~0
        return count

    # ------------------------------------------------------------------ the network

    def masks_from_magnitude(self, mag: torch.Tensor) -> torch.Tensor:
        """``|X|`` ``(B, F, N)`` → masks ``(B, 4, F, N)`` float32."""
        if mag.dim() != 3 or mag.shape[1] != self.config.n_bins:
            raise ValueError(f"expected a (B, {self.config.n_bins}, frames) magnitude, got {tuple(mag.shape)}")
        x = torch.tanh(self.norm1(self.fc1(self.features(mag))))
        # The LSTM runs in float32: bf16 recurrences accumulate rounding over hundreds of frames, and
        # CPUs have no bf16 LSTM kernels anyway.
        with torch.autocast(device_type=x.device.type, enabled=False):
            h, _ = self.lstm(x.float())
        x = F.relu(self.norm2(self.fc2(torch.cat([x.to(h.dtype), h], dim=-1))))
        logits = self.fc3(x).float()                                     # (B, N, S * F)
        batch, frames = logits.shape[:2]
        logits = logits.view(batch, frames, len(STEMS), self.config.n_bins).permute(0, 2, 3, 1)
        if self.config.mask == "sigmoid":
            return logits.sigmoid()
        if self.config.mask == "relu":
            return F.relu(logits)
        return logits.softmax(dim=1)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Mixture ``(B, T)`` → masks ``(B, 4, F, T // hop + 1)``."""
        return self.masks_from_magnitude(magnitude(self.spectrogram(mixture)))

    def separate_batch(self, mixture: torch.Tensor) -> torch.Tensor:
        """Mixture ``(B, T)`` → stems ``(B, 4, T)``: masks × the mixture STFT (its phase), inverted."""
        c = self.config
        spec = self.spectrogram(mixture)
        masks = self.masks_from_magnitude(magnitude(spec))
        return istft(spec.unsqueeze(1) * masks, c.n_fft, c.hop_length, c.win_length, length=mixture.shape[-1])


def n_parameters(model: nn.Module) -> int:
    """Trainable parameters (the fitted normalisation buffers are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------- the loss


def _core(model: nn.Module) -> OpenUnmix:
    """The model under a DDP wrapper (``Trainer`` hands the loss the wrapper when distributed)."""
    return getattr(model, "module", model)


def make_loss(kind: str = "mse"):
    """``loss_fn(model, batch) -> (loss, metrics)`` for :class:`~duotok.train.loop.Trainer`: the MSE
    (Open-Unmix's choice) or L1 between each masked mixture magnitude ``mask_s · |X|`` and the true
    stem's ``|S_s|``, averaged over stems, bins and the *valid* frames of each crop (padding of short
    songs costs nothing). Comparing magnitudes, not masks, weights each bin by its energy: in a silent
    bin every mask is right. Metrics: the per-stem loss (``<stem>_loss``)."""
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")

    def openunmix_loss(model: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        core = _core(model)
        mixture, stems = batch["mixture"], batch["stems"]
        masks = model(mixture)                                           # (B, S, F, N)
        mix_mag = magnitude(core.spectrogram(mixture))
        stem_mag = magnitude(core.spectrogram(stems))
        valid = frame_mask_from_lengths(torch.as_tensor(batch["length"], device=mixture.device),
                                        masks.shape[-1], core.config.hop_length).float()
        diff = masks * mix_mag.unsqueeze(1) - stem_mag
        error = diff.square() if kind == "mse" else diff.abs()
        per_stem = (error * valid[:, None, None]).sum(dim=(0, 2, 3)) / (valid.sum() * masks.shape[2]).clamp_min(1)
        return per_stem.mean(), {f"{s}_loss": float(v) for s, v in zip(STEMS, per_stem.detach(), strict=True)}

    return openunmix_loss


# ---------------------------------------------------------------------------------- the separator


class OpenUnmixSeparator:
    """:class:`OpenUnmix` as a :class:`~duotok.separation.base.Separator`. The whole mixture goes
    through the BiLSTM at once (it reads context in both directions; chunk boundaries would cut it),
    unless ``max_seconds`` bounds memory for very long inputs (hard cuts; for crossfaded chunks use
    :func:`duotok.separation.chunking.separate_long`). No ``chunk_seconds`` attribute on purpose: that
    names a model's preferred chunk, and this model has none."""

    name = "Open-Unmix-style"

    def __init__(self, model: OpenUnmix, max_seconds: float | None = None, chunk_batch: int = 4):
        c = model.config
        if max_seconds is not None and not round(max_seconds * c.sample_rate) > c.n_fft // 2:
            raise ValueError(f"max_seconds={max_seconds} is too short: a chunk needs more than {c.n_fft // 2} samples")
        if chunk_batch < 1:
            raise ValueError(f"chunk_batch must be >= 1, got {chunk_batch}")
        self.model = model
        self.max_seconds = max_seconds
        self.chunk_batch = int(chunk_batch)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], max_seconds: float | None = None,
                        map_location: str | torch.device = "cpu") -> OpenUnmixSeparator:
        """Load a :func:`train_openunmix` output (``<out>/model``) and wrap it."""
        return cls(OpenUnmix.from_pretrained(directory, map_location), max_seconds)

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.sample_rate)

    @torch.inference_mode()
    def separate(self, mixture: torch.Tensor | np.ndarray, *, sample_rate: int | None = None,
                 ) -> dict[str, torch.Tensor]:
        """Mono mixture ``(T,)`` → ``{stem: (T,)}`` (CPU float32); ``sample_rate``, if given, must be
        the model's."""
        x = check_mixture(mixture, model_rate=self.sample_rate, sample_rate=sample_rate,
                          min_samples=self.model.config.n_fft // 2 + 1, who=self.name)
        device = next(self.model.parameters()).device
        size = x.numel() if self.max_seconds is None else int(round(self.max_seconds * self.sample_rate))
        chunks, _ = split_chunks(x, size)
        was_training = self.model.training
        self.model.eval()
        try:
            parts = [self.model.separate_batch(chunks[rows].to(device)).float().cpu()
                     for rows in batch_slices(len(chunks), self.chunk_batch)]
        finally:
            self.model.train(was_training)
        joined = torch.cat(parts).transpose(0, 1).reshape(len(STEMS), -1)[:, : x.numel()]
        return check_stems(dict(zip(STEMS, joined, strict=True)), x.numel(), self.name)


# ---------------------------------------------------------------------------------- training


def _normalization_batches(root: Path, config: OpenUnmixConfig, segment_seconds: float, crops_per_song: int,
                           max_crops: int, seed: int) -> DataLoader:
    """Deterministic (evenly spaced) training crops, at most ``max_crops`` of them spread over the
    songs: the statistics must not depend on the training run's random crops or on a resume."""
    data = StemCropDataset(root, "train", segment_seconds, config.sample_rate, crops_per_song=crops_per_song,
                           seed=seed, random=False)
    if len(data) > max_crops:
        data = Subset(data, np.linspace(0, len(data) - 1, max_crops).round().astype(int).tolist())
    return DataLoader(data, batch_size=16, shuffle=False, collate_fn=collate_stems)


def train_openunmix(config: OpenUnmixConfig, train_cfg: TrainConfig, root: str | os.PathLike[str],
                    out_dir: str | os.PathLike[str], segment_seconds: float = 3.0, crops_per_song: int = 8,
                    resume: bool = True, loss: str = "mse", device: str | None = None,
                    normalization_crops: int = 128) -> tuple[OpenUnmix, TrainResult]:
    """Train an :class:`OpenUnmix` on random ``segment_seconds`` crops of the ``train`` songs under
    ``root`` (validated on centre crops of ``valid``, when the corpus has that split) and return the
    trained model and the :class:`~duotok.train.loop.TrainResult`.

    ``out_dir`` receives what :class:`~duotok.train.loop.Trainer` writes (``last/`` for resuming,
    ``model/`` with the final weights, the CSV logs) and ``result.json`` (config, parameters,
    seconds per step). A rerun with the same ``out_dir`` resumes (``resume=False`` starts over); the
    normalisation statistics are fitted only on a fresh start (a resume restores them with the
    weights), on at most ``normalization_crops`` evenly spaced centre-grid crops of the training
    songs (128 on the 128-song corpus: one song decode each, ~13 s)."""
    root, out = Path(root), Path(out_dir)
    config.validate()
    songs = discover_songs(root)
    valid = None
    if any(r.split == "valid" for r in songs):
        valid = StemCropDataset(root, "valid", segment_seconds, config.sample_rate, crops_per_song=1,
                                seed=train_cfg.seed, random=False)
    train = StemCropDataset(root, "train", segment_seconds, config.sample_rate, crops_per_song=crops_per_song,
                            seed=train_cfg.seed, random=True)
    torch.manual_seed(train_cfg.seed)
    model = OpenUnmix(config)
    if not (resume and (out / "last" / "training_state.pt").is_file()):
        model.fit_normalization(_normalization_batches(root, config, segment_seconds, crops_per_song,
                                                       normalization_crops, train_cfg.seed))
    trainer = Trainer(model, make_loss(loss), train, train_cfg, out, valid_data=valid, collate_fn=collate_stems,
                      device=device)
    start = time.time()
    result = trainer.fit(resume=resume)
    if trainer.info.is_main:
        done = result.step - (result.resumed_from or 0)
        write_json_atomic(out / "result.json", {
            "stage": "openunmix", "steps": result.step, "seconds": result.seconds, "resumed_from": result.resumed_from,
            "seconds_per_step": (time.time() - start) / done if done else None, "parameters": n_parameters(model),
            "loss": loss, "segment_seconds": segment_seconds, "crops_per_song": crops_per_song,
            "train": result.train, "valid": result.valid, "model": asdict(config), "train_config": asdict(train_cfg),
        })
    return trainer.model, result


def build_config(section: Mapping[str, Any], sample_rate: int) -> tuple[OpenUnmixConfig, TrainConfig, dict[str, Any]]:
    """``(model config, train config, data settings)`` from a ``separation.discriminative`` params
    block (``model``, ``train``, ``data`` with ``segment_seconds``/``crops_per_song``, optional
    ``loss``); unknown keys are errors naming them, as for every stage."""
    unknown = set(section) - {"model", "train", "data", "loss"}
    if unknown:
        raise ValueError(f"separation.discriminative: unknown keys {sorted(unknown)}")
    model = config_with_defaults(OpenUnmixConfig, {"sample_rate": sample_rate, **section.get("model", {})},
                                 "separation.discriminative.model")
    model.validate()
    data = dict(section.get("data", {}))
    data.setdefault("loss", section.get("loss", "mse"))
    if data["loss"] not in LOSSES:
        raise ValueError(f"separation.discriminative.loss must be one of {LOSSES}, got {data['loss']!r}")
    return model, TrainConfig.from_dict(section.get("train", {})), data
