"""Errors that name the offending file and the problem, so a user can fix their data."""

from __future__ import annotations

import os


class DuotokError(Exception):
    """Base class of the package's own errors."""


class AudioFileError(DuotokError, ValueError):
    """An audio file cannot be used: unreadable, empty, wrong format, non-finite samples, ..."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetError(DuotokError, ValueError):
    """A dataset folder is malformed: a missing stem, stems of different lengths, no tracks, ..."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(DuotokError, ValueError):
    """params.yaml is missing a section, names an unknown profile, ..."""


class CheckpointError(DuotokError, ValueError):
    """A checkpoint cannot be loaded: missing files, unreadable JSON, another model type or config, ..."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TokenFileError(DuotokError, ValueError):
    """A token file cannot be used: unreadable, another format or version, or made by other codebooks."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
