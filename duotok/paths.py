"""Project-root-anchored paths, so that notebooks, DVC stages and tests agree on locations
whatever the current working directory is (papermill runs notebooks from ``notebooks/``)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root: ``$DUOTOK_ROOT`` if set, else the nearest parent holding ``params.yaml``
    (searched from the current directory, then from this file)."""
    env = os.environ.get("DUOTOK_ROOT")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for candidate in (start, *start.parents):
            if (candidate / "params.yaml").is_file() and (candidate / "duotok").is_dir():
                return candidate
    # Installed without a checkout: fall back to the current directory.
    return Path.cwd().resolve()


def resolve(path: str | os.PathLike[str]) -> Path:
    """Resolve a path from params.yaml: relative paths are relative to the project root."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p
