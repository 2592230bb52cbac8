"""Held-out metrics of the stage-2 heads (on mixtures) and the stage-3 heads (per track, on the
quantized tokens): lyrics CER (greedy CTC), mel L1 (normalised log-mel, as trained), chroma frame
accuracy and cosine, mask-head separation SDR, and codebook usage.

Every mean is weighted by what it averages (frames, characters), so the result does not depend on
the batch size."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from duotok.audio.masks import ratio_masks
from duotok.data import SOURCES
from duotok.data.targets import MultiTaskCollate
from duotok.eval.batches import eval_batches
from duotok.eval.codes import usage_report
from duotok.eval.separation import bss_eval_track, summarize_tracks
from duotok.models.dualtrack import DualTrackModel, stack_tracks
from duotok.models.heads import chroma_counts, mel_l1_loss, separate
from duotok.models.multitask import MultiTaskModel
from duotok.quantization.dual import TRACKS
from duotok.quantization.simvq import CodeUsage
from duotok.text import CharVocab, character_error_rate


class WeightedMeans:
    """Running weighted means of named values."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.weights: dict[str, float] = defaultdict(float)

    def add(self, name: str, value: float, weight: float) -> None:
        if weight > 0:
            self.sums[name] += float(value) * weight
            self.weights[name] += weight

    def result(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def add_head_scores(means: WeightedMeans, prefix: str, outputs: dict[str, torch.Tensor], mel_target: torch.Tensor,
                    chroma: torch.Tensor | None, frame_mask: torch.Tensor) -> None:
    """Add the mel L1 (weighted by valid mel bins) and chroma accuracy / cosine (weighted by counted
    frames) of one batch's head ``outputs`` to ``means``, under ``<prefix>mel_l1`` etc. The losses'
    own functions compute them, so evaluation measures exactly what training optimised."""
    if "mel" in outputs:
        bins = int(frame_mask.sum()) * mel_target.shape[1]
        means.add(f"{prefix}mel_l1", float(mel_l1_loss(outputs["mel"], mel_target, frame_mask)), bins)
    if "chroma" in outputs and chroma is not None:
        correct, cosine, n = chroma_counts(outputs["chroma"], chroma, frame_mask)
        means.add(f"{prefix}chroma_accuracy", correct / max(n, 1), n)
        means.add(f"{prefix}chroma_cosine", cosine / max(n, 1), n)


def _lyrics_pairs(vocab: CharVocab, log_probs: torch.Tensor, token_mask: torch.Tensor,
                  texts: list[str], has_lyrics: torch.Tensor) -> tuple[list[str], list[str]]:
    keep = [i for i in range(len(texts)) if bool(has_lyrics[i])]
    if not keep:
        return [], []
    hyps = vocab.greedy_ctc_decode(log_probs[keep], token_mask[keep].sum(dim=1))
    refs = [vocab.normalize(texts[i]) for i in keep]
    return refs, hyps


def first_sung_crop(data: Dataset, collate: MultiTaskCollate) -> tuple[int, dict[str, Any]] | None:
    """The first crop of ``data`` whose window has sung text, as ``(index, one-item batch)`` made by
    ``collate`` (its ``lyrics_text``: what is sung), or ``None`` when no crop has any: the notebooks'
    "sung / heard" example."""
    for i in range(len(data)):
        batch = collate([data[i]])
        if bool(batch["has_lyrics"][0]) and collate.vocab.normalize(batch["lyrics_text"][0]):
            return i, batch
    return None


@torch.no_grad()
def multitask_metrics(model: MultiTaskModel, data: Dataset, batch_size: int = 8, sdr_items: int = 8,
                      oracle: bool = True, max_batches: int | None = None, progress: bool = False,
                      ) -> dict[str, float]:
    """Stage-2 metrics on ``data`` (deterministic crops of held-out songs). ``sdr_items``: how many
    crops get BSS-eval (museval is slow); with ``oracle`` their oracle ratio-mask SDR is reported too
    (``oracle/...``: the ceiling of any magnitude mask with the mixture phase)."""
    model.eval()
    m = model.config.mel
    vocab = CharVocab()
    collate = MultiTaskCollate(vocab, m.sample_rate, m.hop_length)
    means = WeightedMeans()
    refs: list[str] = []
    hyps: list[str] = []
    tracks, oracle_tracks = [], []
    for batch in tqdm(eval_batches(data, batch_size, collate, max_batches), desc="stage-2 eval", disable=not progress):
        run = model.infer(batch["mixture"], batch["length"])
        out, frame_mask = run["outputs"], run["frame_mask"]
        add_head_scores(means, "", out, model.encoder.normalize_masked(run["mel"], frame_mask), batch["chroma"],
                        frame_mask)
        if "lyrics" in out:
            r, h = _lyrics_pairs(vocab, out["lyrics"], run["token_mask"], batch["lyrics_text"], batch["has_lyrics"])
            refs += r
            hyps += h
        if "mask" in out and len(tracks) < sdr_items:
            estimates = separate(out["mask"], batch["mixture"], m.n_fft, m.hop_length, m.win_length)
            for i in range(min(len(estimates), sdr_items - len(tracks))):
                n = int(batch["length"][i])
                reference = batch["stems"][i, :, :n].numpy()
                tracks.append(bss_eval_track(reference, estimates[i, :, :n].numpy(), m.sample_rate))
                if oracle:
                    masks = ratio_masks(batch["stems"][i, :, :n], m.n_fft, m.hop_length, m.win_length)
                    ideal = separate(masks[None], batch["mixture"][i : i + 1, :n], m.n_fft, m.hop_length,
                                     m.win_length)[0]
                    oracle_tracks.append(bss_eval_track(reference, ideal.numpy(), m.sample_rate))
    metrics = means.result()
    if refs:
        metrics["cer"] = character_error_rate(refs, hyps)
        metrics["lyrics_windows"] = len(refs)
    if tracks:
        metrics.update({f"mask/{k}": v for k, v in summarize_tracks(tracks, SOURCES).items()})
        metrics["mask/items"] = len(tracks)
    if oracle_tracks:
        metrics.update({f"oracle/{k}": v for k, v in summarize_tracks(oracle_tracks, SOURCES).items()})
    return metrics


@torch.no_grad()
def dualtrack_metrics(model: DualTrackModel, data: Dataset, batch_size: int = 8, max_batches: int | None = None,
                      progress: bool = False) -> tuple[dict[str, float], dict[str, CodeUsage]]:
    """Stage-3 metrics on ground-truth stems of held-out songs, per track (``vocal/...``,
    ``accompaniment/...``): codebook usage and perplexity over the whole set, mel L1 and chroma
    accuracy of the heads reading the quantized tokens, lyrics CER (vocal track). Also returns the
    accumulated :class:`CodeUsage` per track (for histograms)."""
    model.eval()
    m = model.config.mel
    vocab = CharVocab()
    collate = MultiTaskCollate(vocab, m.sample_rate, m.hop_length, per_track=True)
    usage = {name: CodeUsage(size) for name, size in zip(TRACKS, model.config.codebook_sizes, strict=True)}
    means = WeightedMeans()
    refs: list[str] = []
    hyps: list[str] = []
    for batch in tqdm(eval_batches(data, batch_size, collate, max_batches), desc="stage-3 eval", disable=not progress):
        b = batch["mixture"].shape[0]
        run = model.infer(*stack_tracks(batch["stems"][:, 0], batch["accompaniment"], batch["length"]))
        out, frame_mask, token_mask = run["outputs"], run["frame_mask"], run["token_mask"]
        codes = run["result"].codes
        chroma = {"vocal": batch["chroma_vocals"], "accompaniment": batch["chroma_accompaniment"]}
        for name, rows in zip(TRACKS, (slice(0, b), slice(b, 2 * b)), strict=True):
            usage[name].update(codes[rows], token_mask[rows])
            add_head_scores(means, f"{name}/", {k: v[rows] for k, v in out.items() if k != "lyrics"},
                            model.encoder.normalize_masked(run["mel"][rows], frame_mask[rows]), chroma[name],
                            frame_mask[rows])
        if "lyrics" in out:
            r, h = _lyrics_pairs(vocab, out["lyrics"][:b], token_mask[:b], batch["lyrics_text"], batch["has_lyrics"])
            refs += r
            hyps += h
    metrics: dict[str, Any] = means.result()
    frame_rate = m.sample_rate / m.hop_length / model.config.encoder.downsample
    for name in TRACKS:
        metrics.update({f"{name}/{k}": v for k, v in usage_report(usage[name], frame_rate).items()})
    if refs:
        metrics["vocal/cer"] = character_error_rate(refs, hyps)
        metrics["lyrics_windows"] = len(refs)
    metrics["bits_per_second"] = model.quantizer.bits_per_second(frame_rate)
    return metrics, usage
