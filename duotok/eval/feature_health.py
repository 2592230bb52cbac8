"""Is an encoder's representation healthy? Two numbers that masked-prediction accuracy does not give.

Stage 1 (BEST-RQ) is judged by its masked-prediction accuracy, but at the ``default`` budget that
accuracy stays near 3 % and says nothing about what stage 2 receives. Two measures of the features
themselves do:

* :func:`effective_rank` — exp of the entropy of the feature covariance's normalised eigenvalues
  (Roy & Vetterli, 2007): how many directions the features really use. A representation that has
  collapsed onto a few directions (a known failure of self-supervised training) scores a few units,
  an untrained Transformer over log-mels tens.
* :func:`linear_readout_r2` — how much of the **input** a linear map can read back from the features:
  a ridge regression from the 25 Hz features to the log-mel frames each token covers, fitted on one
  set of clips and scored (pooled R²) on another. A stage-1 encoder that is worth starting stage 2
  from should not keep *less* of its input than an untrained one.

:func:`encoder_feature_health` applies both to the lower and upper stacks of a
:class:`~duotok.models.bestrq.BestRQModel`. Both are written out here (not sklearn's) because their
definitions are the point; ``tests/eval/test_feature_health.py`` pins them against independent
computations (a spectrum with a known entropy, sklearn's ``Ridge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["effective_rank", "encoder_feature_health", "linear_readout_r2", "token_targets"]


def effective_rank(features: np.ndarray | torch.Tensor) -> dict[str, float]:
    """``{"effective_rank", "top1_share"}`` of ``(N, D)`` features: exp of the Shannon entropy (nats) of
    the centred covariance's eigenvalues normalised to sum 1, and the largest eigenvalue's share.

    D equal, independent directions give D; all variance on one direction gives 1."""
    x = torch.as_tensor(features).double()
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {tuple(x.shape)}")
    s = torch.linalg.svdvals(x - x.mean(dim=0))
    power = s.square()
    total = power.sum()
    if not torch.isfinite(total) or total <= 0:
        raise ValueError("features have no variance (or are not finite)")
    p = power / total
    p = p[p > 0]
    return {"effective_rank": float(torch.exp(-(p * p.log()).sum())), "top1_share": float(p.max())}


def linear_readout_r2(train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray, valid_y: np.ndarray,
                      ridge: float = 1e-2) -> float:
    """Pooled R² on ``valid`` of a ridge regression ``y ≈ x W + b`` fitted on ``train``.

    ``x`` is standardised with the training mean and spread; the intercept is not penalised; the
    penalty is ``ridge · N_train`` (so it does not grow weaker with more frames) — exactly sklearn's
    ``Ridge(alpha=ridge * N_train)`` on the standardised inputs. R² pools every output column:
    ``1 − Σ (y − ŷ)² / Σ (y − ȳ_valid)²``."""
    xtr, ytr = np.asarray(train_x, np.float64), np.asarray(train_y, np.float64)
    xva, yva = np.asarray(valid_x, np.float64), np.asarray(valid_y, np.float64)
    if xtr.ndim != 2 or ytr.ndim != 2 or xtr.shape[0] != ytr.shape[0] or xva.shape[0] != yva.shape[0]:
        raise ValueError("need 2-D x and y with one row per frame in each set")
    if ridge <= 0:
        raise ValueError(f"ridge must be > 0, got {ridge}")
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    a, b = (xtr - mu) / sd, (xva - mu) / sd
    y_mean = ytr.mean(axis=0)
    a_mean = a.mean(axis=0)
    ac = a - a_mean
    w = np.linalg.solve(ac.T @ ac + ridge * len(a) * np.eye(a.shape[1]), ac.T @ (ytr - y_mean))
    pred = (b - a_mean) @ w + y_mean
    sst = np.square(yva - yva.mean(axis=0)).sum()
    if sst <= 0:
        raise ValueError("the validation targets have no variance")
    return float(1.0 - np.square(yva - pred).sum() / sst)


@torch.no_grad()
def token_targets(model: Any, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lower, upper, mel)`` of one mono clip, each ``(T, ·)`` on the same 25 Hz tokens: the clean
    features after the lower and the upper stack, and the normalised log-mel frames each token covers
    (``downsample`` frames stacked). Only whole tokens are kept, so every row has its full mel target."""
    model.eval()
    encoder = model.encoder
    mel = model.logmel(audio.float()[None])
    lower = encoder.forward_lower(encoder.embed(mel))
    upper = encoder.forward_upper(lower)
    normed = encoder.normalize(mel)[0]
    factor = int(encoder.config.downsample)
    n_tokens = min(normed.shape[-1] // factor, lower.shape[1])
    stacked = normed[:, : n_tokens * factor].T.reshape(n_tokens, -1)
    return lower[0, :n_tokens].float(), upper[0, :n_tokens].float(), stacked.float()


def encoder_feature_health(model: Any, train_clips: Sequence[torch.Tensor], valid_clips: Sequence[torch.Tensor],
                           ridge: float = 1e-2) -> dict[str, dict[str, float]]:
    """For the lower and the upper stack: the effective rank and top share of the validation clips'
    features, and the log-mel read-out R² (fitted on ``train_clips``, scored on ``valid_clips``)."""
    if not train_clips or not valid_clips:
        raise ValueError("need at least one training and one validation clip")
    train = [token_targets(model, clip) for clip in train_clips]
    valid = [token_targets(model, clip) for clip in valid_clips]

    def stack(rows: list, i: int) -> np.ndarray:
        return torch.cat([r[i] for r in rows]).numpy()

    out = {}
    for i, name in ((0, "lower"), (1, "upper")):
        out[name] = {**effective_rank(stack(valid, i)),
                     "mel_readout_r2": linear_readout_r2(stack(train, i), stack(train, 2), stack(valid, i),
                                                         stack(valid, 2), ridge)}
    return out
