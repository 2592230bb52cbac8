"""Text utilities for the lyrics (CTC) head: a character vocabulary, greedy CTC decoding, character
error rate, and the lyrics of a training window from the corpus's syllable timings.

Normalisation (:meth:`CharVocab.normalize`), applied before encoding so targets and references agree:

1. Unicode NFC, then lowercase (``"Seel"`` → ``"seel"``, ``"ẞ"`` → ``"ß"``);
2. typographic apostrophes (``’ ‘ ʼ``) become ``'``; hyphens, dashes, underscores and slashes become
   spaces (they join words: ``"Kyrie-eleison"`` → ``"kyrie eleison"``);
3. a letter outside the alphabet whose unaccented base letter is in it maps to that base letter
   (``"ç"`` → ``"c"``, ``"â"`` → ``"a"``) — a Latin or Italian text should not lose letters to rare
   accents; every other character outside the alphabet (punctuation, digits, symbols) is dropped;
4. whitespace runs collapse to one space, and leading/trailing spaces are removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

BLANK = "<blank>"
#: The alphabet after the blank: space, apostrophe, a–z, then the German, Italian and Latin letters
#: of the corpus's lyrics. The order is fixed forever: it defines the token ids.
ALPHABET: tuple[str, ...] = (" ", "'", *"abcdefghijklmnopqrstuvwxyz", *"äöüßàèéìíòóù")

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'"})
_SEPARATORS = re.compile(r"[-‐‑‒–—_/]")
_WHITESPACE = re.compile(r"\s+")


class CharVocab:
    """Character vocabulary with the CTC blank at index 0, space at 1, apostrophe at 2."""

    def __init__(self, alphabet: Sequence[str] = ALPHABET):
        self.symbols: tuple[str, ...] = (BLANK, *alphabet)
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("alphabet has duplicate symbols")
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.blank = 0

    def __len__(self) -> int:
        return len(self.symbols)

    def _map_char(self, char: str) -> str:
        """The alphabet character for one normalised character, or ``""`` to drop it."""
        if char in self._index or char.isspace():
            return char
        base = unicodedata.normalize("NFD", char)[0]
        return base if base != char and base in self._index else ""

    def normalize(self, text: str) -> str:
        """The documented normalisation (module docstring): what :meth:`encode` actually encodes."""
        text = unicodedata.normalize("NFC", text).lower().translate(_APOSTROPHES)
        text = _SEPARATORS.sub(" ", text)
        text = "".join(self._map_char(c) for c in text)
        return _WHITESPACE.sub(" ", text).strip()

    def encode(self, text: str) -> list[int]:
        return [self._index[c] for c in self.normalize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids → text; blanks are skipped (so a raw CTC path decodes without collapsing)."""
        return "".join(self.symbols[int(i)] for i in ids if int(i) != self.blank)

    def encode_batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded targets ``(B, max_len)`` (padding = blank) and their lengths ``(B,)`` for CTC."""
        encoded = [self.encode(t) for t in texts]
        lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
        targets = torch.zeros(len(encoded), max([len(e) for e in encoded], default=0), dtype=torch.long)
        for row, ids in enumerate(encoded):
            targets[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return targets, lengths

    def greedy_ctc_decode(
        self, log_probs: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None
    ) -> list[str]:
        """Best-path decoding of ``(T, V)`` or ``(B, T, V)`` scores: argmax per frame, collapse
        repeats, drop blanks (``"aa-b"`` → ``"ab"``, ``"a-a"`` → ``"aa"``), then collapse spaces.
        ``lengths`` limits each item to its valid frames."""
        if log_probs.dim() == 2:
            log_probs = log_probs.unsqueeze(0)
        if log_probs.dim() != 3 or log_probs.shape[-1] != len(self):
            raise ValueError(
                f"expected (T, {len(self)}) or (B, T, {len(self)}) scores, got {tuple(log_probs.shape)}"
            )
        best = log_probs.argmax(dim=-1).cpu()
        lengths_list = [best.shape[1]] * best.shape[0] if lengths is None else [int(n) for n in lengths]
        texts = []
        for path, n in zip(best.tolist(), lengths_list, strict=True):
            path = path[:n]
            collapsed = [c for t, c in enumerate(path) if t == 0 or c != path[t - 1]]
            texts.append(_WHITESPACE.sub(" ", self.decode(collapsed)).strip())
        return texts


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance (unit-cost substitutions, insertions, deletions), two-row DP."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def character_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus CER: total edit distance / total reference length (not a mean of per-item rates, so
    long lines weigh more). Inputs are compared as given — normalise both first. With no reference
    characters at all it is 0.0 if the hypotheses are empty too, else ``inf``."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    errors = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
    total = sum(len(r) for r in refs)
    if total == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / total


def lyrics_targets_for_window(syllables: Sequence[Mapping[str, Any]], start: float, end: float) -> str:
    """The lyrics sung in ``[start, end)``: the syllables whose onset lies in it, in onset order.

    Syllables carrying the same ``"word"`` index (the corpus's ``meta.json`` lyrics) are joined
    without a space (``"Her" + "zen"`` → ``"Herzen"``); all others are separated by a space, so
    without word indices every syllable is its own word. Empty syllables are skipped. Text is
    returned as written; :meth:`CharVocab.encode` normalises it.
    """
    chosen = sorted(
        (s for s in syllables if start <= float(s["onset"]) < end and str(s.get("text", "")).strip()),
        key=lambda s: float(s["onset"]),
    )
    parts: list[str] = []
    previous_word: Any = None
    for s in chosen:
        word = s.get("word")
        text = str(s["text"]).strip()
        if parts and word is not None and word == previous_word:
            parts[-1] += text
        else:
            parts.append(text)
        previous_word = word
    return " ".join(parts)
