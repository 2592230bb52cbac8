"""Scale checks: every network the pipeline trains, built at a profile's sizes, counted and stepped once.

Why a package of its own: the ``paper`` profile holds the published sizes (a 24 x 1024 encoder, two
32768-entry codebooks, a 16 x 1024 DiT, a 10 x 768 LM, ...), which no CPU run of the pipeline ever
builds. A typo there (a head count that does not divide the width, a codebook too large for a
buffer) would only surface hours into a GPU job. This package builds each model through the same
classes and config functions the stage runners use (:mod:`duotok.scale.inventory`), counts its
parameters, and runs one real optimiser step on a tiny input in a process of its own, so that its
peak memory is measured, not estimated (:mod:`duotok.scale.step_check`)::

    python -m duotok.scale.step_check --list --profile paper
    python -m duotok.scale.step_check pretrain --profile paper           # one model, this process
    python -m duotok.scale.step_check --all --profile paper --markdown   # every model, one fork each

The step-check names are imported lazily (on first access), so that ``python -m
duotok.scale.step_check`` does not import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import Any

from duotok.scale.inventory import (
    EXAMPLE_SECONDS,
    ModelEntry,
    ModelSpec,
    OptimSettings,
    architecture_signature,
    build_entry,
    build_model,
    build_profile_models,
    codec_shapes,
    count_parameters,
    model_specs,
)

_STEP_CHECK = ("StepReport", "check_in_subprocess", "check_many", "markdown_table", "optimizer_step",
               "run_step_check")

__all__ = [
    "EXAMPLE_SECONDS",
    "ModelEntry",
    "ModelSpec",
    "OptimSettings",
    "architecture_signature",
    "build_entry",
    "build_model",
    "build_profile_models",
    "codec_shapes",
    "count_parameters",
    "model_specs",
    *_STEP_CHECK,
]


def __getattr__(name: str) -> Any:
    if name in _STEP_CHECK:
        return getattr(importlib.import_module("duotok.scale.step_check"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
