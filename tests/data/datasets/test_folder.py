"""Any folder of audio: every file accounted for, ffmpeg-only formats, and the separator hook."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from duotok.data.datasets import (
    CommandStemProvider,
    DatasetProblems,
    StemProvider,
    attach_stems,
    discover_folder,
    load,
    load_stem,
    load_stems,
)
from duotok.data.datasets.separators import cached_stems
from duotok.errors import AudioFileError, ConfigError, DatasetError

pytestmark = pytest.mark.filterwarnings("ignore:.*(resampling|downmixing)")

SR = 16000


@pytest.fixture(scope="module")
def music(tmp_path_factory, encode_tone):
    """A small music library: wav, flac, mp3 and m4a (AAC, ffmpeg-only), plus non-audio files."""
    root = tmp_path_factory.mktemp("library")
    encode_tone(root / "a.wav", 440.0, 0.5)
    encode_tone(root / "album" / "b.flac", 550.0, 0.5, rate=22050, channels=1)
    encode_tone(root / "album" / "c.mp3", 660.0, 0.5)
    encode_tone(root / "album" / "D.M4A", 770.0, 0.5)
    (root / "album" / "cover.jpg").write_bytes(b"\xff\xd8 jpeg")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.wav").write_bytes(b"RIFF")
    return root


def test_discover_accounts_for_every_file(music):
    found = discover_folder(music)
    assert [i.id for i in found.items] == ["a.wav", "album/D.M4A", "album/b.flac", "album/c.mp3"]
    assert {i.split for i in found.items} == {"all"}
    assert all(i.stems is None and i.tags == () and i.duration is None for i in found.items)
    assert sorted((p.path.name, p.problem.split(" (")[0]) for p in found.skipped) == [
        ("cover.jpg", "not an audio suffix"),
        ("x.wav", "hidden file or folder"),
    ]
    only_wav = discover_folder(music, extensions=["wav"])
    assert [i.id for i in only_wav.items] == ["a.wav"] and len(only_wav.skipped) == 5


@pytest.mark.parametrize(("name", "hz"), [("a.wav", 440), ("album/b.flac", 550), ("album/c.mp3", 660), ("album/D.M4A", 770)])
def test_decode_every_format(music, peak, name, hz):
    item = next(i for i in discover_folder(music).items if i.id == name)
    x = load(item, SR)
    assert x.dtype == np.float32 and x.ndim == 1
    assert peak(x, SR) == pytest.approx(hz, abs=4)
    if name != "album/c.mp3":  # mp3 framing adds a little; AAC padding is trimmed exactly
        assert len(x) == SR // 2


def test_probe_durations(music):
    found = discover_folder(music, probe=True)
    assert [round(i.duration, 2) for i in found.items] == [0.5, 0.5, 0.5, pytest.approx(0.5, abs=0.06)]


def test_bad_files_are_all_reported(tmp_path, encode_tone):
    encode_tone(tmp_path / "good.wav", 440.0, 0.2)
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "broken.m4a").write_bytes(b"\x00\x01 not mp4" * 20)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00")
    found = discover_folder(tmp_path, strict=False)
    assert [(p.path.name, p.problem) for p in found.problems] == [("empty.flac", "audio file is empty (0 bytes)")]
    with pytest.raises(DatasetProblems) as info:
        discover_folder(tmp_path, probe=True)
    assert {p.path.name for p in info.value.problems} == {"empty.flac", "broken.m4a", "broken.wav"}
    assert "broken.m4a: unreadable or corrupt audio file (ffprobe exit" in str(info.value)
    broken = next(i for i in found.items if i.id == "broken.m4a")
    with pytest.raises(AudioFileError, match="broken.m4a: unreadable or corrupt"):
        load(broken, SR)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="audio folder not found"):
        discover_folder(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("no music")
    with pytest.raises(DatasetError, match="folder: no usable items"):
        discover_folder(tmp_path)


# -------------------------------------------------------------------------------------- separators

FAKE_SEPARATOR = textwrap.dedent(
    """
    # A stand-in for `demucs -n htdemucs -o OUT INPUT`: writes OUT/fake/<name>/<stem>.wav.
    import sys
    from pathlib import Path
    import numpy as np
    import soundfile as sf

    args = sys.argv[1:]
    mode = args.pop(0)
    out, mixture = Path(args[args.index("-o") + 1]), Path(args[-1])
    with open(Path(__file__).with_suffix(".log"), "a") as log:
        log.write(mixture.name + "\\n")
    if mode == "fail":
        sys.exit("boom: model weights missing")
    audio, rate = sf.read(str(mixture), dtype="float32")
    stems = {"vocals": 0.4, "drums": 0.3, "bass": 0.2, "other": 0.1}
    if mode == "three":
        stems.pop("other")
    folder = out / "fake" / mixture.stem
    folder.mkdir(parents=True)
    for name, gain in stems.items():
        sf.write(str(folder / f"{name}.wav"), gain * audio, rate)
    """
)


@pytest.fixture
def separator(tmp_path):
    script = tmp_path / "fake_separator.py"
    script.write_text(FAKE_SEPARATOR)

    def make(mode="ok", **kwargs):
        return CommandStemProvider(f"{sys.executable} {script} {mode} -o {{out}} {{input}}", **kwargs)

    make.log = script.with_suffix(".log")
    return make


def runs(separator) -> list[str]:
    return separator.log.read_text().split() if separator.log.exists() else []


def test_command_provider_attaches_and_caches_stems(music, tmp_path, separator):
    items = [i for i in discover_folder(music).items if i.id in ("a.wav", "album/b.flac")]
    provider = separator()
    assert isinstance(provider, StemProvider)
    with_stems = attach_stems(items, provider, tmp_path / "stems")
    assert runs(separator) == ["a.wav", "b.flac"]
    b = with_stems[1]
    assert {k: v.path for k, v in b.stems.items()} == {
        s: tmp_path / "stems" / "album" / "b.flac" / f"{s}.wav" for s in ("vocals", "drums", "bass", "other")
    }
    mixture, stems = load(b, SR), load_stems(b, SR)
    assert stems.shape == (4, len(mixture))
    np.testing.assert_allclose(load_stem(b, "drums", SR), 0.3 * mixture, atol=1e-3)
    assert not list((tmp_path / "stems").rglob(".separating-*")), "temp folder left behind"

    again = attach_stems(items, provider, tmp_path / "stems")
    assert runs(separator) == ["a.wav", "b.flac"], "complete stems must be reused"
    assert again == with_stems
    assert attach_stems(again, separator("fail"), tmp_path / "other") == again  # items with stems kept


def test_separator_failures_name_the_mixture(music, tmp_path, separator):
    item = discover_folder(music).items[0]
    with pytest.raises(AudioFileError, match=r"a\.wav: separator .* failed \(exit 1\): boom: model weights missing"):
        attach_stems([item], separator("fail"), tmp_path / "stems")
    with pytest.raises(AudioFileError, match=r"a\.wav: separator output: 0 file\(s\) match 'fake/a/other.wav'"):
        attach_stems([item], separator("three", stems_glob="fake/{name}/{stem}.wav"), tmp_path / "stems")
    assert cached_stems(tmp_path / "stems" / "a.wav", ("vocals", "drums", "bass", "other")) is None
    left = [p for p in (tmp_path / "stems").rglob("*") if p.is_file()]
    assert not left, "a partial set of stems or a temp folder was left behind"
    missing = CommandStemProvider("no-such-separator-xyz -o {out} {input}")
    with pytest.raises(AudioFileError, match="separator program 'no-such-separator-xyz' not found"):
        attach_stems([item], missing, tmp_path / "stems")


def test_command_template_is_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"\['\{out\}'\]"):
        CommandStemProvider("demucs {input}")
    with pytest.raises(ConfigError, match="stem"):
        CommandStemProvider("demucs -o {out} {input}", stems_glob="*/{name}/vocals.wav")
    provider = CommandStemProvider("demucs -n htdemucs -o {out} {input}")
    song = tmp_path / "my song.mp3"
    assert provider.argv(song, tmp_path / "o") == ["demucs", "-n", "htdemucs", "-o", str(tmp_path / "o"), str(song)]


def test_item_without_stems_cannot_load_one(music):
    item = discover_folder(music).items[0]
    with pytest.raises(DatasetError, match="has no stems"):
        load_stem(item, "vocals", SR)
