"""Disentanglement of a dual-track codec's two token streams: how much *vocal* information the
accompaniment tokens carry, and how much *accompaniment* information the vocal tokens carry.

Method. Each song's frozen quantized embeddings of one stream are cut into the tagging probe's
non-overlapping windows, and each window is labelled with attributes of one track, read from the score
(duosynth ``meta.json``): whether the voice sings, which pitch classes it sings; whether drums play,
which pitch classes the bass and the other instruments play. The same probe as the tagging evaluation
(:func:`duotok.eval.probe.run_probe`) is trained

* on the stream that *owns* the attributes (the upper reference: what the tokenizer was meant to put
  there), and
* on the *other* stream (the leak: what it was meant not to carry),

and both are compared with chance, the AP of a scorer that knows nothing (a label's prevalence on the
test windows)::

    leakage = (AP_cross - chance) / (AP_own - chance)

0 means the other stream tells the probe nothing beyond label frequencies, 1 that it is as informative
as the owning stream. With little data it can be slightly negative (a cross probe below chance by
noise) or above 1 (the owning stream's probe under-trained, or mutual information — e.g. the bass
outlines the harmony the voice sings, so *some* vocal pitch-class information in the accompaniment
stream is musical correlation, not a tokenizer leak; the ratio measures what a probe can read, not its
cause). When the owning stream is itself no better than chance the ratio is undefined and reported as
NaN with a reason (:func:`leakage_ratio`).

Why windows, not songs: the attributes change within a song (a verse sung, an instrumental break), and
song-level tags would let the probe read song identity (instrument timbre, tempo) instead of the
attribute. :func:`run_probe` labels every window with its item's tags, so each window becomes its own
:class:`~duotok.eval.probe.ProbeItem` (``"<song>#<k>"``); splits are checked disjoint *by song* before
that, since window ids would hide a song shared between splits. A consequence: run_probe's
``song_ap``/``song_auc`` are per window here (each "song" is one window) and equal ``ap``/``auc``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from duotok.codecs.base import STEM_STREAMS, Codec, stream_ids
from duotok.data.stems import discover_songs, load_meta
from duotok.data.targets import window_notes
from duotok.eval.probe import ProbeItem, ProbeTrainConfig, check_disjoint, run_probe, window_frames
from duotok.eval.probe_net import ProbeConfig

# ------------------------------------------------------------------------------------------- labels

#: A window counts as sung when the union of sung notes covers at least this fraction of it. A
#: quarter (1.25 s of a 5 s window) is a phrase, not a pickup note spilling over the boundary; the
#: union (not the longest note) because melismas are many short notes.
VOCAL_ACTIVE_FRACTION = 0.25
#: Floating-point slack of the boundary test (note times are decimal seconds).
_EPS = 1e-9

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
VOCAL_LABELS: tuple[str, ...] = ("vocal_active", *(f"vocal_pc_{p}" for p in PITCH_CLASSES))
ACCOMPANIMENT_LABELS: tuple[str, ...] = (
    "drums_present", *(f"bass_pc_{p}" for p in PITCH_CLASSES), *(f"other_pc_{p}" for p in PITCH_CLASSES)
)
#: Attribute set → its label names; the stream that owns it has the same name.
ATTRIBUTE_LABELS: dict[str, tuple[str, ...]] = {"vocal": VOCAL_LABELS, "accompaniment": ACCOMPANIMENT_LABELS}
_NOTE_STEMS = ("vocals", "bass", "other")


def full_windows(n_frames: int, frame_rate: float, window_seconds: float) -> int:
    """How many whole windows :func:`~duotok.eval.probe.cut_windows` cuts from ``n_frames`` frames
    (a trailing partial window is dropped; a song shorter than one window gives 0 here, where
    cut_windows would zero-pad it — its labels would describe audio the probe never sees)."""
    return int(n_frames) // window_frames(frame_rate, window_seconds)


def window_seconds_exact(frame_rate: float, window_seconds: float) -> float:
    """The seconds one window really spans: a whole number of frames (``round(seconds · rate)``), so
    the labels cover exactly the frames the probe reads, not the nominal ``window_seconds``."""
    return window_frames(frame_rate, window_seconds) / float(frame_rate)


def _check_notes(meta: Mapping[str, Any], song_id: str) -> Mapping[str, Any]:
    notes = meta.get("notes")
    if not isinstance(notes, Mapping):
        raise ValueError(f"song {song_id!r} has no note metadata (meta['notes']): the leakage probe labels "
                         "windows from the score, which only the generated duosynth corpus has (not MUSDB)")
    missing = [s for s in _NOTE_STEMS if s not in notes]
    if missing:
        raise ValueError(f"song {song_id!r}: meta['notes'] has no {missing} (expected {list(_NOTE_STEMS)}; an "
                         "empty list, not a missing key, says a stem is silent)")
    return notes


def _drums_present(meta: Mapping[str, Any], song_id: str) -> bool:
    """From the generator's drum style (``"none"`` = no drums), else from a ``drums_<style>`` tag.

    Song-level on purpose: the style fixes whether a kit plays throughout; per-window drum hits would
    differ only in the final ring-out second."""
    style = meta.get("drum_style")
    if style is None:
        styles = [t[len("drums_"):] for t in meta.get("tags", []) if isinstance(t, str) and t.startswith("drums_")]
        if len(styles) != 1:
            raise ValueError(f"song {song_id!r}: no drum_style in its meta and {len(styles)} drums_* tags; "
                             "cannot tell whether drums play")
        style = styles[0]
    return style != "none"


def _covered(notes: Sequence[Mapping[str, Any]], length: float) -> float:
    """Seconds of ``[0, length)`` covered by the union of ``notes`` (window-relative onsets)."""
    spans = sorted((max(0.0, float(n["onset"])), min(length, float(n["onset"]) + float(n["duration"])))
                   for n in notes)
    total, reach = 0.0, 0.0
    for a, b in spans:
        a = max(a, reach)
        if b > a:
            total += b - a
            reach = b
    return total


def _pitch_classes(notes: Sequence[Mapping[str, Any]]) -> np.ndarray:
    out = np.zeros(12, dtype=np.float32)
    for n in notes:
        out[int(round(float(n["pitch"]))) % 12] = 1.0
    return out


def window_labels(meta: Mapping[str, Any], song_id: str, n_windows: int, window_seconds: float,
                  vocal_active_fraction: float = VOCAL_ACTIVE_FRACTION) -> dict[str, np.ndarray]:
    """Labels of windows ``k = 0 … n_windows-1``, window k covering ``[k·w, (k+1)·w)`` s (``w`` =
    ``window_seconds``; pass :func:`window_seconds_exact`). Returns ``{"vocal": (N, 13), "accompaniment":
    (N, 25)}`` float32 0/1 arrays, columns in :data:`VOCAL_LABELS` / :data:`ACCOMPANIMENT_LABELS` order.

    * ``vocal_active``: sung notes (their union) cover at least ``vocal_active_fraction`` of the window
      (boundary inclusive).
    * ``*_pc_<X>``: a note of that stem with pitch class X overlaps the window at all (any positive
      overlap: a pitch heard for a moment is still heard; MIDI pitch rounded, mod 12).
    * ``drums_present``: the song's drum style is not ``"none"`` (see :func:`_drums_present`).

    Raises ``ValueError`` naming the song when it has no note metadata (real data)."""
    notes = _check_notes(meta, song_id)
    if n_windows < 0 or window_seconds <= 0:
        raise ValueError(f"need n_windows >= 0 and window_seconds > 0, got {n_windows} and {window_seconds}")
    meta_notes = {"notes": notes}
    vocal = np.zeros((n_windows, len(VOCAL_LABELS)), dtype=np.float32)
    accompaniment = np.zeros((n_windows, len(ACCOMPANIMENT_LABELS)), dtype=np.float32)
    accompaniment[:, 0] = float(_drums_present(meta, song_id))
    for k in range(n_windows):
        start, end = k * window_seconds, (k + 1) * window_seconds
        sung = window_notes(meta_notes, start, end, ("vocals",)) or []
        vocal[k, 0] = float(_covered(sung, window_seconds) >= vocal_active_fraction * window_seconds - _EPS)
        vocal[k, 1:] = _pitch_classes(sung)
        accompaniment[k, 1:13] = _pitch_classes(window_notes(meta_notes, start, end, ("bass",)) or [])
        accompaniment[k, 13:] = _pitch_classes(window_notes(meta_notes, start, end, ("other",)) or [])
    return {"vocal": vocal, "accompaniment": accompaniment}


def load_metas(root: str | os.PathLike[str], song_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each song's meta (manifest entry + ``meta.json``) under ``root``, without decoding audio."""
    records = {r.id: r for r in discover_songs(root)}
    missing = [s for s in song_ids if s not in records]
    if missing:
        raise ValueError(f"{root}: the corpus tokens name songs not found there: {', '.join(missing)}")
    return {s: load_meta(records[s]) for s in song_ids}


# ------------------------------------------------------------------------------------------- ratio


class LeakageRatio(NamedTuple):
    """``value`` (NaN when undefined) and, when it is NaN, ``reason`` (else None)."""

    value: float
    reason: str | None = None


def leakage_ratio(ap_cross: float, ap_own: float, chance: float, min_gap: float = 0.0) -> LeakageRatio:
    """``(ap_cross - chance) / (ap_own - chance)``, or NaN with a reason when it is undefined: an
    input is NaN (no label could be scored), or the owning stream's AP does not exceed chance by more
    than ``min_gap`` (the reference itself carries nothing, so there is no scale to measure a leak on;
    dividing would blow up or flip sign). Values < 0 or > 1 are returned as they are (noise, or an
    under-trained own probe). Raises ``ValueError`` for inputs outside [0, 1] (not an AP)."""
    values = {"ap_cross": ap_cross, "ap_own": ap_own, "chance": chance}
    undefined = [k for k, v in values.items() if v is None or math.isnan(v)]
    if undefined:
        return LeakageRatio(math.nan, f"{', '.join(undefined)} undefined (NaN): no label had both positive "
                                      "and negative test windows")
    bad = {k: v for k, v in values.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ValueError(f"average precision and chance lie in [0, 1], got {bad}")
    if min_gap < 0:
        raise ValueError(f"min_gap must be >= 0, got {min_gap}")
    if ap_own - chance <= min_gap:
        return LeakageRatio(math.nan, f"own-stream AP {ap_own:.4f} does not exceed chance {chance:.4f}"
                                      + (f" by more than {min_gap}" if min_gap else "")
                                      + ": the owning stream carries nothing to compare the leak with")
    return LeakageRatio(float((ap_cross - chance) / (ap_own - chance)))


def chance_ap(labels: np.ndarray) -> tuple[float, list[int], np.ndarray]:
    """Chance macro AP of 0/1 ``labels`` ``(N, L)``: the mean prevalence over the labels that
    :func:`~duotok.eval.probe.multilabel_scores` scores (both positives and negatives among the N), so
    it averages exactly the labels that enter the probe's macro AP. Returns (chance, scored label
    indices, per-label prevalence)."""
    y = np.asarray(labels) > 0.5
    if y.ndim != 2 or y.shape[0] == 0:
        raise ValueError(f"expected (N > 0, L) labels, got shape {y.shape}")
    prevalence = y.mean(0)
    positives = y.sum(0)
    scored = [k for k in range(y.shape[1]) if 0 < positives[k] < y.shape[0]]
    return (float(prevalence[scored].mean()) if scored else math.nan), scored, prevalence


# ------------------------------------------------------------------------------------------- probes


def _window_items(song_id: str, embeddings: torch.Tensor, labels: np.ndarray, frame_rate: float,
                  window_seconds: float) -> list[ProbeItem]:
    """One item per window: exactly one window of frames each, so run_probe's cut_windows yields that
    window unchanged (a view, no copy) and labels it with these tags."""
    w = window_frames(frame_rate, window_seconds)
    if embeddings.shape[0] < labels.shape[0] * w:
        raise ValueError(f"song {song_id!r}: {embeddings.shape[0]} frames for {labels.shape[0]} windows of {w}")
    tags = torch.from_numpy(labels)
    return [ProbeItem(f"{song_id}#{k}", embeddings[k * w:(k + 1) * w], tags[k]) for k in range(labels.shape[0])]


def _check_codec(codec: Codec, tokens: Mapping[str, Any]) -> None:
    missing = [s for s in STEM_STREAMS if s not in codec.streams]
    if missing:
        raise ValueError(f"{codec.name} has streams {list(codec.streams)}: the leakage probe needs a dual-track "
                         f"codec with both {list(STEM_STREAMS)} streams (missing {missing})")
    if not math.isclose(float(tokens["frame_rate"]), float(codec.frame_rate)):
        raise ValueError(f"{codec.name} runs at {codec.frame_rate} Hz but its corpus tokens say "
                         f"{tokens['frame_rate']} Hz")


def _song_splits(tokens: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Songs by split, checked disjoint by *song* id (window ids would hide a shared song)."""
    splits: dict[str, list[Mapping[str, Any]]] = {"train": [], "valid": [], "test": []}
    for song in tokens["songs"]:
        if song["split"] in splits:
            splits[song["split"]].append(song)
    ids = {k: [s["id"] for s in v] for k, v in splits.items()}
    for split, names in ids.items():
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"song(s) listed twice in split {split!r}: {', '.join(twice)}")
    check_disjoint(ids["train"], ids["test"], ("train", "test"))
    check_disjoint(ids["train"], ids["valid"], ("train", "valid"))
    check_disjoint(ids["valid"], ids["test"], ("valid", "test"))
    for split in ("train", "test"):
        if not splits[split]:
            raise ValueError(f"{tokens.get('codec', 'corpus tokens')}: no songs in split {split!r}")
    return splits


def seed_spread(values: Sequence[float | None]) -> dict[str, float]:
    """Mean and population spread (ddof=0, as :func:`~duotok.eval.probe.run_probe` reports) of per-seed
    values; undefined ones (None, NaN, inf) are left out and the rest counted in ``n``, so one undefined
    seed does not turn the whole cell into NaN. ``n == 0`` gives NaN mean and std."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if not finite.size:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(finite.mean()), "std": float(finite.std(ddof=0)), "n": int(finite.size)}


def _seed_leakage(own: Mapping[str, Any], cross: Mapping[str, Any], chance: float,
                  min_gap: float = 0.0) -> dict[str, Any]:
    """Leakage per seed (the same seed's own and cross probes), then mean and population std over the
    seeds where it is defined (``n_seeds_defined``; NaN and the first reason when none is)."""
    cross_by_seed = {r["seed"]: r for r in cross["per_seed"]}
    per_seed = []
    for r in own["per_seed"]:
        ratio = leakage_ratio(cross_by_seed[r["seed"]]["ap"], r["ap"], chance, min_gap)
        per_seed.append({"seed": r["seed"], "ap_own": r["ap"], "ap_cross": cross_by_seed[r["seed"]]["ap"],
                         "leakage": ratio.value, "reason": ratio.reason})
    spread = seed_spread([p["leakage"] for p in per_seed if p["reason"] is None])
    reasons = [p["reason"] for p in per_seed if p["reason"] is not None]
    return {"per_seed": per_seed, "mean": spread["mean"], "std": spread["std"], "n_seeds_defined": spread["n"],
            "reason": None if spread["n"] else (reasons[0] if reasons else "no seeds")}


def leakage_probe_from_metas(codec: Codec, tokens: Mapping[str, Any], metas: Mapping[str, Mapping[str, Any]],
                             model: Mapping[str, Any], train: Mapping[str, Any],
                             attributes: Sequence[str] = ("vocal", "accompaniment"),
                             min_gap: float = 0.0) -> dict[str, Any]:
    """:func:`leakage_probe` with the songs' metas given (``{song id: meta}``) instead of a corpus root."""
    _check_codec(codec, tokens)
    unknown = [a for a in attributes if a not in ATTRIBUTE_LABELS]
    if unknown or not attributes:
        raise ValueError(f"attributes must be a non-empty subset of {list(ATTRIBUTE_LABELS)}, got {list(attributes)}")
    cfg = ProbeTrainConfig(**train)
    frame_rate = float(tokens["frame_rate"])
    span = window_seconds_exact(frame_rate, cfg.window_seconds)
    splits = _song_splits(tokens)

    # Per split: each stream's per-window items for each attribute set, and the labels themselves.
    items: dict[tuple[str, str, str], list[ProbeItem]] = {}
    labels: dict[tuple[str, str], list[np.ndarray]] = {}
    skipped: list[str] = []
    for split, songs in splits.items():
        for attr in attributes:
            labels[(split, attr)] = []
            for stream in STEM_STREAMS:
                items[(split, attr, stream)] = []
        for song in songs:
            if song["id"] not in metas:
                raise ValueError(f"no meta for song {song['id']!r}")
            ids = torch.as_tensor(song["ids"])
            embeddings = {s: codec.embed_stream(stream_ids(codec, ids, s), s).float() for s in STEM_STREAMS}
            n = min(full_windows(e.shape[0], frame_rate, cfg.window_seconds) for e in embeddings.values())
            song_labels = window_labels(metas[song["id"]], song["id"], n, span)
            if n == 0:
                skipped.append(song["id"])
                continue
            for attr in attributes:
                labels[(split, attr)].append(song_labels[attr])
                for stream in STEM_STREAMS:
                    items[(split, attr, stream)] += _window_items(song["id"], embeddings[stream],
                                                                  song_labels[attr], frame_rate, cfg.window_seconds)
    for split in ("train", "test"):
        if not items[(split, attributes[0], STEM_STREAMS[0])]:
            raise ValueError(f"no whole {cfg.window_seconds} s window in any {split} song")

    result: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for attr in attributes:
        names = ATTRIBUTE_LABELS[attr]
        chance, scored, prevalence = chance_ap(np.concatenate(labels[("test", attr)]))
        entry: dict[str, Any] = {"labels": list(names), "owner_stream": attr}
        for stream in STEM_STREAMS:
            train_items = items[("train", attr, stream)]
            probe_cfg = ProbeConfig(in_dim=int(train_items[0].embeddings.shape[-1]), n_tags=len(names), **model)
            entry[f"from_{stream}"] = run_probe(train_items, items[("valid", attr, stream)],
                                                items[("test", attr, stream)], frame_rate, probe_cfg, cfg)
        cross = next(s for s in STEM_STREAMS if s != attr)
        entry["cross_stream"] = cross
        entry["chance_ap"] = chance
        entry["labels_scored"] = [names[k] for k in scored]
        entry["prevalence"] = {names[k]: float(prevalence[k]) for k in range(len(names))}
        entry["n_windows"] = {s: int(sum(x.shape[0] for x in labels[(s, attr)])) for s in splits}
        entry["leakage"] = _seed_leakage(entry[f"from_{attr}"], entry[f"from_{cross}"], chance, min_gap)
        result[f"{attr}_attributes"] = entry
        summary[f"{attr}_in_{cross}"] = {k: entry["leakage"][k] for k in ("mean", "std", "n_seeds_defined", "reason")}
    result["summary"] = summary
    result["config"] = {"window_seconds": cfg.window_seconds, "window_seconds_exact": span,
                        "frame_rate": frame_rate, "vocal_active_fraction": VOCAL_ACTIVE_FRACTION, "min_gap": min_gap,
                        "songs_without_a_whole_window": skipped, "codec": codec.name}
    return result


def leakage_probe(codec: Codec, tokens: Mapping[str, Any], root: str | os.PathLike[str],
                  model: Mapping[str, Any], train: Mapping[str, Any],
                  attributes: Sequence[str] = ("vocal", "accompaniment"), min_gap: float = 0.0) -> dict[str, Any]:
    """Leakage between a dual-track codec's streams on its corpus tokens (:func:`load_corpus_tokens`),
    labels read from the duosynth corpus at ``root``; ``model``/``train``: ProbeConfig (minus in_dim,
    n_tags) and ProbeTrainConfig fields, as in ``params.yaml: probe``.

    For each attribute set (``"vocal"``, ``"accompaniment"``) two probes, on the owning stream and on
    the other, each a full :func:`run_probe` result; returns::

        {"vocal_attributes": {"labels": [13 names], "owner_stream": "vocal", "cross_stream": "accompaniment",
                              "from_vocal": run_probe(...), "from_accompaniment": run_probe(...),
                              "chance_ap": float, "labels_scored": [...], "prevalence": {label: float},
                              "n_windows": {split: int},
                              "leakage": {"per_seed": [{"seed", "ap_own", "ap_cross", "leakage", "reason"}],
                                          "mean", "std", "n_seeds_defined", "reason"}},
         "accompaniment_attributes": {... the same with 25 labels, owner "accompaniment" ...},
         "summary": {"vocal_in_accompaniment": {"mean", "std", "n_seeds_defined", "reason"},
                     "accompaniment_in_vocal": {...}},
         "config": {...}}

    ``min_gap``: a seed whose own-stream AP exceeds chance by no more than this gets NaN leakage (see
    :func:`leakage_ratio`; with a small gap the ratio is noise over noise — on tiny test sets an
    uninformed probe's AP already sits a little above prevalence, the small-sample bias of AP).

    Refuses codecs without both stem streams, songs without note metadata (naming them) and splits
    that share a song. Songs shorter than one window are skipped and listed in ``config``."""
    song_ids = [s["id"] for s in tokens["songs"] if s["split"] in ("train", "valid", "test")]
    _check_codec(codec, tokens)
    return leakage_probe_from_metas(codec, tokens, load_metas(root, song_ids), model, train, attributes, min_gap)
