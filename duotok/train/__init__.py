"""Training (audiocraft's ``solvers/``): one generic loop (``loop``) and one runner per stage."""
