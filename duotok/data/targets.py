"""Stage-2 supervision for a batch of crops: chroma from the score's notes, lyrics characters for the
CTC head. (Mel and mask targets are computed from the audio inside the model.)

Real data has no score: its chroma target comes from the audio (librosa chroma of the mixture) and
its lyrics weight is zero, so the same collate serves duosynth and MUSDB-layout corpora."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from duotok.audio.chroma import chroma_from_audio, chroma_from_notes
from duotok.data.stems import collate_stems
from duotok.text import CharVocab, lyrics_targets_for_window

PITCHED_STEMS = ("vocals", "bass", "other")


def window_notes(meta: dict[str, Any], start: float, end: float,
                 stems: Sequence[str] = PITCHED_STEMS) -> list[dict[str, float]] | None:
    """Notes of ``stems`` (default: every pitched stem) overlapping ``[start, end)``, shifted so
    ``start`` is 0; None when the song has no note metadata."""
    notes = meta.get("notes")
    if not isinstance(notes, dict):
        return None
    out = []
    for stem in stems:
        for n in notes.get(stem, []):
            onset, dur = float(n["onset"]), float(n["duration"])
            if onset < end and onset + dur > start:
                out.append({"pitch": n["pitch"], "onset": onset - start, "duration": dur})
    return out


def window_lyrics(meta: dict[str, Any], start: float, end: float) -> str | None:
    """Lyrics sung in the window, or None when the song has no syllable timings."""
    lyrics = meta.get("lyrics")
    if not isinstance(lyrics, dict) or "syllables" not in lyrics:
        return None
    return lyrics_targets_for_window(lyrics["syllables"], start, end)


def crop_chroma(item: dict[str, Any], stems: Sequence[str], audio: torch.Tensor, n_frames: int,
                sample_rate: int, frame_rate: float) -> torch.Tensor:
    """Chroma target of one crop from the notes of ``stems``, or from ``audio`` without a score."""
    start = float(item["offset"])
    end = start + int(item["length"]) / sample_rate
    notes = window_notes(item["meta"], start, end, stems)
    if notes is None:
        c = chroma_from_audio(audio.numpy(), sample_rate, frame_rate, n_frames=n_frames)
    else:
        c = chroma_from_notes(notes, n_frames, frame_rate)
    return torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))


class MultiTaskCollate:
    """``collate_stems`` plus ``chroma`` (B, 12, frames), ``lyrics`` (B, L) padded ids,
    ``lyrics_lengths`` (B,), ``has_lyrics`` (B,) bool. Frames are the log-mel frames of the crop.
    With ``per_track`` (stage 3) also ``chroma_vocals`` and ``chroma_accompaniment``: each track's
    own harmony target, since each track is encoded on its own."""

    def __init__(self, vocab: CharVocab, sample_rate: int, hop_length: int, per_track: bool = False):
        self.vocab = vocab
        self.per_track = per_track
        self.sample_rate = sample_rate
        self.hop_length = hop_length

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = collate_stems(items)
        n_samples = batch["mixture"].shape[-1]
        n_frames = n_samples // self.hop_length + 1
        frame_rate = self.sample_rate / self.hop_length
        chroma, texts, has_lyrics = [], [], []
        for item in items:
            chroma.append(crop_chroma(item, PITCHED_STEMS, item["mixture"], n_frames, self.sample_rate, frame_rate))
            start = float(item["offset"])
            text = window_lyrics(item["meta"], start, start + int(item["length"]) / self.sample_rate)
            has_lyrics.append(text is not None)
            texts.append(text or "")
        ids, lengths = self.vocab.encode_batch(texts)
        batch["chroma"] = torch.stack(chroma)
        if self.per_track:
            batch["chroma_vocals"] = torch.stack([
                crop_chroma(it, ("vocals",), it["stems"][0], n_frames, self.sample_rate, frame_rate) for it in items])
            batch["chroma_accompaniment"] = torch.stack([
                crop_chroma(it, ("bass", "other"), it["accompaniment"], n_frames, self.sample_rate, frame_rate)
                for it in items])
        batch["lyrics"] = ids
        batch["lyrics_lengths"] = lengths
        batch["has_lyrics"] = torch.tensor(has_lyrics)
        batch["lyrics_text"] = texts
        batch.pop("meta", None)  # large and unused by the model
        return batch
