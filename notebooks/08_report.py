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
# # 08 · Table 2 and Figure 1, regenerated
#
# This notebook only *assembles*: every number comes from a metric file written by an earlier stage —
# reconstruction (`04c_reconstruction`, `05_baseline`), LM perplexity and bits per second (`06_lm`) and
# the tagging probe (`07_probe`). It writes `reports/tables/table2.{md,csv,tex}`,
# `reports/figures/fig1_pareto.{png,svg}`, the page `reports/tokenizers.md` and the claims record
# `reports/metrics/claims.json` (which the front page `reports/README.md`, stage `results`, states), and checks the
# paper's claim — *best tagging AP and lowest normalised LM perplexity at the lowest bitrate, with
# reconstruction about as good as far costlier codecs* — on this run's numbers.

# %% tags=["parameters"]
profile: str = "default"
metrics_dir: str = "reports/metrics"
tables_dir: str = "reports/tables"
figures_dir: str = "reports/figures"
page_path: str = "reports/tokenizers.md"

# %%
import pandas as pd
from IPython.display import Image, Markdown, display

from duotok.config import Params
from duotok.io.files import atomic_write, write_json_atomic
from duotok.paths import resolve
from duotok.reporting.claims import head_to_head
from duotok.reporting.pareto import pareto_points, plot_pareto, published_points, save_pareto
from duotok.reporting.results import claims_record, collect_rows, dropped_tags_note, render_tokenizer_page
from duotok.reporting.table2 import format_table, measured_frame, published_table, write_table2

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("report")
rows = collect_rows(resolve(metrics_dir), p["codecs"], p["reconstruction_source"])

# %% [markdown]
# ## Table 2: measured here

# %%
paths = write_table2(rows, resolve(tables_dir),
                     note=f"Measured on the `{profile}` profile; dual-track reconstruction from "
                          f"{p['reconstruction_source']} stems. AP/AUC: mean ± std over probe seeds on one "
                          f"trained codec. {dropped_tags_note(rows)} "
                          "Mel L1, measured and published alike, is the evaluation toolkit's Mel distance "
                          "(`calculate_mel_distance`; `duotok.eval.mel_distance`): one definition, different data. "
                          "ViSQOL barely reacts to phase on this corpus (random phase on exact magnitudes: "
                          "4.29–4.53; a 4 kHz low-pass with perfect phase: 3.54–4.43); PESQ and STOI do.")
display(format_table(measured_frame(rows)))
display(Markdown("**Published** (paper Table 2 — different data and scale, not comparable number for number):"))
display(published_table())

# %% [markdown]
# ## Figure 1: LM perplexity against reconstruction, bubble area ∝ bitrate
# One quantity on the y axis for every codec: the **mixture Mel L1** (the toolkit's Mel distance; for a
# dual-track codec the mixture is the sum of its two decoded tracks). The published points are the
# baselines' mixture Mel L1 from the toolkit's README; the paper's Duo-Tok row has per-track values only
# (its Figure 1 plots their mean, 0.93), so it is not drawn.

# %%
points = pareto_points(rows)
if points.attrs.get("dropped"):
    display(Markdown("Not drawn: " + ", ".join(f"{k} ({v})" for k, v in points.attrs["dropped"].items())))
published = published_points()
if published.attrs.get("dropped"):
    display(Markdown("Published, not drawn: " + ", ".join(f"{k} ({v})" for k, v in published.attrs["dropped"].items())))
fig = plot_pareto(points, published=published)
save_pareto(fig, resolve(figures_dir) / "fig1_pareto")
display(Image(filename=str(resolve(figures_dir) / "fig1_pareto.png")))

# %% [markdown]
# ## The claims, on this run

# %%
subject = "Duo-Tok"
# decided once: the page below and the front page (stage `results`, via reports/metrics/claims.json) state these
record = claims_record(rows, profile=profile, mel_tolerance=float(p["mel_tolerance"]), subject=subject)
display(pd.DataFrame(record["claims"]))
display(head_to_head(rows, subject=subject))

# %%
lm_protocols = pd.read_csv(resolve(tables_dir) / "lm_protocols.csv")
text = render_tokenizer_page(rows, lm_protocols, record, source=p["reconstruction_source"])
with atomic_write(resolve(page_path)) as f:
    f.write(text)
# the verdicts, their rules and each codec's training seeds, for the front page (stage `results`)
write_json_atomic(resolve(metrics_dir) / "claims.json", record)
display(Markdown(text))
