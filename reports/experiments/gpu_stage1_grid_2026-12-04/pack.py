"""Pack a subset of the duosynth corpus as Opus (vocals, accompaniment) + meta for the GPU machine."""
import json, os, sys, tarfile, io
from pathlib import Path
import numpy as np, soundfile as sf
root = Path('/work/main/data'); out = Path('/work/main/.gpu')
n_train, n_valid, level = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
man = json.loads((root/'manifest.json').read_text())
chosen = []
for split, n in (('train', n_train), ('valid', n_valid)):
    chosen += sorted((s for s in man['songs'] if s['split']==split), key=lambda s: s['id'])[:n]
chunks = [chosen[0::2], chosen[1::2]]
for ci, songs in enumerate(chunks):
    d = out/f'd{ci}'; d.mkdir(parents=True, exist_ok=True)
    for s in songs:
        sd = root/'songs'/s['id']
        v, sr = sf.read(sd/'vocals.flac', dtype='float32')
        acc = sum(sf.read(sd/f'{k}.flac', dtype='float32')[0] for k in ('drums','bass','other'))
        sf.write(d/f"{s['id']}.vocals.ogg", v, sr, format='OGG', subtype='OPUS', compression_level=level)
        sf.write(d/f"{s['id']}.acc.ogg", acc, sr, format='OGG', subtype='OPUS', compression_level=level)
    with tarfile.open(d/'meta.tar.xz','w:xz') as tf:
        for s in songs: tf.add(root/'songs'/s['id']/'meta.json', arcname=s['id']+'.meta.json')
    print(ci, len(songs), sum(f.stat().st_size for f in d.iterdir())/1e6, 'MB')
(out/'manifest.json').write_text(json.dumps({**man, 'songs': chosen}))
