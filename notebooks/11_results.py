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
# # 11 · Results: every claim of both papers, checked on this run
#
# The last stage. It trains and measures nothing: three stages have each decided their claims and
# written them down with the evidence — Table 2's (`08_report` → `reports/metrics/claims.json`), the
# ablations' (`05_ablations` → `reports/metrics/ablation_claims.json`) and the separation benchmark's
# (`09_separation` → the `findings` of `reports/metrics/separation.json`). This notebook puts them on one
# page, `reports/README.md`, so that a reader sees every verdict — confirmed, not confirmed, confounded,
# not testable here — next to the training seeds and the bootstrap interval behind it.
#
# Why a stage of its own: the ablations and the separators are hours of training that Table 2 must not
# wait for. Each of those stages keeps its own page; this one only gathers (`duotok/reporting/front_page.py`).

# %% tags=["parameters"]
profile: str = "default"
metrics_dir: str = "reports/metrics"
readme_path: str = "reports/README.md"

# %%
import pandas as pd
from IPython.display import Markdown, display

from duotok.io.files import atomic_write
from duotok.paths import resolve
from duotok.reporting.front_page import load_records, render_front_page, tally

records = load_records(resolve(metrics_dir))

# %% [markdown]
# ## The verdicts at a glance
# A claim is *confirmed* only when it survives a retrain (≥ 2 training seeds of everything it compares,
# a difference beyond their spread) and a paired bootstrap over test songs; a lower perplexity from
# tokens that carry less information is *confounded*, not a win. Each section's rules are on its page.

# %%
display(pd.DataFrame(tally(records)).fillna(0).astype(int))

# %% [markdown]
# ## The page

# %%
text = render_front_page(records, profile=profile)
with atomic_write(resolve(readme_path)) as f:
    f.write(text)
display(Markdown(text))
