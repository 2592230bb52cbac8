"""The quick autoencoder experiment: the Griffin-Lim / random-phase references keep the exact magnitudes'
information as intended, targets are read right, and a smoke run trains, scores and logs."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from duotok.audio.features import stft
from duotok.losses import multiresolution_stft_loss
from duotok.train.quick_ae import format_row, griffin_lim, random_phase, run, targets_met

SR = 16000


def _tone() -> torch.Tensor:
    t = torch.arange(SR) / SR
    return sum(0.1 / k * torch.sin(2 * math.pi * 220 * k * t + k) for k in range(1, 8))[None] * (t < 0.7)


def test_griffin_lim_recovers_a_consistent_phase_and_random_phase_does_not():
    audio = _tone()
    gl, rp = griffin_lim(audio, 1024, 160, n_iter=32), random_phase(audio, 1024, 160)
    assert gl.shape == rp.shape == audio.shape and torch.isfinite(gl).all() and torch.isfinite(rp).all()
    # Both start from the exact magnitudes; Griffin-Lim's rebuild keeps them far better.
    windows = (512, 1024)
    assert multiresolution_stft_loss(audio, gl, windows) < 0.5 * multiresolution_stft_loss(audio, rp, windows)
    ref = stft(audio, 1024, 160, 1024).abs()
    assert (stft(gl, 1024, 160, 1024).abs() - ref).norm() < 0.5 * (stft(rp, 1024, 160, 1024).abs() - ref).norm()
    # Seeded: the same call gives the same signal.
    assert torch.equal(random_phase(audio, 1024, 160), rp)


def test_targets_are_the_issue_18_floors():
    good = {"autoencoder/vocal/pesq": 2.1, "autoencoder/vocal/stoi": 0.8, "autoencoder/accompaniment/stoi": 0.61,
            "autoencoder/mixture/stoi": 0.7}
    assert targets_met(good)
    assert not targets_met({**good, "autoencoder/vocal/pesq": 1.9})
    assert not targets_met({**good, "autoencoder/mixture/stoi": None})   # undefined is not met


SONGS = (("a", "train", 2.0), ("b", "train", 2.0), ("v", "valid", 2.0), ("t", "test", 2.0))


@pytest.mark.slow
def test_a_smoke_run_trains_scores_and_logs(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    row = run("t", ["autoencoder.model.phase_head=unit", "autoencoder.model.phase_weight=0.3"], tmp_path / "runs",
              root, profile="smoke", steps=2, train_songs=2, eval_songs=1, seconds=1.0, gl_iters=4)
    assert row["steps"] == 2 and row["overrides"] == "autoencoder.model.phase_head=unit autoencoder.model.phase_weight=0.3"
    assert "train/phase" in row and row["s_per_step"] > 0
    for system in ("autoencoder", "griffin_lim", "random_phase"):
        assert row[f"{system}/mixture/mel_l1"] is not None and row[f"{system}/mixture/stoi"] is not None, system
    assert isinstance(row["targets_met"], bool) and "targets" in format_row(row)
    assert json.loads((tmp_path / "runs" / "t" / "ae" / "model" / "config.json").read_text())["config"]["phase_head"] == "unit"
    cached = json.loads((tmp_path / "runs" / "references.json").read_text())
    assert len(cached) == 1
    assert list(csv.DictReader((tmp_path / "runs" / "log.csv").read_text().splitlines()))[0]["name"] == "t"
