#!/usr/bin/env bash
# The test command (`make test`): set up if needed, lint, then pytest. pytest's exit code 5
# ("no tests collected") is an error here: a test run that ran nothing must not look green.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export DVC_NO_ANALYTICS=1
.venv/bin/ruff check duotok tests notebooks
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "[test] pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
