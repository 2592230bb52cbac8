"""The separation report: findings verdicts on hand-made summaries (one training seed → not testable, two
seeds → decided by the seed-and-song test), the table with the published rows labelled, the README
section, the figures, and the report stage's hook that appends the section."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from duotok.eval.published_separation import SOURCE, VISQOL_MEAN_OVER_STEMS
from duotok.reporting.claims import ONE_TRAINING_SEED
from duotok.reporting.separation import (
    CONFOUNDED,
    DID_NOT_HOLD,
    HELD,
    NOT_TESTABLE,
    VERDICTS,
    plot_separation_spectrograms,
    plot_temperature_curve,
    render_separation_section,
    render_separation_table,
    separation_findings,
    table_frame,
    write_separation_table,
)

STEMS = ("vocals", "drums", "bass", "other")
SONGS = [f"s{i}" for i in range(6)]


def _system(kind: str, visqol: dict[str, float], seeds: dict[int, float] | None = None, mel: float = 1.5,
            sdr: float = 3.0) -> dict:
    """A ``separation.json`` system entry: per-stem ViSQOL means, and per seed a per-song ViSQOL whose mean
    is the given value (songs spread by a fixed pattern, the same for every system)."""
    seeds = seeds or {0: float(np.mean(list(visqol.values())))}
    stems = {s: {"visqol": {"mean": v, "median": v, "n": 6}, "mel_l1": {"mean": mel, "median": mel, "n": 6},
                 "sdr": {"mean": sdr, "median": sdr, "n": 6}} for s, v in visqol.items()}
    average = {m: {"mean": float(np.mean([stems[s][m]["mean"] for s in stems])),
                   "median": float(np.mean([stems[s][m]["median"] for s in stems]))}
               for m in ("visqol", "mel_l1", "sdr")}
    spread = np.linspace(-0.1, 0.1, len(SONGS))
    per_song = {seed: {song: {"visqol": value + d, "mel_l1": mel} for song, d in zip(SONGS, spread, strict=True)}
                for seed, value in seeds.items()}
    return {"label": kind, "kind": kind, "training_seeds": sorted(seeds), "n_songs": 6, "rtf": 0.5,
            "stems": stems, "average": average, "per_song_by_seed": per_song}


def _flat(v: float) -> dict[str, float]:
    return dict.fromkeys(STEMS, v)


def _systems(**overrides) -> dict:
    systems = {
        "mask_head": _system("discriminative", _flat(3.0)),
        "openunmix": _system("discriminative", _flat(3.4)),
        "generative": _system("generative", {"vocals": 3.3, "drums": 2.9, "bass": 3.2, "other": 3.1}),
        "variant:reference": _system("generative", _flat(3.2)),
        "variant:independent": _system("generative", _flat(3.0)),
        "variant:frozen_ssl": _system("generative", _flat(3.3)),
        "variant:no_encoder": _system("generative", _flat(2.8)),
        "ceiling": _system("bound", _flat(3.8), sdr=-2.0),
        "oracle": _system("bound", _flat(4.2), sdr=10.0),
    }
    systems.update(overrides)
    return systems


def _by_text(findings, word):
    return next(f for f in findings if word in f["finding"])


def test_one_training_seed_makes_the_differences_not_testable_whichever_way_they_point():
    findings = separation_findings(_systems())
    assert [f["verdict"] for f in findings][2:] == [ONE_TRAINING_SEED] * 3
    assert all(f["verdict"] in VERDICTS for f in findings)
    sequential = _by_text(findings, "sequential")
    assert "variant:reference 3.200 vs variant:independent 3.000" in sequential["evidence"]
    assert "variant:reference ahead" in sequential["evidence"] and "paired bootstrap" in sequential["evidence"]
    frozen = _by_text(findings, "frozen")
    assert "variant:frozen_ssl ahead" in frozen["evidence"], "a loss on one seed is reported, not decided"


def test_the_headline_target_and_drums_are_read_from_this_run():
    findings = separation_findings(_systems())
    headline, drums = findings[0], findings[1]
    # generative 3.125 vs best discriminative (openunmix) 3.4: 8.1 % behind, within 10 %
    assert headline["verdict"] == HELD and "openunmix" in headline["evidence"] and "8.1 %" in headline["evidence"]
    assert drums["verdict"] == HELD and "weakest: drums" in drums["evidence"]
    worse = separation_findings(_systems(generative=_system("generative", _flat(2.5))), tolerance=0.10)
    assert worse[0]["verdict"] == DID_NOT_HOLD and "behind by 26.5 %" in worse[0]["evidence"]
    bass = separation_findings(_systems(generative=_system("generative", {"vocals": 3.3, "drums": 3.0, "bass": 2.7,
                                                                          "other": 3.1})))
    assert bass[1]["verdict"] == DID_NOT_HOLD and "weakest: bass" in bass[1]["evidence"]


def test_a_headline_met_on_visqol_alone_reads_confounded_when_mel_l1_puts_generation_far_behind():
    """This run's case: ViSQOL within 10 % of the best mask system, Mel L1 twice the mask systems'."""
    far = _system("generative", {"vocals": 3.3, "drums": 2.9, "bass": 3.2, "other": 3.1}, mel=3.0)
    headline = separation_findings(_systems(generative=far))[0]
    assert headline["verdict"] == CONFOUNDED and headline["verdict"] in VERDICTS
    assert "8.1 %" in headline["evidence"] and "Mel L1: generative 3.000 vs best discriminative" in headline["evidence"]
    assert "behind by 100.0 %" in headline["evidence"] and "codec ceiling" in headline["evidence"]
    assert separation_findings(_systems(generative=far), check=None)[0]["verdict"] == HELD
    near = _system("generative", {"vocals": 3.3, "drums": 2.9, "bass": 3.2, "other": 3.1}, mel=1.6)
    assert separation_findings(_systems(generative=near))[0]["verdict"] == HELD        # 6.7 % behind on Mel L1
    missed = _system("generative", _flat(2.5), mel=3.0)
    assert separation_findings(_systems(generative=missed))[0]["verdict"] == DID_NOT_HOLD
    with pytest.raises(ValueError, match="check"):
        separation_findings(_systems(), check="pesq")


def test_two_training_seeds_decide_a_difference():
    two = {"variant:reference": _system("generative", _flat(3.2), {0: 3.20, 1: 3.22}),
           "variant:independent": _system("generative", _flat(3.0), {0: 3.00, 1: 3.01}),
           "variant:frozen_ssl": _system("generative", _flat(3.3), {0: 3.30, 1: 3.31}),
           "variant:no_encoder": _system("generative", _flat(3.2), {0: 3.10, 1: 3.30})}
    findings = separation_findings(_systems(**two))
    assert _by_text(findings, "sequential")["verdict"] == HELD
    assert _by_text(findings, "frozen")["verdict"] == DID_NOT_HOLD      # the reference is behind, beyond the spread
    no_encoder = _by_text(findings, "no encoder")
    assert no_encoder["verdict"] == DID_NOT_HOLD and "within seed spread" in no_encoder["evidence"]   # a tie


def test_missing_systems_are_not_testable():
    findings = separation_findings({"generative": _system("generative", _flat(3.0))})
    assert findings[0]["verdict"] == NOT_TESTABLE and "no discriminative" in findings[0]["evidence"]
    assert all(f["verdict"] == NOT_TESTABLE for f in findings[2:])
    with pytest.raises(ValueError, match="metric"):
        separation_findings(_systems(), metric="pesq")


def _record() -> dict:
    systems = _systems()
    return {"profile": "smoke", "systems": systems,
            "protocol": {"split": "test", "n_songs": 6, "seconds": 10.0, "threads": 2, "ablation_n_songs": 4,
                         "note": "museval", "sampling": {"temperature": 0.8}},
            "temperature_curve": {"split": "valid", "n_songs": 2, "seconds": 10.0,
                                  "points": [{"temperature": 0.0, "visqol": 3.0, "mel_l1": 1.6},
                                             {"temperature": 0.8, "visqol": 3.1, "mel_l1": 1.5}]},
            "findings": separation_findings(systems)}


def test_the_table_has_every_system_per_stem_and_the_published_rows_labelled(tmp_path):
    record = _record()
    frame = table_frame(record)
    assert len(frame) == len(record["systems"]) * 5 and set(frame["stem"]) == {*STEMS, "mean"}
    mean = frame[(frame["system"] == "generative") & (frame["stem"] == "mean")].iloc[0]
    assert mean["visqol"] == pytest.approx(3.125) and mean["sdr"] == pytest.approx(3.0)
    text = render_separation_table(record)
    for name, value in VISQOL_MEAN_OVER_STEMS.items():
        assert f"| {name} | {value:.2f} | {SOURCE} |" in text
    assert "published (MUSDB18-HQ, real music)" in text and "SDR ranks mask systems only" in text
    md, csv = write_separation_table(record, tmp_path)
    table = pd.read_csv(csv)
    assert set(table["source"]) == {"measured", SOURCE}
    assert md.read_text() == text


def test_the_readme_section_renders_the_numbers_and_the_findings():
    record = _record()
    text = render_separation_section(record)
    assert text.startswith("## Source separation (issue 19)")
    assert "figures/separation/spectrograms.png" in text and "tables/separation.md" in text
    assert "| sequential cross-track generation helps | **not testable here (one training seed)** |" in text
    assert "HTDemucs 3.71" in text and "0.8 → ViSQOL 3.10" in text
    assert "Codec ceiling by K" not in text
    record["ceiling_validation"] = {"split": "valid", "n_songs": 4, "summary": {
        "1": {"mean": {"mel_l1": 1.83, "sdr": -1.8}}, "4": {"mean": {"mel_l1": 1.41, "sdr": -1.7}}}}
    assert "4 valid songs; Mel L1 mean over stems, lower is better): K=1 1.83, K=4 1.41" in \
        render_separation_section(record)


def test_the_page_has_its_own_title():
    assert render_separation_section(_record(), title="# Separation").startswith("# Separation\n")


def test_figures_draw(tmp_path):
    rate = 16000
    t = np.arange(rate) / rate
    stems = {s: (0.1 * np.sin(2 * np.pi * f * t)).astype(np.float32) for s, f in zip(STEMS, (440, 60, 110, 660),
                                                                                       strict=True)}
    mixture = sum(stems.values())
    fig = plot_separation_spectrograms(mixture, stems, {"generative": stems, "Open-Unmix": stems}, rate)
    assert len(fig.axes) == 4 * 4
    fig = plot_temperature_curve(_record()["temperature_curve"]["points"], ["visqol", "mel_l1"])
    assert len(fig.axes) == 2 and not math.isnan(fig.axes[0].lines[0].get_ydata()[0])
