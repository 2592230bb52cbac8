"""A singer made of espeak-ng (pronunciation) and the WORLD vocoder (pitch and timing).

Why this recipe: espeak-ng speaks German, Italian, Latin and English offline, and WORLD lets us
replace the spoken pitch contour with the score's exact pitch and stretch each syllable to its note,
so the sung pitch and the lyric timings in the metadata are exact by construction (the tests check
the pitch with pyin). Each syllable is spoken once by espeak-ng, analysed by WORLD (cached), then
its voiced nucleus is stretched over the note(s) it is sung on while onset and coda consonants keep
their natural length. The whole vocal line is synthesised in one WORLD call so notes join smoothly.

Voices differ by register and by a WORLD spectral-envelope (formant) warp, so "voice" is an
audible tag: ``tenor`` sings an octave below the written soprano line with the espeak voice's own
formants; ``soprano`` sings at written pitch with formants raised by 18 %.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np

with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
    warnings.simplefilter("ignore", UserWarning)
    import pyworld
import soundfile as sf
from scipy.signal import resample_poly

FRAME_PERIOD_MS = 5.0
F0_FLOOR = 60.0
F0_CEIL = 1100.0


@dataclass(frozen=True)
class Voice:
    """A singing voice: how the written melody is transposed and how formants are warped."""

    name: str
    octave_shift: int        # octaves added to the written pitch
    formant_warp: float      # >1 raises formants (smaller vocal tract)
    espeak_variant: str      # espeak-ng voice variant suffix ("" = language default)
    vibrato_cents: float = 35.0
    vibrato_hz: float = 5.5


VOICES: dict[str, Voice] = {
    "tenor": Voice("tenor", octave_shift=-1, formant_warp=1.0, espeak_variant=""),
    "soprano": Voice("soprano", octave_shift=0, formant_warp=1.18, espeak_variant="+f2", vibrato_cents=45.0),
}


@dataclass(frozen=True)
class SungSyllable:
    """One syllable of the vocal line: its text and the notes it is sung on (a melisma has several)."""

    text: str
    pitches: tuple[float, ...]     # MIDI pitch per note (already transposed for the voice)
    onsets: tuple[float, ...]      # seconds
    durations: tuple[float, ...]   # seconds


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _espeak_wave(text: str, language: str, variant: str, sample_rate: int) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return it at ``sample_rate`` with silence trimmed."""
    if not espeak_available():
        raise RuntimeError(
            "espeak-ng is not installed; the duosynth singer needs it "
            "(Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "s.wav")
        subprocess.run(
            ["espeak-ng", "-v", f"{language}{variant}", "-s", "120", "-w", out, "--", text],
            check=True, capture_output=True,
        )
        wave, sr = sf.read(out, dtype="float64")
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    g = np.gcd(sr, sample_rate)
    wave = resample_poly(wave, sample_rate // g, sr // g)
    env = np.abs(wave)
    thresh = 0.02 * (env.max() + 1e-9)
    idx = np.flatnonzero(env > thresh)
    if idx.size == 0:
        return np.zeros(int(0.05 * sample_rate))
    return wave[idx[0]: idx[-1] + 1]


@functools.lru_cache(maxsize=4096)
def analyse_syllable(text: str, language: str, variant: str, sample_rate: int):
    """WORLD parameters (voiced mask, spectral envelope, aperiodicity) of a spoken syllable, cached
    because syllables repeat a lot within a song and across songs."""
    wave = _espeak_wave(text, language, variant, sample_rate)
    f0, t = pyworld.dio(wave, sample_rate, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(wave, f0, t, sample_rate)
    fft_size = pyworld.get_cheaptrick_fft_size(sample_rate, F0_FLOOR)
    sp = pyworld.cheaptrick(wave, f0, t, sample_rate, fft_size=fft_size)
    ap = pyworld.d4c(wave, f0, t, sample_rate, fft_size=fft_size)
    voiced = f0 > 0
    return voiced, sp, ap


def warp_formants(sp: np.ndarray, factor: float) -> np.ndarray:
    """Scale the spectral envelope's frequency axis by ``factor`` (WORLD's usual formant shift):
    the output at bin k takes the input's value at bin k / factor, linearly interpolated."""
    if factor == 1.0:
        return sp
    n_bins = sp.shape[1]
    src = np.clip(np.arange(n_bins, dtype=np.float64) / factor, 0, n_bins - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_bins - 1)
    w = src - lo
    return sp[:, lo] * (1.0 - w) + sp[:, hi] * w


def _stretch_plan(voiced: np.ndarray, n_target: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices into the spoken syllable that fill ``n_target`` frames, and which of those frames
    are sung (voiced). Consonants before and after the voiced nucleus keep their length (capped to
    35 % of the note); the nucleus, from the first to the last voiced frame, is stretched and sung
    throughout (a pitch-tracker dropout inside a vowel must not become noise)."""
    n = voiced.size
    vidx = np.flatnonzero(voiced)
    if vidx.size == 0:  # unvoiced syllable ("st"): stretch it all, nothing sung
        return np.linspace(0, n - 1, n_target).round().astype(int), np.zeros(n_target, dtype=bool)
    start, end = int(vidx[0]), int(vidx[-1]) + 1
    cap = max(1, int(0.35 * n_target))
    onset = np.arange(max(0, start - cap), start)
    coda = np.arange(end, min(n, end + cap))
    n_nucleus = max(1, n_target - onset.size - coda.size)
    nucleus = np.linspace(start, end - 1, n_nucleus).round().astype(int)
    plan = np.concatenate([onset, nucleus, coda])
    sung = np.concatenate([np.zeros(onset.size, bool), np.ones(n_nucleus, bool), np.zeros(coda.size, bool)])
    plan, sung = plan[:n_target], sung[:n_target]
    if plan.size < n_target:
        plan = np.pad(plan, (0, n_target - plan.size), mode="edge")
        sung = np.pad(sung, (0, n_target - sung.size), mode="edge")
    return plan, sung


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def sing(
    syllables: list[SungSyllable],
    total_seconds: float,
    language: str,
    voice: Voice,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render a vocal line. Returns float64 audio of ``round(total_seconds * sample_rate)`` samples,
    peak-normalised to 0.9 (the mixer sets the level)."""
    fp = FRAME_PERIOD_MS / 1000.0
    n_frames = int(np.ceil(total_seconds / fp)) + 1
    fft_size = pyworld.get_cheaptrick_fft_size(sample_rate, F0_FLOOR)
    n_bins = fft_size // 2 + 1
    f0 = np.zeros(n_frames)
    sp = np.full((n_frames, n_bins), 1e-12)
    ap = np.ones((n_frames, n_bins))
    vib_phase = rng.uniform(0, 2 * np.pi)
    for syl in syllables:
        start = syl.onsets[0]
        end = syl.onsets[-1] + syl.durations[-1]
        a, b = int(round(start / fp)), min(n_frames, int(round(end / fp)))
        # leave a 20 ms breath before the next syllable so consonants stay intelligible
        b = max(a + 1, b - 4)
        if a >= n_frames:
            continue
        voiced, ssp, sap = analyse_syllable(syl.text, language, voice.espeak_variant, sample_rate)
        plan, sung = _stretch_plan(voiced, b - a)
        sp[a:b] = warp_formants(ssp[plan], voice.formant_warp)
        ap[a:b] = np.where(sung[:, None], np.minimum(sap[plan], 0.2), sap[plan])
        # pitch per frame from the notes of this syllable (a melisma has several)
        times = np.arange(a, b) * fp
        hz = np.full(b - a, midi_to_hz(syl.pitches[0]))
        for p, o in zip(syl.pitches[1:], syl.onsets[1:], strict=True):
            hz[times >= o - 1e-9] = midi_to_hz(p)
        # vibrato fades in after 150 ms of a note
        age = np.maximum(0.0, times - start - 0.15)
        depth = voice.vibrato_cents * np.minimum(1.0, age / 0.2)
        hz = hz * 2.0 ** (depth * np.sin(2 * np.pi * voice.vibrato_hz * times + vib_phase) / 1200.0)
        f0[a:b] = np.where(sung, hz, 0.0)
    audio = pyworld.synthesize(f0, sp, ap, sample_rate, frame_period=FRAME_PERIOD_MS)
    n_out = int(round(total_seconds * sample_rate))
    audio = np.pad(audio, (0, max(0, n_out - audio.size)))[:n_out]
    peak = np.max(np.abs(audio))
    return audio * (0.9 / peak) if peak > 0 else audio
