"""The ``duotok`` command. Sub-commands mirror the package: ``data`` (corpus), ``train`` (stages
1-3), ``encode`` / ``info`` / ``bench`` (the tokenizer), ``notebook`` (pipeline stages), ``timing`` (the
stages' wall times), ``params`` (effective configuration)."""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from pathlib import Path

from duotok.config import PROFILES, active_profile, load_params, stage_params
from duotok.paths import resolve


def _synth_config(args: argparse.Namespace) -> tuple[dict, Path]:
    cfg = stage_params("synth", args.profile)
    if getattr(args, "n_songs", None):
        cfg["n_songs"] = args.n_songs
    out = resolve(args.out or cfg["out_dir"])
    return cfg, out


def cmd_data_synth(args: argparse.Namespace) -> int:
    from duotok.data.synth.generate import generate_corpus

    cfg, out = _synth_config(args)
    m = generate_corpus(cfg, out, workers=args.workers)
    print(f"duosynth: wrote {len(m['songs'])} songs ({m['total_seconds'] / 3600:.2f} h) to {out} "
          f"in {m['_elapsed_seconds']:.0f} s")
    return 0


def cmd_data_ensure(args: argparse.Namespace) -> int:
    from duotok.data.synth.ensure import ensure_corpus

    cfg, out = _synth_config(args)
    _, message = ensure_corpus(cfg, out, workers=args.workers, force=args.force)
    print(f"duosynth: {message}")
    return 0


def cmd_data_catalog(args: argparse.Namespace) -> int:
    from duotok.data.synth.catalog import CATALOG_PATH, write_catalog

    entries = write_catalog()
    print(f"catalogued {len(entries)} works into {CATALOG_PATH}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    path = resolve(args.path) / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    print(f"{path.parent}: {m['format']} v{m['version']}, {len(m['songs'])} songs, "
          f"{m['total_seconds'] / 3600:.2f} h at {m['sample_rate']} Hz")
    for split, d in sorted(m["splits"].items()):
        print(f"  {split:6s} {d['songs']:4d} songs {d['seconds'] / 60:7.1f} min")
    return 0


def _parse_notebook_params(pairs: list[list[str]] | None) -> dict:
    import yaml

    params = {}
    for key, value in pairs or []:
        params[key] = yaml.safe_load(value)  # "3" -> 3, "true" -> True, "smoke" -> "smoke"
    return params


#: Optional packages that papermill's imports load for nothing. jsonschema (nbformat validates notebooks with
#: it) imports ``rfc3987_syntax`` to check the "iri" string format, and that package compiles ~35 Lark grammars
#: at import: 3.0 s of the 4.2 s that papermill + nbformat + jupytext take to import on a 2-core EPYC, paid by
#: every notebook stage (≈ 2.5 min per smoke pipeline there). No notebook schema uses that format, and jsonschema skips
#: the checker when the import fails (python-jsonschema/jsonschema#1428 reports the same cost under papermill).
UNUSED_SLOW_IMPORTS = ("rfc3987_syntax",)


def skip_unused_slow_imports() -> None:
    """Make ``import rfc3987_syntax`` & co. fail fast in this process (a ``None`` entry in ``sys.modules``)
    unless something imported them already. Why here: it changes the whole process's imports, which is the
    entry point's business, not a library function's (a user calling ``run_notebook`` keeps the package)."""
    for name in UNUSED_SLOW_IMPORTS:
        sys.modules.setdefault(name, None)


def cmd_notebook_run(args: argparse.Namespace) -> int:
    import logging

    skip_unused_slow_imports()
    from duotok.notebooks import run_notebook

    # papermill logs each cell's output as it arrives: training progress shows up under `dvc repro`
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = _parse_notebook_params(args.param)
    out = run_notebook(args.name, params, output=args.output, progress=sys.stderr.isatty(), log_output=True,
                       stage=args.stage)
    print(f"executed {args.name} -> {out}")
    return 0


def cmd_notebook_sync(args: argparse.Namespace) -> int:
    from duotok.notebooks import sync_notebook_pair
    from duotok.paths import project_root

    names = args.names or sorted(p.stem for p in (project_root() / "notebooks").glob("*.py"))
    for name in names:
        print(f"wrote {sync_notebook_pair(name)}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    import yaml

    params = load_params()
    profile = args.profile or active_profile(params)
    sections = [args.section] if args.section else [k for k, v in params.items() if isinstance(v, dict)]
    resolved = {s: stage_params(s, profile, params) for s in sections}
    print(f"# profile: {profile}")
    print(yaml.safe_dump(resolved, sort_keys=False))
    return 0


#: ``duotok train STAGE``: each runner is ``duotok.train.STAGE.main`` (also ``python -m`` / torchrun-able);
#: ``RUNNER_MODULES`` names the ones that live elsewhere.
TRAIN_STAGES = {
    "pretrain": "stage 1: BEST-RQ pre-training",
    "finetune": "stage 2: multi-task fine-tuning",
    "quantize": "stage 3: dual-codebook SimVQ",
    "autoencoder": "stage 4a: the audio autoencoder",
    "decoder": "stage 4b: the diffusion decoder",
    "baselines": "the Table-2 baselines (--codec rvq|mixture_vq|mucodec|kmeans)",
    "ablation": "one ablation variant of stages 2-3 (--variant NAME from params.yaml: ablation.variants)",
    "replica": "every codec's tokenizer again under another training seed (--part duotok|baselines|tokens --seed S)",
    "separation": "issue 19: a separator (--system openunmix|generative|variant:NAME)",
}
RUNNER_MODULES = {"ablation": "duotok.ablations.train"}


def cmd_tokens(args: argparse.Namespace) -> int:
    """Tokenize the whole corpus with one codec of the comparison (the LM and probe read it)."""
    from duotok.codecs.registry import load_codec
    from duotok.config import Params
    from duotok.eval.corpus_tokens import encode_corpus, save_corpus_tokens
    from duotok.timing import timed_stage

    params = Params.load(args.profile)          # read once, handed to everything below
    with timed_stage(args.stage, profile=params.profile):
        p = params.section("tokens")
        codec = load_codec(args.codec, params)
        tokens = encode_corpus(codec, resolve(args.data_dir or p["root"]), tuple(p["splits"]), p["source"])
        out = save_corpus_tokens(tokens, resolve(args.output or f"{p['out_dir']}/{args.codec}.pt"))
    n = sum(s["ids"].shape[-1] for s in tokens["songs"])
    print(f"{codec.name}: {len(tokens['songs'])} songs, {n} frames at {tokens['frame_rate']:g} Hz → {out}")
    return 0


def cmd_timing(args: argparse.Namespace) -> int:
    """``duotok timing collect``: every stage's timing record into reports/metrics/pipeline.json + a table."""
    from duotok.reporting.pipeline import THROUGH_STAGE, collect_pipeline, format_duration, write_pipeline

    summary = collect_pipeline()
    json_path, table_path = write_pipeline(summary, resolve(args.output), resolve(args.table))
    print(f"{len(summary['stages'])} stages, {format_duration(summary['wall_seconds_total'])} of wall time "
          f"({format_duration(summary['wall_seconds_through_report'])} through {THROUGH_STAGE}) -> {json_path}, "
          f"{table_path}")
    if summary["missing"]:
        print(f"duotok: warning: no timing record for {len(summary['missing'])} stage(s): "
              f"{', '.join(summary['missing'])}", file=sys.stderr)
    if summary["shared_cpu_stages"]:
        print(f"other work shared the CPU during: {', '.join(summary['shared_cpu_stages'])}")
    return 0


def _add_stage_option(parser: argparse.ArgumentParser) -> None:
    """``--stage NAME``: a dvc.yaml stage's command names its stage, so the run records its wall time, machine
    and CPU sharing in reports/metrics/timing/NAME.json (duotok/timing.py)."""
    parser.add_argument("--stage", help="time the run as this dvc.yaml stage (foreach items: NAME@ITEM) into "
                                        "reports/metrics/timing/STAGE.json")


def cmd_train(args: argparse.Namespace) -> int:
    import importlib

    module = RUNNER_MODULES.get(args.train_command, f"duotok.train.{args.train_command}")
    return importlib.import_module(module).main(args.args)


#: Where ``--model`` points when it is not given: resolved against the project root (``$DUOTOK_ROOT``),
#: so the trained models are found from any folder. A path the user types is relative to the current folder.
DEFAULT_TOKENIZER = "models/duotok"
DEFAULT_CODEC = "models/codec"


def _model_dir(given: str | None, default: str) -> Path:
    return Path(given).expanduser() if given is not None else resolve(default)


def _load_tokenizer(given: str | None, default: str = DEFAULT_TOKENIZER):
    from duotok.tokenizer import DuoTok

    directory = _model_dir(given, default)
    if not (directory / "config.json").is_file():
        where = os.path.abspath(directory)
        what = "no such folder" if not directory.exists() else "not a folder" if not directory.is_dir() else \
            "no tokenizer here (no config.json)"
        hint = (f"`make repro` trains one into {default}" if given is None else
                f"--model is relative to the current folder {os.getcwd()}; `make repro` trains one into "
                f"{resolve(default)}")
        raise FileNotFoundError(f"{where}: {what}; {hint} (or pass --model DIR)")
    return DuoTok.from_pretrained(directory)


def _user_errors(func):
    """An OS error of a tokenizer command (a read-only folder, a full disk, ...) is reported as
    ``duotok: error: <file>: <reason>``, not a traceback."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not exc.filename:
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            raise RuntimeError(f"{where}{exc.strerror or exc}") from exc

    return wrapper


@_user_errors
def cmd_data_musdb_hq(args: argparse.Namespace) -> int:
    from duotok.data.datasets import convert_stem_mp4_to_hq

    report = convert_stem_mp4_to_hq(args.source, args.output, overwrite=args.overwrite)
    print(f"MUSDB18-HQ layout in {args.output}: {len(report.written)} track(s) written, {len(report.kept)} already "
          "complete (kept)")
    return 0


def _report_batch(report, kind: str, n_jobs: int) -> int:
    """Print what an encode / decode job did; exit code 1 if any input failed."""
    from duotok.tokenizer.batch import print_report

    if kind == "encode":
        return print_report(report, n_jobs, "encoded", lambda path: f"wrote {path}")
    return print_report(report, n_jobs, "decoded", lambda path: f"wrote {path}/{{vocal,accompaniment,mixture}}.wav")


def _prepare(plan, overwrite: bool) -> None:
    """Report renamed outputs, delete stale temp files and check the output folder (before the model loads)."""
    from duotok.tokenizer.batch import prepare_output

    for src, dst in plan.renamed.items():
        print(f"renamed: {src} -> {dst} (another input in {src.parent} has the same stem {src.stem!r})")
    removed = prepare_output(plan, overwrite)
    if removed:
        print(f"removed {len(removed)} stale temporary file(s) of an interrupted run from {plan.output_dir}")


@_user_errors
def cmd_encode(args: argparse.Namespace) -> int:
    from duotok.tokenizer.batch import plan_encode, run_encode

    plan = plan_encode(args.input, args.output)
    _prepare(plan, args.overwrite)
    if args.threads:
        torch_threads(args.threads)
    model = _load_tokenizer(args.model, DEFAULT_TOKENIZER)
    report = run_encode(model, plan, overwrite=args.overwrite, progress=sys.stderr.isatty())
    return _report_batch(report, "encode", len(plan.jobs))


@_user_errors
def cmd_decode(args: argparse.Namespace) -> int:
    from duotok.tokenizer.batch import plan_decode, run_decode

    plan = plan_decode(args.input, args.output)
    _prepare(plan, args.overwrite)
    if args.threads:
        torch_threads(args.threads)
    model = _load_tokenizer(args.model, DEFAULT_CODEC)
    report = run_decode(model, plan, overwrite=args.overwrite, progress=sys.stderr.isatty(),
                        steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed, time_shift=args.time_shift,
                        precision=args.precision)
    return _report_batch(report, "decode", len(plan.jobs))


@_user_errors
def cmd_info(args: argparse.Namespace) -> int:
    from duotok.tokenizer.tokens import load_tokens

    path = Path(args.path)
    if path.is_dir():
        model = _load_tokenizer(args.path)
        q = model.config.quantizer
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{path}: DuoTok, {n_params / 1e6:.1f} M parameters; encoder d={q.encoder.dim}, "
              f"{q.encoder.n_lower}+{q.encoder.n_upper} blocks; codebooks {tuple(q.codebook_sizes)} at "
              f"{model.frame_rate:g} Hz = {model.quantizer.quantizer.bits_per_second(model.frame_rate):.0f} bit/s; "
              f"fingerprints {model.fingerprints()}")
        if model.decoder is not None:
            d = model.decoder.config
            print(f"  decoder: DiT d={d.dit.dim} x {d.dit.n_layers} layers -> {d.autoencoder.latent_dim}-dim latents "
                  f"at {model.decoder.autoencoder.latent_rate:g} Hz; {d.steps} Euler steps, cfg {d.cfg_scale}")
        else:
            print("  no decoder (encode only)")
        return 0
    tokens = load_tokens(path)      # validates the header exactly as `duotok decode` does
    header = tokens.header()
    print(f"{path}: {tokens.n_frames} frames per track ({tokens.seconds:.2f} s at {tokens.frame_rate:g} Hz), "
          f"mode {tokens.mode}, source {tokens.source or '?'}")
    print(json.dumps({k: header[k] for k in ("format", "version", "sample_rate", "codebook_sizes", "fingerprints",
                                             "num_samples")}, indent=1))
    for key in ("vocal", "accompaniment"):
        ids = getattr(tokens, key)
        print(f"  {key:13s} {len(set(ids.tolist())):5d} distinct ids; first: {' '.join(map(str, ids[:12]))}")
    return 0


@_user_errors
def cmd_bench_encode(args: argparse.Namespace) -> int:
    from duotok.audio.io import load_audio
    from duotok.tokenizer.bench import bench_encode, stand_in_signal

    if args.threads:
        torch_threads(args.threads)
    model = _load_tokenizer(args.model, DEFAULT_TOKENIZER)
    if args.input:
        import torch

        audio = torch.from_numpy(load_audio(args.input, model.sample_rate, on_rate_mismatch="resample",
                                            on_multichannel="downmix"))
    else:
        audio = stand_in_signal(args.seconds, model.sample_rate)
    result = bench_encode(model, audio, repeats=args.repeats)
    print(f"encode: {result['audio_seconds']:.1f} s of audio in {result['best_seconds']:.2f} s (best of "
          f"{result['repeats']}) -> real-time factor {result['rtf_best']:.3f} ({1 / result['rtf_best']:.1f}x real "
          f"time) on {result['threads']} thread(s); peak memory {result['peak_rss_mib']:.0f} MiB")
    print(json.dumps(result))
    return 0


@_user_errors
def cmd_bench_decode(args: argparse.Namespace) -> int:
    from duotok.tokenizer.bench import bench_decode

    if args.threads:
        torch_threads(args.threads)
    model = _load_tokenizer(args.model, DEFAULT_CODEC)
    n_tokens = max(1, int(round(args.seconds * model.frame_rate)))
    result = bench_decode(model, n_tokens, steps=args.steps, cfg_scale=args.cfg_scale, repeats=args.repeats,
                          time_shift=args.time_shift, precision=args.precision)
    print(f"decode: {result['audio_seconds']:.1f} s of audio (2 tracks) in {result['best_seconds']:.2f} s (best of "
          f"{result['repeats']}; {result['steps']} steps, time shift {result['time_shift']:g}, cfg "
          f"{result['cfg_scale']}, DiT in {result['precision_used']}) -> real-time factor "
          f"{result['rtf_best']:.3f} on {result['threads']} thread(s); peak memory {result['peak_rss_mib']:.0f} MiB")
    print(json.dumps(result))
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from duotok.train.bench import bench_train, format_report

    if args.threads:
        torch_threads(args.threads)
    result = bench_train(args.stage, args.profile or active_profile(), precisions=args.precisions,
                         steps=args.steps, warmup=args.warmup, batch_size=args.batch_size, device=args.device)
    print(format_report(result))
    print(json.dumps(result))
    return 0


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def cmd_deps(args: argparse.Namespace) -> int:
    from duotok import stage_deps

    if args.deps_command == "sync":
        changed = stage_deps.sync()
        print(f"dvc.yaml: rewrote the code deps of {len(changed)} stage(s)" + (f": {', '.join(changed)}"
                                                                              if changed else ""))
        return 0
    drifts = stage_deps.check()
    for drift in drifts:
        print(drift.describe())
    print(f"dvc.yaml: {len(drifts)} stage(s) whose code deps differ from what their notebooks import"
          + ("; run `duotok deps sync`" if drifts else ""))
    return 1 if drifts else 0


def cmd_explore(args: argparse.Namespace) -> int:
    from duotok.workspace import prepare, run_pipeline

    workspace = prepare(args.profile, Path(args.dir).expanduser() if args.dir else None)
    print(f"exploration workspace for profile {args.profile}: {workspace} (this checkout's params.yaml, "
          "dvc.lock, data/ and reports/ are not touched)")
    if args.no_run:
        print(f"run it with: cd {workspace} && make repro")
        return 0
    code = run_pipeline(workspace)
    print(f"results: {workspace / 'reports'}" if code == 0 else f"the pipeline in {workspace} failed (exit {code})")
    return code


def cmd_profile(args: argparse.Namespace) -> int:
    from duotok.config import set_active_profile

    if args.name is None:
        print(active_profile())
        return 0
    changed = set_active_profile(args.name)
    print(f"profile: {args.name}" + ("" if changed else " (unchanged)"))
    return 0


def _number_type(kind: type, minimum: float, what: str, exclusive: bool = False):
    """An argparse ``type=``: a finite ``kind`` (int / float) >= ``minimum`` (> if ``exclusive``); the
    message argparse prints names the option."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what           # argparse shows it in "invalid <name> value" messages
    return parse


POSITIVE_INT = _number_type(int, 1, "an integer >= 1")
NON_NEGATIVE_INT = _number_type(int, 0, "an integer >= 0")
NON_NEGATIVE_FLOAT = _number_type(float, 0.0, "a finite number >= 0")
POSITIVE_FLOAT = _number_type(float, 0.0, "a finite number > 0", exclusive=True)

#: ``duotok.train.precision.PRECISIONS``, spelt out so building the parser does not import torch
#: (``tests/test_cli.py`` checks the two agree).
SAMPLING_PRECISIONS = ("auto", "bf16", "fp32")


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    """The decoder's grid and precision options, shared by ``decode`` and ``bench decode``."""
    p.add_argument("--time-shift", type=POSITIVE_FLOAT,
                   help="Euler time grid: 1 uniform, > 1 finer near the noise end (default: the codec's)")
    p.add_argument("--precision", choices=SAMPLING_PRECISIONS,
                   help="the DiT's sampling precision; auto = bf16 only where the CPU/GPU computes it "
                        "natively (default: the codec's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duotok", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="the duosynth corpus and real datasets").add_subparsers(dest="data_command", required=True)
    for name, func, help_ in (("synth", cmd_data_synth, "generate the corpus (always)"),
                              ("ensure", cmd_data_ensure, "generate the corpus unless data/ is current")):
        p = data.add_parser(name, help=help_)
        p.add_argument("--profile", choices=PROFILES, help="default: params.yaml's profile")
        p.add_argument("--out", help="output folder (default: synth.out_dir)")
        p.add_argument("--workers", type=int, help="parallel processes (default: synth.workers)")
        p.add_argument("--n-songs", type=int, help="override synth.n_songs")
        if name == "ensure":
            p.add_argument("--force", action="store_true", help="regenerate even if current")
        p.set_defaults(func=func)
    p = data.add_parser("catalog", help="rescan music21's corpus for usable scores")
    p.set_defaults(func=cmd_data_catalog)
    p = data.add_parser("musdb-hq", help="convert MUSDB18 (.stem.mp4, via ffmpeg) to the MUSDB18-HQ wav layout "
                                         "every stage reads")
    p.add_argument("source", help="MUSDB18 root holding train/ and test/ with <track>.stem.mp4")
    p.add_argument("output", help="where to write {train,test}/<track>/{mixture,vocals,drums,bass,other}.wav")
    p.add_argument("--overwrite", action="store_true", help="rewrite tracks that are already complete")
    p.set_defaults(func=cmd_data_musdb_hq)
    p = data.add_parser("info", help="summarise a corpus folder")
    p.add_argument("path", nargs="?", default="data")
    p.set_defaults(func=cmd_data_info)

    nb = sub.add_parser("notebook", help="pipeline notebooks").add_subparsers(dest="nb_command", required=True)
    p = nb.add_parser("run", help="execute notebooks/NAME.py with papermill into reports/notebooks/")
    p.add_argument("name")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"))
    p.add_argument("--output", help="executed notebook path (default reports/notebooks/NAME.ipynb)")
    _add_stage_option(p)
    p.set_defaults(func=cmd_notebook_run)
    p = nb.add_parser("sync", help="rewrite the output-free .ipynb twins of notebooks/*.py")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=cmd_notebook_sync)

    train = sub.add_parser("train", help="training stages").add_subparsers(dest="train_command", required=True)
    for stage, help_ in TRAIN_STAGES.items():
        module = RUNNER_MODULES.get(stage, f"duotok.train.{stage}")
        p = train.add_parser(stage, help=f"{help_} (see {module})", add_help=False)
        p.add_argument("args", nargs=argparse.REMAINDER)
        p.set_defaults(func=cmd_train)

    p = sub.add_parser("tokens", help="tokenize the corpus with one codec of the comparison (LM / probe input)")
    p.add_argument("--codec", required=True, help="duotok | rvq | mixture_vq | mucodec | kmeans")
    p.add_argument("--profile", choices=PROFILES)
    p.add_argument("--data-dir", help="corpus folder (default: tokens.root)")
    p.add_argument("-o", "--output", help="output file (default: tokens.out_dir/CODEC.pt)")
    _add_stage_option(p)
    p.set_defaults(func=cmd_tokens)

    timing = sub.add_parser("timing", help="the pipeline's stage times").add_subparsers(dest="timing_command",
                                                                                       required=True)
    p = timing.add_parser("collect", help="gather reports/metrics/timing/*.json in dvc.yaml's stage order into "
                                          "reports/metrics/pipeline.json and a Markdown table")
    p.add_argument("--output", default="reports/metrics/pipeline.json")
    p.add_argument("--table", default="reports/tables/pipeline.md")
    p.set_defaults(func=cmd_timing)

    model_help = ("checkpoint folder; a path you type is relative to the current folder (default: {} "
                  "of the project, found from anywhere)")
    p = sub.add_parser("encode", help="tokenize a song (or every audio file in a folder) into .tok files")
    p.add_argument("input", help="audio file (any rate, mono or stereo) or folder (hidden files are skipped)")
    p.add_argument("-o", "--output", help="output .tok file, or folder for folder input (default: input.tok); "
                                          "inputs of one folder sharing a stem get <stem><ext>.tok")
    p.add_argument("--model", help=model_help.format(DEFAULT_TOKENIZER))
    p.add_argument("--overwrite", action="store_true", help="re-encode even if the output exists")
    p.add_argument("--threads", type=POSITIVE_INT, help="torch CPU threads")
    p.set_defaults(func=cmd_encode)

    from duotok.separation.cli import add_separate_parser  # torch-free import: --help stays fast

    add_separate_parser(sub)

    from duotok.eval.domain_gap import add_domain_gap_parser  # torch-free import: --help stays fast

    add_domain_gap_parser(sub)

    p = sub.add_parser("decode", help="render .tok files back to audio: vocal, accompaniment and mixture WAVs")
    p.add_argument("input", help=".tok file or folder of them (hidden files are skipped)")
    p.add_argument("-o", "--output", required=True, help="output folder; a song goes to OUT/<name>/{vocal,"
                                                          "accompaniment,mixture}.wav")
    p.add_argument("--model", help=model_help.format(DEFAULT_CODEC) + "; must include the decoder")
    p.add_argument("--steps", type=POSITIVE_INT, help="Euler steps (default: the codec's, params decoder.sampling)")
    p.add_argument("--cfg-scale", type=NON_NEGATIVE_FLOAT,
                   help="classifier-free guidance scale, finite and >= 0 (default: the codec's)")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, help="sampling seed (default: the codec's)")
    _add_sampling_options(p)
    p.add_argument("--overwrite", action="store_true", help="re-decode even if the outputs exist")
    p.add_argument("--threads", type=POSITIVE_INT, help="torch CPU threads")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("info", help="describe a .tok file or a DuoTok checkpoint folder")
    p.add_argument("path", help=".tok file or checkpoint folder (relative to the current folder)")
    p.set_defaults(func=cmd_info)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_command", required=True)
    p = bench.add_parser("encode", help="real-time factor and peak memory of `duotok encode` here")
    p.add_argument("--model", help=model_help.format(DEFAULT_TOKENIZER))
    p.add_argument("--input", help="audio file to encode (default: a synthetic stand-in)")
    p.add_argument("--seconds", type=POSITIVE_FLOAT, default=60.0, help="length of the stand-in signal")
    p.add_argument("--repeats", type=POSITIVE_INT, default=3)
    p.add_argument("--threads", type=POSITIVE_INT, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=cmd_bench_encode)
    p = bench.add_parser("decode", help="real-time factor of `duotok decode` here (both tracks)")
    p.add_argument("--model", help=model_help.format(DEFAULT_CODEC))
    p.add_argument("--seconds", type=POSITIVE_FLOAT, default=30.0, help="audio length to decode")
    p.add_argument("--steps", type=POSITIVE_INT)
    p.add_argument("--cfg-scale", type=NON_NEGATIVE_FLOAT)
    _add_sampling_options(p)
    p.add_argument("--repeats", type=POSITIVE_INT, default=3)
    p.add_argument("--threads", type=POSITIVE_INT, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=cmd_bench_decode)

    p = bench.add_parser("train", help="seconds per training step in fp32 and bf16 here, and what "
                                       "train.precision: auto picks (and why)")
    p.add_argument("--stage", default="pretrain", choices=("pretrain", "lm"),
                   help="whose model to time (default: pretrain, the encoder of stages 1-3)")
    p.add_argument("--profile", choices=PROFILES, help="model and batch size (default: params.yaml's profile)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    p.add_argument("--steps", type=int, default=5, help="timed steps per precision (the median is reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--batch-size", type=int, help="default: the stage's train.batch_size")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=cmd_bench_train)

    deps = sub.add_parser("deps", help="dvc.yaml's code deps, generated from what each stage's notebook imports")
    deps_sub = deps.add_subparsers(dest="deps_command", required=True)
    deps_sub.add_parser("check", help="list stages whose duotok deps differ from their imports (exit 1 if any)"
                        ).set_defaults(func=cmd_deps)
    deps_sub.add_parser("sync", help="rewrite the duotok deps of every notebook stage in dvc.yaml"
                        ).set_defaults(func=cmd_deps)

    p = sub.add_parser("explore", help="run the pipeline on another profile in a copy of the project "
                                       "(.explore/PROFILE), leaving this checkout's results untouched")
    p.add_argument("profile", choices=PROFILES)
    p.add_argument("--dir", help="where the copy goes (default: .explore/PROFILE, git-ignored)")
    p.add_argument("--no-run", action="store_true", help="only prepare the copy")
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("profile", help="show or set params.yaml's active profile")
    p.add_argument("name", nargs="?", choices=PROFILES)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("params", help="print the effective parameters of a profile")
    p.add_argument("section", nargs="?")
    p.add_argument("--profile", choices=PROFILES)
    p.set_defaults(func=cmd_params)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Training runners own their options (they also run under torchrun as `python -m ...`), so
    # everything after `duotok train STAGE` is handed to them unparsed.
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":
        args.args = extra + list(args.args)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"duotok: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
