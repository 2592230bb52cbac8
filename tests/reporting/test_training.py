"""The training-notebook plots from hand-made logs: codebook usage over steps, one line per run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from duotok.reporting.figures import plt
from duotok.reporting.training import plot_usage_over_steps


def _log(steps: list[int], usage: float, tracks=("vocal", "accompaniment")) -> pd.DataFrame:
    return pd.DataFrame({"step": steps, **{f"{t}/usage": [usage] * len(steps) for t in tracks}})


def test_usage_over_steps_has_one_line_per_run_per_panel():
    runs = {"data-dependent start": _log([2, 4, 6, 8], 0.4), "random start": _log([2, 4], 0.02)}
    runs["data-dependent start"]["vocal/usage"] = [0.01, 0.02, 0.03, 0.04]   # the panels' scales differ
    fig = plot_usage_over_steps(runs)
    try:
        assert len(fig.axes) == 2
        for ax, track in zip(fig.axes, ("vocal", "accompaniment"), strict=True):
            assert track in ax.get_title()
            lines = ax.get_lines()
            assert [ln.get_label() for ln in lines] == list(runs)
            assert np.array_equal(lines[1].get_xdata(), [2, 4]) and np.allclose(lines[1].get_ydata(), 0.02)
            assert [t.get_text() for t in ax.get_legend().get_texts()] == list(runs)
            top = max(float(np.max(ln.get_ydata())) for ln in lines)
            assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= top, "each panel shows all of its lines"
    finally:
        plt.close(fig)


def test_usage_over_steps_skips_a_run_without_the_column():
    runs = {"both tracks": _log([1, 2], 0.5), "vocal only": _log([1, 2], 0.1, tracks=("vocal",))}
    fig = plot_usage_over_steps(runs, tracks=("vocal", "accompaniment"))
    try:
        vocal, accompaniment = fig.axes
        assert len(vocal.get_lines()) == 2
        assert [ln.get_label() for ln in accompaniment.get_lines()] == ["both tracks"]
    finally:
        plt.close(fig)
