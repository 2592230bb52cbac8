"""Every network the pipeline trains, at the ``paper`` profile's published sizes (and at ``smoke``):
parameter counts against closed forms computed here from params.yaml's numbers, the headline sizes,
and one real optimiser step with its peak memory.

Why the expected counts are written out by hand instead of asking the models: a count read back from
the model only proves the model agrees with itself. These formulas restate each architecture from its
module docstring (Linear = in*out + out, a pre-norm Transformer block = 4 d^2 + 2 d h + 9 d + h, ...)
and take every size from ``params.yaml`` directly, so a wrong derivation in a stage runner, a head
built at the wrong width or a codebook of the wrong size changes one side only.

Budget (measured on the 2-core EPYC, 1 torch thread under ``nice -n 19``, beside the DVC pipeline): a
~300 M-parameter paper model takes 5-10 s to build and step while the pipeline is between stages, and
20-200 s while a stage holds both cores at normal priority — most of it allocating and touching
gigabytes (gradients, AdamW state), which no smaller input avoids. All 59 paper models took 5.5 min
idle and 80 min beside a busy stage. So the paper steps come in sets (``DUOTOK_SCALE_STEPS``):

* ``quick`` (default, ``QUICK_PAPER_STEPS``): one model per class at full paper size, except the three
  ~300 M-parameter models trained end to end (``pretrain``, ``finetune``, ``decoder``: 5.3-5.8 GB
  peak each). Their 24 x 1024 encoder is still built and run at full size by ``quantize`` (upper 12
  blocks trained) and ``baseline.mixture_vq.codebooks`` (frozen), and every model — those three
  included — is counted at paper size and stepped at smoke size. The file: ~30 s idle, ~5 min beside
  a stage that holds both cores;
* ``core``: the same plus those three and the other SimVQ fit (~1 min idle);
* ``all``: every paper model (the README table's run, better as ``python -m duotok.scale.step_check
  --all --markdown``); ``none``: no paper step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from duotok.config import Params, deep_merge
from duotok.data.synth.tags import TAG_VOCABULARY
from duotok.eval.leakage import ATTRIBUTE_LABELS
from duotok.reporting.pipeline import pipeline_stages
from duotok.scale.inventory import (
    NOT_GRADIENT_TRAINED,
    build_entry,
    codec_shapes,
    count_parameters,
    model_specs,
    synthetic_crop,
)
from duotok.scale.step_check import check_many, markdown_table, optimizer_step, start_forkserver
from duotok.text import CharVocab

ROOT = Path(__file__).resolve().parents[2]

#: Stepped at full paper size by default (see the module docstring): one model per class, the main pipeline's.
QUICK_PAPER_STEPS = ("quantize", "baseline.mixture_vq.codebooks", "lm.duotok", "autoencoder", "baseline.rvq",
                     "probe.duotok", "separator.openunmix", "separator.generative")
#: The three ~300 M-parameter models trained end to end (the costliest checks: 5.3-5.8 GB peak each).
LARGE_PAPER_STEPS = ("pretrain", "finetune", "decoder")
#: ``DUOTOK_SCALE_STEPS=core``: every class's main-pipeline model.
CORE_PAPER_STEPS = (*LARGE_PAPER_STEPS, *QUICK_PAPER_STEPS, "baseline.mucodec.codebooks")
#: Peak resident memory a single model's check may reach (the machine has 23 GB and runs a pipeline).
MAX_PEAK_MIB = 12 * 1024
#: DVC stages that train no network (evaluation, tokenizing, reports): every other stage must be covered.
NON_TRAINING_STAGES = ("corpus", "reconstruction", "opus", "tokens", "replica_tokens", "separation", "report",
                       "ablations", "results", "pipeline")


@pytest.fixture(scope="module", autouse=True)
def _fork_server_early() -> None:
    """Start the paper steps' fork server (its imports take tens of seconds under load) before the
    first test, so it imports while the counting tests run."""
    if _paper_step_names():
        start_forkserver()


@cache
def params(profile: str) -> Params:
    return Params.load(profile)


@cache
def specs(profile: str) -> tuple:
    return tuple(model_specs(params(profile)))


# --------------------------------------------------------------------------- closed forms


def linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def layer_norm(d: int) -> int:
    return 2 * d


def conv1d(i: int, o: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return (i // groups) * o * k + (o if bias else 0)


def transformer_block(d: int, mlp_ratio: float) -> int:
    """Pre-norm block: 2 LayerNorms, fused qkv + out projection, a GELU MLP of ``round(d * mlp_ratio)``."""
    h = int(round(d * mlp_ratio))
    return 2 * layer_norm(d) + linear(d, 3 * d) + linear(d, d) + linear(d, h) + linear(h, d)


def transformer_stack(d: int, n: int, mlp_ratio: float) -> int:
    return n * transformer_block(d, mlp_ratio) + layer_norm(d)   # + the final LayerNorm


def encoder_parts(n_mels: int, m: Mapping[str, Any]) -> tuple[int, int]:
    """(lower part: the stride-2 conv downsampling and the lower stack, upper stack) of the Duo-Tok encoder."""
    d, r = m["dim"], m["mlp_ratio"]
    convs = int(math.log2(m["downsample"]))
    down = conv1d(n_mels, d, 3) + (convs - 1) * conv1d(d, d, 3)
    return down + transformer_stack(d, m["n_lower"], r), transformer_stack(d, m["n_upper"], r)


def gru_bidirectional(i: int, h: int) -> int:
    return 2 * 3 * (h * i + h * h + 2 * h)


def heads(d: int, n_mels: int, n_fft: int, cfg: Mapping[str, Any], mask_allowed: bool) -> int:
    """The stage-2/3 heads: linear (or BiGRU + linear) CTC, two-conv upsampled mel and chroma heads,
    and the 4-stem mask head (conv upsampling to d, then an MLP over [features, mixture spectrum])."""
    h = cfg["heads"]
    n_freq, vocab, ctx = n_fft // 2 + 1, len(CharVocab()), cfg.get("lyrics_context", 0)
    total = 0
    if h["lyrics"]:
        total += (gru_bidirectional(d, ctx) + linear(2 * ctx, vocab)) if ctx else linear(d, vocab)
    if h["mel"]:
        total += conv1d(d, d, 5) + conv1d(d, n_mels, 5)
    if h["chroma"]:
        total += conv1d(d, d, 5) + conv1d(d, 12, 5)
    if mask_allowed and h.get("mask", False):
        if cfg["mask_spectrum"]:
            total += 2 * conv1d(d, d, 5) + linear(d + n_freq, 2 * d) + linear(2 * d, 4 * n_freq)
        else:
            total += conv1d(d, d, 5) + conv1d(d, 4 * n_freq, 5)
    return total


def expected_bestrq(p: Params) -> int:
    m, n_mels = p.section("pretrain")["model"], p.section("audio")["n_mels"]
    return sum(encoder_parts(n_mels, m)) + linear(m["dim"], p.section("pretrain")["bestrq"]["codebook_size"])


def expected_multitask(p: Params) -> int:
    a, m, f = p.section("audio"), p.section("pretrain")["model"], p.section("finetune")["model"]
    d, b = m["dim"], f["bottleneck_dim"]
    return (sum(encoder_parts(a["n_mels"], m)) + linear(d, b) + linear(b, d)
            + heads(d, a["n_mels"], a["n_fft"], f, mask_allowed=True))


def expected_dualtrack(p: Params, shared: bool = False) -> tuple[int, int]:
    """Stage 3: encoder (lower part frozen), per track proj_in -> SimVQ's W (with bias) -> proj_out
    (one branch when the codebook is shared), heads without the mask head."""
    a, m = p.section("audio"), p.section("pretrain")["model"]
    f, q = p.section("finetune")["model"], p.section("quantize")["model"]
    d, b = m["dim"], f["bottleneck_dim"]
    lower, upper = encoder_parts(a["n_mels"], m)
    branch = linear(d, b) + linear(b, b) + linear(b, d)
    n_branches = 1 if shared else len(q["codebook_sizes"])
    trainable = upper + n_branches * branch + heads(d, a["n_mels"], a["n_fft"],
                                                     {**q, "lyrics_context": f["lyrics_context"]}, mask_allowed=False)
    return lower + trainable, trainable


def convnext(d: int, k: int, r: int) -> int:
    return conv1d(d, d, k, groups=d) + layer_norm(d) + linear(d, r * d) + linear(r * d, d) + d   # + layer scale


def expected_autoencoder(m: Mapping[str, Any], bottleneck: str | None = None) -> int:
    """STFT-domain ConvNeXt encoder (kernel-3 embedding) and Vocos-style decoder (an iSTFT head)."""
    d, k, r, n, z = m["dim"], m["kernel_size"], m.get("mlp_ratio", 2), m["n_blocks"], m["latent_dim"]
    n_freq = m["n_fft"] // 2 + 1
    in_ch = n_freq * (1 if m.get("encoder_input", "magnitude") == "magnitude" else 3)
    out = 2 * z if (bottleneck or m.get("bottleneck", "vae")) == "vae" else z
    per_bin = 3 if m.get("phase_head", "angle") == "unit" else 2
    enc = (conv1d(in_ch, d, 3) + layer_norm(d) + n * convnext(d, k, r) + layer_norm(d) + conv1d(d, d, 2)
           + conv1d(d, out, 3))
    dec = (conv1d(z, d, k) + layer_norm(d) + n * convnext(d, k, r) + conv1d(d, d, 2) + layer_norm(d)
           + linear(d, per_bin * n_freq))
    return enc + dec


def expected_dit(m: Mapping[str, Any], latent: int, cond: int) -> int:
    """adaLN-Zero DiT: input / condition projections, null condition, time MLP, track table, blocks
    (attention + MLP + a 6-way modulation; LayerNorms without affine), final adaLN + output Linear."""
    d, h = m["dim"], int(round(m["dim"] * m["mlp_ratio"]))
    block = linear(d, 3 * d) + linear(d, d) + linear(d, h) + linear(h, d) + linear(d, 6 * d)
    return (linear(latent, d) + linear(cond, d) + cond + linear(256, d) + linear(d, d) + 2 * d
            + m["n_layers"] * block + linear(d, 2 * d) + linear(d, latent))


def expected_lm(m: Mapping[str, Any], sizes: list[int], cond: list[int] | None = None) -> int:
    """Qwen2 backbone (biased q/k/v, unbiased o, SwiGLU, RMSNorms; its vocabulary table removed) with
    per-codebook input tables (V + 2 rows: SOS, EOS) joined by a Linear, and per-codebook heads (V + 1)."""
    d, i = m["dim"], int(m["dim"] * m["mlp_ratio"])
    layer = 3 * linear(d, d) + linear(d, d, bias=False) + 3 * linear(d, i, bias=False) + 2 * d
    total = sum((v + 2) * d for v in sizes) + linear(len(sizes) * d, d)
    if cond:
        total += sum((v + 1) * d for v in cond) + linear(len(cond) * d, d)
    return total + m["n_layers"] * layer + d + sum(linear(d, v + 1) for v in sizes)


def expected_probe(m: Mapping[str, Any], in_dim: int, n_tags: int) -> int:
    c, k, hidden = m["channels"], m["kernel_size"], max(1, m["channels"] // m["se_ratio"])
    block = conv1d(c, c, k, groups=c) + conv1d(c, c, 1) + 2 * c + linear(c, hidden) + linear(hidden, c)
    return layer_norm(in_dim) + conv1d(in_dim, c, 1) + m["n_blocks"] * block + linear(2 * c, n_tags)


def expected_openunmix(m: Mapping[str, Any]) -> int:
    h, n_freq = m["hidden_size"], m["n_fft"] // 2 + 1
    bins, u = (m["max_bin"] or n_freq), m["hidden_size"] // 2
    lstm = sum(2 * (4 * u * ((h if layer == 0 else 2 * u) + u) + 8 * u) for layer in range(m["n_layers"]))
    return (linear(bins, h, bias=False) + layer_norm(h) + lstm + linear(2 * h, h, bias=False) + layer_norm(h)
            + linear(h, 4 * n_freq))


def expected_conformer(c: Mapping[str, Any]) -> int:
    d, e, k = c["dim"], c.get("conv_expansion", 2), c["kernel_size"]
    ff = layer_norm(d) + linear(d, int(round(d * c.get("ff_mult", 4.0)))) + linear(int(round(d * c.get("ff_mult", 4.0))), d)
    attn = layer_norm(d) + linear(d, 3 * d) + linear(d, d)
    conv = layer_norm(d) + linear(d, 2 * e * d) + conv1d(e * d, e * d, k, groups=e * d) + layer_norm(e * d) + linear(e * d, d)
    return linear(c["input_dim"], d) + c["n_layers"] * (2 * ff + attn + conv + layer_norm(d))


def expected_generative(p: Params, model: Mapping[str, Any]) -> tuple[int, int]:
    """Token tables (V + 1 rows: the delay pad), 5 type and 4 BOS embeddings, K heads, a LLaMA backbone
    (no biases, SwiGLU, RMSNorms) and the prefix encoder: a Conformer + Linear, the frozen BEST-RQ
    model + Linear, or none (the mixture's own tokens)."""
    d, k, v = model["dim"], model["n_codebooks"], p.section("baselines")["rvq"]["model"]["codebook_size"]
    i = int(round(d * model["mlp_ratio"]))
    llama = model["n_layers"] * (4 * d * d + 3 * d * i + 2 * d) + d
    total = k * (v + 1) * d + 5 * d + 4 * d + k * linear(d, v) + llama
    frozen = 0
    if model["encoder"] == "conformer":
        total += expected_conformer(model["conformer"]) + linear(model["conformer"]["dim"], d)
    elif model["encoder"] == "frozen_ssl":
        frozen = expected_bestrq(p)
        total += frozen + linear(p.section("pretrain")["model"]["dim"], d)
    return total, total - frozen


def feature_dims(p: Params, codec: str) -> list[int]:
    """Each stream's feature width: the bottleneck (stage 2's proj_in) or the encoder width."""
    spec = p.section("baselines")["tokenizers"][codec]
    return [p.section("finetune")["model"]["bottleneck_dim"] if layer == "bottleneck"
            else p.section("pretrain")["model"]["dim"] for layer in spec["layers"]]


def embed_width(p: Params, codec: str) -> int:
    """Width of ``codec.embed(ids)``: every stream's embedding, concatenated."""
    if codec == "duotok":
        return 2 * p.section("pretrain")["model"]["dim"]
    if codec == "rvq":
        return p.section("autoencoder")["model"]["latent_dim"]
    return sum(feature_dims(p, codec))


def codebooks(p: Params, codec: str) -> list[int]:
    b = p.section("baselines")
    if codec == "duotok":
        return list(p.section("quantize")["model"]["codebook_sizes"])
    if codec == "rvq":
        return [b["rvq"]["model"]["codebook_size"]] * b["rvq"]["model"]["n_codebooks"]
    return [b["codebook_size"]] * len(b["tokenizers"][codec]["streams"])


def variant_params(p: Params, name: str) -> Params:
    """An ablation variant's params: the budget, then its own finetune / quantize overrides."""
    a = p.section("ablation")
    v = a["variants"][name]
    return p.with_overrides({s: deep_merge(a["budget"].get(s) or {}, v.get(s) or {}) for s in ("finetune", "quantize")})


def expected_counts(name: str, p: Params) -> tuple[int, int]:
    """(total, trainable) of inventory model ``name`` from params.yaml's numbers alone."""
    ae = p.section("autoencoder")["model"]
    dec = p.section("decoder")["model"]
    dim = p.section("pretrain")["model"]["dim"]
    parts = name.split(".")
    if name == "pretrain":
        n = expected_bestrq(p)
    elif name == "finetune":
        n = expected_multitask(p)
    elif name in ("quantize", "quantize.collapse_demo"):
        return expected_dualtrack(p)
    elif name == "autoencoder":
        n = expected_autoencoder(ae)
    elif name == "decoder":
        n = expected_dit(dec, ae["latent_dim"], dim)
    elif name == "baseline.rvq":
        n = expected_autoencoder(ae, bottleneck="ae")   # + the RVQ: EMA codebooks are buffers, 0 parameters
    elif parts[0] == "baseline" and parts[2] == "codebooks":
        codec = parts[1]
        spec = p.section("baselines")["tokenizers"][codec]
        encoder = sum(encoder_parts(p.section("audio")["n_mels"], p.section("pretrain")["model"]))
        b = p.section("finetune")["model"]["bottleneck_dim"]
        proj = linear(dim, b) if "bottleneck" in spec["layers"] else 0
        simvq = sum(linear(w, w) for w in feature_dims(p, codec))
        return encoder + proj + simvq, simvq
    elif parts[0] == "baseline" and parts[2] == "decoder":
        n = expected_dit(dec, ae["latent_dim"], feature_dims(p, parts[1])[0])
    elif parts[0] == "lm":
        lm, codec = p.section("lm")["model"], parts[1]
        sizes = codebooks(p, codec)
        if len(parts) == 2:
            n = expected_lm(lm, sizes)
        else:   # protocol (ii): accompaniment codebook(s), optionally the vocal ones as condition
            acc, voc = sizes[1:], sizes[:1]
            n = expected_lm(lm, acc, voc if parts[2] == "given_vocals" else None)
    elif parts[0] == "probe":
        n = expected_probe(p.section("probe")["model"], embed_width(p, parts[1]), len(TAG_VOCABULARY))
    elif name == "separator.openunmix":
        n = expected_openunmix(p.section("separation")["discriminative"]["model"])
    elif parts[0] == "separator":
        g = p.section("separation")
        model = g["generative"]["model"]
        if parts[1] == "variant":
            model = deep_merge(model, g["variants"][parts[2]].get("model") or {})
        return expected_generative(p, model)
    elif parts[:2] == ["ablation", "leakage"]:
        attr = parts[2].removesuffix("_attributes")
        n = expected_probe(p.section("probe")["model"], dim, len(ATTRIBUTE_LABELS[attr]))
    elif parts[0] == "ablation":
        vp = variant_params(p, parts[1])
        if parts[2] == "finetune":
            n = expected_multitask(vp)
        else:
            routing = p.section("ablation")["variants"][parts[1]].get("routing", "dual")
            return expected_dualtrack(vp, shared=routing == "shared")
    else:
        raise AssertionError(f"no closed form for {name!r}: add one")
    return n, n


# --------------------------------------------------------------------------- the model list


def expected_names(p: Params) -> set[str]:
    """The trained networks the pipeline's sections declare, listed from params.yaml alone."""
    names = {"pretrain", "finetune", "quantize", "autoencoder", "decoder", "baseline.rvq", "separator.openunmix",
             "separator.generative", "ablation.leakage.vocal_attributes", "ablation.leakage.accompaniment_attributes"}
    if p.section("quantize")["report"]["collapse_demo_steps"] > 0:
        names.add("quantize.collapse_demo")
    for codec, spec in p.section("baselines")["tokenizers"].items():
        names.add(f"baseline.{codec}.decoder")
        if spec["quantizer"] == "simvq":
            names.add(f"baseline.{codec}.codebooks")
    lm = p.section("lm")
    names |= {f"lm.{c}" for c in lm["codecs"]}
    names |= {f"lm.{c}.{kind}" for c in lm["conditional"] for kind in ("accompaniment_only", "given_vocals")}
    names |= {f"probe.{c}" for c in p.section("probe")["codecs"]}
    names |= {f"separator.variant.{v}" for v in p.section("separation")["variants"]}
    for v, entry in p.section("ablation")["variants"].items():
        names.add(f"ablation.{v}.quantize")
        if entry["family"] == "reference" or entry.get("finetune"):
            names.add(f"ablation.{v}.finetune")
    return names


def dvc_stages() -> dict[str, list[str]]:
    """``{stage: [stage, stage@item or stage@v1-v2, ...]}`` of dvc.yaml (foreach and matrix stages
    expanded as DVC names them; the collecting ``pipeline`` stage by its own name)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: pipeline_stages({"stages": {name: stage}}) or [name] for name, stage in stages.items()}


@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_inventory_covers_the_pipeline(profile: str) -> None:
    p = params(profile)
    names = [s.name for s in specs(profile)]
    assert len(names) == len(set(names))
    assert set(names) == expected_names(p)
    assert not set(names) & set(NOT_GRADIENT_TRAINED)
    # Every DVC stage that trains a network trains one of the inventory's (as its own stage or as a
    # further use of the same config: replica seeds, ablation evaluations).
    covered = {s.stage for s in specs(profile)} | {use.split(" ")[0] for s in specs(profile) for use in s.also}
    stages = dvc_stages()
    unknown = set(stages) - set(NON_TRAINING_STAGES)
    training = [label for stage in unknown for label in stages[stage]]
    assert training, "dvc.yaml has no training stage?"
    missing = sorted(label for label in training if label not in covered)
    assert not missing, f"training stages without an inventory model: {missing}"


def test_codec_widths_match_real_codecs() -> None:
    """What the LM and probe specs read from a codec (sizes, rate, embedding width) equals what the real
    codec objects give, built at smoke size; the inventory can only read them from meta-built codecs
    and configs."""
    from duotok.codecs.base import stream_ids
    from duotok.codecs.duotok import DuoTokCodec
    from duotok.codecs.feature_tokenizer import FeatureTokenizer
    from duotok.scale.inventory import _duotok_config, _rvq_codec
    from duotok.tokenizer.model import DuoTok
    from duotok.train.baselines import feature_config

    p = params("smoke")
    shapes = codec_shapes(p)
    real = {"duotok": DuoTokCodec(DuoTok(_duotok_config(p))), "rvq": _rvq_codec(p).eval()}
    real |= {name: FeatureTokenizer(feature_config(name, p)[0]) for name in p.section("baselines")["tokenizers"]}
    for name, codec in real.items():
        ids = torch.zeros((len(codec.codebook_sizes), 7), dtype=torch.long)
        shape = shapes[name]
        assert shape.codebook_sizes == tuple(codec.codebook_sizes) == tuple(codebooks(p, name)), name
        assert shape.frame_rate == codec.frame_rate
        assert shape.embed_width == codec.embed(ids).shape[-1] == embed_width(p, name), name
        first = next(iter(codec.streams))
        assert shape.stream_width == codec.embed_stream(stream_ids(codec, ids, first), first).shape[-1], name


# --------------------------------------------------------------------------- smoke: count and step everything


def test_smoke_models_count_and_step() -> None:
    """Every smoke model, built for real (with the stage's pre-training preparation), has the closed-form
    parameter count and takes one AdamW step: finite loss, every tensor with a gradient changed."""
    p = params("smoke")
    failures = []
    for spec in specs("smoke"):
        torch.manual_seed(0)
        entry = build_entry(spec)
        assert count_parameters(entry.model) == expected_counts(spec.name, p), spec.name
        result = optimizer_step(entry.model, entry.example_batch_fn(), entry.loss_fn, spec.optim)
        if not (math.isfinite(result["loss"]) and result["changed_tensors"] > 0 and not result["unchanged_with_grad"]):
            failures.append((spec.name, result))
    assert not failures, failures


def test_synthetic_crop_has_every_target() -> None:
    item = synthetic_crop(1.0, 16000)
    assert item["stems"].shape == (4, 16000) and torch.allclose(item["stems"].sum(0), item["mixture"])
    assert item["meta"]["lyrics"]["syllables"] and all(item["meta"]["notes"].values())


# --------------------------------------------------------------------------- paper: sizes


@pytest.fixture(scope="module")
def paper_meta() -> dict[str, tuple[Any, tuple[int, int]]]:
    """Every paper model built on the ``meta`` device (shapes only): ``{name: (model, (total, trainable))}``."""
    out = {}
    for spec in specs("paper"):
        model = build_entry(spec, device="meta").model
        out[spec.name] = (model, count_parameters(model))
    return out


def test_paper_parameter_counts(paper_meta: dict[str, tuple[Any, tuple[int, int]]]) -> None:
    p = params("paper")
    wrong = {name: (got, expected_counts(name, p)) for name, (_, got) in paper_meta.items()
             if got != expected_counts(name, p)}
    assert not wrong, wrong


def test_paper_headline_sizes(paper_meta: dict[str, tuple[Any, tuple[int, int]]]) -> None:
    """The published sizes, read off the built models (not the params)."""
    pretrain = paper_meta["pretrain"][0]
    assert len(pretrain.encoder.lower.blocks) + len(pretrain.encoder.upper.blocks) == 24
    assert pretrain.encoder.lower.dim == 1024 and pretrain.encoder.config.n_heads == 16
    quantize = paper_meta["quantize"][0]
    assert quantize.quantizer.codebook_sizes == (32768, 32768)
    for branch in quantize.quantizer.branches:
        assert tuple(branch.vq.base_codebook.shape) == (32768, 128)
    assert quantize.quantizer.bits_per_second(25.0) == pytest.approx(750.0)
    # the encoder of every stage is the same 24 x 1024 stack (stage 3: 12 frozen + 12 trained blocks)
    lower, upper = encoder_parts(params("paper").section("audio")["n_mels"], params("paper").section("pretrain")["model"])
    assert paper_meta["quantize"][1][0] - paper_meta["quantize"][1][1] == lower
    assert upper == 12 * transformer_block(1024, 4.0) + layer_norm(1024)
    dit = paper_meta["decoder"][0]
    assert len(dit.blocks) == 16 and dit.config.dim == 1024 and dit.config.cond_dim == 1024
    lm = paper_meta["lm.duotok"][0]
    assert lm.config.n_layers == 10 and lm.config.dim == 768 and lm.config.codebook_sizes == (32768, 32768)
    gen = paper_meta["separator.generative"][0]
    assert gen.config.n_layers == 12 and gen.config.dim == 512
    assert gen.config.conformer.n_layers == 6 and gen.config.conformer.dim == 512
    assert paper_meta["separator.openunmix"][0].config.hidden_size == 512
    assert paper_meta["autoencoder"][0].config.latent_dim == 64
    # the largest models stay in the 300-360 M range the paper's sizes imply
    assert 300e6 < paper_meta["finetune"][1][0] < 340e6


# --------------------------------------------------------------------------- paper: one real step each


def _paper_step_names() -> list[str]:
    mode = os.environ.get("DUOTOK_SCALE_STEPS", "quick")
    sets = {"none": (), "quick": QUICK_PAPER_STEPS, "core": CORE_PAPER_STEPS}
    if mode == "all":
        return [s.name for s in specs("paper")]
    if mode not in sets:
        raise ValueError(f"DUOTOK_SCALE_STEPS must be one of {[*sets, 'all']}, got {mode!r}")
    return list(sets[mode])


def test_step_sets_cover_every_class(paper_meta: dict[str, tuple[Any, tuple[int, int]]]) -> None:
    """The default set steps one model of every class the paper profile builds except the three large
    end-to-end ones (in ``core``); ``core`` covers every class."""
    classes = {type(model).__name__ for model, _ in paper_meta.values()}
    quick = {type(paper_meta[name][0]).__name__ for name in QUICK_PAPER_STEPS}
    core = {type(paper_meta[name][0]).__name__ for name in CORE_PAPER_STEPS}
    assert classes - quick == {type(paper_meta[name][0]).__name__ for name in LARGE_PAPER_STEPS}
    assert core == classes


@pytest.mark.parametrize("name", _paper_step_names())
def test_paper_optimizer_step(name: str, record_property: Any) -> None:
    """One AdamW step of the full-size paper model on a ~1 s input, in its own forked process (peak
    memory is that process's ``ru_maxrss``). Printed (``-s``) and recorded (junit ``record_property``)."""
    (report,) = check_many([name], "paper", threads=1, timeout=900)
    for key in ("total_params", "trainable_params", "loss", "step_seconds", "build_seconds", "peak_rss_mb",
                "baseline_rss_mb", "precision"):
        record_property(key, getattr(report, key))
    print("\n" + markdown_table([report]))
    assert report.error is None, report.error
    assert report.loss_finite, report.loss
    assert report.changed_tensors > 0 and not report.unchanged_with_grad, report.unchanged_with_grad
    assert (report.total_params, report.trainable_params) == expected_counts(name, params("paper"))
    assert report.peak_rss_mb is not None and report.peak_rss_mb < MAX_PEAK_MIB
