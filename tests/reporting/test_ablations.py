"""Ablation tables, figures and claim verdicts from hand-made metrics dicts (no training): flattening
with nulls and missing keys, table order / ± / Δ formatting, the written md + csv, bar and point
counts of the figures, and every verdict path of the seed-spread rule."""

from __future__ import annotations

import json
import math
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle

from duotok.ablations.variants import metrics_file
from duotok.reporting.ablations import (
    CLAIM_RULES,
    CONFIRMED,
    DISPLAY_COLUMNS,
    MIXED,
    NOT_CONFIRMED,
    NOT_TESTABLE,
    WITHIN_SPREAD,
    ablation_claims,
    ablation_claims_record,
    ablation_frame,
    claims_markdown,
    code_entropy_bits,
    family_csv_frame,
    family_markdown,
    family_table,
    load_ablation_metrics,
    plot_family,
    plot_pareto_variants,
    pool_training_seeds,
    write_ablation_figures,
    write_family_tables,
)
from duotok.reporting.claims import CONFOUNDED, ONE_TRAINING_SEED

FAMILY = {"reference": "reference", "noise_off": "noise", "noise_additive": "noise", "routing_shared": "routing",
          "routing_separated": "routing", "heads_none": "heads", "heads_no_lyrics": "heads",
          "heads_no_mel": "heads", "heads_no_chroma": "heads"}


def _metrics(name: str, ppl: float | None = 5.0, ppl_std: float | None = 0.1, ap: float | None = 0.40,
             ap_std: float | None = 0.01, leak: tuple[float | None, float | None] = (0.2, 0.3),
             leak_std: float | None = 0.02, seeds: int = 3, heads: dict[str, Any] | None = None,
             train_seeds: int | None = 2) -> dict[str, Any]:
    """A metrics dict shaped like duotok/ablations/evaluate.py's output (already json_safe'd), plus
    ``train_seeds`` (``None``: absent, i.e. one trained model — what evaluate.py writes today)."""
    per_seed = [{"seed": s, "ppl_1024": ppl, "bits_per_second": 300.0, "ce_mean": 1.0} for s in range(seeds)]
    summary = {}
    for key, value in zip(("vocal_in_accompaniment", "accompaniment_in_vocal"), leak, strict=True):
        summary[key] = {"mean": value, "std": None if value is None else leak_std,
                        "n_seeds_defined": 0 if value is None else seeds,
                        "reason": "own-stream AP 0.1 does not exceed chance 0.1" if value is None else None}
    leak_seeds = {"leakage": {"per_seed": [{"seed": s} for s in range(seeds)]}}
    metrics = {
        "variant": {"name": name, "family": FAMILY.get(name, "noise"), "description": f"what {name} changes",
                    "routing": "dual", "finetune": {}, "quantize": {}, "overrides": {}},
        "profile": "smoke", "bits_per_second": 500.0, "fingerprint": "abc",
        "lm": {"per_seed": per_seed, "ppl_1024": {"mean": ppl, "std": ppl_std, "n": 0 if ppl is None else seeds},
               "bits_per_second": {"mean": 300.0, "std": 4.0, "n": seeds}, "steps": 4},
        "probe": {"per_seed": [{"seed": s, "ap": ap} for s in range(seeds)], "ap_mean": ap, "ap_std": ap_std,
                  "auc_mean": 0.8, "auc_std": 0.01},
        "heads": {"vocal/cer": 0.5, "vocal/chroma_accuracy": 0.6, "accompaniment/chroma_accuracy": 0.7,
                  "vocal/mel_l1": 1.1, "accompaniment/mel_l1": 1.2, "vocal/usage": 0.9,
                  "accompaniment/usage": 0.8, "vocal/perplexity": 700.0, "accompaniment/perplexity": 600.0}
        if heads is None else heads,
        "leakage": {"summary": summary, "vocal_attributes": leak_seeds, "accompaniment_attributes": leak_seeds},
        "eval_seconds": 12.0,
    }
    if train_seeds is not None:
        metrics["train_seeds"] = list(range(train_seeds))
    return metrics


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _frame(**variants: dict[str, Any]) -> pd.DataFrame:
    return ablation_frame({name: _metrics(name, **kw) for name, kw in variants.items()})


# ------------------------------------------------------------------------------------------- frame


def test_frame_flattens_nulls_and_missing_keys():
    heads = {"vocal/chroma_accuracy": 0.6, "vocal/usage": None}  # no lyrics head: no vocal/cer at all
    metrics = {"reference": _metrics("reference"),
               "heads_no_lyrics": _metrics("heads_no_lyrics", ppl=None, leak=(None, 0.3), heads=heads)}
    del metrics["heads_no_lyrics"]["probe"]
    frame = ablation_frame(metrics)
    assert list(frame.index) == ["reference", "heads_no_lyrics"]
    ref, var = frame.loc["reference"], frame.loc["heads_no_lyrics"]
    assert ref["ppl_1024"] == 5.0 and ref["ppl_1024_std"] == 0.1 and ref["ap"] == 0.40 and ref["auc"] == 0.8
    assert ref["leak_v2a"] == 0.2 and ref["leak_a2v"] == 0.3 and ref["cer"] == 0.5
    assert ref["accomp_code_ppl"] == 600.0 and ref["lm_bits_per_second_std"] == 4.0
    assert (ref["n_lm_seeds"], ref["n_probe_seeds"], ref["n_leak_seeds"]) == (3, 3, 3)
    assert ref["family"] == "reference" and ref["description"] == "what reference changes"
    assert math.isnan(var["ppl_1024"]) and var["n_lm_seeds"] == 0
    assert math.isnan(var["ap"]) and math.isnan(var["ap_std"]) and var["n_probe_seeds"] == 0
    assert math.isnan(var["cer"]) and math.isnan(var["vocal_usage"]) and var["vocal_chroma"] == 0.6
    assert math.isnan(var["leak_v2a"]) and var["leak_v2a_n"] == 0 and "chance" in var["leak_v2a_reason"]
    assert var["leak_a2v"] == 0.3 and pd.isna(ref["leak_v2a_reason"])
    assert frame["ppl_1024"].dtype == float and frame["n_probe_seeds"].dtype.kind == "i"


def test_frame_rejects_mislabelled_metrics():
    with pytest.raises(ValueError, match="noise_off"):
        ablation_frame({"reference": _metrics("noise_off")})


# ------------------------------------------------------------------------------------------- tables


def test_family_table_order_spread_and_delta():
    frame = _frame(noise_off={"ppl": 5.31, "ap": 0.37}, routing_shared={}, reference={"ppl": 5.0, "ppl_std": 0.12},
                   noise_additive={"ppl": 4.9, "ap": None, "seeds": 1})
    table = family_table(frame, "noise")
    assert list(table.index) == ["reference", "noise_off", "noise_additive"]
    assert list(table.columns) == list(DISPLAY_COLUMNS)
    assert table.at["reference", "PPL@1024"] == "5.00 ± 0.12"
    assert table.at["reference", "Δ PPL"] == "ref"
    assert table.at["noise_off", "Δ PPL"] == "+0.31*"  # 0.31 > 0.12 + 0.10
    assert table.at["noise_off", "Δ AP"] == "-0.030*"
    assert table.at["noise_additive", "PPL@1024"] == "4.90"  # one seed: no spread shown
    assert table.at["noise_additive", "Δ PPL"] == "-0.10"  # within 0.12 + 0.10: no marker
    assert table.at["noise_additive", "AP"] == "n/a" and table.at["noise_additive", "Δ AP"] == "n/a"
    assert table.at["reference", "Mel L1 (V / A)"] == "1.100 / 1.200"
    assert table.at["reference", "Leak V→A"] == "0.20 ± 0.02"

    csv = family_csv_frame(frame, "noise")
    assert list(csv.index) == ["reference", "noise_off", "noise_additive"]
    assert csv.at["noise_off", "delta_ppl_1024"] == pytest.approx(0.31)
    assert bool(csv.at["noise_off", "delta_ppl_1024_beyond_spread"])
    assert csv.at["reference", "delta_ap"] == 0.0 and math.isnan(csv.at["noise_additive", "delta_ap"])


def test_family_table_errors():
    frame = _frame(noise_off={})
    with pytest.raises(KeyError, match="reference"):
        family_table(frame, "noise")
    with pytest.raises(ValueError, match="unknown ablation family"):
        family_table(_frame(reference={}), "nosie")


def test_write_family_tables(tmp_path):
    frame = _frame(reference={}, noise_off={"ppl": 6.0, "leak": (None, 0.1)}, routing_shared={})
    paths = write_family_tables(frame, tmp_path, families=("noise", "heads"))
    assert [p.name for p in paths] == ["ablation_noise.md", "ablation_noise.csv", "ablation_heads.md",
                                       "ablation_heads.csv"]
    md = (tmp_path / "ablation_noise.md").read_text()
    assert md.startswith("# Ablation — bottleneck noise")
    assert "- **noise_off** (noise): what noise_off changes" in md
    assert "| Variant | PPL@1024 | Δ PPL |" in md and "| noise_off | 6.00 ± 0.10 | +1.00* |" in md
    assert "lower is better" in md and "higher is better" in md and "CER" in md
    # two trainings per variant: the ± is over trainings (these hand-made files list no evaluation seeds)
    assert "over the training seeds of each variant" in md and "Seeds — training: 2 seeds." in md
    assert "noise_off, Leak V→A: own-stream AP" in md and "routing_shared" not in md
    csv = pd.read_csv(tmp_path / "ablation_noise.csv", index_col="variant")
    assert list(csv.index) == ["reference", "noise_off"] and csv.at["noise_off", "ppl_1024"] == 6.0
    assert math.isnan(csv.at["noise_off", "leak_v2a"])
    heads_md = (tmp_path / "ablation_heads.md").read_text()
    assert "only the reference is shown" in heads_md
    assert list(pd.read_csv(tmp_path / "ablation_heads.csv")["variant"]) == ["reference"]
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------- figures


def _bar_count(ax: plt.Axes) -> int:
    return sum(isinstance(p, Rectangle) for p in ax.patches)


def _na_count(ax: plt.Axes) -> int:
    return sum(t.get_text() == "n/a" for t in ax.texts)


def test_plot_family_bars_and_missing():
    frame = _frame(reference={}, noise_off={"ap": None, "leak": (None, 0.1)}, noise_additive={})
    fig = plot_family(frame, "noise")
    ppl_ax, ap_ax, leak_ax = fig.axes[:3]
    assert (_bar_count(ppl_ax), _na_count(ppl_ax)) == (3, 0)
    assert (_bar_count(ap_ax), _na_count(ap_ax)) == (2, 1)
    assert (_bar_count(leak_ax), _na_count(leak_ax)) == (5, 1)
    assert [t.get_text() for t in ppl_ax.get_xticklabels()] == ["reference", "noise_off", "noise_additive"]
    assert ppl_ax.get_xticklabels()[0].get_fontweight() == "bold"
    assert ppl_ax.patches[0].get_linewidth() > ppl_ax.patches[1].get_linewidth()  # reference highlighted


def test_plot_pareto_points_and_write(tmp_path):
    frame = _frame(reference={}, noise_off={"ppl": 6.0}, routing_shared={"ppl": 7.0, "ap": 0.3},
                   heads_none={"ap": None})
    fig = plot_pareto_variants(frame)
    ax = fig.axes[0]
    points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert points == 3 and ax.get_xscale() == "log"
    labels = {t.get_text() for t in ax.texts}
    assert {"reference", "noise_off", "routing_shared"} <= labels
    assert any("heads_none" in t and "not plotted" in t for t in labels)
    written = write_ablation_figures(frame, tmp_path, families=("noise",), formats=("png",))
    assert [p.name for p in written] == ["ablation_noise.png", "ablation_pareto.png"]
    assert all(p.stat().st_size > 0 for p in written)


# ------------------------------------------------------------------------------------------- claims


def _verdicts(frame: pd.DataFrame) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in ablation_claims(frame)}


def test_claims_clear_win():
    frame = _frame(reference={"ppl": 4.0, "ap": 0.5, "leak": (0.1, 0.1)}, noise_off={"ppl": 5.0},
                   noise_additive={"ppl": 5.0, "ap": 0.4}, routing_shared={"ppl": 5.0, "leak": (0.5, 0.6)},
                   routing_separated={"ppl": 5.0, "ap": 0.4}, heads_none={"ap": 0.3},
                   heads_no_lyrics={"ap": 0.5, "ppl": 4.0, "leak": (0.1, 0.1)}, heads_no_mel={"ap": 0.45, "ppl": 4.0})
    claims = ablation_claims(frame)
    assert [c["id"] for c in claims] == list("abcdef")
    assert all(c["verdict"] == CONFIRMED for c in claims), claims
    assert "beyond the combined spread" in claims[0]["evidence"] and "std_a + std_b" in claims[0]["evidence"]
    assert "Δ noise_off − reference +1 " in claims[0]["evidence"]  # same sign convention as the tables
    assert "heads_no_mel: AP hurt" in claims[5]["evidence"]
    assert "heads_no_lyrics: no metric moved beyond the seed spread" in claims[5]["evidence"]


def test_claims_within_spread():
    # Δ PPL 0.15 < 0.1 + 0.1; Δ AP 0.015 < 0.01 + 0.01; leakage Δ 0.03 < 0.02 + 0.02.
    frame = _frame(reference={"ppl": 5.0}, noise_off={"ppl": 5.15}, noise_additive={"ppl": 5.1, "ap": 0.39},
                   routing_shared={"ppl": 5.1, "leak": (0.23, 0.33)}, routing_separated={"ap": 0.385},
                   heads_none={"ap": 0.385}, heads_no_mel={"ap": 0.39})
    verdicts = _verdicts(frame)
    assert verdicts == dict.fromkeys("abcdef", WITHIN_SPREAD)
    assert "within the combined spread" in ablation_claims(frame)[0]["evidence"]


def test_single_head_claim_mixed_when_a_removal_trades_ap_for_ppl():
    # One removal lowers PPL but costs AP: a trade-off, so (f) is "mixed", not "confirmed".
    frame = _frame(reference={"ppl": 5.0, "ap": 0.4}, heads_no_mel={"ppl": 4.0, "ap": 0.3})
    claim = ablation_claims(frame)[5]
    assert claim["verdict"] == MIXED, claim
    assert "PPL@1024 improved" in claim["evidence"] and "AP hurt" in claim["evidence"]
    # Two removals disagreeing (one hurts, one helps) is mixed too; the hurt one alone is confirmed.
    two = _frame(reference={"ppl": 5.0, "ap": 0.4}, heads_no_mel={"ap": 0.3}, heads_no_chroma={"ap": 0.5})
    assert ablation_claims(two)[5]["verdict"] == MIXED
    one = _frame(reference={"ppl": 5.0, "ap": 0.4}, heads_no_mel={"ap": 0.3})
    assert ablation_claims(one)[5]["verdict"] == CONFIRMED


def test_claims_reversed():
    frame = _frame(reference={"ppl": 5.0, "ap": 0.4}, noise_off={"ppl": 4.0},
                   noise_additive={"ppl": 4.0, "ap": 0.3},  # PPL reversed, AP won: reversal wins
                   routing_shared={"ppl": 6.0, "leak": (0.05, 0.6)},  # v→a leakage reversed
                   routing_separated={"ap": 0.5}, heads_none={"ap": 0.5}, heads_no_chroma={"ppl": 4.0})
    assert _verdicts(frame) == dict.fromkeys("abcdef", NOT_CONFIRMED)


def test_claims_missing_variants_and_values():
    frame = _frame(reference={"leak": (None, 0.1)}, routing_shared={"ppl": 6.0}, noise_additive={"ap": None})
    claims = {c["id"]: c for c in ablation_claims(frame)}
    assert claims["a"]["verdict"] == NOT_TESTABLE and "noise_off" in claims["a"]["evidence"]
    assert claims["b"]["verdict"] == NOT_TESTABLE and "AP: n/a for noise_additive" in claims["b"]["evidence"]
    assert claims["c"]["verdict"] == NOT_TESTABLE  # PPL won, but v→a leakage undefined for the reference
    assert {claims[k]["verdict"] for k in "def"} == {NOT_TESTABLE}
    no_ref = _frame(noise_off={})
    assert set(_verdicts(no_ref).values()) == {NOT_TESTABLE}


def test_single_seed_caveat_and_markdown():
    frame = _frame(reference={"ppl": 5.0, "seeds": 1, "ppl_std": 0.0}, noise_off={"ppl": 5.01, "seeds": 1,
                                                                                   "ppl_std": 0.0})
    claim = ablation_claims(frame)[0]
    assert claim["verdict"] == WITHIN_SPREAD and "one seed on a side" in claim["evidence"]  # never counted
    md = claims_markdown(ablation_claims(frame))
    lines = md.strip().splitlines()
    assert lines[0] == "| | claim | verdict | evidence |" and len(lines) == 2 + 6
    assert f"**{WITHIN_SPREAD}**" in lines[2] and "**not testable**" in lines[3]


def test_one_training_seed_decides_no_claim():
    # The clear win of test_claims_clear_win, but every variant trained once (no train_seeds, as
    # evaluate.py writes): evaluation seeds cannot stand in for training seeds, so nothing is decided.
    wins = {"reference": {"ppl": 4.0, "ap": 0.5, "leak": (0.1, 0.1)}, "noise_off": {"ppl": 5.0},
            "noise_additive": {"ppl": 5.0, "ap": 0.4}, "routing_shared": {"ppl": 5.0, "leak": (0.5, 0.6)},
            "routing_separated": {"ppl": 5.0, "ap": 0.4}, "heads_none": {"ap": 0.3},
            "heads_no_mel": {"ap": 0.45, "ppl": 4.0}}
    once = _frame(**{name: {**kw, "train_seeds": None} for name, kw in wins.items()})
    assert (once["n_train_seeds"] == 1).all()
    claims = ablation_claims(once)
    assert all(c["verdict"] == ONE_TRAINING_SEED for c in claims), claims
    assert 'evaluation seeds alone would read "confirmed"' in claims[0]["evidence"]
    assert claims[0]["evidence"].startswith("trained once: reference, noise_off")
    # One side trained once is enough to withhold the verdict; both with two seeds decides it.
    half = _frame(**{name: {**kw, "train_seeds": 1 if name == "noise_off" else 2} for name, kw in wins.items()})
    verdicts = _verdicts(half)
    assert verdicts["a"] == ONE_TRAINING_SEED and "trained once: noise_off" in ablation_claims(half)[0]["evidence"]
    assert verdicts["b"] == CONFIRMED
    # A missing number stays "not testable" (the more basic gap), whatever the training seeds.
    missing = _frame(reference={"train_seeds": None}, noise_additive={"ap": None, "train_seeds": None})
    assert _verdicts(missing)["b"] == NOT_TESTABLE


def test_train_seeds_counted_and_validated():
    frame = _frame(reference={"train_seeds": None}, noise_off={"train_seeds": 3})
    assert frame.at["reference", "n_train_seeds"] == 1 and frame.at["noise_off", "n_train_seeds"] == 3
    assert "training: 1–3 seeds" in family_markdown(frame, "noise")
    assert "a variant trained once shows the spread over its evaluation seeds instead" in family_markdown(frame, "noise")
    bad = _metrics("noise_off")
    bad["train_seeds"] = []
    with pytest.raises(ValueError, match="train_seeds"):
        ablation_frame({"noise_off": bad})


# ------------------------------------------------------------------ training seeds pooled (issue 18)

SONGS = [f"s{i:02d}" for i in range(12)]


def _trained(name: str, seed: int, ppl: float, ap: float, song_shift: float = 0.0) -> dict[str, Any]:
    """One training's metrics file as evaluate.py writes it: no ``train_seeds``, per-song LM and probe
    values (ln PPL per song around ln ``ppl``, AP per song around ``ap``, with song-to-song variation)."""
    m = _metrics(name, ppl=ppl, ap=ap, train_seeds=None)
    m["train_seed"] = seed
    m["lm"]["per_song"] = {s: {"log_ppl_1024": math.log(ppl) + 0.3 * math.sin(i) + song_shift,
                               "bits_per_second": 300.0} for i, s in enumerate(SONGS)}
    m["probe"]["per_song_ap"] = {s: ap + 0.1 * math.cos(i) for i, s in enumerate(SONGS)}
    return m


def test_pooling_one_training_passes_through_and_two_give_the_training_spread():
    one = pool_training_seeds({0: _trained("reference", 0, 5.0, 0.40)})
    assert one["train_seeds"] == [0] and one["lm"]["ppl_1024"] == {"mean": 5.0, "std": 0.1, "n": 3}
    assert set(one["per_song"]["ap"][0]) == set(SONGS)
    two = pool_training_seeds({1: _trained("reference", 1, 7.0, 0.50), 0: _trained("reference", 0, 5.0, 0.40)})
    assert two["train_seeds"] == [0, 1]
    assert two["lm"]["ppl_1024"] == {"mean": pytest.approx(6.0), "std": pytest.approx(1.0), "n": 2}
    assert two["probe"]["ap_mean"] == pytest.approx(0.45) and two["probe"]["ap_std"] == pytest.approx(0.05)
    assert [r["train_seed"] for r in two["probe"]["per_seed"]] == [0, 1] and len(two["lm"]["per_seed"]) == 2
    assert two["leakage"]["summary"]["vocal_in_accompaniment"] == {
        "mean": pytest.approx(0.2), "std": pytest.approx(0.0), "n_seeds_defined": 2, "reason": None}
    assert two["eval_seconds"] == 24.0 and two["heads"]["vocal/cer"] == pytest.approx(0.5)
    frame = ablation_frame({"reference": two})
    assert frame.at["reference", "n_train_seeds"] == 2 and frame.at["reference", "ppl_1024_std"] == pytest.approx(1.0)
    assert (frame.loc["reference", ["n_lm_seeds", "n_probe_seeds", "n_leak_seeds"]] == 2).all(), "n counts trainings"
    with pytest.raises(ValueError, match="different variants"):
        pool_training_seeds({0: _trained("reference", 0, 5.0, 0.4), 1: _trained("noise_off", 1, 5.0, 0.4)})
    with pytest.raises(ValueError, match="at least one"):
        pool_training_seeds({})


def _pooled(name: str, ppls: tuple[float, float], aps: tuple[float, float], shift: float = 0.0) -> dict[str, Any]:
    return pool_training_seeds({s: _trained(name, s, ppls[s], aps[s], song_shift=shift) for s in (0, 1)})


def test_two_training_seeds_decide_a_claim_with_the_song_bootstrap():
    # (a) noise lowers PPL: noise_off is worse on every song of both trainings, beyond the training spread.
    frame = ablation_frame({"reference": _pooled("reference", (5.0, 5.1), (0.40, 0.41)),
                            "noise_off": _pooled("noise_off", (6.0, 6.1), (0.40, 0.41), shift=0.0)})
    claim = {c["id"]: c for c in ablation_claims(frame)}["a"]
    assert claim["verdict"] == CONFIRMED, claim["evidence"]
    assert "paired bootstrap over 12 test songs of reference − noise_off" in claim["evidence"]
    assert "(n=2)" in claim["evidence"] and "(n=3)" not in claim["evidence"], "n counts trainings once pooled"
    # A training-seed spread larger than the gap: not decided, whatever the songs say.
    frame = ablation_frame({"reference": _pooled("reference", (4.0, 6.0), (0.40, 0.41)),
                            "noise_off": _pooled("noise_off", (5.2, 5.3), (0.40, 0.41))})
    claim = {c["id"]: c for c in ablation_claims(frame)}["a"]
    assert claim["verdict"] == WITHIN_SPREAD, claim["evidence"]


def test_the_claims_record_carries_the_verdicts_rules_and_trainings_per_variant():
    """What the front page states (reports/metrics/ablation_claims.json): the claims as decided, the rules,
    and how many trainings stand behind each variant (2 pooled, 1 for a variant trained once)."""
    frame = ablation_frame({"reference": _pooled("reference", (5.0, 5.1), (0.40, 0.41)),
                            "noise_off": _trained("noise_off", 0, 6.0, 0.40)})
    claims = ablation_claims(frame)
    record = ablation_claims_record(frame, claims, profile="smoke", train_seeds=[0, 1])
    assert record["claims"] == claims and record["rules"] == CLAIM_RULES and record["train_seeds"] == [0, 1]
    assert record["n_train_seeds"] == {"reference": 2, "noise_off": 1}
    assert json.loads(json.dumps(record)) == record
    assert record["claims"][0]["verdict"] == ONE_TRAINING_SEED  # noise_off trained once: not decided


def test_load_ablation_metrics_pools_the_files_and_names_a_missing_one(tmp_path):
    for seed in (0, 1):
        path = metrics_file(tmp_path, "reference", seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_trained("reference", seed, 5.0 + seed, 0.4)))
    assert metrics_file(tmp_path, "reference", 0) == tmp_path / "reference.json"
    assert metrics_file(tmp_path, "reference", 1) == tmp_path / "seed1" / "reference.json"
    pooled = load_ablation_metrics(tmp_path, ["reference"], [0, 1])
    assert pooled["reference"]["train_seeds"] == [0, 1]
    assert pooled["reference"]["lm"]["ppl_1024"]["mean"] == pytest.approx(5.5)
    with pytest.raises(FileNotFoundError, match=r"seed2/reference.json.*training seed 2"):
        load_ablation_metrics(tmp_path, ["reference"], [0, 2])


def test_code_entropy_bits_sums_log2_code_perplexity_of_both_streams():
    # perplexity = 2^H (duotok.eval.codes.usage_report), so 2^7 and 2^9.5 carry 7 + 9.5 bits per frame
    assert code_entropy_bits({"vocal/perplexity": 2.0 ** 7, "accompaniment/perplexity": 2.0 ** 9.5}) == pytest.approx(16.5)
    assert math.isnan(code_entropy_bits({"vocal/perplexity": 128.0}))
    assert math.isnan(code_entropy_bits({"vocal/perplexity": 128.0, "accompaniment/perplexity": None}))


def _informed(m: dict[str, Any], bits: float) -> dict[str, Any]:
    """``m`` with codes carrying ``bits`` per frame (half in each stream)."""
    m["heads"] = {**m["heads"], "vocal/perplexity": 2.0 ** (bits / 2), "accompaniment/perplexity": 2.0 ** (bits / 2)}
    return m


def _pooled_bits(name: str, ppls: tuple[float, float], bits: tuple[float, float]) -> dict[str, Any]:
    return pool_training_seeds({s: _informed(_trained(name, s, ppls[s], 0.40), bits[s]) for s in (0, 1)})


def test_pooled_code_entropy_is_the_mean_over_trainings_of_each_trainings_entropy():
    pooled = _pooled_bits("reference", (5.0, 5.0), (16.0, 20.0))
    assert pooled["information"]["code_entropy_bits"] == {"mean": pytest.approx(18.0), "std": pytest.approx(2.0), "n": 2}
    frame = ablation_frame({"reference": pooled})
    # not log2 of the mean perplexity (2^8 and 2^10 average to 640 per stream: 18.64 bits)
    assert frame.at["reference", "code_entropy_bits"] == pytest.approx(18.0)


@pytest.mark.parametrize(("ref_ppl", "off_ppl", "ref_bits", "off_bits", "verdict"), [
    ((5.0, 5.1), (6.0, 6.1), (18.0, 18.2), (17.0, 17.2), CONFIRMED),       # the win comes with more information
    ((5.0, 5.1), (6.0, 6.1), (16.0, 16.2), (17.0, 17.2), CONFOUNDED),      # the reference's win: emptier codes
    ((6.0, 6.1), (5.0, 5.1), (18.0, 18.2), (16.0, 16.2), CONFOUNDED),      # noise_off's win: emptier codes
    ((6.0, 6.1), (5.0, 5.1), (16.0, 16.2), (18.0, 18.2), NOT_CONFIRMED),   # noise_off wins with more information
    ((5.0, 5.1), (6.0, 6.1), (float("nan"),) * 2, (17.0, 17.2), NOT_TESTABLE),
])
def test_a_decided_ppl_difference_is_read_against_the_codes_information(ref_ppl, off_ppl, ref_bits, off_bits, verdict):
    frame = ablation_frame({"reference": _pooled_bits("reference", ref_ppl, ref_bits),
                            "noise_off": _pooled_bits("noise_off", off_ppl, off_bits)})
    claim = {c["id"]: c for c in ablation_claims(frame)}["a"]
    assert claim["verdict"] == verdict, claim["evidence"]
    if verdict == CONFOUNDED:
        assert "confounded: the lower PPL@1024 is" in claim["evidence"] and "bits per frame" in claim["evidence"]


def test_a_single_head_removal_whose_ppl_moved_with_the_information_neither_hurts_nor_helps():
    frame = ablation_frame({"reference": _pooled_bits("reference", (6.0, 6.1), (18.0, 18.2)),
                            "heads_no_chroma": _pooled_bits("heads_no_chroma", (5.0, 5.1), (16.0, 16.2))})
    claim = {c["id"]: c for c in ablation_claims(frame)}["f"]
    assert claim["verdict"] == CONFOUNDED, claim["evidence"]
    assert "heads_no_chroma: PPL@1024 moved with the information" in claim["evidence"]


def test_a_single_head_gap_beyond_the_training_spread_that_the_song_bootstrap_does_not_confirm_is_named():
    # heads_no_mel's AP mean is 0.10 below the reference's (spread 0.01), but its per-song AP scatters
    # ±0.3 around the reference's song by song: the paired bootstrap includes 0, so nothing counts.
    reference = _pooled("reference", (5.0, 5.1), (0.40, 0.41))
    no_mel = _pooled("heads_no_mel", (5.0, 5.1), (0.30, 0.31))
    for seed, songs in no_mel["per_song"]["ap"].items():
        ref_songs = reference["per_song"]["ap"][seed]
        for i, song in enumerate(songs):
            songs[song] = ref_songs[song] + (0.3 if i % 2 else -0.3)
    frame = ablation_frame({"reference": reference, "heads_no_mel": no_mel})
    claim = {c["id"]: c for c in ablation_claims(frame)}["f"]
    assert claim["verdict"] == WITHIN_SPREAD, claim["evidence"]
    assert "heads_no_mel: AP not counted: beyond the training spread, but the per-song test" in claim["evidence"]
    assert "95 % paired bootstrap over 12 test songs of reference − heads_no_mel: [-" in claim["evidence"]
    assert "→ tie" in claim["evidence"]


def test_a_pooled_table_says_its_spread_is_over_trainings_and_names_each_trainings_evaluation_seeds():
    frame = ablation_frame({"reference": _pooled("reference", (5.0, 5.1), (0.40, 0.41)),
                            "noise_off": _pooled("noise_off", (6.0, 6.1), (0.40, 0.41))})
    text = family_markdown(frame, "noise")
    assert "population std (ddof 0) over the training seeds of each variant" in text
    assert "training-seed variance is not in it" not in text
    assert "Seeds — training: 2 seeds; each training evaluated with LM: 3 seeds; probe: 3 seeds; leakage: 3 seeds." in text
    # one training per variant keeps the evaluation seeds' wording
    single = _frame(reference={"train_seeds": None}, noise_off={"train_seeds": None})
    assert "training-seed variance is not in it" in family_markdown(single, "noise")


def test_a_song_test_that_ties_on_the_per_song_means_training_spread_says_so():
    # The pooled PPL@1024 gap (5.05 vs 6.05) is beyond its training spread, and every song agrees, but
    # noise_off's second training sits 0.5 higher in ln PPL on every song: the per-song means' training
    # spread (0.25 + 0.01) covers their gap, so the song test ties although its interval excludes 0.
    reference = _pooled("reference", (5.0, 5.1), (0.40, 0.41))
    noise_off = _pooled("noise_off", (6.0, 6.1), (0.40, 0.41))
    songs = noise_off["per_song"]["log_ppl_1024"][1]
    for song in songs:
        songs[song] -= 0.5
    claim = {c["id"]: c for c in ablation_claims(ablation_frame({"reference": reference, "noise_off": noise_off}))}["a"]
    assert claim["verdict"] == WITHIN_SPREAD, claim["evidence"]
    assert "→ tie (|Δ|" in claim["evidence"] and "of the per-song means within their training spread" in claim["evidence"]
