#!/usr/bin/env bash
# Train a checkpoint, resumably, then take every figure BENCHMARKS.md compares checkpoints by.
#
#   benchmarks/train_and_measure.sh NAME [main.py TRAIN flags...]
#   e.g. nohup nice -n 19 benchmarks/train_and_measure.sh wide-long-seed0 --epochs 20 > runs/wide-long-seed0.out 2>&1 &
#
# Trains the wide recipe (seed 0 unless the flags say otherwise) into runs/NAME, continuing from
# runs/NAME/last_state.pt when a run was stopped: run the same command again to resume. Then,
# on runs/NAME/best: TEST, attribute search, held-out open-vocabulary search and the
# out-of-distribution calibration, into benchmarks/results/*-NAME.json. Nothing is shipped:
# copying a winner into checkpoints/clip-cifar10 is a decision for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:?usage: benchmarks/train_and_measure.sh NAME [main.py TRAIN flags...]}
shift
data=${CIFAR10_DATA:-../shared/data/cifar10}
python=${PYTHON:-.venv/bin/python}
run=runs/$name
results=benchmarks/results
mkdir -p "$run"

resume=()
[ -f "$run/last_state.pt" ] && resume=(--resume)
"$python" main.py --mode TRAIN --recipe wide --seed 0 --data "$data" --output "$run" "${resume[@]}" "$@" 2>&1 |
  tee -a "$run/train.log"

"$python" main.py --mode TEST --checkpoint "$run/best" --data "$data" --report "$results/test_report-$name.json"
"$python" benchmarks/attribute_search_benchmark.py --checkpoint "$run/best" --data "$data" \
  --json "$results/attribute_search-$name.json"
"$python" benchmarks/open_vocab_benchmark.py --checkpoint "$run/best" --data "$data" \
  --json "$results/open_vocab_heldout-$name.json"
# Calibrates the flag for these weights and writes it into the run's checkpoint.
CIFAR10_DATA=$data "$python" benchmarks/ood_benchmark.py --checkpoint "$run/best" --json "$results/ood-$name.json"
