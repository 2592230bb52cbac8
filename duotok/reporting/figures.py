"""Saving figures reproducibly: PNG without timestamps, SVG with a fixed hash salt and no date, so
``dvc repro`` twice writes identical bytes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: papermill, CI
import matplotlib.pyplot as plt  # noqa: E402

matplotlib.rcParams["svg.hashsalt"] = "duotok"


def save_figure(fig: plt.Figure, path: str | Path, formats: tuple[str, ...] = ("png", "svg"),
                dpi: int = 110) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (written to a temp name, then renamed)."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = base.with_suffix(f".{fmt}")
        tmp = out.with_name(f".{out.name}.tmp")
        metadata = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
        tmp.replace(out)
        written.append(out)
    return written
