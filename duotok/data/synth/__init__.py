"""duosynth — the embedded default corpus: songs rendered from the music21 corpus's scores with lyrics
into four stems (vocals, drums, bass, other) plus their mixture, with rich free labels.

Modules: ``catalog`` (which scores qualify), ``score`` (extract a song plan from a score),
``singing`` (espeak-ng + WORLD singer), ``instruments`` (soundfont rendering), ``drums`` (pattern
generator), ``tags`` (the tag vocabulary), ``generate`` (orchestrates and writes ``data/``).
"""
