"""Atomic writes: a metrics file, report, token file or WAV is either the old one or the complete new
one, never half-written (a crash mid-write would otherwise leave DVC an output it believes is valid).

Also the helpers of the ``duotok encode | decode`` folder jobs around them: an up-front check that an
output folder is writable (:func:`check_writable`) and the clean-up of the temp files an interrupted
write leaves behind (:func:`remove_stale_temp_files`).

Temp files are named ``.<name>.<random>.tmp`` beside their destination (``<random>`` is the 8
characters of :mod:`tempfile`); hidden, so folder scans skip them. On a clean exit the temp file gets
the permissions a plain ``open(path, "w")`` would have given the destination (``0o666 & ~umask``, or
the existing file's mode) — ``tempfile.mkstemp`` creates files 0600 and a rename keeps that.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from duotok.errors import DuotokError

#: ``.<name>.<8 random chars>.tmp``: what :func:`atomic_write` / :func:`atomic_path` create.
TEMP_FILE_RE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
#: ``.<stem>.<8 random chars>.<wav|flac>``: what ``save_audio`` created before it used :func:`atomic_path`.
LEGACY_AUDIO_TEMP_RE = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.(?:wav|flac)$", re.IGNORECASE)

_UMASK_LOCK = threading.Lock()


class OutputLocationError(DuotokError, ValueError):
    """An output folder cannot be written: read-only, full, not a folder, no permission, ..."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot write here ({reason})")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status);
    elsewhere by setting and immediately restoring it under a lock."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("Umask:"):
                        return int(line.split()[1], 8)
        except (OSError, ValueError, IndexError):
            pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode(path: str | os.PathLike[str] | None = None) -> int:
    """The permission bits ``open(path, "w")`` would leave ``path`` with: an existing file keeps its
    mode, a new one gets ``0o666 & ~umask``."""
    if path is not None:
        try:
            return stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            pass
    return 0o666 & ~current_umask()


def _finish(tmp: str, path: Path) -> None:
    os.chmod(tmp, default_file_mode(path))
    os.replace(tmp, path)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside ``path`` (``mode`` ``"w"``: UTF-8 text, ``"wb"``: bytes); on a clean exit
    it gets ``path``'s permissions (see :func:`default_file_mode`) and is renamed onto ``path``, on an
    error removed. The parent folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
        _finish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Like :func:`atomic_write`, for writers that need a file *name* (e.g. soundfile): yields the
    path of an empty temp file beside ``path`` to write; renamed onto ``path`` on a clean exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        _finish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` via a temp file in the same folder and a rename."""
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    return Path(path)


def is_temp_file_name(name: str) -> bool:
    """Whether ``name`` is one of duotok's own in-flight temp files (see the module docstring)."""
    return bool(TEMP_FILE_RE.match(name) or LEGACY_AUDIO_TEMP_RE.match(name))


def remove_stale_temp_files(folder: str | os.PathLike[str], min_age_s: float = 60.0) -> list[Path]:
    """Delete duotok's temp files (:func:`is_temp_file_name`) under ``folder`` (recursively) that were
    last written at least ``min_age_s`` ago — leftovers of a run killed between write and rename; a
    younger one may belong to a run still writing. Best effort: a file that cannot be removed stays.
    Returns the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now = time.time()
    removed = []
    for p in sorted(folder.rglob(".*")):
        try:
            if not is_temp_file_name(p.name) or not p.is_file() or p.is_symlink():
                continue
            if now - p.stat().st_mtime < min_age_s:
                continue
            p.unlink()
        except OSError:
            continue
        removed.append(p)
    return removed


def _write_probe(fd: int) -> None:
    os.write(fd, b"\0" * 4096)
    os.fsync(fd)


def check_writable(folder: str | os.PathLike[str]) -> Path:
    """Make sure files can be written into ``folder`` before any expensive work: create it, write a
    small probe file (flushed to disk, so a full disk shows) and delete it. Raises
    :class:`OutputLocationError` (``<folder>: cannot write here (<reason>)``)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputLocationError(folder, "it is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".duotok-probe.", suffix=".tmp")
        try:
            _write_probe(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OutputLocationError(folder, exc.strerror or str(exc)) from exc
    return folder
