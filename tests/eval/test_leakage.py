"""Stream leakage probe: window labels from a hand-made score, the leakage ratio's arithmetic and edge
cases, and end to end on a fake dual-track codec whose accompaniment stream is either pure noise
(leakage of vocal attributes ≈ 0) or a copy of the vocal stream's information (≈ 1)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from duotok.eval.leakage import (
    ACCOMPANIMENT_LABELS,
    VOCAL_LABELS,
    chance_ap,
    full_windows,
    leakage_probe,
    leakage_probe_from_metas,
    leakage_ratio,
    seed_spread,
    window_labels,
    window_seconds_exact,
)

RATE = 5.0  # Hz: a 5 s window is 25 frames, which keeps the probes tiny
WINDOW = 5.0


def on(names: tuple[str, ...], *active: str) -> list[float]:
    return [1.0 if n in active else 0.0 for n in names]


# ------------------------------------------------------------------------------------------- labels


def hand_meta() -> dict[str, Any]:
    return {
        "drum_style": "none",
        "notes": {
            "vocals": [
                {"pitch": 60, "onset": 0.0, "duration": 1.25},  # window 0: exactly 25 % sung → active
                {"pitch": 64, "onset": 5.0, "duration": 0.6},   # window 1: E twice, overlapping (union 0.9 s)
                {"pitch": 76, "onset": 5.3, "duration": 0.6},
                {"pitch": 67, "onset": 9.5, "duration": 0.34},  # + G 0.34 s: 1.24 s < 1.25 → not active
                {"pitch": 69, "onset": 11.0, "duration": 3.0},  # only in the dropped partial window
            ],
            "bass": [
                {"pitch": 49, "onset": 3.0, "duration": 2.0},   # C#, ends exactly at 5.0: window 0 only
                {"pitch": 47, "onset": 4.0, "duration": 2.0},   # B, spans the boundary: both windows
                {"pitch": 54, "onset": 5.0, "duration": 1.0},   # F#, starts exactly at 5.0: window 1 only
            ],
            "other": [{"pitch": 72.2, "onset": 0.0, "duration": 10.0}],  # C (rounded) throughout
            "drums": [],
        },
    }


def test_window_labels_on_a_hand_made_score():
    n_frames = 62  # 2 whole windows of 25 frames + 12 frames dropped
    n = full_windows(n_frames, RATE, WINDOW)
    assert n == 2
    labels = window_labels(hand_meta(), "hand", n, window_seconds_exact(RATE, WINDOW))
    assert labels["vocal"].shape == (2, 13) and labels["accompaniment"].shape == (2, 25)
    assert labels["vocal"].tolist() == [
        on(VOCAL_LABELS, "vocal_active", "vocal_pc_C"),
        on(VOCAL_LABELS, "vocal_pc_E", "vocal_pc_G"),
    ]
    assert labels["accompaniment"].tolist() == [
        on(ACCOMPANIMENT_LABELS, "bass_pc_C#", "bass_pc_B", "other_pc_C"),
        on(ACCOMPANIMENT_LABELS, "bass_pc_B", "bass_pc_F#", "other_pc_C"),
    ]


def test_vocal_active_boundary_and_drums():
    meta = {"tags": ["drums_rock"], "notes": {"vocals": [{"pitch": 60, "onset": 1.0, "duration": 1.25}],
                                              "bass": [], "other": []}}
    assert window_labels(meta, "x", 1, 5.0)["vocal"][0, 0] == 1.0       # 1.25 s of 5 s: inclusive
    assert window_labels(meta, "x", 1, 5.0, vocal_active_fraction=0.26)["vocal"][0, 0] == 0.0
    meta["notes"]["vocals"][0]["duration"] = 1.2499
    assert window_labels(meta, "x", 1, 5.0)["vocal"][0, 0] == 0.0
    assert window_labels(meta, "x", 1, 5.0)["accompaniment"][0, 0] == 1.0  # drums from the tag
    assert full_windows(24, RATE, WINDOW) == 0  # shorter than a window: no labelled window


def test_window_labels_refuse_songs_without_a_score():
    with pytest.raises(ValueError, match="Track A"):
        window_labels({}, "Track A", 3, 5.0)
    with pytest.raises(ValueError, match="song-x.*bass"):
        window_labels({"drum_style": "rock", "notes": {"vocals": [], "other": []}}, "song-x", 3, 5.0)


# -------------------------------------------------------------------------------------------- ratio


def test_leakage_ratio_arithmetic():
    assert leakage_ratio(0.7, 0.9, 0.5).value == pytest.approx(0.5)
    assert leakage_ratio(0.5, 0.9, 0.5) == (0.0, None)
    assert leakage_ratio(0.9, 0.9, 0.5).value == pytest.approx(1.0)
    assert leakage_ratio(0.4, 0.9, 0.5).value == pytest.approx(-0.25)  # below chance by noise
    assert leakage_ratio(1.0, 0.9, 0.5).value == pytest.approx(1.25)   # above the own stream


def test_leakage_ratio_edge_cases():
    for own in (0.5, 0.4):
        value, reason = leakage_ratio(0.6, own, 0.5)
        assert math.isnan(value) and "does not exceed chance" in reason
    value, reason = leakage_ratio(0.6, 0.52, 0.5, min_gap=0.05)
    assert math.isnan(value) and "0.05" in reason
    value, reason = leakage_ratio(math.nan, 0.9, 0.5)
    assert math.isnan(value) and "ap_cross" in reason
    with pytest.raises(ValueError):
        leakage_ratio(1.2, 0.9, 0.5)


def test_chance_ap_averages_the_scored_labels():
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [1, 0, 1]])  # only label 0 has both classes
    chance, scored, prevalence = chance_ap(y)
    assert scored == [0] and chance == pytest.approx(0.75)
    assert prevalence.tolist() == [0.75, 0.0, 1.0]
    assert math.isnan(chance_ap(np.ones((3, 2)))[0])


# --------------------------------------------------------------------------------------- end to end

VOCAB = 13  # id 0: silence, 1 + pc: a sung pitch class


class FakeDualCodec:
    """The parts of the Codec protocol the leakage probe calls: ``streams``, ``frame_rate``, ``name``,
    ``embed_stream`` (a fixed table lookup per stream)."""

    name = "fake-dual"
    frame_rate = RATE

    def __init__(self, streams: tuple[str, ...] = ("vocal", "accompaniment")):
        self.streams = {s: (i,) for i, s in enumerate(streams)}
        g = torch.Generator().manual_seed(0)
        self.tables = {"vocal": torch.eye(VOCAB), "accompaniment": torch.randn(VOCAB, VOCAB, generator=g)}

    def embed_stream(self, ids: torch.Tensor, stream: str) -> torch.Tensor:
        return self.tables[stream][torch.as_tensor(ids).reshape(-1)]


def random_meta(seed: int, seconds: float) -> dict[str, Any]:
    """Alternating sung and silent sections of 2–8 s, notes of 1–2 s; the voice sings six pitch classes."""
    rng = np.random.default_rng(seed)

    def melody(pool: list[int], p_rest: float) -> list[dict[str, float]]:
        notes, t = [], 0.0
        while t < seconds:
            section = float(rng.uniform(2.0, 8.0))
            if rng.random() >= p_rest:
                u = t
                while u < min(t + section, seconds):
                    d = float(rng.uniform(1.0, 2.0))
                    notes.append({"pitch": int(rng.choice(pool)), "onset": u, "duration": d})
                    u += d
            t += section
        return notes

    return {"drum_style": str(rng.choice(["none", "rock"])),
            "notes": {"vocals": melody([60, 62, 64, 67, 69, 71], 0.5), "bass": melody([36, 43], 0.2),
                      "other": melody([72, 76], 0.2)}}


def vocal_frame_ids(meta: dict[str, Any], n_frames: int) -> torch.Tensor:
    """Per frame: 1 + the pitch class sung at the frame's centre, 0 when silent."""
    ids = torch.zeros(n_frames, dtype=torch.long)
    for n in meta["notes"]["vocals"]:
        first = math.ceil(n["onset"] * RATE - 0.5)
        last = math.ceil((n["onset"] + n["duration"]) * RATE - 0.5)
        ids[max(first, 0):min(last, n_frames)] = 1 + n["pitch"] % 12
    return ids


SPLITS = ["train"] * 12 + ["valid"] * 2 + ["test"] * 6
SECONDS = 40.6  # 203 frames: 8 windows and a dropped remainder


def corpus(accompaniment: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Corpus tokens and metas; the accompaniment stream's ids are ``"noise"`` or a ``"copy"`` of the
    vocal ids (embedded through a different table: the same information, other vectors)."""
    g = torch.Generator().manual_seed(1)
    n_frames = int(round(SECONDS * RATE))
    songs, metas = [], {}
    for i, split in enumerate(SPLITS):
        song_id = f"song-{i:02d}"
        metas[song_id] = random_meta(i, SECONDS)
        vocal = vocal_frame_ids(metas[song_id], n_frames)
        other = vocal.clone() if accompaniment == "copy" else torch.randint(0, VOCAB, (n_frames,), generator=g)
        songs.append({"id": song_id, "split": split, "tags": [], "ids": torch.stack([vocal, other])})
    return {"codec": "fake-dual", "frame_rate": RATE, "songs": songs}, metas


def write_corpus(root: Path, metas: dict[str, dict[str, Any]]) -> Path:
    """A duosynth folder with empty audio files (discovery only checks they exist) and the metas."""
    entries = []
    for (song_id, meta), split in zip(metas.items(), SPLITS, strict=True):
        folder = root / "songs" / song_id
        folder.mkdir(parents=True)
        for name in ("mixture", "vocals", "drums", "bass", "other"):
            (folder / f"{name}.flac").touch()
        (folder / "meta.json").write_text(json.dumps(meta))
        entries.append({"id": song_id, "split": split, "duration": SECONDS})
    (root / "manifest.json").write_text(json.dumps(
        {"format": "duosynth", "version": 1, "sample_rate": 16000, "songs": entries}))
    return root


MODEL = {"channels": 16, "n_blocks": 1, "dropout": 0.0}
TRAIN = {"steps": 60, "batch_size": 16, "lr": 1e-2, "weight_decay": 0.0, "window_seconds": WINDOW,
         "seeds": [0, 1], "eval_every": 30}


def test_noise_accompaniment_does_not_leak(tmp_path):
    tokens, metas = corpus("noise")
    result = leakage_probe(FakeDualCodec(), tokens, write_corpus(tmp_path / "corpus", metas), MODEL, TRAIN)
    vocal = result["vocal_attributes"]
    assert vocal["labels"] == list(VOCAL_LABELS) and vocal["n_windows"] == {"train": 96, "valid": 16, "test": 48}
    assert vocal["labels_scored"] == ["vocal_active", *(f"vocal_pc_{p}" for p in "CDEGAB")]
    assert all(r["n_tags_scored"] == 7 for r in vocal["from_vocal"]["per_seed"])
    assert vocal["from_vocal"]["ap_mean"] > vocal["chance_ap"] + 0.3
    assert abs(vocal["leakage"]["mean"]) < 0.2
    assert [p["seed"] for p in vocal["leakage"]["per_seed"]] == [0, 1]
    assert result["summary"]["vocal_in_accompaniment"]["mean"] == vocal["leakage"]["mean"]
    accompaniment = result["accompaniment_attributes"]  # both of its streams are uninformative here
    assert {"from_vocal", "from_accompaniment", "chance_ap", "leakage"} <= set(accompaniment)
    assert len(accompaniment["labels"]) == 25 and "accompaniment_in_vocal" in result["summary"]


def test_copied_vocal_information_leaks():
    tokens, metas = corpus("copy")
    result = leakage_probe_from_metas(FakeDualCodec(), tokens, metas, MODEL, TRAIN, attributes=("vocal",))
    assert set(result) == {"vocal_attributes", "summary", "config"}
    leakage = result["vocal_attributes"]["leakage"]
    assert leakage["n_seeds_defined"] == 2 and leakage["mean"] > 0.8


def test_refusals():
    tokens, metas = corpus("noise")
    with pytest.raises(ValueError, match="dual-track"):
        leakage_probe_from_metas(FakeDualCodec(("mixture",)), tokens, metas, MODEL, TRAIN)
    with pytest.raises(ValueError, match="song-03"):
        leakage_probe_from_metas(FakeDualCodec(), tokens, {**metas, "song-03": {}}, MODEL, TRAIN)
    tokens["songs"][-1]["id"] = "song-00"  # a train song also in test, under window ids it would hide
    with pytest.raises(ValueError, match="train and test: song-00"):
        leakage_probe_from_metas(FakeDualCodec(), tokens, metas, MODEL, TRAIN)


def test_min_gap_marks_a_barely_informative_own_stream():
    """Accompaniment attributes on the noise codec: both streams are noise, so the own-stream AP is near
    chance and a gap threshold turns the meaningless ratio into NaN with a reason."""
    tokens, metas = corpus("noise")
    train = {**TRAIN, "steps": 10, "seeds": [0]}
    result = leakage_probe_from_metas(FakeDualCodec(), tokens, metas, MODEL, train, ("accompaniment",), min_gap=0.5)
    leakage = result["accompaniment_attributes"]["leakage"]
    assert leakage["n_seeds_defined"] == 0 and math.isnan(leakage["mean"]) and "chance" in leakage["reason"]


def test_seed_spread_is_the_population_spread_and_skips_undefined_seeds():
    r = seed_spread([1.0, 3.0, float("nan"), None])
    assert r == {"mean": 2.0, "std": 1.0, "n": 2}
    empty = seed_spread([float("nan")])
    assert empty["n"] == 0 and math.isnan(empty["mean"])
