"""Choosing the codec's sampling settings (Euler steps and time grid, guidance scale) from validation sweeps.

Stage 4b decodes a few **validation** excerpts (``SELECTION_SPLIT``) from the tokens of their true
stems with every step count of ``decoder.bench.steps_curve`` on every Euler time grid of
``decoder.bench.time_shifts`` (:func:`~duotok.models.dit.flow_time_grid`; without the key, the
uniform grid alone), at the starting guidance scale of ``decoder.sampling``, then with every
guidance scale of ``decoder.bench.cfg_scales`` at the chosen steps and grid, and keeps:

1. **steps** and **time_shift**: the *fewest* Euler steps whose validation score, on the best grid
   for that step count, is within ``tolerance`` (relative) of the best score of the whole sweep;
   then the best grid at that step count. Decoding time is linear in the step count and the quality
   curve is flat past a knee, so the best score alone would buy a hair of quality at double the
   cost; the tolerance names how much quality one is willing to trade, on the selection metric. A
   grid costs the same whatever its shift, so it is chosen jointly with the steps: a grid finer
   near the noise can reach a uniform grid's quality in fewer steps.
2. **cfg_scale**: the guidance scale with the best validation score at those steps and grid.
   Guidance costs the same whatever its scale (except 1, where the unconditional branch is
   skipped), so there is no speed to trade and the best score wins.

Scores are the selection metric (``decoder.bench.select_metric``, ``mel_l1`` by default; its
direction from :data:`~duotok.eval.reconstruction.HIGHER_IS_BETTER`) averaged over excerpts per
track (undefined values, NaN, excluded), then over tracks, so each track weighs the same whatever
the number of excerpts it has defined scores on.

Ties are broken explicitly, so the same sweep always gives the same choice: among step counts
inside the tolerance the smallest wins (by construction); among grids with exactly equal scores
the uniform one (``1.0``) wins, then the smallest shift; among guidance scales with exactly equal
scores ``1.0`` wins (it decodes at half the cost), then the smallest scale (the weakest push away
from the model's own distribution). A setting whose score is NaN (no track had a defined value)
is never chosen; a sweep with no finite score at all is an error.

Why validation: the test split is what the codec is *reported* on (notebook 04c, Table 2); choosing
a setting on it would fit the reported number to those songs. Nothing here is chosen on test.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from duotok.eval.reconstruction import HIGHER_IS_BETTER
from duotok.models.dit import check_time_shift

__all__ = ["SELECTION_SPLIT", "SamplingChoice", "choose_cfg_scale", "choose_sampling", "choose_steps",
           "choose_steps_and_shift", "sweep_sampling", "sweep_scores"]

#: The corpus split every stage-4b sampling choice is made on (never ``test``).
SELECTION_SPLIT = "valid"


def _direction(metric: str) -> bool:
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown selection metric {metric!r}; known: {sorted(HIGHER_IS_BETTER)}")
    return HIGHER_IS_BETTER[metric]


def sweep_scores(scores: pd.DataFrame, parameter: str | Sequence[str], metric: str) -> dict[Any, float]:
    """``{value: score}`` of a sweep over ``parameter``: ``metric`` averaged over rows (excerpts) per
    (value, track), NaN excluded, then over the tracks of that value (NaN where no track has one).
    ``parameter`` may name several columns (a grid sweep); the keys are then tuples of their values.

    ``scores`` has one row per (excerpt, track) with columns ``parameter``, ``track`` and ``metric``
    (what :func:`duotok.eval.roundtrip.score_system` gives, with the swept value assigned)."""
    _direction(metric)
    params = [parameter] if isinstance(parameter, str) else list(parameter)
    missing = {*params, "track", metric} - set(scores.columns)
    if missing:
        raise ValueError(f"sweep scores lack the column(s) {sorted(missing)}")
    if scores.empty:
        raise ValueError(f"empty sweep over {parameter!r}")
    per_track = scores.groupby([*params, "track"], sort=True)[metric].mean()
    per_value = per_track.groupby(level=list(range(len(params))), sort=True).mean()
    if isinstance(parameter, str):
        return {_plain(k): float(v) for k, v in per_value.items()}
    return {tuple(_plain(x) for x in k): float(v) for k, v in per_value.items()}


def _plain(value: Any) -> Any:
    """numpy scalars → Python int/float (JSON keys and comparisons stay simple)."""
    return value.item() if hasattr(value, "item") else value


def _finite(values: Mapping[Any, float], what: str) -> dict[Any, float]:
    finite = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
    if not finite:
        raise ValueError(f"no finite validation score in the {what} sweep: {dict(values)}")
    return finite


def choose_steps(step_scores: Mapping[int, float], metric: str = "mel_l1", tolerance: float = 0.02) -> int:
    """The fewest steps whose score is within ``tolerance`` × |best score| of the best step count's
    (``tolerance = 0`` → the best step count, the fewest of equal ones)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    higher = _direction(metric)
    finite = _finite(step_scores, "steps")
    best = max(finite.values()) if higher else min(finite.values())
    margin = tolerance * abs(best)
    good = [s for s, v in finite.items() if (v >= best - margin if higher else v <= best + margin)]
    return int(min(good))


def _best_per_steps(scores: Mapping[tuple[int, float], float], higher: bool) -> dict[int, float]:
    """Each step count's score on its best time grid, from ``{(steps, time_shift): score}``: what the
    steps rule compares and what the report lists. NaN only where every grid of that count is NaN."""
    out: dict[int, float] = {}
    for (n, _), v in scores.items():
        n, best = int(n), out.get(int(n), math.nan)
        if math.isnan(best) or (math.isfinite(v) and (v > best if higher else v < best)):
            out[n] = v
    return out


def choose_steps_and_shift(scores: Mapping[tuple[int, float], float], metric: str = "mel_l1",
                           tolerance: float = 0.02) -> tuple[int, float]:
    """``(steps, time_shift)`` from a grid sweep ``{(steps, time_shift): score}``: the fewest steps whose
    best grid scores within ``tolerance`` × |best| of the sweep's best, then the best grid at those
    steps (exact ties: ``1.0``, the uniform grid, if tied, else the smallest shift)."""
    finite = _finite(scores, "steps x time shift")
    per_steps = _best_per_steps(finite, _direction(metric))
    steps = choose_steps(per_steps, metric, tolerance)
    tied = [float(shift) for (n, shift), v in finite.items() if int(n) == steps and v == per_steps[steps]]
    return steps, (1.0 if 1.0 in tied else min(tied))


def choose_cfg_scale(cfg_scores: Mapping[float, float], metric: str = "mel_l1") -> float:
    """The guidance scale with the best score; exact ties → ``1.0`` if tied, else the smallest scale."""
    higher = _direction(metric)
    finite = _finite(cfg_scores, "guidance scale")
    best = max(finite.values()) if higher else min(finite.values())
    tied = [float(s) for s, v in finite.items() if v == best]
    return 1.0 if 1.0 in tied else min(tied)


@dataclass(frozen=True)
class SamplingChoice:
    """The chosen settings and the validation evidence behind them (JSON-ready via :meth:`as_dict`).

    ``steps_scores`` is the score of each step count on its best grid (what the steps rule compares);
    ``grid_scores`` every (steps, time_shift) of the sweep."""

    steps: int
    cfg_scale: float
    metric: str
    tolerance: float
    steps_at_cfg_scale: float          # the guidance scale the steps sweep ran at
    steps_scores: dict[int, float] = field(default_factory=dict)
    cfg_scores: dict[float, float] = field(default_factory=dict)
    split: str = SELECTION_SPLIT
    time_shift: float = 1.0
    grid_scores: dict[tuple[int, float], float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        def clean(d: Mapping[Any, float]) -> dict[str, float | None]:
            return {str(k): (round(v, 4) if math.isfinite(v) else None) for k, v in d.items()}

        return {"steps": self.steps, "time_shift": self.time_shift, "cfg_scale": self.cfg_scale,
                "split": self.split, "metric": self.metric,
                "higher_is_better": HIGHER_IS_BETTER[self.metric], "tolerance": self.tolerance,
                "rule": "fewest steps (on their best time grid) within tolerance of the sweep's best, the best "
                        "grid at those steps, then the best guidance scale at those steps and grid",
                "steps_at_cfg_scale": self.steps_at_cfg_scale, "score_vs_steps": clean(self.steps_scores),
                "score_vs_steps_and_time_shift": clean({f"{n} steps, shift {sh:g}": v
                                                        for (n, sh), v in self.grid_scores.items()}),
                "score_vs_cfg_scale": clean(self.cfg_scores)}


def _grid(steps_scores: pd.DataFrame) -> pd.DataFrame:
    """A steps sweep without a ``time_shift`` column ran on the uniform grid."""
    return steps_scores if "time_shift" in steps_scores.columns else steps_scores.assign(time_shift=1.0)


def choose_sampling(steps_scores: pd.DataFrame, cfg_scores: pd.DataFrame, steps_at_cfg_scale: float,
                    metric: str = "mel_l1", tolerance: float = 0.02) -> SamplingChoice:
    """All choices from the two validation sweeps (``steps`` [and ``time_shift``] / ``cfg_scale``
    columns, see :func:`sweep_scores`); ``steps_at_cfg_scale`` is the guidance scale the steps sweep
    decoded with. ``cfg_scores`` must come from decoding at the chosen steps and grid; when it carries
    ``steps`` / ``time_shift`` columns this is checked."""
    by_grid = sweep_scores(_grid(steps_scores), ("steps", "time_shift"), metric)
    by_grid = {(int(n), float(sh)): v for (n, sh), v in by_grid.items()}
    steps, shift = choose_steps_and_shift(by_grid, metric, tolerance)
    by_steps = _best_per_steps(by_grid, _direction(metric))
    if "steps" in cfg_scores.columns:
        used = sorted({int(s) for s in cfg_scores["steps"].unique()})
        if used != [steps]:
            raise ValueError(f"the guidance sweep ran at {used} steps, but {steps} steps were chosen")
    if "time_shift" in cfg_scores.columns:
        used_shift = sorted({float(s) for s in cfg_scores["time_shift"].unique()})
        if used_shift != [shift]:
            raise ValueError(f"the guidance sweep ran at time shift {used_shift}, but {shift:g} was chosen")
    by_cfg = sweep_scores(cfg_scores, "cfg_scale", metric)
    return SamplingChoice(steps=steps, cfg_scale=choose_cfg_scale(by_cfg, metric), metric=metric,
                          tolerance=float(tolerance), steps_at_cfg_scale=float(steps_at_cfg_scale),
                          steps_scores=dict(sorted(by_steps.items())),
                          cfg_scores={float(k): v for k, v in by_cfg.items()}, time_shift=shift,
                          grid_scores=by_grid)


def sweep_sampling(codec: Any, root: str | os.PathLike[str], bench: Mapping[str, Any], start_cfg_scale: float,
                   metrics: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, SamplingChoice]:
    """Run both sweeps on ``codec`` (anything :func:`duotok.eval.roundtrip.codec_system` takes whose
    ``decode`` accepts ``steps`` / ``cfg_scale``, and ``time_shift`` when the bench sweeps it) over the
    :data:`SELECTION_SPLIT` excerpts of the corpus at ``root``, and choose. The excerpts are loaded
    here, from validation only, so no caller can choose on test. The same procedure for Duo-Tok
    (notebook 04b) and the token baselines' decoders (:mod:`duotok.train.baselines`): every decoder of
    Table 2 gets its settings the same way.

    ``bench`` is ``decoder.bench``: ``steps_curve``, ``cfg_scales``, ``n_songs``, ``seconds``,
    ``select_metric``, ``tolerance`` and optionally ``time_shifts`` (default: the uniform grid only,
    and ``time_shift`` is then never passed to ``decode``). ``metrics`` (default: the selection metric
    alone, the cheapest) are scored for display. Returns ``(steps_scores, cfg_scores, choice)``; the
    steps sweep's rows carry ``steps``, ``time_shift`` and ``cfg_scale``."""
    from duotok.eval.roundtrip import (  # imports the models: lazily
        codec_system,
        held_out_excerpts,
        score_system,
    )

    metric, tolerance = str(bench["select_metric"]), float(bench["tolerance"])
    metrics = tuple(metrics) if metrics else (metric,)
    if metric not in metrics:
        metrics = (*metrics, metric)
    swept = "time_shifts" in bench
    shifts = [check_time_shift(x, "decoder.bench.time_shifts") for x in bench["time_shifts"]] if swept else [1.0]
    if not shifts:
        raise ValueError("decoder.bench.time_shifts is empty: name at least one grid (1.0 is uniform)")

    def grid_kwargs(shift: float) -> dict[str, float]:
        return {"time_shift": shift} if swept else {}

    sample_rate = int(codec.sample_rate)
    excerpts = held_out_excerpts(root, SELECTION_SPLIT, float(bench["seconds"]), int(bench["n_songs"]), sample_rate)
    start = float(start_cfg_scale)
    steps_scores = pd.concat([
        score_system(f"{n} steps" + (f", shift {sh:g}" if swept else ""),
                     codec_system(codec, "oracle", steps=int(n), cfg_scale=start, **grid_kwargs(sh)), excerpts,
                     sample_rate, metrics).assign(steps=int(n), time_shift=sh, cfg_scale=start)
        for n in bench["steps_curve"] for sh in shifts])
    by_grid = sweep_scores(steps_scores, ("steps", "time_shift"), metric)
    chosen, shift = choose_steps_and_shift({(int(n), float(sh)): v for (n, sh), v in by_grid.items()},
                                           metric, tolerance)
    cfg_scores = pd.concat([
        score_system(f"cfg {s}", codec_system(codec, "oracle", steps=chosen, cfg_scale=float(s), **grid_kwargs(shift)),
                     excerpts, sample_rate, metrics).assign(cfg_scale=float(s), steps=chosen, time_shift=shift)
        for s in bench["cfg_scales"]])
    return steps_scores, cfg_scores, choose_sampling(steps_scores, cfg_scores, start, metric, tolerance)
