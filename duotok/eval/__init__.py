"""Evaluation of the three training stages on held-out songs: the numbers the stage notebooks report
and ``reports/metrics/*.json`` records. Each function takes a model and a dataset and returns plain
floats, so tests can pin them and notebooks stay thin."""
