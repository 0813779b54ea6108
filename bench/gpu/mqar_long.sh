#!/usr/bin/env bash
# One MQAR run longer than the grid's 90-s cap: seq 512 / 64 pairs, DeltaNet d=128, lr $1, up to 20k
# steps, capped at what is left of the call (END_AT, from lib.sh) minus a margin. Results under
# $2/mqar.{jsonl,json,md,png}. (The grid's cap, ~4k steps, left DeltaNet d=128 at chance at all three
# lrs on an H100 while d=256 solved the task in 1.3k steps.)
set -uo pipefail
cd "$(dirname "$0")/../.."
LR=$1 DIR=$2
left=$(( END_AT - $(date +%s) - 25 ))
if [ $left -lt 60 ]; then echo "no time left for MQAR lr $LR"; exit 0; fi
exec python3 bench/gpu/zoo_cli.py sweep recipes/mqar.yaml --grid "model.pattern=delta*2" \
    --grid "model.d_model:model.n_heads=128:1" data.seq_len=512 data.mqar.num_kv_pairs=64 "train.lr=$LR" \
    train.steps=20000 "sweep.max_seconds=$(( left - 15 ))" --out "$DIR/mqar" --budget "$left"
