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
# # 07 · Tagging probe: how much musical information do the tokens carry?
#
# The paper's "MTT AP" column: freeze the codec, take its **quantized embeddings** (what a downstream
# model would read), cut 5-s windows, and train a small probe (squeeze-excitation blocks around
# depthwise-separable 1-D convolutions, then a linear layer, BCE) to predict the song's tags. Here the
# tags are the duosynth corpus's own (voice, language, drum style, tempo, mode, meter, instrument
# families, vocal balance: `duotok/data/synth/tags.py`), exact by construction.
#
# * **Split hygiene.** Train / valid / test are the corpus's splits (by work); `run_probe` refuses to
#   run if any song is in two of them (the toolkit's probe trained on its test folder).
# * **Equal treatment.** The same probe, steps and seeds for every codec; the valid split picks the
#   checkpoint; the test split is scored once per seed. We report macro AP and ROC-AUC over the tags
#   that have both positives and negatives among the test windows, with the spread over seeds — the
#   spread of *probe* seeds on one trained codec, not of training the codec again.
# * **Rare tags left out.** A tag with only a few positive test songs has an AP decided by where one or
#   two songs rank, yet counts in the macro mean like any other. Tags with fewer than
#   `probe.min_positive_test_songs` positive test songs are dropped from the means and named below
#   and in `probe.json` (`tags_dropped`).
# * **Deviation.** The toolkit trains with AdamW at 1e-4; with a few hundred steps on a CPU that
#   under-fits every codec equally, so `params.yaml: probe.train.lr` is 1e-3 (weight decay 0.08 as published).
# * **Real data.** With `params.yaml: probe.data` set (e.g. `{dataset: magnatagatune, root: ..., options:
#   {top_k: 50}}`), every codec tokenizes that dataset's mixtures here and the probe uses its splits and tag
#   vocabulary (the paper's MagnaTagATune top-50) instead of the corpus (`duotok/eval/dataset_tokens.py`);
#   `probe.json: data` names the dataset and every item it could not use. `null`: the corpus, as always.

# %% tags=["parameters"]
profile: str = "default"
tokens_dir: str = "models/tokens"
metrics_path: str = "reports/metrics/probe.json"
figures_dir: str = "reports/figures/probe"

# %%
import pandas as pd
from IPython.display import Markdown, display

from duotok.codecs.registry import load_codec
from duotok.config import Params
from duotok.eval.dataset_tokens import data_record, evaluation_tokens, open_eval_data, tag_vocabulary
from duotok.eval.probe_codecs import probe_codec
from duotok.io import write_json_atomic
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.probe import plot_probe_results
from duotok.train.replica import load_replica_codec, token_paths

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("probe")
data = open_eval_data(p["data"], "probe.data")  # None: the corpus tokens

# %% [markdown]
# **Training seeds.** Probe seeds only measure the probe's noise on one trained codec. Each codec is
# therefore probed once more for every replica (`replicas.seeds`, notebook `05_training_seed`: the
# codec trained again under another seed). Table 2 shows seed 0's AP; `per_training_seed` keeps every
# seed's, and `per_song_by_seed` each test song's own tag AP (averaged over probe seeds) per training
# seed — what the claims bootstrap over songs and seeds.

# %%
results, data_info = {}, None
for name in p["codecs"]:
    codec = load_codec(name, params)
    tokens = evaluation_tokens(resolve(tokens_dir) / f"{name}.pt", data, codec)
    vocabulary = tag_vocabulary(tokens)
    data_info = data_info or data_record(data, tokens)
    results[name] = {"name": codec.name, **probe_codec(codec, tokens, p["model"], p["train"], vocabulary,
                                                        min_positive_test_songs=p.get("min_positive_test_songs"))}
    r = results[name]
    by_seed = {0: r}
    for seed, path in token_paths(params)[name].items():
        replica = load_replica_codec(params, seed, name)
        by_seed[seed] = probe_codec(replica, evaluation_tokens(path, data, replica, training_seed=seed), p["model"],
                                    p["train"], vocabulary, min_positive_test_songs=p.get("min_positive_test_songs"))
    r["training_seeds"] = sorted(by_seed)
    r["per_training_seed"] = {str(s): {k: v[k] for k in ("ap_mean", "ap_std", "auc_mean", "auc_std")}
                              for s, v in by_seed.items()}
    r["per_song_by_seed"] = {str(s): {song: {"song_ap": ap} for song, ap in v["per_song_ap"].items()}
                             for s, v in by_seed.items()}
    display(Markdown(f"**{codec.name}**: AP {r['ap_mean']:.3f} ± {r['ap_std']:.3f}, "
                     f"AUC {r['auc_mean']:.3f} ± {r['auc_std']:.3f} ({len(r['per_seed'])} probe seeds); "
                     "AP per training seed: " + ", ".join(f"{s}: {v['ap_mean']:.3f}" for s, v in by_seed.items())))

# %%
dropped = next(iter(results.values()))["tags_dropped"]  # the same test songs and tags for every codec
display(Markdown(f"**{len(dropped)} tag(s) left out of the means** (fewer than "
                 f"{p.get('min_positive_test_songs')} positive test songs): "
                 + (", ".join(f"{tag} ({why})" for tag, why in dropped.items()) or "none")))

# %%
table = pd.DataFrame({r["name"]: {"AP": r["ap_mean"], "AP std": r["ap_std"], "AUC": r["auc_mean"],
                                  "AUC std": r["auc_std"], "song-level AP": r["song_ap_mean"],
                                  "tags scored": r["per_seed"][0]["n_tags_scored"],
                                  "test windows": r["per_seed"][0]["n_windows"]}
                      for r in results.values()}).T
display(table.round(3))
fig = plot_probe_results(results)
save_figure(fig, resolve(figures_dir) / "ap_auc")
write_json_atomic(resolve(metrics_path), {"profile": profile, "data": data_info, "codecs": results})

# %% [markdown]
# Published for comparison (paper Table 2, MagnaTagATune, real music — not comparable number for
# number): Duo-Tok AP 0.35 / AUC 0.87, MuCodec-LeVo 0.26 / 0.84, X-Codec 0.32 / 0.87, DAC 0.20 / 0.79.
# Whether the *ranking* holds here is what `08_report` checks.
