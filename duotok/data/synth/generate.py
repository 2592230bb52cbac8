"""Generate the duosynth corpus: choose works and per-song settings, render stems in parallel, write
``data/`` (FLAC stems + mixture, ``meta.json`` per song, ``manifest.json``).

Determinism: every random choice of a song comes from a generator seeded by (corpus seed, work
path), made in the parent process before rendering, so results do not depend on worker count or
scheduling. Stems are quantised to 16 bit first and the mixture is their exact integer sum, so
"stems sum to the mixture" holds bit for bit.

Crash safety: songs are written to ``<out>.partial/songs/<id>.tmp`` and renamed when complete; a
re-run reuses finished songs whose settings fingerprint matches, and the finished corpus replaces
``<out>`` only at the end (rename), so ``data/`` is never half-written.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from duotok.config import fingerprint
from duotok.data.synth import drums as drums_mod
from duotok.data.synth.catalog import load_catalog
from duotok.data.synth.instruments import BASS_FAMILIES, OTHER_FAMILIES, render_notes
from duotok.data.synth.score import NoteEvent, SongPlan, plan_song, words_from_syllables
from duotok.data.synth.singing import VOICES, sing
from duotok.data.synth.tags import TAG_VOCABULARY, song_tags

FORMAT = "duosynth"
FORMAT_VERSION = 1
STEMS = ("vocals", "drums", "bass", "other")
RELEASE_TAIL_SECONDS = 1.0
TARGET_RMS_DBFS = -20.0
PEAK_LIMIT = 0.95
# Quarter-note tempo ranges per repertoire: chorales are hymn-slow, the others were written in
# longer note values and read naturally faster in quarters. Ranges overlap so tempo is not a
# proxy for language.
TEMPO_RANGES_QPM = {"bach": (60.0, 104.0), "default": (80.0, 140.0)}


@dataclass(frozen=True)
class SongSettings:
    """Every random choice for one song, drawn before rendering."""

    song_id: str
    work: str
    group: str
    language: str
    split: str
    seed: int
    voice: str
    drum_style: str
    other_families: tuple[str, ...]
    other_programs: tuple[int, ...]
    bass_family: str
    bass_program: int
    tempo_qpm: float
    transpose: int
    vocal_to_accompaniment_db: float
    bass_db: float
    drums_db: float

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["other_families"] = list(self.other_families)
        d["other_programs"] = list(self.other_programs)
        return d


def _song_seed(seed: int, work: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{work}".encode()).digest()[:8], "little")


def _slug(work: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", Path(work).with_suffix("").as_posix().lower()).strip("-")


def draw_settings(entry: dict[str, Any], index: int, split: str, cfg: dict[str, Any]) -> SongSettings:
    """Draw one song's settings from its own seeded generator."""
    seed = _song_seed(int(cfg["seed"]), entry["path"])
    rng = np.random.default_rng(seed)
    voice = str(rng.choice(cfg["voices"]))
    drum_style = str(rng.choice(cfg["drum_styles"]))
    families = list(OTHER_FAMILIES)
    first = str(rng.choice(families))
    chosen = [first]
    if rng.random() < 0.4:
        chosen.append(str(rng.choice([f for f in families if f != first])))
    programs = tuple(int(rng.choice(OTHER_FAMILIES[f])) for f in chosen)
    bass_family = str(rng.choice(list(BASS_FAMILIES)))
    bass_program = int(rng.choice(BASS_FAMILIES[bass_family]))
    lo, hi = TEMPO_RANGES_QPM.get(entry["group"], TEMPO_RANGES_QPM["default"])
    tempo = float(round(rng.uniform(lo, hi), 1))
    t_lo, t_hi = cfg["transpose_semitones"]
    transpose = int(rng.integers(t_lo, t_hi + 1))
    v_lo, v_hi = cfg["vocal_to_accompaniment_db"]
    return SongSettings(
        song_id=f"{index:04d}_{_slug(entry['path'])}",
        work=entry["path"], group=entry["group"], language=entry["language"], split=split, seed=seed,
        voice=voice, drum_style=drum_style, other_families=tuple(chosen), other_programs=programs,
        bass_family=bass_family, bass_program=bass_program, tempo_qpm=tempo, transpose=transpose,
        vocal_to_accompaniment_db=float(round(rng.uniform(v_lo, v_hi), 2)),
        bass_db=float(round(rng.uniform(-3.0, 1.0), 2)),
        drums_db=float(round(rng.uniform(-6.0, -1.0), 2)),
    )


def _assign_splits(n: int, fractions: dict[str, float]) -> list[str]:
    """Split labels for n songs (one work each): at least one valid and test song when n >= 3."""
    n_valid = max(1 if n >= 3 else 0, int(round(n * fractions.get("valid", 0.0))))
    n_test = max(1 if n >= 3 else 0, int(round(n * fractions.get("test", 0.0))))
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"n_songs={n} is too small for the split fractions {fractions}")
    return ["train"] * n_train + ["valid"] * n_valid + ["test"] * n_test


def select_songs(cfg: dict[str, Any], catalog: list[dict[str, Any]] | None = None) -> list[SongSettings]:
    """Choose ``n_songs`` works (half chorales, half the other repertoires when available), long
    enough at their drawn tempo, and draw their settings. Splits are by work: one song per work."""
    catalog = catalog if catalog is not None else load_catalog()
    rng = np.random.default_rng(int(cfg["seed"]))
    bach = [e for e in catalog if e["group"] == "bach"]
    rest = [e for e in catalog if e["group"] != "bach"]
    order_b = [bach[i] for i in rng.permutation(len(bach))]
    order_r = [rest[i] for i in rng.permutation(len(rest))]
    interleaved: list[dict[str, Any]] = []
    for i in range(max(len(order_b), len(order_r))):
        interleaved += [lst[i] for lst in (order_r, order_b) if i < len(lst)]
    n = int(cfg["n_songs"])
    picked: list[dict[str, Any]] = []
    for entry in interleaved:
        if len(picked) == n:
            break
        probe = draw_settings(entry, 0, "train", cfg)
        est = min(float(cfg["max_song_seconds"]), entry["quarter_length"] * 60.0 / probe.tempo_qpm)
        if est >= float(cfg["min_song_seconds"]):
            picked.append(entry)
    if len(picked) < n:
        raise ValueError(f"only {len(picked)} works qualify for n_songs={n}; lower n_songs or min_song_seconds")
    splits = _assign_splits(n, cfg["split_fractions"])
    split_order = rng.permutation(n)
    return [draw_settings(entry, i, splits[split_order[i]], cfg) for i, entry in enumerate(picked)]


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    """RMS over the louder half of 100 ms blocks, so long rests do not make a stem look quiet."""
    block = sample_rate // 10
    n = x.size // block
    if n == 0:
        return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    energies = np.sort((x[: n * block].reshape(n, block) ** 2).mean(axis=1))[::-1]
    top = energies[: max(1, n // 2)]
    return float(np.sqrt(top.mean()))


def _db(x: float) -> float:
    return 20.0 * np.log10(max(x, 1e-12))


def _comp_from_bass(plan: SongPlan, program: int) -> list[NoteEvent]:
    """Broken-chord accompaniment for scores with no inner parts: a diatonic triad over each bass note."""
    tonic_pc = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[plan.key_tonic[0]]
    tonic_pc = (tonic_pc + plan.key_tonic.count("#") - plan.key_tonic.count("-")) % 12
    scale = [0, 2, 4, 5, 7, 9, 11] if plan.key_mode == "major" else [0, 2, 3, 5, 7, 8, 10]
    scale_pcs = {(tonic_pc + s) % 12 for s in scale}
    out: list[NoteEvent] = []
    step = plan.seconds_per_quarter / 2
    for b in plan.bass:
        root = int(b.pitch)
        while root < 52:
            root += 12
        third = root + (4 if (root + 4) % 12 in scale_pcs else 3)
        chord = [root, third, root + 7]
        t, k = b.onset, 0
        while t < b.onset + b.duration - 1e-6:
            out.append(NoteEvent(chord[k % 3], t, min(step, b.onset + b.duration - t), 70))
            t += step
            k += 1
    return out


def render_song(settings: SongSettings, cfg: dict[str, Any]) -> dict[str, Any]:
    """Render one song's four stems (float, before levels) and its metadata."""
    from music21 import corpus

    sr = int(cfg["sample_rate"])
    rng = np.random.default_rng(settings.seed + 1)
    score = corpus.parse(settings.work)
    plan = plan_song(score, settings.work, base_tempo_qpm=settings.tempo_qpm, transpose=settings.transpose,
                     max_seconds=float(cfg["max_song_seconds"]))
    total = plan.duration + RELEASE_TAIL_SECONDS
    voice = VOICES[settings.voice]
    vocals = sing(plan.sung_syllables(voice.octave_shift), total, settings.language, voice, sr, rng)
    bass = render_notes([(settings.bass_program, plan.bass)], total, sr)
    if plan.others:
        progs = settings.other_programs
        tracks = [(progs[i % len(progs)], notes) for i, notes in enumerate(plan.others)]
        other_notes = [n for notes in plan.others for n in notes]
    else:
        comp = _comp_from_bass(plan, settings.other_programs[0])
        tracks = [(settings.other_programs[0], comp)]
        other_notes = comp
    other = render_notes(tracks, total, sr)
    beat_s = plan.seconds_per_quarter * plan.beat_quarters
    beats_per_bar = int(round(plan.quarters_per_bar / plan.beat_quarters))
    drum_events = drums_mod.drum_track(settings.drum_style, plan.duration, beat_s, beats_per_bar, rng)
    drums = render_notes([(0, drum_events)], total, sr, drums=True) if drum_events else np.zeros_like(bass)
    stems = {"vocals": vocals, "drums": drums, "bass": bass, "other": other}
    notes = {
        "vocals": [{"pitch": p + 12 * voice.octave_shift, "onset": round(o, 6), "duration": round(d, 6)}
                   for s in plan.syllables for p, o, d in zip(s.pitches, s.onsets, s.durations, strict=True)],
        "bass": [n.as_dict() for n in plan.bass],
        "other": [n.as_dict() for n in sorted(other_notes, key=lambda n: (n.onset, n.pitch))],
        "drums": [n.as_dict() for n in drum_events],
    }
    syllables = [{"text": s.text, "onset": round(s.onset, 6), "offset": round(s.offset, 6),
                  "n_notes": len(s.pitches)} for s in plan.syllables]
    words = words_from_syllables(plan.syllables)
    for w_index, w in enumerate(words):
        for j in w["syllables"]:
            syllables[j]["word"] = w_index
    meta = {
        "id": settings.song_id,
        "work": settings.work,
        "title": plan.title,
        "repertoire": settings.group,
        "split": settings.split,
        "sample_rate": sr,
        "duration": round(total, 6),
        "music_duration": round(plan.duration, 6),
        "language": settings.language,
        "voice": settings.voice,
        "drum_style": settings.drum_style,
        "tempo_qpm": settings.tempo_qpm,
        "time_signature": plan.time_signature,
        "key": {"tonic": plan.key_tonic, "mode": plan.key_mode},
        "transpose_semitones": settings.transpose,
        "programs": {"vocals": None, "drums": "GM standard kit" if drum_events else None,
                     "bass": settings.bass_program, "other": list(settings.other_programs)},
        "families": {"bass": settings.bass_family, "other": list(settings.other_families)},
        "lyrics": {"text": " ".join(w["text"] for w in words), "language": settings.language,
                   "words": words, "syllables": syllables},
        "notes": notes,
        "settings": settings.as_dict(),
        "score_parts": plan.extra,
    }
    return {"stems": stems, "meta": meta}


def mix_levels(stems: dict[str, np.ndarray], settings: SongSettings, sr: int) -> tuple[dict[str, np.ndarray], dict]:
    """Set stem levels (bass and drums relative to 'other', vocals relative to the accompaniment),
    then scale everything to the target loudness with a peak limit; return int16 stems."""
    ref = _active_rms(stems["other"], sr)
    gains_db: dict[str, float | None] = {"other": 0.0}
    scaled = {"other": stems["other"]}
    for name, rel in (("bass", settings.bass_db), ("drums", settings.drums_db)):
        r = _active_rms(stems[name], sr)
        if r <= 0:
            gains_db[name] = None
            scaled[name] = stems[name]
            continue
        g = _db(ref) + rel - _db(r)
        gains_db[name] = g
        scaled[name] = stems[name] * 10 ** (g / 20)
    acc = scaled["other"] + scaled["bass"] + scaled["drums"]
    gv = _db(_active_rms(acc, sr)) + settings.vocal_to_accompaniment_db - _db(_active_rms(stems["vocals"], sr))
    gains_db["vocals"] = gv
    scaled["vocals"] = stems["vocals"] * 10 ** (gv / 20)
    mix = sum(scaled.values())
    master = TARGET_RMS_DBFS - _db(_active_rms(mix, sr))
    peak = float(np.max(np.abs(mix))) * 10 ** (master / 20)
    if peak > PEAK_LIMIT:
        master += _db(PEAK_LIMIT / peak)
    out = {}
    for name in STEMS:
        x = scaled[name] * 10 ** (master / 20)
        out[name] = np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16)
        if gains_db.get(name) is not None:
            gains_db[name] = round(float(gains_db[name] + master), 3)
    return out, {"stem_gains_db": gains_db, "master_gain_db": round(master, 3)}


def _write_song(settings: SongSettings, cfg: dict[str, Any], songs_dir: Path, cfg_fp: str) -> dict[str, Any]:
    final = songs_dir / settings.song_id
    song_fp = fingerprint({"config": cfg_fp, "settings": settings.as_dict()})
    meta_path = final / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("fingerprint") == song_fp:
            return meta  # finished by an earlier, interrupted run
        shutil.rmtree(final)
    rendered = render_song(settings, cfg)
    sr = int(cfg["sample_rate"])
    ints, levels = mix_levels(rendered["stems"], settings, sr)
    mixture = sum(ints[s].astype(np.int32) for s in STEMS)
    if np.abs(mixture).max() > 32767:
        raise RuntimeError(f"{settings.song_id}: mixture overflows 16 bit after limiting")
    meta = rendered["meta"]
    meta.update(levels)
    meta["vocal_to_accompaniment_db"] = settings.vocal_to_accompaniment_db
    meta["tags"] = song_tags(
        voice=settings.voice, language=settings.language, drum_style=settings.drum_style,
        tempo_qpm=settings.tempo_qpm, mode=meta["key"]["mode"], time_signature=meta["time_signature"],
        other_families=list(settings.other_families), bass_family=settings.bass_family,
        vocal_to_accompaniment_db=settings.vocal_to_accompaniment_db,
    )
    meta["fingerprint"] = song_fp
    tmp = songs_dir / f"{settings.song_id}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in STEMS:
        sf.write(tmp / f"{name}.flac", ints[name], sr, subtype="PCM_16", format="FLAC")
    sf.write(tmp / "mixture.flac", mixture.astype(np.int16), sr, subtype="PCM_16", format="FLAC")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.rename(final)
    return meta


def _worker(args: tuple[SongSettings, dict[str, Any], str, str]) -> dict[str, Any]:
    settings, cfg, songs_dir, cfg_fp = args
    try:
        return _write_song(settings, cfg, Path(songs_dir), cfg_fp)
    except Exception as exc:  # name the song: a bare traceback from a pool worker is hard to place
        raise RuntimeError(f"duosynth: rendering {settings.song_id} ({settings.work}) failed: {exc!r}") from exc


def corpus_fingerprint(cfg: dict[str, Any]) -> str:
    """What decides the corpus's content (the worker count and output folder do not)."""
    return fingerprint({k: v for k, v in cfg.items() if k not in ("workers", "out_dir")})


def generate_corpus(cfg: dict[str, Any], out_dir: str | Path, workers: int | None = None) -> dict[str, Any]:
    """Generate the corpus into ``out_dir`` (replaced atomically at the end) and return the manifest."""
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    songs_dir = partial / "songs"
    songs_dir.mkdir(parents=True, exist_ok=True)
    cfg_fp = corpus_fingerprint(cfg)
    settings = select_songs(cfg)
    wanted = {s.song_id for s in settings}
    for stale in songs_dir.iterdir():  # leftovers from another configuration
        if stale.name not in wanted:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    workers = max(1, int(workers if workers is not None else cfg.get("workers", 1)))
    jobs = [(s, cfg, str(songs_dir), cfg_fp) for s in settings]
    t0 = time.time()
    interactive = sys.stderr.isatty()
    bar = tqdm(total=len(jobs), desc="duosynth: rendering songs", unit="song",
               mininterval=0.5 if interactive else 15.0)
    metas: list[dict[str, Any]] = []
    if workers == 1:
        for job in jobs:
            metas.append(_worker(job))
            bar.update()
    else:
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            for meta in pool.imap(_worker, jobs, chunksize=1):
                metas.append(meta)
                bar.update()
    bar.close()
    manifest = build_manifest(cfg, cfg_fp, metas)
    (partial / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    if out_dir.exists():
        trash = out_dir.with_name(out_dir.name + ".old")
        if trash.exists():
            shutil.rmtree(trash)
        out_dir.rename(trash)
        partial.rename(out_dir)
        shutil.rmtree(trash)
    else:
        partial.rename(out_dir)
    manifest["_elapsed_seconds"] = round(time.time() - t0, 1)
    return manifest


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _package_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("numpy", "scipy", "music21", "pyworld", "tinysoundfont", "pretty_midi",
                                    "soundfile")}


def build_manifest(cfg: dict[str, Any], cfg_fp: str, metas: list[dict[str, Any]]) -> dict[str, Any]:
    songs = [{"id": m["id"], "split": m["split"], "work": m["work"], "duration": m["duration"],
              "language": m["language"], "voice": m["voice"], "drum_style": m["drum_style"],
              "tempo_qpm": m["tempo_qpm"], "time_signature": m["time_signature"], "key": m["key"],
              "vocal_to_accompaniment_db": m["vocal_to_accompaniment_db"],
              "n_words": len(m["lyrics"]["words"]), "tags": m["tags"]} for m in metas]
    splits: dict[str, dict[str, float]] = {}
    for s in songs:
        d = splits.setdefault(s["split"], {"songs": 0, "seconds": 0.0})
        d["songs"] += 1
        d["seconds"] = round(d["seconds"] + s["duration"], 3)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "sample_rate": int(cfg["sample_rate"]),
        "stems": list(STEMS),
        "config": {k: v for k, v in cfg.items() if k not in ("workers", "out_dir")},
        "config_fingerprint": cfg_fp,
        "generator": {"espeak_ng": _espeak_version(), "packages": _package_versions()},
        "tag_vocabulary": list(TAG_VOCABULARY),
        "splits": splits,
        "total_seconds": round(sum(s["duration"] for s in songs), 3),
        "songs": songs,
    }


def _espeak_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "missing"
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    return m.group(1) if m else out.strip()
