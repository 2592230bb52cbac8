"""Quick diagnostic (issue 19): does the generative separator, trained on 2-s crops, do better when it
generates a 10-s excerpt in one sequence or in crossfaded chunks of the training length? Scores the
default model on validation excerpts (never test) with each chunk length, same sampling; prints the
toolkit Mel L1 per stem.

    python scripts/diag/separation_chunks.py [N_SONGS] [CHUNK_SECONDS ...]    # default: 4 10 2
    SAMPLING_SEED=1 python scripts/diag/separation_chunks.py 8 10 2
"""

import os
import sys

import torch

from duotok.config import Params
from duotok.separation.evaluate import score_separator
from duotok.separation.systems import ChunkedSeparator, load_generative


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    n_songs = int(argv[0]) if argv else 4
    chunks = [float(c) for c in (argv[1:] or ["10", "2"])]
    base = load_generative(Params.load("default"))
    base.inner.seed = int(os.environ.get("SAMPLING_SEED", "0"))
    for chunk in chunks:
        separator = ChunkedSeparator(base.inner, chunk)
        scores = score_separator(separator, "data", split="valid", n_songs=n_songs, seconds=10.0, metrics=("mel_l1",))
        by_stem = scores.groupby("stem")["mel_l1"].mean()
        print(f"chunk {chunk:4.1f} s (overlap {separator.overlap_seconds}): Mel L1 mean {by_stem.mean():.3f} | "
              + " ".join(f"{k} {v:.3f}" for k, v in by_stem.items()) + f" | rtf {scores.attrs['rtf']:.3f}",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
