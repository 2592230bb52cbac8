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
# # 06 · How predictable are the tokens? LM perplexity and bits per second
#
# A tokenizer for music generation should give sequences that a language model finds easy to model.
# The paper's measure (SPEC §2): train a small decoder-only LM on each codec's tokens — `[SOS] frames
# [EOS]`, K parallel embedding tables summed into one input per frame (concatenated, projected) and K
# output heads predicting the next frame's K tokens in parallel — and report, on held-out songs,
#
# * the token-mean cross-entropy $L_k$ of every codebook $k$ (nats),
# * **PPL@1024** $= \exp(\frac1K\sum_k L_k) / (V/1024)$: perplexity normalised to a 1024-entry codebook
#   (the toolkit exponentiated a *summed* loss; we use the mean, as the definition says),
# * **bits per second** $= \frac{\sum_k L_k}{\ln 2}\times$ frame rate: what an ideal entropy coder driven
#   by the LM would spend — independent of codebook size and frame rate, so it is the fair number when
#   codecs differ in both (PPL@1024 favours large codebooks).
#
# **Equal budget**: one LM size, step count, crop length, data and seed for every codec (`params.yaml: lm`);
# only the codec changes. The toolkit's LM is a Qwen2 10 × 768 trained at 1e-4; ours is a Qwen2 sized for
# a CPU (`lm.model`), at a higher learning rate for its short schedule.
#
# Then the paper's two **Duo-Tok protocols** (its Fig. 5): (i) the unconditional dual-track LM above,
# and (ii) a *vocal-conditioned* accompaniment LM — the vocal tokens as a prefix, plus the first
# `prefix_seconds` of the accompaniment — compared with the same accompaniment LM without the vocals.
#
# **Real data.** With `params.yaml: lm.data` set (e.g. `{dataset: mtg_jamendo, root: ..., options:
# {metadata_root: ...}}`), every codec tokenizes that dataset's mixtures here (a dual-track codec separates
# them first) and the LMs train, select and score on its official train / valid / test instead of the corpus
# tokens (`duotok/eval/dataset_tokens.py`); `lm.json: data` names the dataset and every track it could not
# use. `null`: the corpus tokens, as always.

# %% tags=["parameters"]
profile: str = "default"
tokens_dir: str = "models/tokens"
out_dir: str = "models/lm"
metrics_path: str = "reports/metrics/lm.json"
tables_dir: str = "reports/tables"
figures_dir: str = "reports/figures/lm"

# %%
from functools import partial

import pandas as pd
from IPython.display import Markdown, display

from duotok.codecs.registry import load_codec
from duotok.config import Params
from duotok.eval.dataset_tokens import data_record, evaluation_tokens, open_eval_data
from duotok.eval.lm_protocols import merge_training_seeds, training_seed, unconditional, vocal_conditioned
from duotok.io import write_json_atomic
from duotok.io.files import atomic_write
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.lm import lm_codebook_table, lm_information_table, lm_protocol_table, plot_lm_results
from duotok.reporting.markdown import markdown_table
from duotok.train.replica import load_replica_codec, token_paths

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("lm")
data = open_eval_data(p["data"], "lm.data")  # None: the corpus tokens, and no codec is loaded
tokens = {name: evaluation_tokens(resolve(tokens_dir) / f"{name}.pt", data, partial(load_codec, name, params))
          for name in p["codecs"]}
display(pd.DataFrame({t["codec"]: {"frame rate": t["frame_rate"], "codebooks": len(t["codebook_sizes"]),
                                   "songs": len(t["songs"]), "source": t["source"]} for t in tokens.values()}).T)

# %% [markdown]
# ## Protocol (i): one unconditional LM per codec
#
# Beside each LM's figures the record keeps what a fair comparison of them needs (issue 18):
#
# * **the information in the tokens** — the test tokens' unigram entropy rate (bits/s, summed over
#   codebooks) and codebook usage. A low PPL@1024 from tokens that carry few bits per second is
#   predictability bought by saying less; the report calls such a win *confounded*.
# * **per-song values keyed by the codec's training seed** (`per_song_by_seed`: each test song's
#   token-mean CE, ln PPL@1024 and bits/s), for a paired bootstrap over songs. The main pipeline
#   trains every codec once (seed 0); the replica stages (`replicas.seeds`, notebook
#   `05_training_seed`) train each again under further seeds and tokenize the corpus with them. Each
#   training seed of each codec gets its own LM here — only then can a verdict tell a codec from a
#   lucky run.

# %%
results = {}
extra_seeds = token_paths(params)        # {codec: {seed: replica token file}}
for name, tok in tokens.items():
    runs = {training_seed(tok): unconditional(tok, p, resolve(out_dir) / name)}
    for seed, path in (extra_seeds.get(name) or {}).items():
        other = evaluation_tokens(path, data, partial(load_replica_codec, params, seed, name), training_seed=seed)
        if training_seed(other) != seed:
            raise ValueError(f"{path}: tokens of training seed {training_seed(other)}, expected {seed}")
        runs[seed] = unconditional(other, p, resolve(out_dir) / f"{name}_seed{seed}")
    results[name] = merge_training_seeds(runs)
    r = results[name]
    display(Markdown(f"**{tok['codec']}**: CE {r['ce_mean']:.3f} nats/token, PPL@1024 {r['ppl_1024']:.2f}, "
                     f"{r['bits_per_second']:.0f} bits/s; tokens: {r['entropy_rate_bps']:.0f} bits/s unigram "
                     f"entropy, {r['codebook_usage']:.0%} of the codebook entries used; training seed(s) "
                     f"{r['training_seeds']}"))
per_codebook = lm_codebook_table(results)
display(per_codebook.round(3))
display(lm_information_table(results).round(3))

# %% [markdown]
# ## Protocol (ii): does knowing the vocals make the accompaniment cheaper?

# %%
protocols = {name: vocal_conditioned(tokens[name], p, resolve(out_dir) / f"{name}_protocol2") for name in p["conditional"]}
protocol_table = lm_protocol_table(protocols)
display(protocol_table.round(3))

# %%
tables = resolve(tables_dir)
per_codebook.to_csv(tables / "lm.csv", index=False)
protocol_table.to_csv(tables / "lm_protocols.csv", index=False)
with atomic_write(tables / "lm_protocols.md") as f:
    f.write("# LM protocols (measured here)\n\n" + markdown_table(protocol_table) + "\n")
write_json_atomic(resolve(metrics_path), {"profile": profile, "data": data_record(data, next(iter(tokens.values()))),
                                          "codecs": results, "protocols": protocols})
save_figure(plot_lm_results(results), resolve(figures_dir) / "ppl_bits")
