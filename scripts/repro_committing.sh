#!/usr/bin/env bash
# Run DVC stages one at a time and commit each one's results as soon as it finishes, so a session that
# stops half-way loses nothing (the guide: "commit each stage's results as it finishes").
#
#   bash scripts/repro_committing.sh ablation_replica@1-noise_std05 ablations pipeline
#   bash scripts/repro_committing.sh --dry-run ablations        # print what would run, run nothing
#
# For each STAGE, in the order given: `dvc repro --single-item STAGE` (only that stage: DVC does not look at
# its upstream, so name upstream stages first, as they stand in the pipeline), then
# `git commit` of dvc.lock and reports/ with the stage's name and its wall time from
# reports/metrics/timing/<stage>.json. A failing stage stops the loop with its exit code, and what was
# committed before it stays. The stages run at nice 10, so an editor or `git` stays responsive beside them;
# run nothing else heavy meanwhile (the timing records say whether other work shared the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
if [ "$#" = 0 ]; then
  echo "usage: bash scripts/repro_committing.sh [--dry-run] STAGE [STAGE ...]" >&2
  exit 2
fi
export PATH="$PWD/.venv/bin:$PATH" DVC_NO_ANALYTICS=1

for stage in "$@"; do
  if [ "$dry_run" = 1 ]; then
    echo "nice -n 10 dvc repro --single-item $stage && git commit dvc.lock reports/"
    continue
  fi
  echo "[repro] $(date -u +%FT%TZ) $stage" >&2
  nice -n 10 dvc repro --single-item "$stage"
  timing="reports/metrics/timing/${stage}.json"
  wall=""
  if [ -f "$timing" ]; then
    wall=$(python3 -c 'import json, sys; print("%.1f min" % (json.load(open(sys.argv[1]))["wall_seconds"] / 60))' "$timing")
  fi
  git add dvc.lock reports/
  if git diff --cached --quiet; then
    echo "[repro] $stage: nothing changed, nothing to commit" >&2
  else
    git commit -q -m "dvc repro $stage${wall:+ ($wall)}"
    echo "[repro] committed $stage${wall:+ ($wall)}" >&2
  fi
done
