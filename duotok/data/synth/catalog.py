"""Which music21 corpus scores can become duosynth songs, and the facts needed to pick them.

Scanning ~600 scores takes a few minutes, so the result is committed as ``catalog.json`` beside this
file and regenerated with ``duotok data catalog`` (it only changes when music21's corpus does).
A score qualifies when one part carries at least ``MIN_LYRIC_NOTES`` lyric syllables and the
score has at least two parts (a melody to sing and a line for the bass).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from duotok.data.synth.score import choose_vocal_part, lyric_counts

CATALOG_PATH = Path(__file__).with_name("catalog.json")
SOURCE_GROUPS = ("bach", "trecento", "monteverdi", "josquin", "schumann_robert", "schumann_clara", "verdi")
MIN_LYRIC_NOTES = 20

# Words frequent in Latin texts and rare in Italian ones; the trecento repertoire mixes the two.
_LATIN_MARKERS = {"et", "est", "deus", "domine", "nunc", "in", "cum", "sunt", "qui", "quod", "ad", "nobis",
                  "gloria", "sancta", "virgo", "dei", "ave", "regina", "mater", "sed", "ut", "kyrie", "eleison",
                  "christe", "sanctus", "agnus", "maria", "beata", "sacra", "nos", "mundi", "pater", "amen",
                  "filius", "spiritus", "omnes", "laus", "celi", "caeli"}
_ITALIAN_MARKERS = {"che", "il", "la", "di", "non", "amor", "per", "mi", "ch'", "lo", "e", "si", "del", "della",
                    "con", "mio", "cor", "ben", "gli", "chi"}


def guess_language(group: str, lyrics: str) -> str:
    """An espeak-ng language code for a score's lyrics (Bach, Schumann → German; Monteverdi, Verdi →
    Italian; the trecento repertoire by counting Latin vs Italian marker words). A heuristic: a
    few trecento pieces mixing both languages may be read with the wrong one."""
    if group == "bach" or group.startswith("schumann"):
        return "de"
    if group in {"monteverdi", "verdi"}:
        return "it"
    words = re.findall(r"[a-zà-ú']+", lyrics.lower())
    latin = sum(w in _LATIN_MARKERS for w in words)
    italian = sum(w in _ITALIAN_MARKERS for w in words)
    return "la" if latin > italian or latin == italian == 0 else "it"


def _scan_one(path: Path) -> dict[str, Any] | None:
    from music21 import corpus

    try:
        score = corpus.parse(path)
    except Exception:  # noqa: BLE001 — unreadable corpus entries are simply not catalogued
        return None
    if not hasattr(score, "parts") or len(score.parts) < 2:
        return None
    counts = lyric_counts(score)
    best = choose_vocal_part(score)
    if counts[best] < MIN_LYRIC_NOTES:
        return None
    rel = str(path).split("/corpus/", 1)[1]
    group = rel.split("/", 1)[0]
    lyric_text = " ".join(n.lyric for n in score.parts[best].flatten().notes if getattr(n, "lyric", None))
    ts = score.recurse().getElementsByClass("TimeSignature").first()
    return {
        "path": rel,
        "group": group,
        "title": (score.metadata.title if score.metadata and score.metadata.title else Path(rel).stem),
        "n_parts": len(score.parts),
        "vocal_part": best,
        "n_lyric_notes": counts[best],
        "quarter_length": float(score.highestTime),
        "time_signature": ts.ratioString if ts is not None else "4/4",
        "language": guess_language(group, lyric_text),
    }


def scan_corpus(groups: tuple[str, ...] = SOURCE_GROUPS) -> list[dict[str, Any]]:
    """Parse every candidate score in music21's corpus and return the qualifying ones, sorted by path."""
    from music21 import corpus

    paths = [p for p in corpus.getCorePaths()
             if str(p).split("/corpus/", 1)[1].split("/", 1)[0] in groups
             and p.suffix in {".mxl", ".xml", ".musicxml", ".krn"}]
    entries = [e for p in tqdm(sorted(paths), desc="scanning music21 corpus") if (e := _scan_one(p))]
    # One entry per work: the same piece can ship in several encodings.
    seen: dict[str, dict[str, Any]] = {}
    for e in entries:
        key = str(Path(e["path"]).with_suffix(""))
        seen.setdefault(key, e)
    return sorted(seen.values(), key=lambda e: e["path"])


def write_catalog(path: Path = CATALOG_PATH) -> list[dict[str, Any]]:
    import music21

    entries = scan_corpus()
    payload = {"music21_version": music21.__version__, "min_lyric_notes": MIN_LYRIC_NOTES, "works": entries}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return entries


def load_catalog(path: Path = CATALOG_PATH) -> list[dict[str, Any]]:
    """The committed catalogue of usable works."""
    return json.loads(path.read_text(encoding="utf-8"))["works"]
