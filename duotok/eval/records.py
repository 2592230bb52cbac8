"""The metrics files of the training stages and the reconstruction evaluation (``reports/metrics/*.json``):
one schema, built here, read by :mod:`duotok.reporting`.

Why: each notebook used to assemble its metrics dict inline, and the report looked results up by display
strings that only a notebook defined; a renamed label in a notebook silently broke Table 2. Now the
notebooks pass their numbers to :func:`training_record` and the reconstruction systems are named by
:data:`RECONSTRUCTION_SYSTEMS`, which both the evaluation and the report import.

Every training stage's file starts with the same header — ``schema``, ``profile``, ``steps``,
``train_seconds``, ``precision`` (what :mod:`duotok.train.precision` resolved) — then the stage's own
held-out numbers, then ``final_train`` / ``final_valid`` (the last logged training and validation
metrics).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from duotok.io import write_json_atomic
from duotok.train.loop import TrainResult

SCHEMA_VERSION = 1
#: The header keys of every training stage's metrics file (reporting and tests rely on them).
TRAINING_HEADER = ("schema", "profile", "steps", "train_seconds", "precision")
#: The systems of the reconstruction evaluation: key → the name ``reconstruction.json`` stores them under.
RECONSTRUCTION_SYSTEMS = {"autoencoder": "autoencoder", "oracle": "tokens (oracle stems)",
                          "separated": "tokens (separated)"}


def training_record(profile: str, result: TrainResult, **fields: Any) -> dict[str, Any]:
    """A training stage's metrics: the common header, the stage's ``fields``, the last logged metrics."""
    clash = set(fields) & {*TRAINING_HEADER, "final_train", "final_valid"}
    if clash:
        raise ValueError(f"fields {sorted(clash)} belong to the common header; pass them through the result")
    return {"schema": SCHEMA_VERSION, "profile": profile, "steps": result.step, "train_seconds": result.seconds,
            "precision": dict(result.precision), **fields, "final_train": dict(result.train),
            "final_valid": dict(result.valid)}


def write_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write a metrics record atomically, refusing one without a profile (every report keys on it)."""
    if not record.get("profile"):
        raise ValueError(f"{path}: a metrics record needs its profile")
    return write_json_atomic(path, dict(record))
