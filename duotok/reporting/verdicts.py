"""Honest verdicts for Table 2 (issue 18): the pure functions a codec comparison needs before it may
say one codec is better than another.

Two ways a verdict went wrong before, and what each function here guards against:

* **Noise called a win.** The verdicts rested on the LM and probe seeds of *one* trained codec, so the
  spread they saw was that of the evaluation, not of training the codec again. A difference counts
  here only when (i) each system has >= 2 *codec-training* seeds, (ii) it exceeds the spread of the
  per-seed means (the :func:`combined_spread` rule) and (iii) a paired
  bootstrap over test songs excludes 0 (:func:`paired_bootstrap`, :func:`seed_and_song_verdict`).
* **Less information called a win.** PPL@1024 (and any LM loss per token) rewards predictable tokens,
  and a token stream that carries little information is predictable for free: a codec that collapsed
  onto a few codes has a low perplexity *because* it says little about the music. A PPL win by a codec
  whose tokens carry less information than the rival's is therefore "confounded", not "confirmed"
  (:func:`unigram_entropy_rate`, :func:`confounded`, :func:`information_aware_verdict`).

Also here: :func:`tags_with_enough_positives`, because a tag's AP over a handful of positive test songs
is decided by where one or two songs rank, and macro-AP weights it like a well-populated tag.

Everything is pure (numbers in, numbers out), seeded where random, and raises ``ValueError`` with the
offending names instead of silently dropping data.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from duotok.quantization.simvq import usage_statistics

__all__ = [
    "A_BETTER",
    "B_BETTER",
    "CONFOUNDABLE_METRICS",
    "CONFOUNDED",
    "NOT_TESTABLE",
    "TIE",
    "UNCONFOUNDED_METRICS",
    "codebook_usage",
    "combined_spread",
    "confounded",
    "entropy_rate_bits_per_second",
    "information_aware_verdict",
    "paired_bootstrap",
    "seed_and_song_verdict",
    "tags_with_enough_positives",
    "unigram_entropy_rate",
]

A_BETTER, B_BETTER, TIE, NOT_TESTABLE, CONFOUNDED = "a better", "b better", "tie", "not testable", "confounded"

#: Metrics whose win can come from tokens carrying less information: per-token LM figures.
CONFOUNDABLE_METRICS: frozenset[str] = frozenset({"ppl_1024", "ppl", "lm_loss", "ce", "ce_mean"})
#: Metrics not confounded that way: LM bits/s is already code length per second of *audio* (no per-token
#: normalisation to be flattered by), and AP, AUC and Mel L1 measure the music, not token predictability.
UNCONFOUNDED_METRICS: frozenset[str] = frozenset(
    {"bits_per_second", "lm_bits_per_second", "ap", "auc", "song_ap", "song_auc", "mel_l1"})

#: Most index draws :func:`paired_bootstrap` holds in memory at once (rows are drawn in chunks).
_MAX_DRAWS_PER_CHUNK = 2_000_000
#: How many offending names an error message lists before "... and N more".
_SHOW = 10


def combined_spread(*stds: Any) -> float:
    """How far apart two means measured over seeds may be and still not differ: ``std_a + std_b``
    (population std over seeds, as the probe and the LM report it). A side without a spread (one seed,
    or none reported: ``None`` / NaN) adds 0. The one rule behind Table 2's head-to-head, the claims
    (:mod:`duotok.reporting.claims`, which re-exports it), the ablation tables
    (:mod:`duotok.reporting.ablations`) and :func:`seed_and_song_verdict`. It lives here, not in
    ``claims``, so that the evaluation stages can use this module without importing the report's."""
    return sum(0.0 if s is None or math.isnan(float(s)) else float(s) for s in stds)


def _names(items: Sequence[Any] | set[Any]) -> str:
    items = sorted(items, key=repr)
    shown = ", ".join(repr(i) for i in items[:_SHOW])
    return shown + (f" ... and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


# ----------------------------------------------------------------------------- information in tokens


def _flat_codes(codes: Any, what: str = "codes") -> np.ndarray:
    """Integer token ids of ``codes`` as one flat int64 array. ``codes`` may be a numpy array, a CPU
    torch tensor, a flat list of ints, or a list of per-song arrays of different lengths (concatenated:
    the unigram distribution pools all frames)."""
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    if isinstance(codes, (list, tuple)) and codes and not all(np.isscalar(c) for c in codes):
        parts = [_flat_codes(c, f"{what}[{i}]") for i, c in enumerate(codes)]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if flat.size == 0:
            raise ValueError(f"{what} holds no tokens")
        return flat
    arr = np.asarray(codes)
    if arr.size == 0:
        raise ValueError(f"{what} holds no tokens")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integer token ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).ravel()
    if arr.min() < 0:
        raise ValueError(f"{what} holds negative ids (min {int(arr.min())}): mask out padding before "
                         "counting, or it is counted as a code")
    return arr


def _check_rate(frame_rate: Any, what: str = "frame_rate") -> float:
    rate = float(frame_rate)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{what} must be a positive finite number of tokens per second, got {frame_rate!r}")
    return rate


def _counts(codes: Any, codebook_size: int | None, what: str = "codes") -> np.ndarray:
    flat = _flat_codes(codes, what)
    if codebook_size is not None:
        if int(codebook_size) < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        if flat.max() >= codebook_size:
            raise ValueError(f"{what} holds id {int(flat.max())}, outside a codebook of {codebook_size}")
        return np.bincount(flat, minlength=int(codebook_size))
    _, counts = np.unique(flat, return_counts=True)
    return counts


def _entropy_bits(counts: np.ndarray) -> float:
    """Plug-in Shannon entropy (bits) of a count histogram: ``log2`` of the code perplexity of
    :func:`duotok.quantization.simvq.usage_statistics`, the one definition the training monitor and
    the stage metrics use too; a constant stream gives exactly 0."""
    perplexity, _ = usage_statistics(torch.from_numpy(counts))
    return math.log2(perplexity)


def unigram_entropy_rate(codes: Any, frame_rate: float, codebook_size: int | None = None) -> float:
    """Bits per second carried by a token stream's empirical unigram distribution:
    ``H(p) * frame_rate``, ``H`` the Shannon entropy in bits of the code frequencies.

    Why: PPL@1024 and per-token LM losses reward predictable tokens, and the cheapest way to be
    predictable is to say little. This figure measures how much the tokens *could* say per second of
    audio, so a perplexity win can be read against it (:func:`confounded`). Uniform use of ``k``
    codes at ``r`` tokens/s gives ``log2(k) * r``; a stream stuck on one code gives 0.

    What it is not: it ignores order, so it is an *upper bound* on the stream's true entropy rate
    (context only lowers entropy) and is not the LM's bits/s. The plug-in estimate is biased low when
    frames are few for the codebook (at most ``log2(n_frames)`` bits/token): compare codecs on the same
    test songs, and check ``frames`` of :func:`codebook_usage` for a 32k-entry codebook.

    ``codes``: integer ids of ONE stream (any shape, flattened; a list of per-song arrays is pooled),
    each frame sampled at ``frame_rate`` tokens per second. ``codebook_size`` (optional) only checks
    that every id lies in ``[0, codebook_size)``. For several codebooks use
    :func:`entropy_rate_bits_per_second`."""
    rate = _check_rate(frame_rate)
    return _entropy_bits(_counts(codes, codebook_size)) * rate


def entropy_rate_bits_per_second(
    streams: Mapping[str, Any],
    frame_rate: float | Mapping[str, float],
    codebook_sizes: Mapping[str, int] | None = None,
) -> float:
    """Sum over streams of :func:`unigram_entropy_rate`: the information rate of a multi-stream codec
    (Duo-Tok's vocal + accompaniment, or each RVQ level ``{"q0": codes[0], "q1": codes[1], ...}``).

    Why a sum: it is what the codec's tokens could carry if the streams were independent, the same
    budget its nominal bitrate counts (``sum_k log2 V_k * rate``). The sum of marginal entropies bounds
    the joint entropy from above, so redundancy between streams is not subtracted; that keeps it the
    per-stream analogue of the LM's summed bits/s.

    ``frame_rate`` is one rate for all streams or a ``{stream: rate}`` mapping (codecs whose streams
    run at different rates); ``codebook_sizes`` optionally checks each stream's ids."""
    if not streams:
        raise ValueError("need at least one stream")
    if isinstance(frame_rate, Mapping):
        missing = set(streams) - set(frame_rate)
        if missing:
            raise ValueError(f"no frame rate for stream(s) {_names(missing)}")
        rates = {name: frame_rate[name] for name in streams}
    else:
        rates = dict.fromkeys(streams, frame_rate)
    sizes = codebook_sizes or {}
    unknown = set(sizes) - set(streams)
    if unknown:
        raise ValueError(f"codebook_sizes names stream(s) {_names(unknown)} that are not in streams "
                         f"{_names(set(streams))}")
    return sum(_entropy_bits(_counts(codes, sizes.get(name), f"stream {name!r}"))
               * _check_rate(rates[name], f"frame rate of stream {name!r}")
               for name, codes in streams.items())


def codebook_usage(codes: Any, codebook_size: int) -> dict[str, float | int]:
    """How much of a codebook a token stream uses, and how evenly: ``frames``, ``used`` and ``dead``
    codes, ``usage`` (used fraction), ``entropy_bits`` per token, ``max_entropy_bits`` (``log2 V``),
    ``perplexity`` (``2^entropy``: the effective number of codes in use) and ``entropy_fraction``
    (``entropy / log2 V``; 1 for ``V = 1``). Keys follow :func:`duotok.eval.codes.usage_report`.

    Why: a 1024-entry codebook of which 40 codes are used is, information-wise, a 40-entry codebook,
    and its PPL@1024 is normalised as if it had 1024. These numbers say how far the nominal bitrate
    overstates what the tokens carry, beside :func:`unigram_entropy_rate`."""
    size = int(codebook_size)
    counts = _counts(codes, size)
    perplexity, usage = usage_statistics(torch.from_numpy(counts))
    entropy = math.log2(perplexity)
    max_entropy = math.log2(size)
    used = int((counts > 0).sum())
    return {
        "frames": int(counts.sum()),
        "codebook_size": size,
        "used": used,
        "dead": size - used,
        "usage": usage,
        "entropy_bits": entropy,
        "max_entropy_bits": max_entropy,
        "perplexity": perplexity,
        "entropy_fraction": entropy / max_entropy if max_entropy > 0 else 1.0,
    }


# ----------------------------------------------------------------------------- paired bootstrap


def _finite_values(values: Mapping[Hashable, Any], what: str) -> dict[Hashable, float]:
    out = {song: float(v) for song, v in values.items()}
    bad = [song for song, v in out.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what} has non-finite values for song(s) {_names(bad)}")
    return out


def _check_same_songs(a: Mapping[Hashable, Any], b: Mapping[Hashable, Any], what_a: str, what_b: str) -> None:
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(f"only in {what_a}: {_names(only_a)}")
        if only_b:
            parts.append(f"only in {what_b}: {_names(only_b)}")
        raise ValueError("a paired comparison needs the same test songs on both sides; "
                         + "; ".join(parts))


def paired_bootstrap(
    per_song_a: Mapping[Hashable, float],
    per_song_b: Mapping[Hashable, float],
    n_resamples: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Paired bootstrap over test songs of the mean difference ``a - b``.

    Why paired and over songs: both codecs are scored on the same songs, and songs differ far more from
    each other (a sparse ballad vs a dense mix) than codecs do on one song. Differencing per song removes
    that shared variation; resampling songs (with replacement) asks whether the difference would survive
    another draw of test songs, which a single mean over a handful of songs cannot say.

    ``per_song_a`` / ``per_song_b``: ``{song id: value}`` with exactly the same ids (a mismatch raises,
    naming the ids: pairing different test sets is not a paired test, and silently intersecting would
    hide a broken evaluation); values must be finite and additive over songs (a mean makes sense: an
    LM's per-song loss, a per-song Mel L1 — not AP, which is a ranking over songs, nor PPL, whose log is
    the additive form).

    Algorithm: ``d_i = a_i - b_i``; with ``rng = numpy.random.default_rng(seed)``, resample ``r`` draws
    ``rng.integers(0, n, size=n)`` (in order ``r = 0, 1, ...``) and takes the mean of ``d`` at those
    indices. The interval is the ``(1 - confidence)/2`` and ``(1 + confidence)/2`` quantiles (numpy's
    linear interpolation) of the resampled means. ``p_two_sided`` is the percentile-inversion p-value,
    ``2 * min(#(mean* <= 0) + 1, #(mean* >= 0) + 1) / (R + 1)`` capped at 1: small when nearly all
    resampled means lie on one side of 0, never exactly 0 (a finite number of resamples cannot show
    that), and 1 when the songs show no difference at all.

    Returns ``{"mean_diff", "low", "high", "p_two_sided", "n_songs", "n_resamples", "confidence"}``."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    a = _finite_values(per_song_a, "per_song_a")
    b = _finite_values(per_song_b, "per_song_b")
    _check_same_songs(a, b, "per_song_a", "per_song_b")
    songs = list(a)
    n = len(songs)
    if n < 2:
        raise ValueError(f"a bootstrap over songs needs at least 2 songs, got {n}")
    diffs = np.array([a[s] - b[s] for s in songs], dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, _MAX_DRAWS_PER_CHUNK // n)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diffs[idx].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    at_or_below = int((means <= 0).sum())
    at_or_above = int((means >= 0).sum())
    p = min(1.0, 2.0 * (min(at_or_below, at_or_above) + 1) / (n_resamples + 1))
    return {"mean_diff": float(diffs.mean()), "low": float(low), "high": float(high), "p_two_sided": p,
            "n_songs": n, "n_resamples": int(n_resamples), "confidence": float(confidence)}


# ----------------------------------------------------------------------------- seed + song verdict


def _system(by_seed: Mapping[int, Mapping[Hashable, float]], name: str) -> tuple[dict[Hashable, float],
                                                                                 list[float]]:
    """Per-song means over seeds and per-seed means over songs of one system. Every seed must score
    the same songs: a seed missing songs would average over a different test set than its siblings."""
    seeds = list(by_seed)
    values = {seed: _finite_values(by_seed[seed], f"{name} seed {seed!r}") for seed in seeds}
    if not seeds:
        return {}, []
    first = values[seeds[0]]
    for seed in seeds[1:]:
        _check_same_songs(first, values[seed], f"{name} seed {seeds[0]!r}", f"{name} seed {seed!r}")
    songs = list(first)
    per_song = {song: float(np.mean([values[seed][song] for seed in seeds])) for song in songs}
    per_seed = [float(np.mean(list(values[seed].values()))) if songs else math.nan for seed in seeds]
    return per_song, per_seed


def _num(value: float) -> str:
    return f"{value:.4g}"


def seed_and_song_verdict(
    a_by_seed: Mapping[int, Mapping[Hashable, float]],
    b_by_seed: Mapping[int, Mapping[Hashable, float]],
    higher_is_better: bool,
    n_resamples: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
    names: tuple[str, str] = ("a", "b"),
) -> dict[str, Any]:
    """Is system ``a`` better than ``b`` on a per-song metric, beyond training noise AND song sampling?

    ``a_by_seed`` / ``b_by_seed``: ``{codec-training seed: {song id: value}}``. The seeds must be
    seeds of *training the codec* (each followed by its own LM / probe): seeds of an LM or a probe on
    top of one trained codec only measure the evaluation's noise, which is how a single lucky codec was
    called "confirmed" before. Within a system every seed must score the same songs, and both systems
    the same songs (``ValueError`` naming the odd ones otherwise).

    A difference counts only when all three hold:

    (i) ``>= 2`` seeds on each side — one seed has no spread, so the rule below could not protect it;
    (ii) ``|mean_a - mean_b|`` exceeds the seed spread: population std of a's per-seed means + that of
         b's (:func:`combined_spread`, the rule of Table 2 and the ablations);
    (iii) the :func:`paired_bootstrap` interval over songs (each song's value averaged over seeds)
         lies entirely on the side of the difference, i.e. excludes 0.

    Returns ``{"verdict": "a better" | "b better" | "tie" | "not testable", "reason", "mean_a",
    "mean_b", "diff" (mean_a - mean_b), "interval" ((low, high) of a - b, or None), "p_two_sided",
    "seed_spread", "n_seeds_a", "n_seeds_b", "n_songs"}``. "not testable" (fewer than 2 seeds on a side
    or fewer than 2 songs) still reports whatever means could be computed. ``names`` only words the
    reason."""
    name_a, name_b = names
    per_song_a, seed_means_a = _system(a_by_seed, name_a)
    per_song_b, seed_means_b = _system(b_by_seed, name_b)
    if per_song_a and per_song_b:
        _check_same_songs(per_song_a, per_song_b, name_a, name_b)
    n_songs = len(per_song_a) if per_song_a and per_song_b else 0
    mean_a = float(np.mean(seed_means_a)) if seed_means_a and per_song_a else None
    mean_b = float(np.mean(seed_means_b)) if seed_means_b and per_song_b else None
    std_a = float(np.std(seed_means_a)) if len(seed_means_a) >= 2 and per_song_a else None
    std_b = float(np.std(seed_means_b)) if len(seed_means_b) >= 2 and per_song_b else None
    result: dict[str, Any] = {
        "verdict": NOT_TESTABLE, "reason": "", "mean_a": mean_a, "mean_b": mean_b,
        "diff": None if mean_a is None or mean_b is None else mean_a - mean_b,
        "interval": None, "p_two_sided": None,
        "seed_spread": combined_spread(std_a, std_b) if std_a is not None and std_b is not None else None,
        "n_seeds_a": len(seed_means_a), "n_seeds_b": len(seed_means_b), "n_songs": n_songs,
    }
    few = [f"{name} has {len(means)} training seed(s)" for name, means in
           ((name_a, seed_means_a), (name_b, seed_means_b)) if len(means) < 2]
    if few:
        result["reason"] = ("; ".join(few) + ": at least 2 codec-training seeds per side are needed "
                            "to tell a difference from training noise")
        return result
    if n_songs < 2:
        result["reason"] = (f"{n_songs} test song(s) in common: at least 2 are needed for a bootstrap "
                            "over songs")
        return result
    boot = paired_bootstrap(per_song_a, per_song_b, n_resamples=n_resamples, seed=seed, confidence=confidence)
    diff, spread = result["diff"], result["seed_spread"]
    low, high = boot["low"], boot["high"]
    result["interval"] = (low, high)
    result["p_two_sided"] = boot["p_two_sided"]
    a_ahead = diff > 0 if higher_is_better else diff < 0
    winner, loser = (name_a, name_b) if a_ahead else (name_b, name_a)
    beyond_seeds = abs(diff) > spread
    excludes_zero = (low > 0 and diff > 0) or (high < 0 and diff < 0)
    interval_text = f"{confidence:.0%} song interval of {name_a} - {name_b} [{_num(low)}, {_num(high)}]"
    assert mean_a is not None and mean_b is not None  # both sides have >= 2 seeds and >= 2 songs
    summary = (f"{name_a} {_num(mean_a)} vs {name_b} {_num(mean_b)} "
               f"({result['n_seeds_a']} vs {result['n_seeds_b']} seeds, {n_songs} songs; "
               f"{'higher' if higher_is_better else 'lower'} is better)")
    if diff == 0 or not beyond_seeds:
        result["verdict"] = TIE
        result["reason"] = f"{summary}: |diff| {_num(abs(diff))} within seed spread {_num(spread)}"
    elif not excludes_zero:
        result["verdict"] = TIE
        result["reason"] = (f"{summary}: beyond seed spread {_num(spread)} but {interval_text} "
                            "does not exclude 0")
    else:
        result["verdict"] = A_BETTER if a_ahead else B_BETTER
        result["reason"] = (f"{summary}: {winner} ahead of {loser} by {_num(abs(diff))}, beyond seed spread "
                            f"{_num(spread)}, {interval_text} excludes 0")
    return result


# ----------------------------------------------------------------------------- information confound


def _check_metric(metric: str) -> bool:
    """Whether ``metric`` is confoundable; unknown names raise (a typo must not pass as 'safe')."""
    if metric in CONFOUNDABLE_METRICS:
        return True
    if metric in UNCONFOUNDED_METRICS:
        return False
    raise ValueError(f"unknown metric {metric!r}: expected one of {sorted(CONFOUNDABLE_METRICS)} "
                     f"(confoundable) or {sorted(UNCONFOUNDED_METRICS)}")


def _check_entropy(value: Any, what: str) -> float:
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{what} must be a finite, non-negative number of bits per second, got {value!r}")
    return out


def confounded(subject_entropy_bps: float, rival_entropy_bps: float, metric: str) -> bool:
    """Would a win of the subject over the rival on ``metric`` be confounded by information content?

    True exactly when ``metric`` is a per-token LM figure (:data:`CONFOUNDABLE_METRICS`: PPL@1024,
    raw PPL, LM loss / cross-entropy) and the subject's tokens carry strictly less information than the
    rival's (lower :func:`unigram_entropy_rate` / :func:`entropy_rate_bits_per_second`, bits/s).
    Normalising perplexity to 1024 codes corrects for codebook *size*, not for how much of the codebook
    is used or how much the tokens say: predictable, low-information tokens still score well, so such a
    win cannot be told apart from saying less about the music.

    Not confounded this way (False, whatever the entropies): the LM's **bits per second**, which is
    already code length per second of *audio*, with no per-token normalisation to flatter it. It *is*
    the information rate the LM needs, so "fewer bits/s" is a compression result by definition; whether
    the fewer bits still say enough about the music is the question of the AP and Mel L1 columns, which
    must be read beside it (a collapsed codec also has a tiny bits/s). **AP/AUC** and **Mel L1** are not
    confounded either: they measure the music, not the tokens' predictability. Unknown metric names
    raise ``ValueError``, so a typo cannot pass as unconfounded."""
    confoundable = _check_metric(metric)
    subject = _check_entropy(subject_entropy_bps, "subject_entropy_bps")
    rival = _check_entropy(rival_entropy_bps, "rival_entropy_bps")
    return confoundable and subject < rival


def information_aware_verdict(
    verdict: Mapping[str, Any],
    entropy_a_bps: float | None,
    entropy_b_bps: float | None,
    metric: str,
) -> dict[str, Any]:
    """A :func:`seed_and_song_verdict` result re-read against the two systems' information rates.

    A win ("a better" / "b better") on a confoundable metric by the system with the *lower* entropy
    rate becomes ``"confounded"`` (see :func:`confounded`); ``"winner"`` keeps who won. If either
    entropy rate is unknown (``None``/NaN) such a win becomes "not testable": a PPL win whose information
    content was not measured is exactly the claim issue 18 stopped calling confirmed. Ties, "not
    testable" and every verdict on an unconfoundable metric pass through unchanged.

    Returns a copy of ``verdict`` with ``"confounded"`` (True / False; None when the metric is
    confoundable and an entropy rate is unknown),
    ``"entropy_a_bps"``, ``"entropy_b_bps"``, ``"winner"`` ("a" / "b" / None) and, when changed, the
    verdict and an extended reason."""
    confoundable = _check_metric(metric)
    out = dict(verdict)
    if "verdict" not in out:
        raise ValueError("verdict must be a seed_and_song_verdict() result with a 'verdict' key")
    known = [None if e is None or math.isnan(float(e)) else _check_entropy(e, what)
             for e, what in ((entropy_a_bps, "entropy_a_bps"), (entropy_b_bps, "entropy_b_bps"))]
    ent_a, ent_b = known
    winner = {A_BETTER: "a", B_BETTER: "b"}.get(out["verdict"])
    unknown = confoundable and (ent_a is None or ent_b is None)
    out.update({"entropy_a_bps": ent_a, "entropy_b_bps": ent_b, "winner": winner,
                "confounded": None if unknown else False})
    if winner is None or not confoundable:
        return out
    if unknown:
        missing = " and ".join(s for s, e in (("a", ent_a), ("b", ent_b)) if e is None)
        out["verdict"] = NOT_TESTABLE
        out["reason"] = (f"{out.get('reason', '')}; but the token entropy rate of {missing} is unknown, so "
                         f"a {metric} win cannot be told apart from tokens carrying less information")
        return out
    win, lose = (ent_a, ent_b) if winner == "a" else (ent_b, ent_a)
    if confounded(win, lose, metric):
        out["confounded"] = True
        out["verdict"] = CONFOUNDED
        out["reason"] = (f"{out.get('reason', '')}; confounded: the winner's tokens carry "
                         f"{_num(win)} bits/s against {_num(lose)}, and {metric} rewards predictable, "
                         "low-information tokens")
    return out


# ----------------------------------------------------------------------------- tagging AP


def tags_with_enough_positives(
    labels: Mapping[Hashable, Sequence[int]],
    min_positive: int,
    min_negative: int = 1,
) -> tuple[list[Hashable], dict[Hashable, str]]:
    """Split tags into those whose AP is worth reporting and those dropped, with the reason.

    Why: a tag's AP over ``k`` positive test songs is decided by where those ``k`` songs rank; with one
    or two it jumps between ~0 and 1 on a single song, and macro-AP averages it with the same weight as
    a tag with fifty positives, so the noise of rare tags can decide a codec comparison. A tag with no
    negatives scores AP = 1 for any ranking and only dilutes the differences. Dropped tags are *named*
    so the report can list them, never silently lost.

    ``labels``: ``{tag: 0/1 label of each test song}``, every tag over the same songs (same length).
    Keeps tags with ``>= min_positive`` positives and ``>= min_negative`` negatives (input order);
    returns ``(kept, {dropped tag: reason})``."""
    if min_positive < 1 or min_negative < 0:
        raise ValueError(f"need min_positive >= 1 and min_negative >= 0, got {min_positive}, {min_negative}")
    lengths: dict[int, list[Hashable]] = {}
    kept: list[Hashable] = []
    dropped: dict[Hashable, str] = {}
    for tag, values in labels.items():
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"tag {tag!r}: labels must be one 0/1 value per test song, got shape {arr.shape}")
        if arr.size and not np.isin(arr, (0, 1)).all():
            raise ValueError(f"tag {tag!r}: labels must be 0/1, got values {sorted(set(arr.tolist()))[:_SHOW]}")
        lengths.setdefault(int(arr.size), []).append(tag)
        positives = int((arr == 1).sum())
        negatives = int(arr.size) - positives
        if positives < min_positive:
            dropped[tag] = f"{positives} positive test song(s) < {min_positive}"
        elif negatives < min_negative:
            dropped[tag] = f"{negatives} negative test song(s) < {min_negative}"
        else:
            kept.append(tag)
    if len(lengths) > 1:
        detail = "; ".join(f"{n} songs: {_names(tags)}" for n, tags in sorted(lengths.items()))
        raise ValueError(f"tags are labelled over different numbers of test songs ({detail})")
    return kept, dropped
