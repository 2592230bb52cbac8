"""Stage-1 diagnostics: masked-prediction accuracy on held-out audio, how evenly the frozen random
quantizer spreads its targets (a collapsed target distribution makes "accuracy" meaningless), and
a PCA of the encoder's features over time."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch.utils.data import Dataset

from duotok.data import collate_stems
from duotok.eval.batches import eval_batches
from duotok.models.bestrq import BestRQModel


@torch.no_grad()
def masked_prediction(model: BestRQModel, data: Dataset, batch_size: int = 8, seed: int = 0,
                      max_batches: int | None = None) -> dict[str, float]:
    """Mean masked-prediction loss and accuracy over ``data``'s mixtures, with span masks drawn from a
    seeded generator so the number is reproducible. Frame-weighted over batches."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total_loss = total_acc = total_masked = 0.0
    for batch in eval_batches(data, batch_size, collate_stems, max_batches):
        loss, metrics = model(batch["mixture"], batch["length"], generator=generator)
        weight = metrics["masked_fraction"] * batch["mixture"].shape[0]
        total_loss += float(loss) * weight
        total_acc += metrics["accuracy"] * weight
        total_masked += weight
    if total_masked == 0:
        raise ValueError("no masked frames: the evaluation set is empty")
    return {"loss": total_loss / total_masked, "accuracy": total_acc / total_masked}


def code_distribution(codes: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Entropy (bits) of a code histogram, its maximum ``log2 V``, the normalised entropy and the
    fraction of codes that occur at all."""
    counts = torch.bincount(codes.reshape(-1).long(), minlength=codebook_size).double()
    total = counts.sum()
    if total == 0:
        raise ValueError("no codes to measure")
    p = counts[counts > 0] / total
    entropy = float(-(p * p.log2()).sum())
    return {"entropy_bits": entropy, "max_entropy_bits": math.log2(codebook_size),
            "normalized_entropy": entropy / math.log2(codebook_size),
            "used_fraction": float((counts > 0).double().mean())}


@torch.no_grad()
def target_entropy(model: BestRQModel, data: Dataset, batch_size: int = 8,
                   max_batches: int | None = None) -> dict[str, float]:
    """:func:`code_distribution` of the frozen quantizer's targets on ``data``'s valid frames."""
    model.eval()
    codes = []
    for batch in eval_batches(data, batch_size, collate_stems, max_batches):
        targets = model.targets(batch["mixture"])
        frame_mask = model.frame_mask(batch["length"], batch["mixture"].shape[-1] // model.config.mel.hop_length + 1)
        token_mask = model.encoder.downsample_mask(frame_mask)
        codes.append(targets[token_mask[:, : targets.shape[1]]])
    return code_distribution(torch.cat(codes), model.config.codebook_size)


@torch.no_grad()
def encoder_features(model: Any, audio: torch.Tensor) -> torch.Tensor:
    """Clean (unmasked) features ``(T25, dim)`` of one mono clip from any model with ``logmel`` and
    ``encoder`` (stages 1-3)."""
    model.eval()
    mel = model.logmel(audio[None])
    return model.encoder(mel)[0].float()


def feature_pca(features: torch.Tensor, n_components: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PCA of ``(T, dim)`` features → ``(T, n_components)`` projections and the explained variance
    ratios. Sign-fixed (largest-magnitude loading positive) so reruns plot the same picture."""
    x = features.detach().cpu().double().numpy()
    pca = PCA(n_components=n_components, random_state=seed)
    projected = pca.fit_transform(x)
    signs = np.sign(pca.components_[np.arange(n_components), np.abs(pca.components_).argmax(axis=1)])
    return projected * signs, pca.explained_variance_ratio_
