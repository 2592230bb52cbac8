"""Four-stem music source separation (issue 19): the generative separator of the second paper (codec
tokens of vocals, drums, bass and other generated one stem after another by a language model), the
discriminative separators it is compared with, and the ``duotok separate`` command.

Every system is a :class:`~duotok.separation.base.Separator`: a mono mixture in, the four stems out,
so the CLI, the chunked long-song path and the evaluation treat them all alike.

The names below are loaded on first use: ``duotok --help`` builds the ``separate`` parser from this
package and must not pay torch's import time for it."""

from __future__ import annotations

from typing import Any

__all__ = ["STEMS", "Separator", "check_stems"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from duotok.separation import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
