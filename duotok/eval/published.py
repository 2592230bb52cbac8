"""Published numbers the reports compare against (SPEC §1: the paper's Table 2; the baselines' rows
are the evaluation toolkit's). Kept as data, in one place, so every notebook labels the same values
as *published* next to what this repository *measured*."""

from __future__ import annotations

#: Table 2 of the Duo-Tok paper (baselines as copied from the toolkit's README). Reconstruction is on
#: the toolkit's music test set (mixtures) at each codec's own rate; Duo-Tok's reconstruction is per track.
#: ``mel_l1`` is the toolkit's ``calculate_mel_distance``, the definition this repository reports too
#: (:func:`duotok.eval.mel_distance.toolkit_mel_distance`, via
#: :func:`duotok.eval.reconstruction.reconstruction_metrics`): the same scale, on other data.
TABLE2: dict[str, dict[str, float | str]] = {
    "DAC": {"token_rate": 75, "codebooks": "8x1024", "kbps": 6.00, "mtt_ap": 0.20, "mtt_auc": 0.79,
            "ppl_1024": 194.0, "pesq": 2.66, "stoi": 0.86, "mel_l1": 0.73},
    "Encodec": {"token_rate": 75, "codebooks": "8x1024", "kbps": 6.00, "mtt_ap": 0.18, "mtt_auc": 0.76,
                "ppl_1024": 141.3, "pesq": 2.27, "stoi": 0.85, "mel_l1": 0.78},
    "SemantiCodec": {"token_rate": 100, "codebooks": "2x8192", "kbps": 1.30, "mtt_ap": 0.32, "mtt_auc": 0.88,
                     "ppl_1024": 15.5, "pesq": 1.32, "stoi": 0.60, "mel_l1": 0.98},
    "WavTokenizer": {"token_rate": 40, "codebooks": "1x4096", "kbps": 0.48, "mtt_ap": 0.17, "mtt_auc": 0.74,
                     "ppl_1024": 38.2, "pesq": 1.14, "stoi": 0.49, "mel_l1": 1.15},
    "X-Codec": {"token_rate": 50, "codebooks": "8x1024", "kbps": 4.00, "mtt_ap": 0.32, "mtt_auc": 0.87,
                "ppl_1024": 47.5, "pesq": 1.85, "stoi": 0.76, "mel_l1": 0.91},
    "MuCodec-LeVo": {"token_rate": 25, "codebooks": "2x16384", "kbps": 0.70, "mtt_ap": 0.26, "mtt_auc": 0.84,
                     "ppl_1024": 8.10, "pesq": 1.21, "stoi": 0.57, "mel_l1": 1.37},
}

#: Duo-Tok's own row: reconstruction per track (vocal / accompaniment); no mixture value and no ViSQOL
#: are published (so the paper's Duo-Tok has no point on Figure 1's mixture-Mel-L1 axis here).
DUOTOK: dict[str, object] = {
    "token_rate": 25, "codebooks": "2x32768", "kbps": 0.75, "mtt_ap": 0.35, "mtt_auc": 0.87, "ppl_1024": 4.75,
    "reconstruction": {"vocal": {"pesq": 1.82, "stoi": 0.56, "mel_l1": 0.74},
                       "accompaniment": {"pesq": 1.21, "stoi": 0.63, "mel_l1": 1.12}},
}
