"""Published separation numbers the separation report compares against (SPEC §3: the second paper, on
MUSDB18-HQ, real music). Kept as data, in one place, as :mod:`duotok.eval.published` keeps Table 2's,
so the report labels the same values as *published* next to what this repository *measured* — they
come from other data (real stereo music at 44.1 kHz, models trained for days on GPUs) and are not
comparable number for number."""

from __future__ import annotations

#: Where every number below comes from, for the report's label.
SOURCE = "published (MUSDB18-HQ, real music)"

#: ViSQOL (audio mode) averaged over the four stems, as the second paper reports it: its generative
#: separator and the two discriminative systems it compares with. No per-stem values are published.
VISQOL_MEAN_OVER_STEMS: dict[str, float] = {
    "generative (token LM, the paper)": 3.55,
    "HTDemucs": 3.71,
    "BS-RoFormer": 3.71,
}

#: The best vocal NISQA the paper reports (a no-reference speech-quality score; not measured here).
BEST_VOCAL_NISQA: float = 2.50

#: For scale (SPEC §3): museval SDR (dB) averaged over stems of discriminative systems on MUSDB18-HQ.
SDR_MEAN_OVER_STEMS: dict[str, str] = {
    "HTDemucs": "9.0",
    "BS-RoFormer, SCNet (no extra data)": "9.7-10",
    "Open-Unmix": "5.3",
}

#: The paper's qualitative findings this repository checks (``duotok.reporting.separation``).
FINDINGS: dict[str, str] = {
    "drums_weakest": "drums are the weakest stem (transients)",
    "sequential_helps": "sequential cross-track generation helps",
    "learnable_encoder_helps": "a learnable Conformer encoder helps",
}
