#!/bin/bash
# Diagnostic: do two source trees train bit-identical models? Runs stages 1-4 of the smoke profile for a few
# steps from each tree on the same corpus and compares every written weight file byte for byte. Used before
# `dvc commit` of stages whose only change is code that must not move their outputs (e.g. a refactor, or a
# new option whose default is the old behaviour).
#   usage: scripts/diag/same_outputs.sh OLD_TREE NEW_TREE DATA_DIR [STEPS]
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); data=$(realpath "$3"); steps=${4:-6}
work=$(mktemp -d)
for tree in old new; do
  src=${!tree}; out=$work/$tree
  run() { (cd "$src" && PYTHONPATH="$src" python -m "duotok.train.$1" --profile smoke --steps "$steps" --device cpu \
            --data-dir "$data" "${@:2}" > "$out.$1.log" 2>&1) || { echo "$tree $1 failed: $out.$1.log"; exit 1; }; }
  mkdir -p "$out"
  run pretrain --out "$out/pretrain"
  run finetune --init "$out/pretrain/model" --out "$out/finetune"
  run quantize --init "$out/finetune/model" --out "$out/quantize" --tokenizer "$out/tokenizer"
  run autoencoder --out "$out/autoencoder"
  run decoder --tokenizer "$out/tokenizer" --autoencoder "$out/autoencoder/model" --out "$out/decoder" --codec "$out/codec"
done
status=0
while IFS= read -r f; do
  rel=${f#"$work/old/"}
  if cmp -s "$f" "$work/new/$rel"; then echo "same      $rel"; else echo "DIFFERENT $rel"; status=1; fi
done < <(find "$work/old" -name "*.safetensors" | sort)
[ "$status" = 0 ] && echo "all weight files identical ($work)" || echo "weights differ ($work)"
exit $status
