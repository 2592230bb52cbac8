"""Decode the carried Opus chunks into a duosynth corpus: vocals, other (= accompaniment), silent drums and
bass, mixture = vocals + accompaniment. Written as float WAV under .flac names (libsndfile reads by content),
so that crop reads cost a seek, not a FLAC decode."""
import json, sys, tarfile
from multiprocessing import Pool
from pathlib import Path
import numpy as np, soundfile as sf

def one(args):
    chunk, sid, out = args
    v, sr = sf.read(chunk / f"{sid}.vocals.ogg", dtype="float32")
    a, _ = sf.read(chunk / f"{sid}.acc.ogg", dtype="float32")
    n = min(len(v), len(a)); v, a = v[:n], a[:n]
    d = out / "songs" / sid; d.mkdir(parents=True, exist_ok=True)
    z = np.zeros_like(v)
    for name, x in (("vocals", v), ("other", a), ("drums", z), ("bass", z), ("mixture", v + a)):
        sf.write(d / f"{name}.flac", x, sr, format="WAV", subtype="FLOAT")
    return sid

def main(manifest, out, *chunks):
    out = Path(out); man = json.loads(Path(manifest).read_text())
    jobs = []
    for c in map(Path, chunks):
        with tarfile.open(c / "meta.tar.xz") as tf:
            for m in tf.getmembers():
                sid = m.name[: -len(".meta.json")]
                (out / "songs" / sid).mkdir(parents=True, exist_ok=True)
                (out / "songs" / sid / "meta.json").write_bytes(tf.extractfile(m).read())
                jobs.append((c, sid, out))
    with Pool(16) as p:
        done = set(p.map(one, jobs))
    have = {p.name for p in (out / "songs").iterdir() if (p / "mixture.flac").is_file()}
    songs = [s for s in man["songs"] if s["id"] in have]
    (out / "manifest.json").write_text(json.dumps({**man, "songs": songs}))
    print("unpacked", len(done), "now", len(songs), "songs in", out)

if __name__ == "__main__":
    main(*sys.argv[1:])
