"""Figure helpers for the notebooks: every plot a report shows is a function here, so notebooks stay
readable and the plotting code is importable (and testable)."""
