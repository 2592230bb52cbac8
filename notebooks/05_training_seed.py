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
# # 05 · Every codec again, under another training seed
#
# Table 2's claims compare **trained codecs**: "Duo-Tok's tokens are the easiest for an LM", "they
# carry the most tag information". Trained once, a codec's numbers mix the recipe with the luck of its
# run — its initialisation and the order it saw its crops in. A difference between two codecs only
# means something if it is larger than the difference between two runs of the *same* codec.
#
# So this notebook trains every codec of the comparison again under a **training seed** `S`
# (`duotok/train/replica.py`; `params.yaml: replicas.seeds`). A training seed replaces every seed that
# decides a codec's training: Duo-Tok's stages 1–3, the baselines' codebook fits, the RVQ codec's
# training. The frozen-feature baselines read *this* seed's stage-1/2 encoders, exactly as the main
# run's read the main run's. Not retrained: the corpus, and the stage-4 autoencoder the RVQ codec starts
# from. No decoders either — the LM and the probe read tokens only — so Table 2's reconstruction
# columns rest on seed 0 and say so.
#
# The notebook runs once per part and seed (`dvc.yaml: replica_duotok@S`, `replica_baselines@S`,
# `replica_tokens@S`), each committed as it finishes; `06_lm` then trains one LM per codec per seed.

# %% tags=["parameters"]
profile: str = "default"
seed: int = 1
part: str = "duotok"
metrics_dir: str = "reports/metrics/replicas"
tokens_dir: str = "models/tokens"

# %%
import pandas as pd
from IPython.display import Markdown, display

from duotok.config import Params
from duotok.io import write_json_atomic
from duotok.paths import resolve
from duotok.reporting.replicas import token_information_by_seed
from duotok.train.replica import SEED_KEYS, TOKEN_CODECS, replica_dir, run

params = Params.load(profile)
display(Markdown(f"Training seed **{seed}**, part **{part}**; the keys it sets: "
                 + ", ".join(f"`{'.'.join(k)}`" for k in SEED_KEYS) + f". Output: `{replica_dir(params, seed)}`."))

# %% [markdown]
# ## Training (or tokenizing)
# Re-running resumes from the trainers' `last/` checkpoints.

# %%
record = run(part, seed, params)
display(Markdown(f"Done in {record['seconds'] / 60:.1f} min."))
if part == "duotok":
    display(pd.DataFrame({stage: {"steps": r["steps"], **r["valid"]} for stage, r in record["results"].items()}).T)
elif part == "baselines":
    display(pd.DataFrame({codec: {k: v for k, v in r.items() if k != "valid_usage"}
                          for codec, r in record["results"].items()}).T)

# %% [markdown]
# ## Same recipe, another run: how far do the tokens move?
# The test tokens' unigram entropy rate (bits/s) and codebook usage, seed 0 (the main pipeline) beside
# this seed. A codec whose numbers move a lot between its own runs cannot be ranked on one run.

# %%
if part == "tokens":
    paths = {codec: {0: resolve(tokens_dir) / f"{codec}.pt",
                     seed: replica_dir(params, seed) / "tokens" / f"{codec}.pt"} for codec in TOKEN_CODECS}
    info = token_information_by_seed(paths)
    display(info.drop(columns="fingerprint").round(3))
    record["token_information"] = {f"{c}@seed{s}": {k: v for k, v in row.items() if k != "fingerprint"}
                                   for (c, s), row in info.iterrows()}

# %%
write_json_atomic(resolve(metrics_dir) / f"{part}_seed{seed}.json", record)
