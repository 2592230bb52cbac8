"""Tagging probe on a frozen codec's quantized embeddings: cut songs into 5 s windows, train a small
:class:`~duotok.eval.probe_net.TaggingProbe` on them (every window labelled with its song's tags), and
report macro average precision and ROC-AUC on held-out songs, over several seeds.

Why the care about splits: the reference toolkit's training split read the test folder, so its numbers
measured memorisation. Here train / valid / test are checked to share no song id (:func:`check_disjoint`)
before anything is trained.

Metrics are macro averages over tags, computed per tag only where the evaluated set has both positives
and negatives (AP and AUC are undefined otherwise; counting such a tag as 0 or 1 would move the mean by
an amount that only reflects the split). ``n_tags_scored`` says how many tags entered the mean.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm.auto import tqdm

from duotok.eval.probe_net import ProbeConfig, TaggingProbe

EVAL_BATCH = 128  # windows per forward pass at evaluation (memory only; results do not depend on it)


@dataclass
class ProbeItem:
    """One song: its codec embeddings ``(T, D)``, its id and its multi-hot tags ``(n_tags,)``."""

    song_id: str
    embeddings: torch.Tensor
    tags: torch.Tensor


@dataclass
class ProbeTrainConfig:
    """Probe training (toolkit defaults: AdamW 1e-4, weight decay 0.08). ``device``: where the probe
    trains (CPU runs are bit-for-bit deterministic given the seed; GPU runs need not be)."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.08
    window_seconds: float = 5.0
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_every: int = 250
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"ProbeTrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.window_seconds <= 0:
            raise ValueError(f"ProbeTrainConfig.window_seconds must be > 0, got {self.window_seconds}")
        if not self.seeds:
            raise ValueError("ProbeTrainConfig.seeds is empty")
        self.seeds = tuple(self.seeds)


# ------------------------------------------------------------------------------------------ windows


def window_frames(frame_rate: float, seconds: float) -> int:
    """Frames in a window of ``seconds`` at ``frame_rate`` Hz (rounded, at least 1)."""
    if frame_rate <= 0 or seconds <= 0:
        raise ValueError(f"frame_rate and seconds must be > 0, got {frame_rate} and {seconds}")
    return max(1, round(seconds * frame_rate))


def cut_windows(
    embeddings: torch.Tensor, frame_rate: float, seconds: float = 5.0, hop_seconds: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut ``(T, D)`` embeddings into windows ``(N, W, D)`` with bool masks ``(N, W)`` (True = valid).

    Windows start every ``hop_seconds`` (default: one window, i.e. consecutive and non-overlapping); a
    trailing remainder shorter than a window is dropped, as in the toolkit. A song shorter than one window
    gives a single zero-padded window whose mask marks the padding. Full windows are a view of
    ``embeddings`` (no copy)."""
    if embeddings.ndim != 2:
        raise ValueError(f"expected (T, D) embeddings, got shape {tuple(embeddings.shape)}")
    t, d = embeddings.shape
    if t == 0:
        raise ValueError("embeddings have no frames")
    w = window_frames(frame_rate, seconds)
    hop = w if hop_seconds is None else window_frames(frame_rate, hop_seconds)
    if t < w:
        windows = embeddings.new_zeros(1, w, d)
        windows[0, :t] = embeddings
        mask = torch.zeros(1, w, dtype=torch.bool, device=embeddings.device)
        mask[0, :t] = True
        return windows, mask
    windows = embeddings.unfold(0, w, hop).transpose(1, 2)  # (N, W, D)
    return windows, torch.ones(windows.shape[:2], dtype=torch.bool, device=embeddings.device)


class _WindowSet:
    """All windows of a list of songs, indexed flat; batches are gathered on demand so the training set
    is never copied as a whole (100 songs × 60 s × 25 Hz × 512 floats is already 300 MB)."""

    def __init__(self, items: Sequence[ProbeItem], frame_rate: float, seconds: float):
        self.windows: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        index: list[tuple[int, int]] = []
        for s, item in enumerate(items):
            windows, masks = cut_windows(item.embeddings.detach(), frame_rate, seconds)
            self.windows.append(windows)
            self.masks.append(masks)
            index += [(s, j) for j in range(windows.shape[0])]
        self.index = index
        self.song = torch.tensor([s for s, _ in index], dtype=torch.long)
        self.song_ids = [item.song_id for item in items]
        self.song_tags = torch.stack([item.tags.detach().float().cpu() for item in items])

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: Iterable[int], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``(B, W, D)`` (float32) and masks ``(B, W)`` of the flat window indices ``rows``."""
        picked = [self.index[int(r)] for r in rows]
        x = torch.stack([self.windows[s][j] for s, j in picked]).to(device=device, dtype=torch.float32)
        m = torch.stack([self.masks[s][j] for s, j in picked]).to(device)
        return x, m

    def labels(self, rows: torch.Tensor) -> torch.Tensor:
        """Each window's label: its song's tags ``(B, n_tags)``."""
        return self.song_tags[self.song[rows]]


def _validate(items: Sequence[ProbeItem], probe_cfg: ProbeConfig | None = None, what: str = "items") -> None:
    """Refuse malformed songs with a message naming the song (2-D embeddings, 1-D tags, matching sizes)."""
    if not items:
        raise ValueError(f"no {what}")
    for item in items:
        if item.embeddings.ndim != 2 or item.embeddings.shape[0] == 0:
            raise ValueError(f"{what}: song {item.song_id!r} has embeddings of shape {tuple(item.embeddings.shape)}, "
                             "expected (T > 0, D)")
        if item.tags.ndim != 1:
            raise ValueError(f"{what}: song {item.song_id!r} has tags of shape {tuple(item.tags.shape)}, expected (n_tags,)")
        if probe_cfg is not None and item.embeddings.shape[1] != probe_cfg.in_dim:
            raise ValueError(f"{what}: song {item.song_id!r} has {item.embeddings.shape[1]}-dim embeddings, "
                             f"the probe expects {probe_cfg.in_dim}")
        if probe_cfg is not None and item.tags.shape[0] != probe_cfg.n_tags:
            raise ValueError(f"{what}: song {item.song_id!r} has {item.tags.shape[0]} tags, the probe expects "
                             f"{probe_cfg.n_tags}")


def check_disjoint(train: Iterable[ProbeItem | str], test: Iterable[ProbeItem | str],
                   names: tuple[str, str] = ("train", "test")) -> None:
    """Raise ``ValueError`` naming every song id found in both sets (items or ids): a probe trained on
    test songs reports memorisation, which is the reference toolkit's bug."""

    def ids(items: Iterable[ProbeItem | str]) -> set[str]:
        return {x if isinstance(x, str) else x.song_id for x in items}

    shared = sorted(ids(train) & ids(test))
    if shared:
        raise ValueError(f"{len(shared)} song(s) in both {names[0]} and {names[1]}: {', '.join(shared)}")


# ------------------------------------------------------------------------------------------ metrics


def multilabel_scores(y_true: np.ndarray, y_score: np.ndarray,
                      tags: Sequence[int] | None = None) -> dict[str, Any]:
    """Macro AP and ROC-AUC of scores ``(N, n_tags)`` against 0/1 labels, over the tags that have both
    positives and negatives among the N rows (the others are excluded, not counted as 0 or 1). NaN means
    and ``n_tags_scored = 0`` when no tag qualifies. ``tags`` (column indices) restricts the mean to
    those tags (e.g. the ones with enough positive test songs); ``None``: every tag."""
    y_true = np.asarray(y_true) > 0.5
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"labels {y_true.shape} and scores {y_score.shape} must both be (N, n_tags)")
    positives = y_true.sum(0)
    candidates = range(y_true.shape[1]) if tags is None else sorted({int(k) for k in tags})
    bad = [k for k in candidates if not 0 <= k < y_true.shape[1]]
    if bad:
        raise ValueError(f"tag indices {bad} outside the {y_true.shape[1]} label columns")
    scored = [k for k in candidates if 0 < positives[k] < y_true.shape[0]]
    per_tag_ap = {k: float(average_precision_score(y_true[:, k], y_score[:, k])) for k in scored}
    per_tag_auc = {k: float(roc_auc_score(y_true[:, k], y_score[:, k])) for k in scored}
    return {
        "ap": float(np.mean(list(per_tag_ap.values()))) if scored else math.nan,
        "auc": float(np.mean(list(per_tag_auc.values()))) if scored else math.nan,
        "n_tags_scored": len(scored),
        "per_tag_ap": per_tag_ap,
    }


def per_song_ap(y_true: np.ndarray, y_score: np.ndarray, tags: Sequence[int] | None = None) -> list[float]:
    """Each row's (song's) average precision of ranking its own tags above the others, over the tag
    columns ``tags`` (``None``: all): the per-song form of tagging AP (sklearn's ``average="samples"``
    for one row). It is what a paired bootstrap over songs can resample, which macro AP over tags is
    not. NaN for a row with no positive or no negative among those columns (its ranking is undefined)."""
    y_true = np.asarray(y_true) > 0.5
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"labels {y_true.shape} and scores {y_score.shape} must both be (N, n_tags)")
    cols = list(range(y_true.shape[1])) if tags is None else sorted({int(k) for k in tags})
    out = []
    for labels, scores in zip(y_true[:, cols], y_score[:, cols], strict=True):
        defined = 0 < labels.sum() < labels.size
        out.append(float(average_precision_score(labels, scores)) if defined else math.nan)
    return out


@torch.no_grad()
def _window_probs(model: TaggingProbe, windows: _WindowSet) -> torch.Tensor:
    """Sigmoid tag probabilities ``(N, n_tags)`` of every window, in order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(windows), EVAL_BATCH):
        x, m = windows.batch(range(start, min(start + EVAL_BATCH, len(windows))), device)
        out.append(torch.sigmoid(model(x, m)).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def _evaluate_windows(model: TaggingProbe, windows: _WindowSet,
                      tags: Sequence[int] | None = None) -> dict[str, Any]:
    probs = _window_probs(model, windows)
    window = multilabel_scores(windows.labels(torch.arange(len(windows))).numpy(), probs.numpy(), tags)
    n_songs = windows.song_tags.shape[0]
    song_probs = torch.zeros(n_songs, probs.shape[1]).index_add_(0, windows.song, probs)
    song_probs /= torch.bincount(windows.song, minlength=n_songs).clamp_min(1)[:, None].float()
    song = multilabel_scores(windows.song_tags.numpy(), song_probs.numpy(), tags)
    per_song = per_song_ap(windows.song_tags.numpy(), song_probs.numpy(), tags)
    return {"ap": window["ap"], "auc": window["auc"], "song_ap": song["ap"], "song_auc": song["auc"],
            "n_tags_scored": window["n_tags_scored"], "n_windows": len(windows), "n_songs": n_songs,
            "per_tag_ap": window["per_tag_ap"],
            "per_song_ap": {sid: v for sid, v in zip(windows.song_ids, per_song, strict=True) if not math.isnan(v)}}


def evaluate_probe(model: TaggingProbe, items: Sequence[ProbeItem], frame_rate: float,
                   window_seconds: float = 5.0, tags: Sequence[int] | None = None) -> dict[str, Any]:
    """Window-level metrics (each window scored against its song's tags: ``ap``, ``auc``) and song-level
    ones (the mean of a song's window probabilities: ``song_ap``, ``song_auc``), plus ``n_tags_scored``,
    ``n_windows``, ``n_songs`` and window-level ``per_tag_ap`` ``{tag index: ap}``.

    Every song gives at least one window and windows inherit their song's tags, so the same tags
    qualify at both levels and one ``n_tags_scored`` describes both. ``tags``: only these tag indices
    enter the means (:func:`multilabel_scores`)."""
    _validate(items, model.config, "evaluation songs")
    return _evaluate_windows(model, _WindowSet(items, frame_rate, window_seconds), tags)


# ----------------------------------------------------------------------------------------- training


def train_probe(train_items: Sequence[ProbeItem], valid_items: Sequence[ProbeItem], frame_rate: float,
                probe_cfg: ProbeConfig, cfg: ProbeTrainConfig, seed: int) -> TaggingProbe:
    """Train a probe on the windows of ``train_items`` (each labelled with its song's tags; AdamW,
    BCE with logits) and return it in eval mode, with the weights of the best window-level valid macro
    AP (checked every ``cfg.eval_every`` steps and at the end), or the last weights without valid songs.

    Deterministic given ``seed``: initialisation and dropout draw from a forked global RNG seeded with
    it (the caller's RNG state is left untouched), batches from a ``torch.Generator`` seeded with it.
    Batches are epochs of shuffled windows. The embeddings are inputs only: no gradient reaches them."""
    _validate(train_items, probe_cfg, "training songs")
    if valid_items:
        _validate(valid_items, probe_cfg, "validation songs")
        check_disjoint(train_items, valid_items, ("train", "valid"))
    device = torch.device(cfg.device)
    train = _WindowSet(train_items, frame_rate, cfg.window_seconds)
    valid = _WindowSet(valid_items, frame_rate, cfg.window_seconds) if valid_items else None
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = TaggingProbe(probe_cfg).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best_ap, best_state = -math.inf, None
        order = torch.empty(0, dtype=torch.long)
        bar = tqdm(range(1, cfg.steps + 1), desc=f"probe (seed {seed})", disable=not sys.stderr.isatty())
        for step in bar:
            if len(order) < cfg.batch_size:  # top up with a fresh shuffled epoch
                order = torch.cat([order, torch.randperm(len(train), generator=generator)])
            rows, order = order[: cfg.batch_size], order[cfg.batch_size :]
            model.train()
            x, m = train.batch(rows.tolist(), device)
            loss = F.binary_cross_entropy_with_logits(model(x, m), train.labels(rows).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if valid is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
                ap = _evaluate_windows(model, valid)["ap"]
                if not math.isnan(ap) and ap > best_ap:
                    best_ap = ap
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                bar.set_postfix(loss=f"{loss.item():.3f}", valid_ap=f"{ap:.3f}", best=f"{best_ap:.3f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()


def run_probe(train: Sequence[ProbeItem], valid: Sequence[ProbeItem], test: Sequence[ProbeItem],
              frame_rate: float, probe_cfg: ProbeConfig, cfg: ProbeTrainConfig | None = None,
              test_tags: Sequence[int] | None = None) -> dict[str, Any]:
    """For each seed of ``cfg.seeds``: train a probe and evaluate it on ``test``. Returns ``per_seed``
    (each seed's :func:`evaluate_probe` result, plus ``seed`` and ``train_seconds``), the mean and spread
    over seeds (``ap_mean``, ``ap_std``, ``auc_*``, ``song_ap_*``, ``song_auc_*``; std is the *population*
    std, ddof=0 — the spread of these seeds, not an estimate for unseen ones), ``per_song_ap`` (each test
    song's own tag AP, :func:`per_song_ap`, averaged over the seeds) and the ``config`` used.

    ``test_tags`` (tag indices; ``None``: all) restricts the *test* means to those tags; training and
    checkpoint selection still use every tag.

    Refuses (``ValueError``) any song id shared between train, valid and test."""
    cfg = cfg or ProbeTrainConfig()
    check_disjoint(train, test, ("train", "test"))
    check_disjoint(train, valid, ("train", "valid"))
    check_disjoint(valid, test, ("valid", "test"))
    _validate(test, probe_cfg, "test songs")
    per_seed = []
    for seed in cfg.seeds:
        start = time.perf_counter()
        model = train_probe(train, valid, frame_rate, probe_cfg, cfg, seed)
        seconds = time.perf_counter() - start
        per_seed.append({"seed": seed, "train_seconds": seconds,
                         **evaluate_probe(model, test, frame_rate, cfg.window_seconds, test_tags)})
    result: dict[str, Any] = {"per_seed": per_seed}
    # each test song's own tag AP, averaged over the probe seeds (the probe's noise averaged out): what
    # the claims bootstrap over songs (duotok.reporting.claims)
    songs = sorted(set.intersection(*(set(r["per_song_ap"]) for r in per_seed)))
    result["per_song_ap"] = {sid: float(np.mean([r["per_song_ap"][sid] for r in per_seed])) for sid in songs}
    for key in ("ap", "auc", "song_ap", "song_auc"):
        values = np.array([r[key] for r in per_seed], dtype=np.float64)
        result[f"{key}_mean"] = float(values.mean())
        result[f"{key}_std"] = float(values.std(ddof=0))
    result["config"] = {"probe": asdict(probe_cfg), "train": asdict(cfg), "frame_rate": frame_rate,
                        "n_train": len(train), "n_valid": len(valid), "n_test": len(test), "std_ddof": 0}
    return result
