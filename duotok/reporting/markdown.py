"""Markdown pipe tables of any data frame: the one writer behind every table a stage prints into a page.

Why its own module: the LM stage prints tables too, and importing them from :mod:`duotok.reporting.results`
made that stage depend on the whole Table-2 report (claims, Figure 1), so an edit of the report re-ran the
LM evaluation. A stage now depends only on the table writer it uses."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from duotok.reporting.table2 import to_markdown


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of any frame (floats to 3 significant digits, NaN as "—"), by Table 2's writer."""
    frame = frame.reset_index() if frame.index.name or not isinstance(frame.index, pd.RangeIndex) else frame
    cells = frame.map(_cell)
    return to_markdown(cells.set_index(cells.columns[0]))


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.3g}"
    return str(v)
