"""The quick autoencoder experiment (issue 18): train the stage-4a autoencoder for a few hundred steps with
``-S`` overrides, then score its reconstructions of held-out excerpts the way the reconstruction
evaluation does — so a phase recipe is judged in minutes, not after a full pipeline run.

    python -m duotok.train.quick_ae --name base --steps 400
    python -m duotok.train.quick_ae --name integrated --steps 400 -S autoencoder.model.phase_head=integrated \\
        -S autoencoder.model.phase_weight=0.3 -S "autoencoder.model.phase_terms=[gd, iaf]"
    python -m duotok.train.quick_ae --name complex_unit --steps 400 -S autoencoder.model.encoder_input=complex \\
        -S autoencoder.model.phase_head=unit -S autoencoder.model.phase_weight=0.3 \\
        -S autoencoder.model.complex_weight=1.0

Each run trains from the resolved ``default`` profile (or ``--profile``) with its overrides, on the first
``--train-songs`` train songs of the corpus (linked into ``<out>/<name>/subset``), into
``<out>/<name>/ae``; then it scores the first ``--eval-songs`` songs of ``--eval-split`` (valid by default: recipe
choices are made there, never on test; one centre excerpt of
``--seconds`` each, :func:`duotok.eval.roundtrip.held_out_excerpts`): vocal, accompaniment and mixture
PESQ-WB, STOI and Mel L1 (:func:`duotok.eval.reconstruction.reconstruction_metrics`). Beside it, on the
same excerpts, two references that need no training, from the exact STFT magnitudes at the
autoencoder's own resolution (``n_fft`` / ``hop_length``):

* ``griffin_lim`` — fast Griffin-Lim (Perraudin et al. 2013, momentum 0.99; ``--gl-iters`` iterations):
  what phase retrieval alone gets from these magnitudes — roughly the reachable ceiling;
* ``random_phase`` — the magnitudes with uniformly random phase: what a decoder that learned the
  magnitudes but no phase gets — the floor a phase recipe must clear.

The references are cached in ``<out>/references.json`` (keyed by corpus, excerpts and STFT settings).
It prints a table and appends one row to ``<out>/log.csv`` (:func:`duotok.train.quick.append_log`): the
overrides, steps, wall time and seconds per step, the last train/valid loss terms, and
``<system>/<track>/<metric>`` means, plus whether the issue-18 targets are met (vocal PESQ ≥ 2.0 and
STOI ≥ 0.75, accompaniment and mixture STOI ≥ 0.6). Nothing here is a pipeline stage: it never touches
``models/`` or ``reports/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from duotok.audio.features import istft, stft
from duotok.config import PROFILES
from duotok.eval.roundtrip import (
    TRACK_NAMES,
    Excerpt,
    autoencoder_system,
    held_out_excerpts,
    score_system,
    summary_table,
)
from duotok.io import write_json_atomic
from duotok.train.quick import EVAL_SPLITS, append_log, prepare_run

METRICS = ("pesq", "stoi", "mel_l1")
SYSTEMS = ("autoencoder", "griffin_lim", "random_phase")
#: Issue 18's targets on held-out excerpts: (system track, metric) -> minimum.
TARGETS = {("vocal", "pesq"): 2.0, ("vocal", "stoi"): 0.75, ("accompaniment", "stoi"): 0.6,
           ("mixture", "stoi"): 0.6}


# --------------------------------------------------------------------------- reference phase systems


def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True)


def random_phase(audio: torch.Tensor, n_fft: int, hop_length: int, seed: int = 0) -> torch.Tensor:
    """``(..., T)`` audio rebuilt from its exact STFT magnitudes with uniformly random phase."""
    spec = stft(audio, n_fft, hop_length, n_fft, window=_window(n_fft))
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(spec.shape, generator=g) * (2 * math.pi)
    return istft(torch.polar(spec.abs(), phase), n_fft, hop_length, n_fft, length=audio.shape[-1],
                 window=_window(n_fft))


def griffin_lim(audio: torch.Tensor, n_fft: int, hop_length: int, n_iter: int = 32, momentum: float = 0.99,
                seed: int = 0) -> torch.Tensor:
    """``(..., T)`` audio rebuilt from its exact STFT magnitudes by fast Griffin-Lim (Perraudin, Balazs &
    Søndergaard 2013, as ``torchaudio.functional.griffinlim`` and ``librosa.griffinlim``: random initial
    phase, momentum ``0.99``), ``n_iter`` iterations."""
    window = _window(n_fft)
    length = audio.shape[-1]
    magnitude = stft(audio, n_fft, hop_length, n_fft, window=window).abs()
    g = torch.Generator().manual_seed(seed)
    angles = torch.polar(torch.ones_like(magnitude), torch.rand(magnitude.shape, generator=g) * (2 * math.pi))
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        inverse = istft(magnitude * angles, n_fft, hop_length, n_fft, length=length, window=window)
        rebuilt = stft(inverse, n_fft, hop_length, n_fft, window=window)
        angles = rebuilt - (momentum / (1 + momentum)) * previous
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return istft(magnitude * angles, n_fft, hop_length, n_fft, length=length, window=window)


def reference_system(kind: str, n_fft: int, hop_length: int, gl_iters: int = 32):
    """A :data:`duotok.eval.roundtrip.System` that rebuilds every track from its exact magnitudes."""
    if kind not in ("griffin_lim", "random_phase"):
        raise ValueError(f"unknown reference {kind!r}")

    @torch.no_grad()
    def run(ex: Excerpt) -> dict[str, np.ndarray]:
        audio = torch.from_numpy(np.stack([ex.track(t) for t in TRACK_NAMES])).float()
        if kind == "griffin_lim":
            out = griffin_lim(audio, n_fft, hop_length, n_iter=gl_iters)
        else:
            out = random_phase(audio, n_fft, hop_length)
        return dict(zip(TRACK_NAMES, out.numpy(), strict=True))

    return run


# --------------------------------------------------------------------------- scoring


def score(systems: dict[str, Any], excerpts: list[Excerpt], sample_rate: int) -> dict[str, float]:
    """``{"<system>/<track>/<metric>": mean over excerpts}`` (NaN-skipping, as the reports)."""
    out: dict[str, float] = {}
    for name, system in systems.items():
        table = summary_table(score_system(name, system, excerpts, sample_rate, METRICS), METRICS)
        for (system_name, track), row in table.iterrows():
            for metric in METRICS:
                value = row[metric]
                out[f"{system_name}/{track}/{metric}"] = None if pd.isna(value) else float(value)
    return out


def targets_met(row: dict[str, Any], system: str = "autoencoder") -> bool:
    return all((row.get(f"{system}/{track}/{metric}") or -math.inf) >= floor
               for (track, metric), floor in TARGETS.items())


def _reference_scores(cache: Path, key: str, excerpts: list[Excerpt], sample_rate: int, n_fft: int, hop: int,
                      gl_iters: int) -> dict[str, float]:
    stored = json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else {}
    if key not in stored:
        systems = {kind: reference_system(kind, n_fft, hop, gl_iters) for kind in ("griffin_lim", "random_phase")}
        stored[key] = score(systems, excerpts, sample_rate)
        write_json_atomic(cache, stored)
    return stored[key]


# --------------------------------------------------------------------------- the experiment


def run(name: str, overrides: list[str], out_dir: Path, data_dir: Path, profile: str = "default", steps: int = 400,
        train_songs: int = 64, eval_songs: int = 8, seconds: float | None = None, references: bool = True,
        gl_iters: int = 32, resume: bool = False, eval_split: str = "valid") -> dict[str, Any]:
    """Train the autoencoder of one experiment, score it (and the references) on ``eval_split``
    (``valid`` by default: recipe choices are made on these numbers, never on test) and return its
    log row."""
    if eval_split not in EVAL_SPLITS:
        raise ValueError(f"eval_split must be one of {EVAL_SPLITS}, got {eval_split!r}")
    from duotok.models.autoencoder import WaveAutoencoder
    from duotok.train import autoencoder

    params, run_dir, corpus = prepare_run(name, overrides, out_dir, data_dir, profile, train_songs, eval_songs)
    out_dir, data_dir = run_dir.parent, Path(data_dir).resolve()
    sample_rate = params.section("audio")["sample_rate"]
    seconds = float(seconds if seconds is not None else params.section("autoencoder")["eval"]["seconds"])

    t0 = time.time()
    result = autoencoder.run(params, run_dir / "ae", corpus, steps=steps, resume=resume)
    train_seconds = time.time() - t0
    model = WaveAutoencoder.from_pretrained(run_dir / "ae" / "model").eval()
    c = model.config

    excerpts = held_out_excerpts(corpus, eval_split, seconds, eval_songs, sample_rate)
    torch.manual_seed(0)
    row: dict[str, Any] = {
        "name": name, "profile": profile, "overrides": " ".join(overrides), "steps": result.step,
        "train_songs": train_songs, "eval_split": eval_split, "eval_songs": len(excerpts), "seconds": seconds,
        "train_seconds": round(train_seconds, 1), "s_per_step": round(result.seconds / max(1, result.step), 3),
        "parameters": sum(p.numel() for p in model.parameters()),
        **{f"train/{k}": v for k, v in result.train.items()}, **{f"valid/{k}": v for k, v in result.valid.items()},
    }
    t1 = time.time()
    row.update(score({"autoencoder": autoencoder_system(model)}, excerpts, sample_rate))
    if references:
        key = f"{data_dir}|{eval_split}|{eval_songs}|{seconds}|{c.n_fft}|{c.hop_length}|gl{gl_iters}"
        row.update(_reference_scores(out_dir / "references.json", key, excerpts, sample_rate, c.n_fft,
                                     c.hop_length, gl_iters))
    row["eval_seconds"] = round(time.time() - t1, 1)
    row["targets_met"] = targets_met(row)
    write_json_atomic(run_dir / "scores.json", row)
    append_log(out_dir / "log.csv", row)
    return row


def format_row(row: dict[str, Any]) -> str:
    lines = [f"[{row['name']}] {row['steps']} steps in {row['train_seconds']:.0f} s ({row['s_per_step']:.2f} s/step); "
             f"{row['eval_songs']} held-out excerpts of {row['seconds']:g} s; scored in {row['eval_seconds']:.0f} s"]
    short = {"vocal": "voc", "accompaniment": "acc", "mixture": "mix"}
    header = f"{'':14s}" + "".join(f"{short[t] + ' ' + m.removesuffix('_l1'):>10s}" for t in TRACK_NAMES for m in METRICS)
    lines.append(header)
    for system in SYSTEMS:
        values = [row.get(f"{system}/{t}/{m}") for t in TRACK_NAMES for m in METRICS]
        if all(v is None for v in values):
            continue
        lines.append(f"{system:14s}" + "".join(f"{'-' if v is None else f'{v:.3f}':>10s}" for v in values))
    checks = ", ".join(f"{t} {m.upper()} {row.get(f'autoencoder/{t}/{m}') or float('nan'):.2f} >= {floor}"
                       for (t, m), floor in TARGETS.items())
    lines.append(f"targets {'MET' if row['targets_met'] else 'not met'}: {checks}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duotok.train.quick_ae", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the experiment's folder and log name")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a params override on top of the profile (repeatable; value parsed as YAML), "
                             "e.g. autoencoder.model.phase_head=unit")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--train-songs", type=int, default=64)
    parser.add_argument("--eval-songs", type=int, default=8, help="held-out songs, one excerpt each")
    parser.add_argument("--eval-split", choices=EVAL_SPLITS, default="valid",
                        help="where the excerpts come from (choices are made on valid)")
    parser.add_argument("--seconds", type=float, help="excerpt length (default: autoencoder.eval.seconds)")
    parser.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations of the reference")
    parser.add_argument("--no-references", action="store_true", help="skip the Griffin-Lim / random-phase rows")
    parser.add_argument("--resume", action="store_true", help="continue <out>/<name>/ae instead of starting over")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", default="runs/quick_ae", help="where runs and log.csv go (git-ignored)")
    args = parser.parse_args(argv)
    row = run(args.name, args.set, Path(args.out), Path(args.data_dir), args.profile, args.steps, args.train_songs,
              args.eval_songs, args.seconds, not args.no_references, args.gl_iters, args.resume, args.eval_split)
    print(format_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
