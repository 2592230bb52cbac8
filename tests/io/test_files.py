"""duotok.io.files: atomic writes with the permissions a plain open() gives, the output-folder probe and
the clean-up of stale temp files."""

from __future__ import annotations

import errno
import os
import stat
import time

import numpy as np
import pytest

from duotok.audio.io import save_audio
from duotok.io import files
from duotok.io.files import (
    OutputLocationError,
    atomic_write,
    check_writable,
    current_umask,
    is_temp_file_name,
    remove_stale_temp_files,
    write_json_atomic,
)
from duotok.tokenizer.tokens import TokenFile, save_tokens


@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test; the old one is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def tiny_tokens() -> TokenFile:
    return TokenFile(vocal=np.arange(4), accompaniment=np.arange(4), sample_rate=16000, frame_rate=25.0,
                     codebook_sizes=(8, 8), fingerprints={"vocal": "a", "accompaniment": "b"}, num_samples=2560)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    with atomic_write(tmp_path / "a.txt") as fh:
        fh.write("x")
    write_json_atomic(tmp_path / "b.json", {"x": 1})
    with open(tmp_path / "plain.txt", "w") as fh:
        fh.write("x")
    assert mode_of(tmp_path / "a.txt") == mode_of(tmp_path / "b.json") == mode_of(tmp_path / "plain.txt") == expected


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_token_files_and_wavs_get_the_umask_mode(tmp_path, umask, mask, expected):
    umask(mask)
    save_tokens(tmp_path / "x.tok", tiny_tokens())
    save_audio(tmp_path / "x.wav", np.zeros(160, np.float32), 16000)
    save_audio(tmp_path / "x.flac", np.zeros(160, np.float32), 16000)
    assert {mode_of(tmp_path / n) for n in ("x.tok", "x.wav", "x.flac")} == {expected}


def test_atomic_write_keeps_the_mode_of_an_existing_file(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "x.tok"
    save_tokens(path, tiny_tokens())
    os.chmod(path, 0o640)
    save_tokens(path, tiny_tokens())
    assert mode_of(path) == 0o640


def test_temp_file_names_are_recognised(tmp_path):
    with atomic_write(tmp_path / "x.tok", "wb"):
        (temp_name,) = os.listdir(tmp_path)                          # the in-flight temp file
    assert is_temp_file_name(temp_name)
    assert is_temp_file_name(".accompaniment.k3j_x9a0.wav")         # save_audio's former temp files
    assert is_temp_file_name(".song.tok.abcd1234.tmp")
    for name in ("song.tok", ".gitignore", ".song.tok.tmp", ".song.abc.tmp", ".DS_Store", "a.abcd1234.tmp"):
        assert not is_temp_file_name(name), name


def _age(path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_remove_stale_temp_files_only_removes_old_temp_files(tmp_path):
    stale = [tmp_path / ".a.tok.abcd1234.tmp", tmp_path / "song" / ".vocal.wav.x1y2z3w4.tmp",
             tmp_path / "song" / ".mixture.k3j4h5g6.wav"]
    young = tmp_path / ".b.tok.efgh5678.tmp"
    kept = [tmp_path / ".gitignore", tmp_path / "a.tok", tmp_path / "song" / "vocal.wav", young]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for path in stale + kept[:-1]:
        _age(path)
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert remove_stale_temp_files(tmp_path / "missing") == []


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    folder = check_writable(tmp_path / "new" / "out")
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_check_writable_names_the_folder_and_the_reason(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputLocationError, match=r"file/out: cannot write here \(Not a directory\)"):
        check_writable(tmp_path / "file" / "out")
    with pytest.raises(OutputLocationError, match=r"file: cannot write here \(it is a file"):
        check_writable(tmp_path / "file")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_write_probe", full)
    with pytest.raises(OutputLocationError, match=r"cannot write here \(No space left on device\)"):
        check_writable(tmp_path / "full")
    assert list((tmp_path / "full").iterdir()) == []       # the probe is removed even then


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputLocationError, match="Permission denied"):
            check_writable(folder)
    finally:
        folder.chmod(0o755)


def test_checkpoints_and_training_state_get_the_umask_mode(tmp_path):
    """save_pretrained and save_training_state write through temp files too: 0o666 & ~umask, not 0600."""
    import torch

    from duotok.io.checkpoint import save_training_state
    from duotok.train.bench import pretrain_workload

    old = os.umask(0o022)
    try:
        model = pretrain_workload("smoke", batch_size=1).model
        model.save_pretrained(tmp_path / "ckpt")
        opt = torch.optim.AdamW(model.parameters())
        save_training_state(tmp_path / "ckpt" / "training_state.pt", step=1, optimizer=opt)
    finally:
        os.umask(old)
    for name in ("config.json", "model.safetensors", "training_state.pt"):
        assert stat.S_IMODE((tmp_path / "ckpt" / name).stat().st_mode) == 0o644, name
