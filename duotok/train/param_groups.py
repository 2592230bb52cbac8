"""A learning rate per part of the model: AdamW parameter groups by parameter-name prefix.

Why: the lyrics head's encoder cannot be trained at the heads' learning rate (an encoder at the heads' rate
stops the lyrics reader; at a tenth of it the encoder learns along, ``reports/experiments/quick_log.md``).
``{"encoder": 0.1}`` puts every parameter whose name is ``encoder`` or starts with ``encoder.`` in a group at
``0.1 × lr``; the rest stay at ``lr``. Each group's learning rate is its *base* rate, so
:class:`torch.optim.lr_scheduler.LambdaLR` (the Trainer's warm-up + cosine schedule) scales every group by
the same factor and the ratios hold at every step.

:func:`hold_parameters` keeps the parameters under a prefix out of training for the first N steps, then lets
them join (the classifier-first schedule, for any part of the model).

The shared Trainer builds its AdamW from :func:`parameter_groups` with ``train.lr_multipliers`` (``{}``: one
group, the plain optimiser).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _owners(named: list[tuple[str, nn.Parameter]], prefixes: Iterable[str],
            setting: str) -> list[tuple[str | None, nn.Parameter]]:
    """Each of the ``named`` trainable parameters with the longest of ``prefixes`` that names it (``None`` when
    none does): prefixes stop at a dot. An empty prefix, or one that names no parameter, is refused, naming
    ``setting``: a typo must not silently leave the part it meant untouched."""
    prefixes = list(prefixes)
    for prefix in prefixes:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"{setting}: a prefix must be a non-empty parameter-name prefix, got {prefix!r}")
    unmatched = [prefix for prefix in prefixes if not any(_matches(name, prefix) for name, _ in named)]
    if unmatched:
        sample = sorted({name.split(".")[0] for name, _ in named})
        raise ValueError(f"{setting}: {unmatched} name no trainable parameter (top-level names: {sample})")
    return [(max((q for q in prefixes if _matches(name, q)), key=len, default=None), p) for name, p in named]


def parameter_groups(model: nn.Module, lr: float, multipliers: Mapping[str, float]) -> list[dict[str, Any]]:
    """AdamW parameter groups of ``model``'s trainable parameters: one at ``lr`` for every parameter no prefix
    names, then one per prefix of ``multipliers`` at ``lr × multiplier``, in the mapping's order.

    A parameter named by two prefixes goes to the longer (more specific) one. A prefix that names no trainable
    parameter, or a negative or non-finite multiplier, is refused: a typo must not silently train everything
    at the base rate. Groups that end up empty (every parameter named by a prefix) are left out."""
    for prefix, mult in multipliers.items():
        if not isinstance(mult, int | float) or isinstance(mult, bool) or not float(mult) >= 0 \
                or float(mult) == float("inf"):
            raise ValueError(f"lr_multipliers[{prefix!r}] must be a finite number >= 0, got {mult!r}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    by_prefix: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in multipliers}
    rest: list[nn.Parameter] = []
    for owner, p in _owners(named, multipliers, "lr_multipliers"):
        (rest if owner is None else by_prefix[owner]).append(p)
    groups = [{"params": rest, "lr": lr, "name": "", "lr_multiplier": 1.0}] if rest else []
    groups += [{"params": params, "lr": lr * float(multipliers[prefix]), "name": prefix,
                "lr_multiplier": float(multipliers[prefix])}
               for prefix, params in by_prefix.items() if params]
    return groups


def hold_parameters(model: nn.Module, holds: Mapping[str, int], current_step: Callable[[], int]) -> list[RemovableHandle]:
    """Keep every trainable parameter under each prefix of ``holds`` (``{"proj_in": 300}``) out of training
    while ``current_step() < N``; from step N on it trains like the rest. Returns the hooks' handles.

    How: a post-accumulate-grad hook sets the held parameter's ``.grad`` to ``None`` after each backward, so
    gradient clipping does not count it and the optimiser skips it — exactly as if it had
    ``requires_grad=False`` — while the gradient still flows *through* it to the parameters below (a held
    bottleneck still passes the head's gradient to the lower stack). Why ``None`` and not zero: Adam gives a
    parameter its state (moments, step count) at its first real gradient, so the part that joins at step N
    starts with Adam's own bias correction, as a fresh parameter would; zeroed gradients would instead age
    its step count with empty moments, and its first updates would be ≈ 3× Adam's usual size (β₂ = 0.999).
    ``current_step`` is read at every backward, so a resumed run is held by its restored step. Prefixes
    follow :func:`parameter_groups` (they stop at a dot); one that names no trainable parameter, or a step
    count that is not an integer >= 0, is refused. Tested in one process; under DDP, whose reducer owns the
    gradients, it is untested."""
    for prefix, steps in holds.items():
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"holds[{prefix!r}] must be an integer number of steps >= 0, got {steps!r}")
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    handles: list[RemovableHandle] = []
    for owner, p in _owners(named, holds, "holds"):
        if owner is None:
            continue

        def drop_while_held(param: torch.Tensor, until: int = holds[owner]) -> None:
            if current_step() < until:
                param.grad = None

        handles.append(p.register_post_accumulate_grad_hook(drop_while_held))
    return handles
