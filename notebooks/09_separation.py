# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: duotok (Python 3.11)
#     language: python
#     name: duotok
# ---

# %% [markdown]
# # 09 · Source separation: generation against masks
#
# The second paper separates music by **generating** the codec tokens of each stem with a language
# model, one stem after another, and reports that it nearly matches the best discriminative separators
# by ViSQOL (3.55 against 3.71, averaged over stems, on real music). Here every system is scored on the
# same test excerpts of our corpus:
#
# * **discriminative**: the stage-2 mask head of Duo-Tok and an Open-Unmix-style BiLSTM, both masks on the
#   mixture's STFT (they keep the mixture's phase);
# * **generative**: the token-LM separator (`09_separator`), and its ablations — frozen stage-1 features or
#   no encoder instead of the learnable Conformer, stems generated independently instead of in sequence,
#   the stem order reversed — each at a smaller budget, once per training seed. Each generates a 10-s
#   excerpt in crossfaded chunks of the crop length it was trained on (2 s): asked for 10 s in one
#   sequence, an LM trained on 2 s drifts into noise or silence after a few seconds (Mel L1 3.03–3.18
#   against 2.43–2.55 in 2-s chunks, validation excerpts; `duotok.separation.systems.generation_chunk_seconds`);
# * **bounds** that read the true stems, so no one could run them on a new song: the **codec ceiling**
#   (the true stems through the codec's first K codebooks — a perfect token generator) and the **oracle
#   ratio mask** (a perfect mask on the mask head's STFT grid).
#
# The two bounds tell apart where each family loses: the generative system's gap to the ceiling is its
# language model's error, the ceiling's gap to the truth is the codec's; a mask system's gap to the
# oracle is its mask's error.
#
# **Why SDR cannot rank the generative systems.** museval's SDR compares waveforms sample by sample. A
# codec decoder does not keep the waveform's phase (it renders *a* waveform with the right spectrum),
# so even the codec ceiling — the true stems, merely encoded and decoded — scores about −2 dB. SDR still
# ranks mask systems, which keep the mixture's phase; the generative ones are ranked by Mel L1 and
# ViSQOL, as the paper does.
#
# **Why the headline is checked on Mel L1 too.** The paper's target is stated in ViSQOL (audio mode),
# and on this corpus ViSQOL barely reacts: an audit scored random phase on the exact magnitudes
# 4.29–4.53. So the target reads *confounded* when it is met on ViSQOL while Mel L1 puts the
# generative system beyond the same tolerance behind the best mask system.

# %% tags=["parameters"]
profile: str = "default"
metrics_path: str = "reports/metrics/separation.json"
separator_metrics_dir: str = "reports/metrics/separators"
tables_dir: str = "reports/tables"
figures_dir: str = "reports/figures/separation"
page_path: str = "reports/separation.md"

# %%
import json

import numpy as np
import pandas as pd
from IPython.display import Audio, Image, Markdown, display

from duotok.config import Params
from duotok.io import atomic_write, write_json_atomic
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.separation import (
    findings_markdown,
    plot_separation_spectrograms,
    plot_temperature_curve,
    render_separation_section,
    separation_findings,
    table_frame,
    write_separation_table,
)
from duotok.separation.benchmark import (
    eval_settings,
    example_excerpt,
    score_system,
    separate_example,
    separation_record,
    set_threads,
    temperature_curve,
    temperature_points,
)
from duotok.separation.systems import evaluation_plan

params = Params.load(profile)
settings = eval_settings(params)
threads = set_threads(int(settings["threads"]))
figures = resolve(figures_dir)
figures.mkdir(parents=True, exist_ok=True)
plan = evaluation_plan(params)
display(pd.DataFrame([{"system": s.key, "kind": s.kind, "training seeds": s.seeds, "what": s.description}
                      for s in plan]))

# %% [markdown]
# ## Every system on the test excerpts
# The centre of each test song (the excerpts of the reconstruction tables); per stem museval SDR / SIR /
# SAR (the median over 1-s frames of a track), the toolkit's Mel L1 and ViSQOL; the real-time factor is
# separator compute per second of audio on the thread count above.

# %%
results = []
for spec in plan:
    result = score_system(spec, params)
    results.append(result)
    average = {m: v["mean"] for m, v in result["summary"]["average"].items()}
    display(Markdown(f"**{spec.label}** ({result['summary']['n_songs']} excerpts, seeds {spec.seeds or '—'}): "
                     + ", ".join(f"{m} {v:.3g}" for m, v in average.items()) + f", RTF {result['rtf']:.3g}"))

# %% [markdown]
# ## Sampling temperature, on validation songs
# The generative model samples each token from its distribution tempered by `T` (then top-k, top-p);
# `T = 0` is greedy decoding. The curve is measured on **validation** excerpts: a setting may be chosen
# from it, never from the test songs of the table (which use the paper group's 0.8).

# %%
t = params.section("separation")["temperature_curve"]
curve = temperature_curve(params)
points = temperature_points(curve, t["metrics"])
display(pd.DataFrame(points).set_index("temperature").round(3))
save_figure(plot_temperature_curve(points, t["metrics"], title="generative separator: temperature (validation)"),
            figures / "temperature")

# %% [markdown]
# ## The table, the findings, the report section

# %%
ceiling_file = resolve(separator_metrics_dir) / "generative.json"
ceiling = json.loads(ceiling_file.read_text()).get("ceiling") if ceiling_file.is_file() else None
record = separation_record(results, params, threads=threads, curve=points, ceiling_validation=ceiling)
findings = separation_findings(record["systems"], metric="visqol",
                               tolerance=float(settings["visqol_tolerance"]))
record["findings"] = findings
write_json_atomic(resolve(metrics_path), record)
write_separation_table(record, resolve(tables_dir))
frame = table_frame(record)
display(frame[frame["stem"] == "mean"].set_index("label")[["kind", "sdr", "mel_l1", "visqol", "rtf", "n_songs"]]
        .round(3))
display(Markdown(findings_markdown(findings)))

# %% [markdown]
# ## One excerpt, four stems: spectrograms and players
# The mixture, the true stem, the generative system and the best discriminative system by ViSQOL.

# %%
excerpt = example_excerpt(params)
by_key = {spec.key: spec for spec in plan}
discriminative = [key for key, s in record["systems"].items() if s["kind"] == "discriminative"]
best = max(discriminative, key=lambda k: record["systems"][k]["average"]["visqol"]["mean"] or float("-inf"))
shown = {by_key[key].label: separate_example(by_key[key], excerpt, params) for key in ("generative", best)}
rate = int(params.section("audio")["sample_rate"])
references = dict(zip(("vocals", "drums", "bass", "other"), excerpt.stems, strict=True))
fig = plot_separation_spectrograms(excerpt.mixture, references, shown, rate,
                                   title=f"test excerpt {excerpt.song_id} ({excerpt.offset_seconds:.1f} s on)")
save_figure(fig, figures / "spectrograms")
display(Image(filename=str(figures / "spectrograms.png")))

# %%
def player(audio):
    """A player at the true level (clipped to [-1, 1]: a decoder may overshoot, and the player refuses that)."""
    return Audio(np.clip(audio, -1.0, 1.0), rate=rate, normalize=False)


display(Markdown("*mixture*"), player(excerpt.mixture))
for stem, reference in references.items():
    display(Markdown(f"*{stem}: true stem, then " + ", then ".join(shown) + "*"), player(reference),
            *(player(estimates[stem]) for estimates in shown.values()))

# %%
text = render_separation_section(record, findings, title="# Source separation: generation against masks (issue 19)")
with atomic_write(resolve(page_path)) as fh:
    fh.write(text)
display(Markdown(text))
