"""Stage-1 recipe grid on the GPU machine (issue 18): each stage-1 variant's feature health, and stage 2
(the queued 0012 recipe) from some of them, judged on validation. Not part of the project: a one-off driver.

    python grid.py orchestrate DATA WORK OUT [BUDGET_S]
    python grid.py job s1|s2 NAME STEPS DATA WORK [INIT] [-- overrides]"""
import json, os, subprocess, sys, time
from pathlib import Path

def job(kind, name, steps, data, work, init, overrides):
    import torch
    from duotok.config import Params, deep_merge
    from duotok.train import quick
    layers = {}
    for text in overrides:
        layers = deep_merge(layers, quick.parse_override(text))
    sec = "pretrain" if kind == "s1" else "finetune"
    layers = deep_merge({sec: {"train": {"num_workers": 3, "threads": 2}}}, layers)
    params = Params.load("default").with_overrides(layers)
    out = Path(work) / name
    t0 = time.time()
    if kind == "s1":
        from duotok.train import pretrain
        pretrain.run(params, out, data, steps=steps)
        t1 = time.time()
        row = quick.health({"pretrain": out / "model"}, Path(data), params, "valid")
    else:
        from duotok.train import finetune
        finetune.run(params, out, data, init=init, steps=steps)
        t1 = time.time()
        row = quick.health({"finetune": out / "model"}, Path(data), params, "valid")
        row["s2/valid_lyrics_ctc"] = quick.last_logged(out / "valid_log.csv", "lyrics_loss")
        row["s2/valid_mel"] = quick.last_logged(out / "valid_log.csv", "mel_loss")
    row.update(name=name, kind=kind, steps=steps, init=str(init or ""), overrides=" ".join(overrides),
               train_s=round(t1 - t0, 1), eval_s=round(time.time() - t1, 1), gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    (out / "row.json").write_text(json.dumps(row))
    print("ROW", json.dumps(row), flush=True)

# name, kind, steps, depends-on (stage-1 name), overrides
PLAN = [
    ("s1_base", "s1", 1200, None, []),
    ("s1_lr2e-4", "s1", 1200, None, ["pretrain.train.lr=2.0e-4"]),
    ("s1_long6000", "s1", 6000, None, ["pretrain.train.eval_every=1000", "pretrain.train.save_every=1000"]),
    ("s1_untrained", "s1", 1, None, []),
    ("s1_cb1024", "s1", 1200, None, ["pretrain.bestrq.codebook_size=1024"]),
    ("s2_on_untrained", "s2", 1200, "s1_untrained", []),
    ("s2_on_base", "s2", 1200, "s1_base", []),
    ("s2_on_lr2e-4", "s2", 1200, "s1_lr2e-4", []),
    ("s1_lr1e-4", "s1", 1200, None, ["pretrain.train.lr=1.0e-4"]),
    ("s2_on_long6000", "s2", 1200, "s1_long6000", []),
    ("s2_on_cb1024", "s2", 1200, "s1_cb1024", []),
    ("s1_lr2e-4_long4800", "s1", 4800, None, ["pretrain.train.lr=2.0e-4", "pretrain.train.eval_every=1000", "pretrain.train.save_every=1000"]),
    ("s2_on_lr1e-4", "s2", 1200, "s1_lr1e-4", []),
    ("s2_on_lr2e-4_long4800", "s2", 1200, "s1_lr2e-4_long4800", []),
]

def orchestrate(data, work, out, budget=470.0, slots=5):
    global PLAN
    if os.environ.get("GRID_TEST"):
        PLAN = [(n, k, 2 if st > 1 else 1, d, o) for n, k, st, d, o in PLAN[:7]]; slots = 2
    if os.environ.get("GRID_S2ONLY"):
        PLAN = [p for p in PLAN if p[1] == "s2" and (Path(work) / p[3] / "row.json").is_file()]; slots = 6
        done0 = {p[3]: 0 for p in PLAN}
    else:
        done0 = {}
    start = time.time(); work = Path(work); out = Path(out); work.mkdir(parents=True, exist_ok=True)
    pending = list(PLAN); running = {}; done = dict(done0); failed = {}
    logs = out / "logs"; logs.mkdir(parents=True, exist_ok=True)
    def flush():
        rows = [json.loads((work / n / "row.json").read_text()) for n in done if (work / n / "row.json").is_file()]
        (out / "results.json").write_text(json.dumps({"elapsed": round(time.time() - start, 1), "rows": rows,
            "failed": failed, "running": list(running), "pending": [p[0] for p in pending]}, indent=1))
    while pending or running:
        for n, (p, fh) in list(running.items()):
            rc = p.poll()
            if rc is not None:
                fh.close(); del running[n]
                (done if rc == 0 else failed).__setitem__(n, rc)
                print(f"[{time.time()-start:.0f}s] {n} rc={rc}", flush=True); flush()
        late = time.time() - start > budget
        if late:
            for n, (p, fh) in running.items():
                p.kill(); failed[n] = "killed at budget"
            running.clear(); pending.clear(); break
        for item in list(pending):
            if len(running) >= slots:
                break
            name, kind, steps, dep, ov = item
            if dep and dep in failed:
                pending.remove(item); failed[name] = f"dependency {dep} failed"; continue
            if dep and dep not in done:
                continue
            pending.remove(item)
            init = str(work / dep / "model") if dep else ""
            fh = open(logs / f"{name}.log", "w")
            cmd = [sys.executable, __file__, "job", kind, name, str(steps), data, str(work), init, "--", *ov]
            running[name] = (subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT), fh)
            print(f"[{time.time()-start:.0f}s] start {name}", flush=True)
        time.sleep(2)
    flush()
    # the training curves of every run, for the write-up
    curves = {}
    for n in [p[0] for p in PLAN]:
        for f in ("train_log.csv", "valid_log.csv"):
            if (work / n / f).is_file():
                curves[f"{n}/{f}"] = (work / n / f).read_text()
    (out / "curves.json").write_text(json.dumps(curves))
    import tarfile
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tf:
        tf.add(logs, arcname="logs")
    import shutil; shutil.rmtree(logs)

if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "orchestrate":
        orchestrate(a[1], a[2], a[3], float(a[4]) if len(a) > 4 else 470.0)
    else:
        i = a.index("--")
        job(a[1], a[2], int(a[3]), a[4], a[5], a[6] or None, a[i + 1:])
