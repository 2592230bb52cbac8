"""Four-stem music source separation (issue 19): the generative separator of the second paper (codec
tokens of vocals, drums, bass and other generated one stem after another by a language model), the
discriminative separators it is compared with, and the ``duotok separate`` command.

Every system is a :class:`~duotok.separation.base.Separator`: a mono mixture in, the four stems out,
so the CLI, the chunked long-song path and the evaluation treat them all alike."""

from duotok.separation.base import STEMS, Separator, check_stems

__all__ = ["STEMS", "Separator", "check_stems"]
